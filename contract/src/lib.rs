//! The facts that `terraform-provider-beads` and `beads-runner` must agree on.
//!
//! The provider renders a CronJob (or Deployment) whose container runs the
//! runner; the runner reads what the provider rendered. Every name that
//! crosses that boundary — the `metadata.json` shape, environment variable
//! names, subcommands, note texts and label names — is defined here once.

pub mod cron;
pub mod defaults;
pub mod duration;
pub mod env;
pub mod labels;
pub mod metadata;
pub mod notes;
pub mod urls;

pub use duration::{DurationError, format_duration, parse_duration};
pub use metadata::{Metadata, MetadataError};

//! Environment variable names. `bd`'s own names where `bd` has one.

/// Path of `metadata.json` (default [`crate::defaults::METADATA_PATH`]).
pub const METADATA: &str = "BEADS_METADATA";
pub const DOLT_SERVER_HOST: &str = "BEADS_DOLT_SERVER_HOST";
pub const DOLT_SERVER_PORT: &str = "BEADS_DOLT_SERVER_PORT";
pub const DOLT_SERVER_USER: &str = "BEADS_DOLT_SERVER_USER";
pub const DOLT_SERVER_DATABASE: &str = "BEADS_DOLT_SERVER_DATABASE";
pub const DOLT_SERVER_TLS: &str = "BEADS_DOLT_SERVER_TLS";
/// The database password. Only ever from the environment (a Secret), never from a file.
pub const DOLT_PASSWORD: &str = "BEADS_DOLT_PASSWORD";
pub const BEADBOARD_URL: &str = "BEADBOARD_URL";
/// Optional bearer token. BeadBoard itself has no authentication; only a
/// proxy the operator puts in front of it ever checks this.
pub const BEADBOARD_TOKEN: &str = "BEADBOARD_TOKEN";
pub const ACTOR: &str = "BEADS_ACTOR";
pub const AGENT_ASSIGNEE: &str = "BEADS_AGENT_ASSIGNEE";
pub const REAP_STALE_AFTER: &str = "BEADS_REAP_STALE_AFTER";
pub const CLAIM_TIMEOUT: &str = "BEADS_CLAIM_TIMEOUT";
pub const MAX_IN_FLIGHT: &str = "BEADS_MAX_IN_FLIGHT";
pub const LOG_FORMAT: &str = "BEADS_LOG_FORMAT";
pub const HTTP_TIMEOUT: &str = "BEADS_HTTP_TIMEOUT";
/// Dispatch interval of `beads-runner run`.
pub const RUN_INTERVAL: &str = "BEADS_RUN_INTERVAL";
/// Reap interval of `beads-runner run`.
pub const REAP_INTERVAL: &str = "BEADS_REAP_INTERVAL";
/// Listen address of `/healthz` and `/metrics` in `beads-runner run`.
pub const LISTEN: &str = "BEADS_LISTEN";
/// Dolt commit author, as `bd` reads them.
pub const GIT_AUTHOR_NAME: &str = "GIT_AUTHOR_NAME";
pub const GIT_AUTHOR_EMAIL: &str = "GIT_AUTHOR_EMAIL";
/// Whole-tick deadline of `dispatch`, `reap` and each tick of `run`.
pub const TICK_DEADLINE: &str = "BEADS_TICK_DEADLINE";
/// Failed or overdue ticks in a row after which `/healthz` answers 503.
pub const UNHEALTHY_AFTER: &str = "BEADS_UNHEALTHY_AFTER";
/// First runner-wide pause after a transient BeadBoard failure.
pub const RETRY_DELAY: &str = "BEADS_RETRY_DELAY";

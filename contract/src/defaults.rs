//! Default values shared by the provider's schema and the runner's flags.

use std::time::Duration;

/// The sentinel assignee that hands a bead to the agent.
pub const ASSIGNEE: &str = "agent";
/// `events.actor` for dispatcher writes (the shell script's `BEADS_ACTOR`).
pub const DISPATCH_ACTOR: &str = "beads-dispatcher";
/// `events.actor` for reaper writes.
pub const REAP_ACTOR: &str = "beads-reaper";
/// `events.actor` for the long-lived `run` mode, which does both.
pub const RUN_ACTOR: &str = "beads-runner";
/// Schedule of the dispatcher CronJob (the old script's, every 2 minutes).
pub const DISPATCH_SCHEDULE: &str = "*/2 * * * *";
/// Schedule of the reaper CronJob (every 10 minutes).
pub const REAP_SCHEDULE: &str = "*/10 * * * *";
/// How long an `in_progress` bead may go without an update before the reaper blocks it.
pub const STALE_AFTER: Duration = Duration::from_secs(30 * 60);
/// How long a claimed bead may wait for its `dispatched:` note before it is returned to `open`.
pub const CLAIM_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// How many of the agent's beads may be `in_progress` before a tick stops dispatching.
pub const MAX_IN_FLIGHT: u32 = 1;
/// Interval of the dispatch tick in `run` mode.
pub const RUN_INTERVAL: Duration = Duration::from_secs(30);
/// Interval of the reap tick in `run` mode.
pub const REAP_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// Address of `/healthz` and `/metrics` in `run` mode.
pub const LISTEN: &str = "0.0.0.0:9090";
/// Timeout of one BeadBoard request.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest one dispatch or reap tick may take, all writes and requests
/// included; a tick past it stops taking new beads and exits.
pub const TICK_DEADLINE: Duration = Duration::from_secs(90);
/// Longest one SQL statement may take before the runner gives up on it and
/// its connection (bd's DSN uses 10 s read and write timeouts).
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(10);
/// Consecutive failed or overdue ticks after which `/healthz` in `run` mode
/// answers 503.
pub const UNHEALTHY_AFTER: u32 = 3;
/// First pause of the whole runner after BeadBoard failed transiently (5xx,
/// 409, 429, unreachable, or refusing every bead); it doubles per further
/// failure up to [`MAX_RETRY_DELAY`].
pub const RETRY_DELAY: Duration = Duration::from_secs(2 * 60);
/// The longest pause after repeated transient failures.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(60 * 60);
/// Most bytes of a BeadBoard answer the runner reads; the rest is ignored
/// (a 2xx cut there is an unreadable answer).
pub const MAX_RESPONSE_BODY: usize = 64 * 1024;
/// Longest duration any flag accepts (durations beyond it overflow timers).
pub const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);
/// `activeDeadlineSeconds` of the Jobs the CronJobs create: the backstop
/// that kills a runner whose own [`TICK_DEADLINE`] failed, so one hung Job
/// can never stop later ticks under `concurrencyPolicy: Forbid`.
pub const JOB_ACTIVE_DEADLINE: Duration = Duration::from_secs(120);

/// Directory where the ConfigMap holding `metadata.json` is mounted.
pub const METADATA_DIR: &str = "/etc/beads-metadata";
/// Key of `metadata.json` in the ConfigMap, and its file name in [`METADATA_DIR`].
pub const METADATA_FILE: &str = "metadata.json";
/// Full default path the runner reads.
pub const METADATA_PATH: &str = "/etc/beads-metadata/metadata.json";

/// Dolt connection defaults, as `bd` applies them.
pub const DOLT_HOST: &str = "127.0.0.1";
pub const DOLT_PORT: u16 = 3306;
pub const DOLT_USER: &str = "root";
pub const DOLT_DATABASE: &str = "beads";

/// Author of Dolt commits when `GIT_AUTHOR_NAME` / `GIT_AUTHOR_EMAIL` are unset, as `bd` does.
pub const COMMIT_AUTHOR_NAME: &str = "beads";
pub const COMMIT_AUTHOR_EMAIL: &str = "beads@local";

/// Where the runner binary sits in its image (`runner/Dockerfile`); the
/// provider puts this path in the container's command.
pub const RUNNER_IMAGE_PATH: &str = "/usr/local/bin/beads-runner";

/// Runner subcommands, as the provider puts them in container args.
pub mod subcommand {
    pub const DISPATCH: &str = "dispatch";
    pub const REAP: &str = "reap";
    pub const RUN: &str = "run";
    pub const CHECK: &str = "check";
}

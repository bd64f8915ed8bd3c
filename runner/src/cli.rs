//! Command-line flags. Each flag also reads the environment variable named in
//! `beads_contract::env`; values are checked in [`crate::config`], which
//! names the flag and the variable in its errors.

use beads_contract::env;
use clap::{Args, Parser, Subcommand, ValueEnum};

/// Beads auto-dispatch: hands beads assigned to the agent to BeadBoard, and
/// blocks beads whose agent stopped making progress.
#[derive(Debug, Parser)]
#[command(name = "beads-runner", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every subcommand takes.
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Beads' metadata.json (read only). Default: /etc/beads-metadata/metadata.json.
    #[arg(long, global = true, env = env::METADATA, value_name = "PATH")]
    pub metadata: Option<String>,
    /// BeadBoard's base URL, e.g. http://beadboard.beads-server.svc.cluster.local. Credentials in it are never shown.
    #[arg(long, global = true, env = env::BEADBOARD_URL, value_name = "URL")]
    pub beadboard_url: Option<String>,
    /// Actor recorded in the events table. Default: beads-dispatcher, beads-reaper or beads-runner.
    #[arg(long, global = true, env = env::ACTOR)]
    pub actor: Option<String>,
    /// The sentinel assignee that hands a bead to the agent. Default: agent.
    #[arg(long, global = true, env = env::AGENT_ASSIGNEE)]
    pub assignee: Option<String>,
    /// Block an in_progress bead after this long without an update. Default: 30m.
    #[arg(long, global = true, env = env::REAP_STALE_AFTER, value_name = "DURATION")]
    pub stale_after: Option<String>,
    /// Reopen a claimed bead whose dispatch was never sent after this long. Default: 5m.
    #[arg(long, global = true, env = env::CLAIM_TIMEOUT, value_name = "DURATION")]
    pub claim_timeout: Option<String>,
    /// Dispatch until this many of the agent's beads are in_progress. Default: 1.
    #[arg(long, global = true, env = env::MAX_IN_FLIGHT, value_name = "N")]
    pub max_in_flight: Option<String>,
    /// Timeout of one BeadBoard request. Default: 30s.
    #[arg(long, global = true, env = env::HTTP_TIMEOUT, value_name = "DURATION")]
    pub http_timeout: Option<String>,
    /// Longest a tick may take; past it no new bead is started and a hung tick is abandoned. Default: 90s.
    #[arg(long, global = true, env = env::TICK_DEADLINE, value_name = "DURATION")]
    pub tick_deadline: Option<String>,
    /// First pause of the whole runner after BeadBoard failed transiently; doubles per failure up to 1h. Default: 2m.
    #[arg(long, global = true, env = env::RETRY_DELAY, value_name = "DURATION")]
    pub retry_delay: Option<String>,
    /// Log format on stderr.
    #[arg(long, global = true, env = env::LOG_FORMAT, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// One dispatcher tick: claim the best eligible bead(s) and send them to BeadBoard.
    Dispatch {
        /// Print what the tick would do; write nothing, send nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// One reaper tick: block stalled beads, reopen claims that were never sent.
    Reap {
        /// Print what the tick would do; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Connect, verify the schema and the project identity, print what was found; change nothing.
    Check,
    /// The agent's queue at a glance (or one bead's dispatch history); read-only.
    Status {
        /// Print this bead's dispatch history instead of the queue.
        #[arg(value_name = "BEAD_ID")]
        bead: Option<String>,
        /// JSON instead of a table (shape in docs/runner.md).
        #[arg(long)]
        json: bool,
    },
    /// Long-lived mode: dispatch every interval and reap on its own interval.
    Run {
        /// Dispatch tick interval. Default: 30s.
        #[arg(long, env = env::RUN_INTERVAL, value_name = "DURATION")]
        interval: Option<String>,
        /// Reap tick interval. Default: 5m.
        #[arg(long, env = env::REAP_INTERVAL, value_name = "DURATION")]
        reap_interval: Option<String>,
        /// Address of /healthz and /metrics. Default: 0.0.0.0:9090.
        #[arg(long, env = env::LISTEN, value_name = "ADDR")]
        listen: Option<String>,
        /// /healthz answers 503 after this many failed or overdue ticks in a row. Default: 3.
        #[arg(long, env = env::UNHEALTHY_AFTER, value_name = "N")]
        unhealthy_after: Option<String>,
    },
}

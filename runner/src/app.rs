//! From parsed flags to an exit code: 0 the tick completed, 1 it failed,
//! 2 the runner refused to run and wrote nothing.

use std::process::ExitCode;
use std::sync::atomic::AtomicBool;

use beads_contract::defaults;

use crate::beadboard::BeadBoard;
use crate::cli::{Cli, Command, LogFormat};
use crate::config::{self, ProcessEnv};
use crate::decide::ReapPolicy;
use crate::store::Store;
use crate::tick::{DispatchTick, ReapTick, TickError, within_deadline};

/// Exit code of a completed tick.
pub const EXIT_OK: u8 = 0;
/// Exit code of a failed tick.
pub const EXIT_FAILED: u8 = 1;
/// Exit code of a refusal (bad configuration, wrong database).
pub const EXIT_REFUSED: u8 = 2;

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BEADS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
}

/// Runs the command and returns the process exit code.
pub fn main(cli: Cli) -> ExitCode {
    init_logging(cli.common.log_format);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(outcome = "failed", "cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let code = runtime.block_on(run(cli));
    ExitCode::from(code)
}

async fn run(cli: Cli) -> u8 {
    let (default_actor, needs_board) = match &cli.command {
        Command::Dispatch { .. } => (defaults::DISPATCH_ACTOR, true),
        Command::Reap { .. } => (defaults::REAP_ACTOR, false),
        Command::Check | Command::Status { .. } => (defaults::DISPATCH_ACTOR, false),
        Command::Run { .. } => (defaults::RUN_ACTOR, true),
    };
    let config = match config::resolve(&cli.common, &ProcessEnv, default_actor, needs_board) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(outcome = "refused", "{e}");
            return EXIT_REFUSED;
        }
    };
    match cli.command {
        Command::Run {
            interval,
            reap_interval,
            listen,
            unhealthy_after,
        } => {
            let run_config = match config::resolve_run(
                interval.as_deref(),
                reap_interval.as_deref(),
                listen.as_deref(),
                unhealthy_after.as_deref(),
            ) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(outcome = "refused", "{e}");
                    return EXIT_REFUSED;
                }
            };
            match crate::serve::run(&config, run_config).await {
                Ok(()) => EXIT_OK,
                Err(e) => {
                    tracing::error!(outcome = "refused", "{e:#}");
                    EXIT_REFUSED
                }
            }
        }
        Command::Check => {
            let store = Store::new(&config.db, &config.commit_author);
            let code = check(&store, &config.assignee).await;
            store.close().await;
            code
        }
        Command::Status { bead, json } => {
            let store = Store::new(&config.db, &config.commit_author);
            let request = crate::status::Request {
                bead,
                json,
                color: !json
                    && crate::status::use_color(
                        std::io::IsTerminal::is_terminal(&std::io::stdout()),
                        std::env::var("NO_COLOR").ok().as_deref(),
                    ),
            };
            let result = crate::status::run(
                &store,
                &config.assignee,
                config.db.project_id.as_deref(),
                &request,
                config.retry_delay,
                chrono::Utc::now(),
            )
            .await;
            store.close().await;
            match result {
                Ok(text) => {
                    print!("{text}");
                    EXIT_OK
                }
                Err(crate::status::StatusError::Store(e)) => exit_code(Err(e.into())),
                Err(e) => exit_code(Err(TickError::Failed(e.to_string()))),
            }
        }
        Command::Dispatch { dry_run } => {
            let Some(board_config) = &config.board else {
                return EXIT_REFUSED; // resolve() requires it for dispatch
            };
            let board = match BeadBoard::new(board_config) {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(outcome = "failed", "cannot build the HTTP client: {e}");
                    return EXIT_FAILED;
                }
            };
            let store = Store::new(&config.db, &config.commit_author);
            let stop = AtomicBool::new(false);
            let deadline = tokio::time::Instant::now() + config.tick_deadline;
            let tick = DispatchTick {
                store: &store,
                board: &board,
                actor: &config.actor,
                assignee: &config.assignee,
                max_in_flight: config.max_in_flight,
                dry_run,
                stop: &stop,
                retry_delay: config.retry_delay,
                deadline,
            };
            let result = within_deadline(deadline, config.tick_deadline, tick.run())
                .await
                .and_then(|report| {
                    if dry_run && report.would_dispatch.is_empty() {
                        println!(
                            "would dispatch nothing ({} eligible{})",
                            report.eligible,
                            if report.busy { ", agent busy" } else { "" }
                        );
                    }
                    if report.is_failure() {
                        Err(TickError::Failed(report.failure()))
                    } else {
                        Ok(())
                    }
                });
            store.close().await;
            exit_code(result)
        }
        Command::Reap { dry_run } => {
            let store = Store::new(&config.db, &config.commit_author);
            let tick = ReapTick {
                store: &store,
                actor: &config.actor,
                assignee: &config.assignee,
                policy: ReapPolicy {
                    stale_after: config.stale_after,
                    claim_timeout: config.claim_timeout,
                },
                dry_run,
            };
            let deadline = tokio::time::Instant::now() + config.tick_deadline;
            let result = within_deadline(deadline, config.tick_deadline, tick.run())
                .await
                .and_then(|report| {
                    if dry_run && report.changed.is_empty() {
                        println!("would change nothing ({} in progress)", report.examined);
                    }
                    if report.errors.is_empty() {
                        Ok(())
                    } else {
                        Err(TickError::Failed(report.errors.join("; ")))
                    }
                });
            store.close().await;
            exit_code(result)
        }
    }
}

fn exit_code(result: Result<(), TickError>) -> u8 {
    match result {
        Ok(()) => EXIT_OK,
        Err(TickError::Refused(m)) => {
            tracing::error!(outcome = "refused", "{m}");
            EXIT_REFUSED
        }
        Err(TickError::Failed(m)) => {
            tracing::error!(outcome = "failed", "{m}");
            EXIT_FAILED
        }
    }
}

async fn check(store: &Store, assignee: &str) -> u8 {
    let info = match store.verify().await {
        Ok(info) => info.clone(),
        Err(e) => return exit_code(Err(e.into())),
    };
    let counts = async {
        Ok::<_, crate::store::StoreError>((
            store.candidates(assignee).await?.beads.len(),
            store.count_in_progress(assignee).await?,
        ))
    }
    .await;
    let (open, in_progress) = match counts {
        Ok(c) => c,
        Err(e) => return exit_code(Err(e.into())),
    };
    println!("database:     {}", store.target());
    println!("server:       {}", info.version);
    println!(
        "dolt:         {}",
        info.dolt_version
            .as_deref()
            .unwrap_or("no (MySQL/MariaDB: Dolt commits skipped)")
    );
    println!(
        "project id:   {}",
        info.project_id
            .as_deref()
            .unwrap_or("(not set; identity check skipped)")
    );
    println!("schema:       ok (all columns the runner needs are present)");
    println!("assignee:     {assignee}: {open} open, {in_progress} in progress");
    EXIT_OK
}

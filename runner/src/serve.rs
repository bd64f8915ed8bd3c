//! `beads-runner run`: the dispatch tick every interval and the reap tick on
//! its own interval, over one connection pool, with `/healthz` and
//! Prometheus `/metrics`, until SIGTERM or SIGINT.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::beadboard::BeadBoard;
use crate::config::{Config, RunConfig};
use crate::decide::ReapPolicy;
use crate::store::Store;
use crate::tick::{DispatchTick, ReapTick, TickError, within_deadline};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TickLabels {
    kind: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

/// The runner's metrics.
struct Metrics {
    ticks: Family<TickLabels, Counter>,
    dispatched: Counter,
    failed: Counter,
    reaped: Counter,
    duration: Family<KindLabel, Histogram>,
    /// Unix seconds of the last completed tick, for /healthz.
    last_tick: AtomicI64,
    /// Failed or abandoned ticks in a row, per kind (dispatch, reap), for /healthz.
    failed_in_a_row: [AtomicU32; 2],
}

impl Metrics {
    fn new(registry: &mut Registry) -> Arc<Self> {
        let m = Metrics {
            ticks: Family::default(),
            dispatched: Counter::default(),
            failed: Counter::default(),
            reaped: Counter::default(),
            duration: Family::new_with_constructor(|| {
                Histogram::new([
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                ])
            }),
            last_tick: AtomicI64::new(chrono::Utc::now().timestamp()),
            failed_in_a_row: [AtomicU32::new(0), AtomicU32::new(0)],
        };
        registry.register(
            "beads_runner_ticks",
            "Ticks run, by kind and result",
            m.ticks.clone(),
        );
        registry.register(
            "beads_runner_dispatched",
            "Beads dispatched to BeadBoard",
            m.dispatched.clone(),
        );
        registry.register(
            "beads_runner_dispatch_failed",
            "Dispatch requests sent that did not dispatch the bead (refused, failed, outcome unknown)",
            m.failed.clone(),
        );
        registry.register(
            "beads_runner_reaped",
            "Beads the reaper blocked or reopened",
            m.reaped.clone(),
        );
        registry.register(
            "beads_runner_tick_duration_seconds",
            "Tick wall time",
            m.duration.clone(),
        );
        Arc::new(m)
    }

    fn record(&self, kind: &'static str, started: Instant, result: &Result<(), TickError>) {
        let label = match result {
            Ok(()) => "ok",
            Err(TickError::Failed(_)) => "failed",
            Err(TickError::Refused(_)) => "refused",
        };
        self.ticks
            .get_or_create(&TickLabels {
                kind,
                result: label,
            })
            .inc();
        self.duration
            .get_or_create(&KindLabel { kind })
            .observe(started.elapsed().as_secs_f64());
        self.last_tick
            .store(chrono::Utc::now().timestamp(), Ordering::Relaxed);
        // Per kind: a healthy reap tick must not hide failing dispatch ticks.
        let in_a_row = &self.failed_in_a_row[usize::from(kind != "dispatch")];
        if result.is_ok() {
            in_a_row.store(0, Ordering::Relaxed);
        } else {
            in_a_row.fetch_add(1, Ordering::Relaxed);
        }
    }
}

struct Http {
    registry: Registry,
    metrics: Arc<Metrics>,
    /// A tick should complete at least this often; longer means stuck.
    healthy_within: Duration,
    /// Failed or abandoned ticks in a row that make the runner unhealthy.
    unhealthy_after: u32,
}

async fn healthz(State(http): State<Arc<Http>>) -> impl IntoResponse {
    let age = chrono::Utc::now().timestamp() - http.metrics.last_tick.load(Ordering::Relaxed);
    let failed = http
        .metrics
        .failed_in_a_row
        .iter()
        .map(|n| n.load(Ordering::Relaxed))
        .max()
        .unwrap_or(0);
    if failed >= http.unhealthy_after {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the last {failed} ticks failed or overran their deadline\n"),
        )
    } else if age.max(0).unsigned_abs() <= http.healthy_within.as_secs() {
        (StatusCode::OK, "ok\n".to_string())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("no tick completed for {age}s\n"),
        )
    }
}

async fn metrics_page(State(http): State<Arc<Http>>) -> impl IntoResponse {
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &http.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = terminate => {},
        _ = tokio::signal::ctrl_c() => {},
    }
}

/// Runs until a signal; a tick in flight finishes first. Returns an error
/// only when the runner must not go on (a refusal, or the port is taken).
pub async fn run(config: &Config, run: RunConfig) -> anyhow::Result<()> {
    let board_config = config
        .board
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("run needs --beadboard-url"))?;
    let board = BeadBoard::new(board_config)?;
    let store = Store::new(&config.db, &config.commit_author);
    let mut registry = Registry::default();
    let metrics = Metrics::new(&mut registry);
    let http = Arc::new(Http {
        registry,
        metrics: metrics.clone(),
        healthy_within: run.interval.max(run.reap_interval).saturating_mul(3)
            + config.tick_deadline,
        unhealthy_after: run.unhealthy_after,
    });
    let listener = tokio::net::TcpListener::bind(run.listen)
        .await
        .map_err(|e| anyhow::anyhow!("--listen {}: {e}", run.listen))?;
    tracing::info!(listen = %listener.local_addr()?, interval = ?run.interval, reap_interval = ?run.reap_interval, "serving /healthz and /metrics");
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_page))
        .with_state(http);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let stop = Arc::new(AtomicBool::new(false));
    let signal = {
        let stop = stop.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("shutdown requested; finishing the tick in flight");
            stop.store(true, Ordering::SeqCst);
        })
    };

    let mut dispatch_every = tokio::time::interval(run.interval);
    let mut reap_every = tokio::time::interval(run.reap_interval);
    for timer in [&mut dispatch_every, &mut reap_every] {
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    }
    let policy = ReapPolicy {
        stale_after: config.stale_after,
        claim_timeout: config.claim_timeout,
    };
    let outcome = loop {
        if stop.load(Ordering::SeqCst) {
            break Ok(());
        }
        tokio::select! {
            _ = dispatch_every.tick() => {
                let started = Instant::now();
                let deadline = tokio::time::Instant::now() + config.tick_deadline;
                let tick = DispatchTick {
                    store: &store,
                    board: &board,
                    actor: &config.actor,
                    assignee: &config.assignee,
                    max_in_flight: config.max_in_flight,
                    dry_run: false,
                    stop: &stop,
                    retry_delay: config.retry_delay,
                    deadline,
                };
                let result = within_deadline(deadline, config.tick_deadline, tick.run())
                    .await
                    .and_then(|report| {
                        metrics.dispatched.inc_by(report.dispatched.len() as u64);
                        // Only requests actually sent count as failed dispatches.
                        metrics.failed.inc_by(report.failed.len() as u64);
                        if report.is_failure() {
                            Err(TickError::Failed(report.failure()))
                        } else {
                            Ok(())
                        }
                    });
                if let Err(TickError::Failed(m)) = &result {
                    tracing::warn!(outcome = "tick_failed", error = %m, "dispatch tick failed; next tick in {:?}", run.interval);
                }
                metrics.record("dispatch", started, &result);
                if let Err(TickError::Refused(m)) = result {
                    break Err(anyhow::anyhow!(m));
                }
            }
            _ = reap_every.tick() => {
                let started = Instant::now();
                let tick = ReapTick {
                    store: &store,
                    actor: &config.actor,
                    assignee: &config.assignee,
                    policy,
                    dry_run: false,
                };
                let deadline = tokio::time::Instant::now() + config.tick_deadline;
                let result = within_deadline(deadline, config.tick_deadline, tick.run())
                    .await
                    .and_then(|report| {
                        metrics.reaped.inc_by(report.changed.len() as u64);
                        if report.errors.is_empty() {
                            Ok(())
                        } else {
                            Err(TickError::Failed(report.errors.join("; ")))
                        }
                    });
                if let Err(TickError::Failed(m)) = &result {
                    tracing::warn!(outcome = "tick_failed", error = %m, "reap tick failed");
                }
                metrics.record("reap", started, &result);
                if let Err(TickError::Refused(m)) = result {
                    break Err(anyhow::anyhow!(m));
                }
            }
            _ = wait_for(&stop) => {}
        }
    };
    signal.abort();
    server.abort();
    store.close().await;
    tracing::info!("stopped");
    outcome
}

/// Resolves soon after `stop` is set, so an idle wait ends promptly.
async fn wait_for(stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

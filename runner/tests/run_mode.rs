#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected values
//! `beads-runner run`: intervals, /healthz, /metrics, graceful SIGTERM.

mod common;

use std::time::{Duration, Instant};

use beads_runner::failpoint;
use beads_testkit::Seed;
use common::{Backend, Running, World};

fn run_command(w: &World, extra: &[(&str, &str)]) -> tokio::process::Command {
    let mut cmd = w.command(&[
        "run",
        "--interval",
        "1s",
        "--reap-interval",
        "1s",
        "--listen",
        "127.0.0.1:0",
    ]);
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd
}

async fn listen_addr(r: &mut Running) -> String {
    let line = r.wait_for("serving /healthz and /metrics").await;
    let start = line.find("listen=").expect("listen field") + "listen=".len();
    line[start..].split_whitespace().next().unwrap().to_string()
}

async fn get(url: &str) -> (u16, String) {
    let r = reqwest::get(url).await.expect("GET");
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn dispatches_within_an_interval_serves_metrics_and_stops_on_sigterm(b: Backend) {
    let w = World::new(b).await;
    let mut r = Running::start(run_command(&w, &[]));
    let addr = listen_addr(&mut r).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        w.board.requests().is_empty(),
        "idle ticks never call BeadBoard"
    );

    let assigned = Instant::now();
    w.db.seed(&[Seed::agent("live-1")]).await;
    r.wait_for("outcome=\"dispatched\"").await;
    let latency = assigned.elapsed();
    assert!(
        latency < Duration::from_secs(5),
        "dispatched after {latency:?}"
    );
    assert_eq!(w.board.dispatched_ids(), ["live-1"]);

    let (code, body) = get(&format!("http://{addr}/healthz")).await;
    assert_eq!(code, 200, "{body}");
    // Both ticks run in one loop: under load (a 2-core machine running the
    // whole suite) the first reap tick may still be queued behind slow
    // dispatch ticks, so wait up to 10 s for it before reading the rest.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (code, metrics) = loop {
        let (code, metrics) = get(&format!("http://{addr}/metrics")).await;
        if metrics.contains("beads_runner_tick_duration_seconds_count{kind=\"reap\"}")
            || Instant::now() > deadline
        {
            break (code, metrics);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(code, 200);
    assert!(
        metrics.contains("beads_runner_dispatched_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("beads_runner_ticks_total{kind=\"dispatch\",result=\"ok\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("beads_runner_tick_duration_seconds_count{kind=\"reap\"}"),
        "{metrics}"
    );

    r.signal("TERM");
    assert_eq!(r.exit_code().await, Some(0));
}

async fn sigterm_mid_dispatch_finishes_the_bead_then_exits(b: Backend) {
    let w = World::new(b).await;
    w.db.seed(&[Seed::agent("t1"), Seed::agent("t2")]).await;
    let mut r = Running::start(run_command(
        &w,
        &[
            (failpoint::PAUSE_AT, failpoint::MARKED),
            (failpoint::PAUSE_FOR, "2s"),
            ("BEADS_MAX_IN_FLIGHT", "5"),
        ],
    ));
    r.wait_for("paused at marked").await;
    r.signal("TERM");
    assert_eq!(r.exit_code().await, Some(0), "{:#?}", r.seen);
    let t1 = w.db.bead("t1").await;
    assert_eq!(t1.status, "in_progress");
    assert_eq!(
        t1.note_lines().last(),
        Some(&"dispatched: job=job-1"),
        "no claim left without its note"
    );
    let t2 = w.db.bead("t2").await;
    assert_eq!(
        (t2.status.as_str(), t2.notes.as_str()),
        ("open", ""),
        "no new bead after SIGTERM"
    );
}

async fn several_runners_racing_respect_max_in_flight(b: Backend) {
    let w = World::new(b).await;
    let seeds: Vec<Seed> = (0..10).map(|i| Seed::agent(&format!("m{i}"))).collect();
    w.db.seed(&seeds).await;
    let runs = (0..4).map(|_| w.run_with(&["dispatch"], &[("BEADS_MAX_IN_FLIGHT", "3")]));
    for r in futures::future::join_all(runs).await {
        assert_eq!(r.code, 0, "{r:?}");
    }
    let ids = w.board.dispatched_ids();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "dispatched twice: {ids:?}");
    let in_progress =
        w.db.beads()
            .await
            .into_iter()
            .filter(|b| b.status == "in_progress")
            .count();
    assert_eq!(in_progress, 3, "the cap holds across racing runners");
    assert_eq!(ids.len(), 3);
}

async fn hung_ticks_are_abandoned_and_healthz_turns_unhealthy_then_recovers(b: Backend) {
    use mysql_async::prelude::*;
    let w = World::new(b).await;
    w.db.seed(&[Seed::agent("h1")]).await;
    // BeadBoard's status route is unreachable: every dispatch tick fails
    // before any request to dispatch is sent.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut r = Running::start(run_command(
        &w,
        &[
            ("BEADS_UNHEALTHY_AFTER", "2"),
            ("BEADS_TICK_DEADLINE", "2s"),
            ("BEADBOARD_URL", &format!("http://{closed}")),
        ],
    ));
    let addr = listen_addr(&mut r).await;
    r.wait_for("tick_failed").await;
    r.wait_for("tick_failed").await;
    r.wait_for("tick_failed").await;
    let (code, body) = get(&format!("http://{addr}/healthz")).await;
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("failed"), "{body}");
    let (_, metrics) = get(&format!("http://{addr}/metrics")).await;
    // No dispatch request was ever sent, so none failed.
    assert!(
        metrics.contains("beads_runner_dispatch_failed_total 0"),
        "{metrics}"
    );
    r.signal("TERM");
    assert_eq!(r.exit_code().await, Some(0));

    // A table lock hangs every statement: ticks are abandoned at their
    // deadline, the loop goes on, and /healthz says so. Dolt accepts
    // `LOCK TABLES` and blocks nothing with it, so this half is MariaDB's.
    if b == Backend::Dolt {
        return;
    }
    let mut holder = w.db.conn().await;
    holder.query_drop("LOCK TABLES issues WRITE").await.unwrap();
    let mut r = Running::start(run_command(
        &w,
        &[
            ("BEADS_UNHEALTHY_AFTER", "2"),
            ("BEADS_TICK_DEADLINE", "2s"),
        ],
    ));
    let addr = listen_addr(&mut r).await;
    // Failures count per tick kind, and the first two abandoned ticks may be
    // one dispatch and one reap: wait for further abandoned ticks until the
    // dispatch kind has two in a row.
    let mut code = 0;
    for _ in 0..5 {
        r.wait_for("deadline of 2s").await;
        code = get(&format!("http://{addr}/healthz")).await.0;
        if code == 503 {
            break;
        }
    }
    assert_eq!(code, 503);
    holder.query_drop("UNLOCK TABLES").await.unwrap();
    drop(holder);
    r.wait_for("outcome=\"dispatched\"").await;
    // A later tick completes after the one that dispatched was recorded.
    r.wait_for("outcome=\"idle\"").await;
    let (code, body) = get(&format!("http://{addr}/healthz")).await;
    assert_eq!(code, 200, "{body}");
    r.signal("TERM");
    assert_eq!(r.exit_code().await, Some(0));
}

on_both!(
    dispatches_within_an_interval_serves_metrics_and_stops_on_sigterm,
    sigterm_mid_dispatch_finishes_the_bead_then_exits,
    several_runners_racing_respect_max_in_flight,
    hung_ticks_are_abandoned_and_healthz_turns_unhealthy_then_recovers,
);

#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected values
//! The fault suite: the runner killed at each step of a dispatch, its
//! database connection killed mid-transaction. Afterwards every bead is
//! open, blocked with a note, or dispatched exactly once with its job noted.

mod common;

use std::time::Duration;

use beads_runner::failpoint;
use beads_testkit::{BeadRow, Seed};
use common::{Backend, Running, World};

/// Short claim timeout so the reaper's recovery is observable in a test.
const CLAIM_TIMEOUT: (&str, &str) = ("BEADS_CLAIM_TIMEOUT", "1s");

fn explained(b: &BeadRow, dispatches: usize) {
    let lines = b.note_lines();
    let dispatched_notes = lines
        .iter()
        .filter(|l| l.starts_with("dispatched: job="))
        .count();
    match b.status.as_str() {
        "open" => assert_eq!(dispatches, 0, "{b:?} reopened after a dispatch"),
        "blocked" => assert!(
            lines.last().is_some_and(|l| l.contains("blocking")),
            "{b:?}"
        ),
        "in_progress" => {
            assert_eq!(dispatches, 1, "{b:?}");
            assert_eq!(dispatched_notes, 1, "{b:?}");
        }
        other => panic!("unexpected status {other}: {b:?}"),
    }
    assert!(dispatches <= 1, "{} dispatched {dispatches} times", b.id);
}

/// Kills the runner at `step`, then runs reap and dispatch ticks as the
/// CronJobs would, and checks the outcome.
async fn kill_at(b: Backend, step: &str) -> (World, BeadRow) {
    let w = World::new(b).await;
    w.db.seed(&[Seed::agent("k1")]).await;
    let mut cmd = w.command(&["dispatch"]);
    cmd.env(failpoint::PAUSE_AT, step);
    let mut runner = Running::start(cmd);
    runner.wait_for(&format!("paused at {step}")).await;
    runner.signal("KILL");
    assert_eq!(runner.exit_code().await, None, "killed by a signal");

    tokio::time::sleep(Duration::from_millis(2100)).await; // past the 1s claim timeout, in whole seconds
    for args in [["reap"], ["dispatch"], ["reap"], ["dispatch"]] {
        let run = w.run_with(&args, &[CLAIM_TIMEOUT]).await;
        assert!(run.code == 0 || run.code == 1, "{run:?}");
    }
    let b = w.db.bead("k1").await;
    let dispatches = w.board.dispatched_ids().len();
    explained(&b, dispatches);
    w.db.assert_committed().await;
    (w, b)
}

async fn killed_before_the_claim_commits(b: Backend) {
    let (w, b) = kill_at(b, failpoint::BEFORE_CLAIM_COMMIT).await;
    // Nothing was committed: the next tick dispatched it, once.
    assert_eq!(b.status, "in_progress");
    assert_eq!(w.board.dispatched_ids(), ["k1"]);
    let claims = b
        .note_lines()
        .iter()
        .filter(|l| l.starts_with("auto-dispatcher claimed"))
        .count();
    assert_eq!(claims, 1, "{b:?}");
}

async fn killed_after_the_claim_commits(b: Backend) {
    let (w, b) = kill_at(b, failpoint::CLAIMED).await;
    // Never sent: the reaper reopened it and the next tick dispatched it once.
    assert!(
        b.note_lines()
            .iter()
            .any(|l| l.contains("never dispatched within")),
        "{b:?}"
    );
    assert_eq!(b.status, "in_progress");
    assert_eq!(w.board.dispatched_ids(), ["k1"]);
}

async fn killed_after_the_marker_before_the_post(b: Backend) {
    let (w, b) = kill_at(b, failpoint::MARKED).await;
    // The outcome is unknown to the runner: blocked, never resent.
    assert_eq!(b.status, "blocked");
    assert!(w.board.dispatched_ids().is_empty());
}

async fn killed_after_the_post_before_the_final_note(b: Backend) {
    let (w, b) = kill_at(b, failpoint::POSTED).await;
    assert_eq!(b.status, "blocked");
    assert!(
        b.note_lines()
            .last()
            .unwrap()
            .contains("dispatch outcome unknown"),
        "{b:?}"
    );
    assert_eq!(w.board.dispatched_ids(), ["k1"], "sent once, never twice");
}

async fn connection_killed_mid_transaction_writes_nothing(b: Backend) {
    let w = World::new(b).await;
    w.db.seed(&[Seed::agent("c1")]).await;
    let mut cmd = w.command(&["dispatch"]);
    cmd.env(failpoint::PAUSE_AT, failpoint::BEFORE_CLAIM_COMMIT)
        .env(failpoint::PAUSE_FOR, "3s");
    let mut runner = Running::start(cmd);
    runner.wait_for("paused at before-claim-commit").await;
    // Kill every connection of the runner's database but ours.
    assert!(w.db.kill_other_connections().await > 0);
    assert_eq!(runner.exit_code().await, Some(1), "{:#?}", runner.seen);
    let b = w.db.bead("c1").await;
    assert_eq!(
        (b.status.as_str(), b.notes.as_str()),
        ("open", ""),
        "no partial write"
    );
    assert_eq!(w.db.event_count().await, 0);
    assert!(w.board.dispatched_ids().is_empty());
    // The next tick recovers.
    let run = w.run(&["dispatch"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(w.board.dispatched_ids(), ["c1"]);
}

async fn beadboard_faults_each_end_open_or_blocked_never_twice(b: Backend) {
    use beads_testkit::Reply;
    // (answer, status afterwards, start of the last note)
    let cases = [
        (Reply::json(500, "boom"), "open", "dispatch failed HTTP 500"),
        (
            Reply::json(502, r#"{"error":"Agent service response missing job_id."}"#),
            "open",
            "dispatch failed HTTP 502",
        ),
        (
            Reply::json(429, r#"{"error":"slow down"}"#),
            "open",
            "dispatch failed HTTP 429",
        ),
        (
            Reply::json(409, r#"{"error":"Agent is busy"}"#),
            "open",
            "dispatch failed HTTP 409",
        ),
        (
            Reply::Raw {
                status: 200,
                content_type: "text/html",
                body: "<h1>proxy</h1>".into(),
            },
            "blocked",
            "dispatch outcome unknown",
        ),
        (
            Reply::Truncated(r#"{"job_id": "abc"#.into()),
            "blocked",
            "dispatch outcome unknown",
        ),
        (Reply::Close, "blocked", "dispatch outcome unknown"),
        (
            Reply::Slow(Duration::from_secs(4), Box::new(Reply::Job(None))),
            "blocked",
            "dispatch outcome unknown",
        ),
    ];
    for (reply, status, note) in cases {
        let w = World::new(b).await;
        w.db.seed(&[Seed::agent("b1")]).await;
        w.board.dispatch_replies([reply.clone()]);
        let run = w
            .run_with(&["dispatch"], &[("BEADS_RETRY_DELAY", "1s")])
            .await;
        assert_eq!(run.code, 1, "{reply:?}: {run:?}");
        let b = w.db.bead("b1").await;
        assert_eq!(b.status, status, "{reply:?}");
        assert!(
            b.note_lines().last().unwrap().starts_with(note),
            "{reply:?}: {b:?}"
        );
        // After the pause the next tick sends it again only if it was certainly not taken.
        tokio::time::sleep(Duration::from_millis(2100)).await;
        let again = w
            .run_with(&["dispatch"], &[("BEADS_RETRY_DELAY", "1s")])
            .await;
        assert_eq!(again.code, 0, "{reply:?}: {again:?}");
        let sent = w.board.dispatched_ids().len();
        assert_eq!(sent, if status == "open" { 2 } else { 1 }, "{reply:?}");
    }
}

async fn soak_eight_runners_with_random_failures(b: Backend) {
    use std::collections::BTreeMap;
    let w = World::new(b).await;
    // 500 beads on MariaDB; 100 on Dolt, where every claim of every runner
    // is serialised on the claim lock and each write is a Dolt commit (500
    // took over ten minutes on this 2-core machine, past nextest's limit).
    let beads: i32 = match b {
        Backend::MariaDb => 500,
        Backend::Dolt => 100,
    };
    let seeds: Vec<Seed> = (0..beads)
        .map(|i| Seed::agent(&format!("soak-{i:03}")).priority(i % 5))
        .collect();
    w.db.seed(&seeds).await;
    w.board
        .dispatch_default(beads_testkit::Reply::Flaky { fail_percent: 20 });
    // Each runner ticks until a tick dispatches nothing new.
    let runner = |n: usize| {
        let w = &w;
        async move {
            let mut ticks = 0;
            loop {
                let before = w.board.accepted().len();
                let run = w
                    .run_with(
                        &["dispatch"],
                        &[
                            ("BEADS_MAX_IN_FLIGHT", "1000"),
                            ("BEADS_ACTOR", &format!("soak-{n}")),
                            ("BEADS_RETRY_DELAY", "1s"),
                        ],
                    )
                    .await;
                assert!(run.code == 0 || run.code == 1, "{run:?}");
                ticks += 1;
                if run.stderr.contains("pausing") && ticks <= 200 {
                    // The whole runner pauses after a transient failure.
                    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                    continue;
                }
                if run.code == 0 && w.board.accepted().len() == before || ticks > 200 {
                    break;
                }
            }
        }
    };
    futures::future::join_all((0..8).map(runner)).await;

    let accepted = w.board.accepted();
    let mut jobs: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (task, job) in &accepted {
        jobs.entry(task.clone()).or_default().push(job.clone());
    }
    for (task, js) in &jobs {
        assert_eq!(js.len(), 1, "{task} dispatched {} times: {js:?}", js.len());
    }
    // What the reaper makes of anything left mid-dispatch (an outcome that
    // could not be written under this contention is blocked, never resent).
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let reap = w.run_with(&["reap"], &[CLAIM_TIMEOUT]).await;
    assert_eq!(reap.code, 0, "{reap:?}");
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for b in w.db.beads().await {
        let last = b
            .note_lines()
            .last()
            .map(|s| s.to_string())
            .unwrap_or_default();
        match b.status.as_str() {
            "in_progress" => {
                let job = &jobs.get(&b.id).unwrap_or_else(|| {
                    panic!("{} in progress, never accepted: {:?}", b.id, b.notes)
                })[0];
                assert_eq!(last, format!("dispatched: job={job}"), "{}", b.id);
            }
            "open" => {
                assert!(!jobs.contains_key(&b.id), "{} open after a dispatch", b.id);
                assert!(
                    last.starts_with("dispatch failed") || last.contains("returning to open"),
                    "{}: open with last note {last:?}",
                    b.id
                );
            }
            "blocked" => assert!(
                last.contains("dispatch outcome unknown"),
                "{}: {:?}",
                b.id,
                b.notes
            ),
            other => panic!("{} is {other}: {:?}", b.id, b.notes),
        }
        *counts.entry(b.status).or_default() += 1;
    }
    eprintln!("soak outcome: {counts:?}");
    w.db.assert_committed().await;
    assert!(
        counts.get("in_progress").copied().unwrap_or(0) > (beads * 3 / 5) as usize,
        "{counts:?}"
    );
}

async fn server_restarted_between_ticks_the_next_tick_recovers(b: Backend) {
    let server = beads_testkit::PrivateServer::start_for(b);
    let db = beads_testkit::BeadsDb::create_on_backend(&server.url, b).await;
    let board = beads_testkit::StubBeadBoard::start().await;
    let dir = tempfile::tempdir().unwrap();
    let metadata = dir.path().join("metadata.json");
    std::fs::write(&metadata, db.metadata_json(None)).unwrap();
    db.seed(&[Seed::agent("r1"), Seed::agent("r2").priority(3)])
        .await;
    let run = |vars: Vec<(&'static str, String)>| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_beads-runner"));
        cmd.env_clear()
            .env("BEADS_METADATA", &metadata)
            .env("BEADBOARD_URL", board.url())
            .envs(vars)
            .arg("dispatch");
        cmd.output()
    };
    let first = run(vec![]).await.unwrap();
    assert_eq!(first.status.code(), Some(0), "{first:?}");
    server.restart();
    // The bead in flight counts against max_in_flight 1: allow two.
    let second = run(vec![("BEADS_MAX_IN_FLIGHT", "2".into())])
        .await
        .unwrap();
    assert_eq!(second.status.code(), Some(0), "{second:?}");
    assert_eq!(board.dispatched_ids(), ["r1", "r2"]);
    assert_eq!(
        db.bead("r2").await.note_lines().last(),
        Some(&"dispatched: job=job-2")
    );
}

on_both!(
    killed_before_the_claim_commits,
    killed_after_the_claim_commits,
    killed_after_the_marker_before_the_post,
    killed_after_the_post_before_the_final_note,
    connection_killed_mid_transaction_writes_nothing,
    beadboard_faults_each_end_open_or_blocked_never_twice,
    soak_eight_runners_with_random_failures,
    server_restarted_between_ticks_the_next_tick_recovers,
);

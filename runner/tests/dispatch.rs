#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected values
//! The dispatch tick against a real MariaDB and the stub BeadBoard.

mod common;

use std::time::Duration;

use beads_contract::notes;
use beads_testkit::{Reply, Seed};
use common::{Backend, World};

fn claim_lines(lines: &[&str]) -> (bool, bool) {
    (
        lines
            .iter()
            .any(|l| l.starts_with("auto-dispatcher claimed at ")),
        lines
            .iter()
            .any(|l| l.starts_with("dispatching to BeadBoard at ")),
    )
}

async fn dispatches_the_best_eligible_bead_and_records_it_like_bd(b: Backend) {
    let w = World::new(b).await;
    w.db.seed(&[
        Seed::agent("b-low").priority(3),
        Seed::agent("b-best")
            .priority(1)
            .notes("context from a person"),
        Seed::agent("b-newer").priority(1).updated_minutes_ago(5),
    ])
    .await;
    let run = w.run(&["dispatch"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(w.board.dispatched_ids(), ["b-best"]);

    let bead = w.db.bead("b-best").await;
    assert_eq!(bead.status, "in_progress");
    assert!(bead.started_at.is_some());
    let lines = bead.note_lines();
    assert_eq!(lines[0], "context from a person");
    assert_eq!(claim_lines(&lines), (true, true));
    assert_eq!(lines.last(), Some(&"dispatched: job=job-1"));
    // updated_at is the claim's UTC time, not the seed's hour-old one.
    let age = chrono::Utc::now().naive_utc() - bead.updated_at;
    assert!(
        age < chrono::Duration::seconds(30),
        "updated_at {age:?} old"
    );

    let events = w.db.events("b-best").await;
    assert!(
        events.iter().all(|e| e.actor == "beads-dispatcher"),
        "{events:?}"
    );
    let status_events: Vec<_> = events
        .iter()
        .filter(|e| e.event_type == "status_changed")
        .collect();
    assert_eq!(status_events.len(), 1);
    assert_eq!(
        status_events[0].new_value.as_deref(),
        Some(r#"{"status":"in_progress"}"#)
    );
    let old: serde_json::Value =
        serde_json::from_str(status_events[0].old_value.as_deref().unwrap()).unwrap();
    assert_eq!(old["id"], "b-best");
    assert_eq!(old["status"], "open");
    assert_eq!(old["assignee"], "agent");
    let note_events = events.iter().filter(|e| e.event_type == "updated").count();
    assert_eq!(
        note_events, 3,
        "claim, dispatching and dispatched notes: {events:?}"
    );
    let last: serde_json::Value = serde_json::from_str(
        events
            .iter()
            .rev()
            .find(|e| e.event_type == "updated")
            .unwrap()
            .new_value
            .as_deref()
            .unwrap(),
    )
    .unwrap();
    assert!(
        last["notes"]
            .as_str()
            .unwrap()
            .ends_with("dispatched: job=job-1")
    );

    for other in ["b-low", "b-newer"] {
        let b = w.db.bead(other).await;
        assert_eq!((b.status.as_str(), b.notes.as_str()), ("open", ""));
    }
    let body: serde_json::Value =
        serde_json::from_str(&w.board.requests().last().unwrap().body).unwrap();
    assert_eq!(body, serde_json::json!({"taskId": "b-best"}));
    w.db.assert_committed().await;
}

async fn only_open_agent_beads_with_acceptance_criteria_visible_to_beadboard(b: Backend) {
    let w = World::new(b).await;
    w.db.seed(&[
        Seed::agent("a-capital").assignee(Some("Agent")).priority(0),
        Seed::agent("a-nobody").assignee(None).priority(0),
        Seed::agent("a-blank").acceptance(" \n\t").priority(0),
        Seed::agent("a-hidden").label("gt:agent").priority(0),
        Seed::agent("a-closed").status("closed").priority(0),
        Seed::agent("a-blocked").status("blocked").priority(0),
        Seed::agent("a-ok").priority(4),
    ])
    .await;
    let run = w.run(&["dispatch"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(w.board.dispatched_ids(), ["a-ok"]);
    assert_eq!(w.db.event_count().await, 4, "only a-ok's claim, notes");
}

async fn ties_break_on_oldest_update_then_id(b: Backend) {
    let w = World::new(b).await;
    let t = chrono::Utc::now() - chrono::Duration::hours(2);
    w.db.seed(&[
        Seed::agent("c-2").updated(t),
        Seed::agent("c-1").updated(t),
        Seed::agent("c-0").updated(t + chrono::Duration::seconds(1)),
    ])
    .await;
    let run = w
        .run_with(&["dispatch"], &[("BEADS_MAX_IN_FLIGHT", "3")])
        .await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(w.board.dispatched_ids(), ["c-1", "c-2", "c-0"]);
}

async fn idle_tick_never_calls_beadboard(b: Backend) {
    let w = World::new(b).await;
    w.db.seed(&[Seed::agent("x").status("closed")]).await;
    let run = w.run(&["dispatch"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(w.board.requests().is_empty(), "{:?}", w.board.requests());
}

async fn busy_agent_means_exit_zero_and_nothing_written(b: Backend) {
    let w = World::new(b).await;
    w.db.seed(&[Seed::agent("b1")]).await;
    w.board.status_default(Reply::Busy(true));
    let run = w.run(&["dispatch"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(w.board.dispatched_ids().is_empty());
    assert_eq!(w.db.bead("b1").await.notes, "");
    assert_eq!(w.db.event_count().await, 0);
}

async fn unreachable_beadboard_fails_the_tick_without_writing(b: Backend) {
    let w = World::new(b).await;
    w.db.seed(&[Seed::agent("b1")]).await;
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let run = w
        .run_with(
            &["dispatch"],
            &[("BEADBOARD_URL", &format!("http://{closed}"))],
        )
        .await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains(&closed.to_string()),
        "names the URL: {}",
        run.stderr
    );
    let b = w.db.bead("b1").await;
    assert_eq!((b.status.as_str(), b.notes.as_str()), ("open", ""));
    assert_eq!(w.db.event_count().await, 0);
}

/// BeadBoard's answer to f1 is lost: f1 is blocked with the "outcome
/// unknown" note (never reopened, so never sent twice), and the tick goes on
/// to f2, which is dispatched.
async fn unknown_outcome(b: Backend, reply: Reply) -> (World, common::Run, Vec<String>) {
    let w = World::new(b).await;
    w.db.seed(&[Seed::agent("f1"), Seed::agent("f2").priority(3)])
        .await;
    w.board.dispatch_for("f1", reply);
    let run = w.run(&["dispatch"]).await;
    assert_eq!(run.code, 1, "{run:?}");
    let b = w.db.bead("f1").await;
    assert_eq!(b.status, "blocked", "{b:?}");
    let lines: Vec<String> = b.note_lines().iter().map(|s| s.to_string()).collect();
    assert!(
        lines
            .last()
            .unwrap()
            .starts_with("dispatch outcome unknown: "),
        "{lines:?}"
    );
    assert!(
        lines
            .last()
            .unwrap()
            .ends_with("check the agent before reopening")
    );
    assert_eq!(w.db.bead("f2").await.status, "in_progress");
    assert_eq!(w.board.dispatched_ids(), ["f1", "f2"]);
    // Later ticks and the reaper never send f1 again.
    for args in [["dispatch"], ["reap"], ["dispatch"]] {
        w.run_with(&args, &[("BEADS_CLAIM_TIMEOUT", "1s")]).await;
    }
    assert_eq!(w.board.dispatched_ids(), ["f1", "f2"]);
    assert_eq!(w.db.bead("f1").await.status, "blocked");
    (w, run, lines)
}

async fn http_500_is_transient_releases_the_bead_and_ends_the_tick(b: Backend) {
    let w = World::new(b).await;
    w.db.seed(&[Seed::agent("f1"), Seed::agent("f2").priority(3)])
        .await;
    w.board.dispatch_replies([Reply::json(
        500,
        "{\"error\":\n\"Agent service unavailable\"}",
    )]);
    let run = w.run(&["dispatch"]).await;
    assert_eq!(run.code, 1, "{run:?}");
    let b = w.db.bead("f1").await;
    assert_eq!(b.status, "open");
    let lines = b.note_lines();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(
        lines[2],
        r#"dispatch failed HTTP 500: {"error": "Agent service unavailable"}"#
    );
    // An outage is the service's: f2 is not tried, and gets no note.
    assert_eq!(w.db.bead("f2").await.notes, "");
    assert_eq!(w.board.dispatched_ids(), ["f1"]);
}

async fn garbage_2xx_is_an_unknown_outcome(b: Backend) {
    let (_w, _run, lines) = unknown_outcome(
        b,
        Reply::Raw {
            status: 200,
            content_type: "text/html",
            body: "<html>oops</html>".into(),
        },
    )
    .await;
    assert!(
        lines[2].contains("HTTP 200 with an unreadable answer: <html>oops</html>"),
        "{lines:?}"
    );
}

async fn success_without_job_id_is_an_unknown_outcome(b: Backend) {
    let (_w, _run, lines) = unknown_outcome(b, Reply::json(200, r#"{"status":"queued"}"#)).await;
    assert!(
        lines[2].contains(r#"HTTP 200 without a job_id: {"status":"queued"}"#),
        "{lines:?}"
    );
}

async fn timeout_after_sending_is_an_unknown_outcome(b: Backend) {
    // BeadBoard answers 200 after 5 s; the runner gave up after 2 s.
    let (w, _run, lines) = unknown_outcome(
        b,
        Reply::Slow(Duration::from_secs(5), Box::new(Reply::Job(None))),
    )
    .await;
    assert!(lines[2].contains("POST http://"), "{lines:?}");
    assert!(lines[2].contains("timed out"), "{lines:?}");
    // BeadBoard did get it, exactly once.
    assert_eq!(
        w.board
            .dispatched_ids()
            .iter()
            .filter(|t| *t == "f1")
            .count(),
        1
    );
}

async fn hanging_beadboard_is_an_unknown_outcome(b: Backend) {
    let (_w, _run, lines) = unknown_outcome(b, Reply::Hang).await;
    assert!(lines[2].contains("timed out"), "{lines:?}");
}

async fn reset_after_reading_the_request_is_an_unknown_outcome(b: Backend) {
    let (_w, _run, lines) = unknown_outcome(b, Reply::Close).await;
    assert!(lines[2].contains("POST http://"), "{lines:?}");
}

async fn truncated_2xx_body_is_an_unknown_outcome(b: Backend) {
    let (_w, _run, lines) = unknown_outcome(b, Reply::Truncated(r#"{"job_id":"ab"#.into())).await;
    assert!(lines[2].contains("HTTP 200"), "{lines:?}");
}

async fn huge_2xx_body_is_read_only_up_to_64_kib(b: Backend) {
    let (_w, _run, lines) = unknown_outcome(
        b,
        Reply::Huge {
            status: 200,
            bytes: 30 * 1024 * 1024,
        },
    )
    .await;
    assert!(
        lines[2].contains("answer longer than 65536 bytes"),
        "{lines:?}"
    );
}

async fn transient_failures_never_block_a_bead(b: Backend) {
    let w = World::new(b).await;
    w.db.seed(&[Seed::agent("r1")]).await;
    w.board
        .dispatch_default(Reply::json(502, r#"{"error":"Queue full"}"#));
    assert_eq!(w.run(&["dispatch"]).await.code, 1);
    // Within the pause: an idle tick, BeadBoard not even asked.
    let before = w.board.requests().len();
    let run = w.run(&["dispatch"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains("pausing"), "{}", run.stderr);
    assert_eq!(w.board.requests().len(), before);

    // Many earlier failures, all long ago: still only released, never blocked
    // (the scripts' dispatcher blocked at the fifth).
    let long_ago = chrono::Utc::now() - chrono::Duration::hours(3);
    let history: Vec<String> = (0..7)
        .flat_map(|i| {
            [
                notes::claimed(long_ago + chrono::Duration::minutes(i)),
                notes::dispatch_failed_http(502, "Queue full"),
            ]
        })
        .collect();
    w.db.seed(&[Seed::agent("r2").priority(0).notes(&history.join("\n"))])
        .await;
    w.db.exec("UPDATE issues SET notes = '' WHERE id = 'r1'")
        .await;
    let run = w.run(&["dispatch"]).await;
    assert_eq!(run.code, 1, "{run:?}");
    let b = w.db.bead("r2").await;
    assert_eq!(b.status, "open");
    assert_eq!(
        b.note_lines().len(),
        14 + 3,
        "one claim, one marker, one failure note"
    );
}

async fn max_in_flight_counts_beads_already_in_progress(b: Backend) {
    let w = World::new(b).await;
    w.db.seed(&[
        Seed::agent("m0").status("in_progress"),
        Seed::agent("m1"),
        Seed::agent("m2"),
        Seed::agent("m3"),
    ])
    .await;
    let run = w
        .run_with(&["dispatch"], &[("BEADS_MAX_IN_FLIGHT", "3")])
        .await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(w.board.dispatched_ids(), ["m1", "m2"]);
    assert_eq!(w.db.bead("m3").await.status, "open");
}

async fn busy_midway_stops_the_tick(b: Backend) {
    let w = World::new(b).await;
    w.db.seed(&[Seed::agent("n1"), Seed::agent("n2")]).await;
    w.board
        .status_replies([Reply::Busy(false), Reply::Busy(true)]);
    let run = w
        .run_with(&["dispatch"], &[("BEADS_MAX_IN_FLIGHT", "5")])
        .await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(w.board.dispatched_ids(), ["n1"]);
}

async fn racing_runners_never_dispatch_a_bead_twice(b: Backend) {
    let w = World::new(b).await;
    let seeds: Vec<Seed> = (0..12)
        .map(|i| Seed::agent(&format!("race-{i:02}")))
        .collect();
    w.db.seed(&seeds).await;
    let runs = (0..6).map(|_| w.run_with(&["dispatch"], &[("BEADS_MAX_IN_FLIGHT", "100")]));
    let results = futures::future::join_all(runs).await;
    for r in &results {
        assert_eq!(r.code, 0, "{r:?}");
    }
    let mut ids = w.board.dispatched_ids();
    let total = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), total, "a bead was dispatched twice");
    assert_eq!(total, 12);
    for b in w.db.beads().await {
        assert_eq!(b.status, "in_progress");
        let claims = b
            .note_lines()
            .iter()
            .filter(|l| l.starts_with("auto-dispatcher claimed"))
            .count();
        assert_eq!(claims, 1, "{}: {:?}", b.id, b.notes);
    }
    w.db.assert_committed().await;
}

async fn token_is_sent_as_bearer(b: Backend) {
    let w = World::new(b).await;
    w.db.seed(&[Seed::agent("t1")]).await;
    let run = w
        .run_with(&["dispatch"], &[("BEADBOARD_TOKEN", "tok-123")])
        .await;
    assert_eq!(run.code, 0, "{run:?}");
    let requests = w.board.requests();
    assert!(
        requests
            .iter()
            .all(|r| r.authorization.as_deref() == Some("Bearer tok-123"))
    );
    assert!(
        !run.stderr.contains("tok-123"),
        "token logged: {}",
        run.stderr
    );
}

async fn dry_run_writes_and_sends_nothing(b: Backend) {
    let w = World::new(b).await;
    w.db.seed(&[Seed::agent("d1"), Seed::agent("d2").priority(0)])
        .await;
    let run = w.run(&["dispatch", "--dry-run"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout.trim(), "would dispatch d2");
    assert!(w.board.dispatched_ids().is_empty());
    assert_eq!(w.db.event_count().await, 0);
    assert_eq!(w.db.bead("d2").await.status, "open");
}

async fn json_logs_carry_bead_job_and_outcome(b: Backend) {
    let w = World::new(b).await;
    w.db.seed(&[Seed::agent("j1")]).await;
    let run = w.run(&["--log-format", "json", "dispatch"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let lines: Vec<serde_json::Value> = run
        .stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert!(
        lines.iter().any(|l| l["bead_id"] == "j1"
            && l["job_id"] == "job-1"
            && l["outcome"] == "dispatched"),
        "{lines:?}"
    );
}

async fn hostile_ids_and_notes_are_stored_verbatim(b: Backend) {
    let w = World::new(b).await;
    let id = r#"x'; DROP TABLE issues; -- "$(rm -rf /)`"#;
    let note = "quote ' double \" backslash \\ newline-free; <script>&amp;";
    w.db.seed(&[Seed::agent(id).notes(note)]).await;
    w.board
        .dispatch_replies([Reply::Job(Some("j'\"$(x)".into()))]);
    let run = w.run(&["dispatch"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(w.board.dispatched_ids(), [id]);
    let b = w.db.bead(id).await;
    assert_eq!(b.note_lines()[0], note);
    assert_eq!(b.note_lines().last(), Some(&"dispatched: job=j'\"$(x)"));
}

on_both!(
    dispatches_the_best_eligible_bead_and_records_it_like_bd,
    only_open_agent_beads_with_acceptance_criteria_visible_to_beadboard,
    ties_break_on_oldest_update_then_id,
    idle_tick_never_calls_beadboard,
    busy_agent_means_exit_zero_and_nothing_written,
    unreachable_beadboard_fails_the_tick_without_writing,
    http_500_is_transient_releases_the_bead_and_ends_the_tick,
    garbage_2xx_is_an_unknown_outcome,
    success_without_job_id_is_an_unknown_outcome,
    timeout_after_sending_is_an_unknown_outcome,
    hanging_beadboard_is_an_unknown_outcome,
    reset_after_reading_the_request_is_an_unknown_outcome,
    truncated_2xx_body_is_an_unknown_outcome,
    huge_2xx_body_is_read_only_up_to_64_kib,
    transient_failures_never_block_a_bead,
    max_in_flight_counts_beads_already_in_progress,
    busy_midway_stops_the_tick,
    racing_runners_never_dispatch_a_bead_twice,
    token_is_sent_as_bearer,
    dry_run_writes_and_sends_nothing,
    json_logs_carry_bead_job_and_outcome,
    hostile_ids_and_notes_are_stored_verbatim,
);

#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected values
//! Issue 12: every tick bounded, every dispatch exactly once, no bead
//! stopping the others, outages that burn nothing, bd's rules on templates,
//! events and release.

mod common;

use std::time::Duration;

use beads_contract::notes;
use beads_runner::failpoint;
use beads_testkit::{Reply, Seed};
use common::{Backend, Running, World};
use mysql_async::prelude::*;

const NOT_FOUND: &str = r#"{"error":"Bead x not found."}"#;

#[tokio::test]
async fn a_locked_table_fails_the_tick_at_its_deadline_instead_of_hanging() {
    let w = World::new(Backend::MariaDb).await;
    w.db.seed(&[Seed::agent("l1")]).await;
    let mut holder = w.db.conn().await;
    holder.query_drop("LOCK TABLES issues WRITE").await.unwrap();
    let run = w
        .run_with(&["dispatch"], &[("BEADS_TICK_DEADLINE", "3s")])
        .await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("deadline of 3s"), "{}", run.stderr);
    // Without a short deadline, the statement timeout (bd's 10 s) ends it.
    let run = w.run(&["reap"]).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("no answer within 10s"),
        "{}",
        run.stderr
    );
    holder.query_drop("UNLOCK TABLES").await.unwrap();
    drop(holder);
    assert!(w.board.requests().is_empty());
    let run = w.run(&["dispatch"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(w.board.dispatched_ids(), ["l1"]);
}

async fn claim_note_carries_a_claim_id(b: Backend) {
    let w = World::new(b).await;
    w.db.seed(&[Seed::agent("c1")]).await;
    let run = w.run(&["dispatch"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let b = w.db.bead("c1").await;
    let claim = b.note_lines()[0];
    let rest = claim.strip_prefix("auto-dispatcher claimed at ").unwrap();
    let (_, by) = rest.split_once(" by ").unwrap();
    assert!(
        by.starts_with("beads-dispatcher#") && by.len() > 20,
        "{claim}"
    );
}

async fn a_runner_paused_past_the_claim_timeout_never_sends_after_the_reaper_released_it(
    b: Backend,
) {
    let w = World::new(b).await;
    w.db.seed(&[Seed::agent("p1")]).await;
    let mut a = w.command(&["dispatch"]);
    a.env(failpoint::PAUSE_AT, failpoint::CLAIMED)
        .env(failpoint::PAUSE_FOR, "5s");
    let mut a = Running::start(a);
    a.wait_for("paused at claimed").await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let reap = w
        .run_with(&["reap"], &[("BEADS_CLAIM_TIMEOUT", "1s")])
        .await;
    assert_eq!(reap.code, 0, "{reap:?}");
    assert_eq!(w.db.bead("p1").await.status, "open");
    let b = w.run(&["dispatch"]).await;
    assert_eq!(b.code, 0, "{b:?}");
    assert_eq!(w.board.dispatched_ids(), ["p1"]);
    // A wakes up: its claim is gone, so it sends nothing.
    a.wait_for("no longer this runner's").await;
    assert_eq!(a.exit_code().await, Some(0), "{:#?}", a.seen);
    assert_eq!(w.board.dispatched_ids(), ["p1"], "sent once, never twice");
    let bead = w.db.bead("p1").await;
    assert_eq!(bead.status, "in_progress");
    assert_eq!(bead.note_lines().last(), Some(&"dispatched: job=job-1"));
}

async fn a_connection_lost_while_writing_the_outcome_keeps_the_job_id(b: Backend) {
    let w = World::new(b).await;
    w.db.seed(&[Seed::agent("o1")]).await;
    let mut cmd = w.command(&["dispatch"]);
    cmd.env(failpoint::PAUSE_AT, failpoint::POSTED)
        .env(failpoint::PAUSE_FOR, "3s");
    let mut runner = Running::start(cmd);
    runner.wait_for("paused at posted").await;
    assert!(w.db.kill_other_connections().await > 0);
    assert_eq!(runner.exit_code().await, Some(0), "{:#?}", runner.seen);
    let b = w.db.bead("o1").await;
    assert_eq!(
        b.note_lines().last(),
        Some(&"dispatched: job=job-1"),
        "{b:?}"
    );
}

async fn a_refusal_about_the_bead_blocks_it_at_once_and_the_tick_goes_on(b: Backend) {
    let w = World::new(b).await;
    w.db.seed(&[Seed::agent("h0").priority(0), Seed::agent("h1").priority(1)])
        .await;
    w.board.dispatch_for(
        "h0",
        Reply::json(
            400,
            r#"{"error":"Bead h0 is missing acceptance criteria."}"#,
        ),
    );
    let run = w.run(&["dispatch"]).await;
    assert_eq!(run.code, 1, "{run:?}");
    let h0 = w.db.bead("h0").await;
    assert_eq!(h0.status, "blocked");
    assert!(
        h0.note_lines()
            .last()
            .unwrap()
            .starts_with("auto-dispatcher: refused by BeadBoard (HTTP 400: "),
        "{h0:?}"
    );
    assert_eq!(
        h0.note_lines().len(),
        3,
        "claim, marker, one refusal note: {h0:?}"
    );
    assert_eq!(w.db.bead("h1").await.status, "in_progress");
    assert_eq!(w.board.dispatched_ids(), ["h0", "h1"]);
}

async fn a_not_found_refusal_blocks_only_when_beadboard_takes_other_beads(b: Backend) {
    let w = World::new(b).await;
    w.db.seed(&[Seed::agent("n0").priority(0), Seed::agent("n1").priority(1)])
        .await;
    w.board.dispatch_for("n0", Reply::json(400, NOT_FOUND));
    let run = w.run(&["dispatch"]).await;
    assert_eq!(run.code, 1, "{run:?}");
    let n0 = w.db.bead("n0").await;
    assert_eq!(n0.status, "blocked", "{n0:?}");
    let lines = n0.note_lines();
    assert!(
        lines[lines.len() - 2].starts_with("dispatch refused HTTP 400"),
        "{lines:?}"
    );
    assert!(
        lines
            .last()
            .unwrap()
            .contains("it accepted n1 in the same tick"),
        "{lines:?}"
    );
    assert_eq!(w.db.bead("n1").await.status, "in_progress");
}

async fn beadboard_refusing_every_bead_is_an_outage_that_blocks_nothing_then_the_queue_drains_in_order(
    b: Backend,
) {
    let w = World::new(b).await;
    let ids = ["q0", "q1", "q2", "q3"];
    w.db.seed(
        &ids.iter()
            .enumerate()
            .map(|(i, id)| Seed::agent(id).priority(i as i32))
            .collect::<Vec<_>>(),
    )
    .await;
    // BeadBoard's own database read fails: "not found" for everything.
    w.board.dispatch_default(Reply::json(400, NOT_FOUND));
    let vars = [("BEADS_RETRY_DELAY", "1s"), ("BEADS_MAX_IN_FLIGHT", "10")];
    let run = w.run_with(&["dispatch"], &vars).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("refused every bead"), "{}", run.stderr);
    for b in w.db.beads().await {
        assert_eq!(b.status, "open", "{b:?}");
        let refusals = b
            .note_lines()
            .iter()
            .filter(|l| l.starts_with("dispatch refused"))
            .count();
        assert!(refusals <= 1, "at most one note per attempt: {b:?}");
    }
    assert_eq!(
        w.db.bead("q2").await.notes,
        "",
        "the tick stopped at the second refusal"
    );
    // BeadBoard recovers: after the pause, everything goes, best first.
    w.board.dispatch_default(Reply::Job(None));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let run = w.run_with(&["dispatch"], &vars).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(w.board.dispatched_ids()[2..], ids);
    for id in ids {
        assert_eq!(w.db.bead(id).await.status, "in_progress");
    }
}

async fn an_agent_service_outage_burns_nothing_and_the_queue_drains_in_order(b: Backend) {
    let w = World::new(b).await;
    let ids = ["s0", "s1", "s2"];
    w.db.seed(
        &ids.iter()
            .enumerate()
            .map(|(i, id)| Seed::agent(id).priority(i as i32))
            .collect::<Vec<_>>(),
    )
    .await;
    // BeadBoard's status fails open; every dispatch is a 502.
    w.board
        .dispatch_default(Reply::json(502, r#"{"error":"fetch failed"}"#));
    let vars = [("BEADS_RETRY_DELAY", "1s"), ("BEADS_MAX_IN_FLIGHT", "10")];
    for _ in 0..3 {
        let run = w.run_with(&["dispatch"], &vars).await;
        assert!(run.code == 1 || run.stderr.contains("pausing"), "{run:?}");
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    for b in w.db.beads().await {
        assert_eq!(b.status, "open", "{b:?}");
    }
    assert_eq!(
        w.db.bead("s1").await.notes,
        "",
        "only the first bead is tried during an outage"
    );
    let tried = w.board.dispatched_ids().len();
    w.board.dispatch_default(Reply::Job(None));
    let mut runs = 0;
    while w.db.bead("s2").await.status == "open" {
        runs += 1;
        assert!(runs < 30, "queue never drained");
        w.run_with(&["dispatch"], &vars).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(w.board.dispatched_ids()[tried..], ids);
}

async fn hostile_rows_never_panic_or_stop_the_others(b: Backend) {
    let w = World::new(b).await;
    let full = "n".repeat(65_500);
    w.db.seed(&[
        Seed::agent("z0").priority(0),
        Seed::agent("full").priority(0).notes(&full),
        Seed::agent("ok").priority(1),
        Seed::agent("stale-full")
            .status("in_progress")
            .notes(&full)
            .updated_minutes_ago(90),
        Seed::agent("stale-ok")
            .status("in_progress")
            .updated_minutes_ago(90),
        Seed::agent("stale-zero").status("in_progress"),
    ])
    .await;
    let mut c = w.db.conn().await;
    c.query_drop("SET SESSION sql_mode = ''").await.unwrap();
    c.query_drop(
        "UPDATE issues SET updated_at = '0000-00-00 00:00:00', created_at = '0000-00-00 00:00:00' \
         WHERE id IN ('z0', 'stale-zero')",
    )
    .await
    .unwrap();
    drop(c);
    let check = w.run(&["check"]).await;
    assert_eq!(check.code, 0, "{check:?}");
    let run = w
        .run_with(&["dispatch"], &[("BEADS_MAX_IN_FLIGHT", "10")])
        .await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains("notes have no room"), "{}", run.stderr);
    assert_eq!(w.board.dispatched_ids(), ["z0", "ok"]);
    assert_eq!(w.db.bead("full").await.status, "open");
    // The reaper: a note that does not fit fails that bead only.
    let reap = w.run(&["reap"]).await;
    assert_eq!(reap.code, 1, "{reap:?}");
    assert!(reap.stderr.contains("stale-full"), "{}", reap.stderr);
    assert_eq!(w.db.bead("stale-ok").await.status, "blocked");
    assert_eq!(w.db.bead("stale-full").await.status, "in_progress");
    let mut c = w.db.conn().await;
    let zero: Option<String> = c
        .query_first("SELECT status FROM issues WHERE id = 'stale-zero'")
        .await
        .unwrap();
    assert_eq!(zero.as_deref(), Some("in_progress"));
    assert!(!reap.stderr.contains("panicked") && !run.stderr.contains("panicked"));
}

async fn templates_are_never_claimed_and_events_carry_bds_full_issue(b: Backend) {
    let w = World::new(b).await;
    w.db.seed(&[
        Seed::agent("tmpl").priority(0),
        Seed::agent("real").priority(1),
    ])
    .await;
    w.db.exec("UPDATE issues SET is_template = 1 WHERE id = 'tmpl'")
        .await;
    w.db.exec(
        "UPDATE issues SET pinned = 1, estimated_minutes = 30, external_ref = 'gh-7', \
         metadata = '{\"team\":\"ops\"}', due_at = '2026-12-24 10:00:00' WHERE id = 'real'",
    )
    .await;
    w.board
        .dispatch_replies([Reply::json(502, r#"{"error":"fetch failed"}"#)]);
    let run = w.run(&["dispatch"]).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(w.board.dispatched_ids(), ["real"]);
    assert_eq!(w.db.bead("tmpl").await.notes, "");
    let events = w.db.events("real").await;
    let old: serde_json::Value =
        serde_json::from_str(events[0].old_value.as_deref().unwrap()).unwrap();
    assert_eq!(old["estimated_minutes"], 30);
    assert_eq!(old["pinned"], true);
    assert_eq!(old["external_ref"], "gh-7");
    assert_eq!(old["metadata"], serde_json::json!({"team": "ops"}));
    assert_eq!(old["due_at"], "2026-12-24T10:00:00Z");
    assert_eq!(old["work_type"], "mutex");
    assert!(
        old.get("is_template").is_none() && old.get("ephemeral").is_none(),
        "{old}"
    );
    // Released as bd's UpdateIssue would: unpinned by the status change,
    // started_at kept.
    let mut c = w.db.conn().await;
    let (pinned, started): (i64, Option<chrono::NaiveDateTime>) = c
        .query_first("SELECT pinned, started_at FROM issues WHERE id = 'real'")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(pinned, 0);
    assert!(started.is_some());
}

async fn the_reaper_writes_its_note_before_the_status_as_the_script_did(b: Backend) {
    let w = World::new(b).await;
    w.db.seed(&[Seed::agent("r")
        .status("in_progress")
        .updated_minutes_ago(90)])
        .await;
    let run = w.run(&["reap"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let events = w.db.events("r").await;
    let kinds: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(kinds, ["updated", "status_changed"]);
    let old: serde_json::Value =
        serde_json::from_str(events[1].old_value.as_deref().unwrap()).unwrap();
    assert!(
        old["notes"]
            .as_str()
            .unwrap()
            .starts_with("reaper: no progress")
    );
    assert_eq!(old["status"], "in_progress");
}

async fn url_credentials_never_reach_notes_or_logs(b: Backend) {
    let w = World::new(b).await;
    w.db.seed(&[Seed::agent("u1")]).await;
    w.board.dispatch_replies([Reply::Close]);
    let url = w.board.url().replace("http://", "http://user:hunter2@");
    let run = w.run_with(&["dispatch"], &[("BEADBOARD_URL", &url)]).await;
    assert_eq!(run.code, 1, "{run:?}");
    let b = w.db.bead("u1").await;
    assert!(b.notes.contains("POST http://***@127.0.0.1"), "{b:?}");
    assert!(
        !b.notes.contains("hunter2") && !run.stderr.contains("hunter2"),
        "{run:?}"
    );
}

async fn a_token_over_plain_http_to_another_host_is_warned_about(b: Backend) {
    let w = World::new(b).await;
    let run = w
        .run_with(
            &["check"],
            &[
                ("BEADBOARD_URL", "http://beadboard.example.invalid"),
                ("BEADBOARD_TOKEN", "tok-1"),
            ],
        )
        .await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains("plain http"), "{}", run.stderr);
    assert!(!run.stderr.contains("tok-1"));
    let run = w
        .run_with(&["check"], &[("BEADBOARD_TOKEN", "tok-1")])
        .await;
    assert!(
        !run.stderr.contains("plain http"),
        "loopback: {}",
        run.stderr
    );
}

#[tokio::test]
async fn exit_codes_for_overflow_and_plugin_access_denied() {
    let w = World::new(Backend::MariaDb).await;
    let run = w.run(&["run", "--interval", "5124095576030431h"]).await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("too large"), "{}", run.stderr);
    let run = w
        .run_with(&["reap"], &[("BEADS_CLAIM_TIMEOUT", "99999999999h")])
        .await;
    assert_eq!(run.code, 2, "{run:?}");
    // MariaDB answers 1698 for a unix_socket user over TCP.
    let user = format!("sock_{}", std::process::id());
    w.db.exec(&format!(
        "CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED VIA unix_socket"
    ))
    .await;
    let run = w
        .run_with(&["check"], &[("BEADS_DOLT_SERVER_USER", &user)])
        .await;
    w.db.exec(&format!("DROP USER IF EXISTS '{user}'@'%'"))
        .await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("1698"), "{}", run.stderr);
}

async fn an_idle_tick_still_checks_the_project_identity_and_schema(b: Backend) {
    let w = World::new(b).await;
    w.db.seed(&[Seed::agent("done").status("closed")]).await;
    w.db.set_project_id("11111111-1111-4111-8111-111111111111")
        .await;
    std::fs::write(
        &w.metadata,
        w.db.metadata_json(Some("22222222-2222-4222-8222-222222222222")),
    )
    .unwrap();
    let run = w.run(&["dispatch"]).await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("project identity mismatch"),
        "{}",
        run.stderr
    );
    std::fs::write(&w.metadata, w.db.metadata_json(None)).unwrap();
    w.db.exec("ALTER TABLE issues DROP COLUMN work_type").await;
    let run = w.run(&["dispatch"]).await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("issues.work_type"), "{}", run.stderr);
    assert!(w.board.requests().is_empty());
}

async fn reaper_note_for_a_sub_minute_claim_timeout(b: Backend) {
    let w = World::new(b).await;
    let at = chrono::Utc::now() - chrono::Duration::minutes(2);
    w.db.seed(&[Seed::agent("t")
        .status("in_progress")
        .notes(&notes::claimed_by(at, "x#1"))])
        .await;
    let run = w
        .run_with(&["reap"], &[("BEADS_CLAIM_TIMEOUT", "30s")])
        .await;
    assert_eq!(run.code, 0, "{run:?}");
    let b = w.db.bead("t").await;
    assert!(
        b.note_lines().last().unwrap().contains("within 30s"),
        "{b:?}"
    );
}

on_both!(
    claim_note_carries_a_claim_id,
    a_runner_paused_past_the_claim_timeout_never_sends_after_the_reaper_released_it,
    a_connection_lost_while_writing_the_outcome_keeps_the_job_id,
    a_refusal_about_the_bead_blocks_it_at_once_and_the_tick_goes_on,
    a_not_found_refusal_blocks_only_when_beadboard_takes_other_beads,
    an_agent_service_outage_burns_nothing_and_the_queue_drains_in_order,
    hostile_rows_never_panic_or_stop_the_others,
    templates_are_never_claimed_and_events_carry_bds_full_issue,
    the_reaper_writes_its_note_before_the_status_as_the_script_did,
    url_credentials_never_reach_notes_or_logs,
    a_token_over_plain_http_to_another_host_is_warned_about,
    an_idle_tick_still_checks_the_project_identity_and_schema,
    reaper_note_for_a_sub_minute_claim_timeout,
    beadboard_refusing_every_bead_is_an_outage_that_blocks_nothing_then_the_queue_drains_in_order,
);

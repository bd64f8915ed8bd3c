#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected values
//! The reap tick against a real MariaDB.

mod common;

use beads_contract::notes;
use beads_testkit::Seed;
use chrono::{Duration, Utc};
use common::{Backend, World};

fn dispatched_notes(at: chrono::DateTime<Utc>) -> String {
    [
        notes::claimed(at),
        notes::dispatching(at),
        notes::dispatched("job-9"),
    ]
    .join("\n")
}

async fn threshold_edges_block_only_past_the_whole_minute(b: Backend) {
    let w = World::new(b).await;
    let now = Utc::now();
    let n = dispatched_notes(now - Duration::hours(2));
    w.db.seed(&[
        // 29m50s: 29 whole minutes.
        Seed::agent("r-29")
            .status("in_progress")
            .notes(&n)
            .updated(now - Duration::seconds(29 * 60 + 50)),
        // 30m05s: 30 whole minutes, not more than the 30m threshold.
        Seed::agent("r-30")
            .status("in_progress")
            .notes(&n)
            .updated(now - Duration::seconds(30 * 60 + 5)),
        // 31m05s: blocked.
        Seed::agent("r-31")
            .status("in_progress")
            .notes(&n)
            .updated(now - Duration::seconds(31 * 60 + 5)),
        Seed::agent("r-old-open").updated(now - Duration::hours(5)),
        Seed::agent("r-other")
            .status("in_progress")
            .assignee(Some("alice"))
            .updated(now - Duration::hours(5)),
        Seed::agent("r-case")
            .status("in_progress")
            .assignee(Some("Agent"))
            .updated(now - Duration::hours(5)),
    ])
    .await;
    let run = w.run(&["reap"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    for id in ["r-29", "r-30"] {
        let b = w.db.bead(id).await;
        assert_eq!(
            (b.status.as_str(), b.notes.as_str()),
            ("in_progress", n.as_str()),
            "{id}"
        );
    }
    let b = w.db.bead("r-31").await;
    assert_eq!(b.status, "blocked");
    assert_eq!(
        b.note_lines().last(),
        Some(&notes::reaper_stale(31, 30).as_str())
    );
    assert!(b.note_lines().last().unwrap().contains(" — blocking"));
    for id in ["r-old-open", "r-other", "r-case"] {
        assert_eq!(w.db.bead(id).await.notes, "", "{id} untouched");
    }
    let events = w.db.events("r-31").await;
    assert!(events.iter().all(|e| e.actor == "beads-reaper"));
    assert!(events.iter().any(|e| e.event_type == "status_changed"
        && e.new_value.as_deref() == Some(r#"{"status":"blocked"}"#)));
}

async fn stale_after_flag_sets_the_threshold(b: Backend) {
    let w = World::new(b).await;
    let now = Utc::now();
    w.db.seed(&[Seed::agent("s")
        .status("in_progress")
        .updated(now - Duration::minutes(11))])
        .await;
    let run = w.run(&["reap", "--stale-after", "10m"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let b = w.db.bead("s").await;
    assert_eq!(b.status, "blocked");
    assert_eq!(b.notes, notes::reaper_stale(11, 10));
}

async fn claim_never_sent_returns_to_open_after_claim_timeout(b: Backend) {
    let w = World::new(b).await;
    let now = Utc::now();
    let claimed = now - Duration::minutes(6);
    w.db.seed(&[
        Seed::agent("c-old")
            .status("in_progress")
            .notes(&notes::claimed(claimed))
            .updated(claimed),
        Seed::agent("c-new")
            .status("in_progress")
            .notes(&notes::claimed(now - Duration::minutes(2)))
            .updated(now - Duration::minutes(2)),
    ])
    .await;
    let run = w.run(&["reap"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let b = w.db.bead("c-old").await;
    assert_eq!(b.status, "open");
    assert_eq!(
        b.note_lines().last(),
        Some(&notes::reaper_released(claimed, std::time::Duration::from_secs(300)).as_str())
    );
    assert_eq!(w.db.bead("c-new").await.status, "in_progress");
}

async fn request_sent_without_outcome_is_blocked_not_reopened(b: Backend) {
    let w = World::new(b).await;
    let at = Utc::now() - Duration::minutes(7);
    let n = format!("{}\n{}", notes::claimed(at), notes::dispatching(at));
    w.db.seed(&[Seed::agent("u").status("in_progress").notes(&n).updated(at)])
        .await;
    let run = w.run(&["reap"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let b = w.db.bead("u").await;
    assert_eq!(b.status, "blocked");
    assert_eq!(
        b.note_lines().last(),
        Some(&notes::reaper_outcome_unknown(at, std::time::Duration::from_secs(300)).as_str())
    );
}

async fn dry_run_prints_and_writes_nothing(b: Backend) {
    let w = World::new(b).await;
    w.db.seed(&[Seed::agent("d")
        .status("in_progress")
        .updated_minutes_ago(45)])
        .await;
    let run = w.run(&["reap", "--dry-run"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout
            .contains("would set d to blocked: reaper: no progress for 45m"),
        "{}",
        run.stdout
    );
    assert_eq!(w.db.bead("d").await.status, "in_progress");
    assert_eq!(w.db.event_count().await, 0);
}

async fn reap_needs_no_beadboard(b: Backend) {
    let w = World::new(b).await;
    w.db.seed(&[Seed::agent("n")
        .status("in_progress")
        .updated_minutes_ago(45)])
        .await;
    let mut cmd = w.command(&["reap"]);
    cmd.env_remove("BEADBOARD_URL");
    let out = cmd.output().await.unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(w.db.bead("n").await.status, "blocked");
}

on_both!(
    threshold_edges_block_only_past_the_whole_minute,
    stale_after_flag_sets_the_threshold,
    claim_never_sent_returns_to_open_after_claim_timeout,
    request_sent_without_outcome_is_blocked_not_reopened,
    dry_run_prints_and_writes_nothing,
    reap_needs_no_beadboard,
);

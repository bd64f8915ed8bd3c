#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected values
//! Exactly once under Dolt's transaction merge (issue 21), beside MariaDB's
//! row locks: what Dolt itself does when two transactions write one row,
//! runners racing for one bead, the in-flight cap across runners, a
//! conflict at `DOLT_COMMIT`, a runner racing the reaper's release, the
//! server killed mid-claim, and the Dolt commits every write makes.

mod common;

use std::time::Duration;

use beads_runner::failpoint;
use beads_testkit::{BeadsDb, Seed};
use common::{Backend, Running, World};
use mysql_async::prelude::*;

/// The claim lines of a bead's notes.
fn claims(notes: &str) -> usize {
    notes
        .lines()
        .filter(|l| l.starts_with("auto-dispatcher claimed at "))
        .count()
}

/// One conditional claim of `id` on `conn`, inside a transaction left
/// open; returns the rows the `UPDATE` reported.
async fn open_claim(conn: &mut mysql_async::Conn, id: &str, note: &str) -> u64 {
    conn.query_drop("START TRANSACTION").await.unwrap();
    conn.exec_drop(
        // updated_at set to one value by both: its ON UPDATE would otherwise
        // put each transaction's own second there, a conflict of its own.
        "UPDATE issues SET status = 'in_progress', notes = ?, updated_at = '2026-01-01 00:00:00' \
         WHERE id = ? AND status = 'open'",
        (note, id),
    )
    .await
    .unwrap();
    conn.affected_rows()
}

fn server_code(e: mysql_async::Error) -> (u16, String) {
    match e {
        mysql_async::Error::Server(e) => (e.code, e.state),
        other => panic!("not a server error: {other}"),
    }
}

/// What Dolt itself does, observed on the real server: two transactions'
/// conditional `UPDATE`s of one row both report one row; of two different
/// values in one cell the second to commit fails with 1213 (SQLSTATE
/// 40001), at `DOLT_COMMIT` or at a plain `COMMIT` alike, and is rolled
/// back; the same value written by both is no conflict at all.
async fn dolt_merges_at_commit_and_the_second_writer_gets_1213() {
    let db = BeadsDb::create_for(Backend::Dolt).await;
    db.seed(&[Seed::agent("a"), Seed::agent("b"), Seed::agent("c")])
        .await;
    let commit = "CALL DOLT_COMMIT('-m', 'bd: update x', '--author', 'beads <beads@local>')";
    for (id, second_commit) in [("a", commit), ("b", "COMMIT")] {
        let (mut one, mut two) = (db.conn().await, db.conn().await);
        assert_eq!(open_claim(&mut one, id, "claim one").await, 1);
        assert_eq!(
            open_claim(&mut two, id, "claim two").await,
            1,
            "Dolt took no lock: the second conditional UPDATE also saw the row open"
        );
        one.query_drop("CALL DOLT_ADD('issues')").await.unwrap();
        one.query_drop(commit).await.unwrap();
        two.query_drop("CALL DOLT_ADD('issues')").await.unwrap();
        let err = two.query_drop(second_commit).await.unwrap_err();
        assert_eq!(server_code(err), (1213, "40001".into()), "{second_commit}");
        assert_eq!(
            db.bead(id).await.notes,
            "claim one",
            "the loser left nothing"
        );
    }
    // Identical writes merge: both commit, and nothing tells them apart.
    let (mut one, mut two) = (db.conn().await, db.conn().await);
    assert_eq!(open_claim(&mut one, "c", "same").await, 1);
    assert_eq!(open_claim(&mut two, "c", "same").await, 1);
    one.query_drop("COMMIT").await.unwrap();
    two.query_drop("COMMIT").await.unwrap();
    assert_eq!(db.bead("c").await.notes, "same");
}

#[tokio::test]
async fn dolt_observed_merge_and_1213() {
    dolt_merges_at_commit_and_the_second_writer_gets_1213().await;
}

/// Every claim, marker, outcome, release and block is one Dolt commit with
/// bd's message and author, its `events` rows in the same commit, and
/// nothing left in the working set.
#[tokio::test]
async fn on_dolt_every_write_is_one_commit_like_bd() {
    let w = World::new(Backend::Dolt).await;
    w.db.seed(&[
        Seed::agent("d1"),
        Seed::agent("r1")
            .status("in_progress")
            .updated_minutes_ago(90),
    ])
    .await;
    let before = w.db.dolt_log().await.len();
    let run = w
        .run_with(&["dispatch"], &[("BEADS_MAX_IN_FLIGHT", "2")])
        .await;
    assert_eq!(run.code, 0, "{run:?}");
    let log = w.db.dolt_log().await;
    assert_eq!(log.len(), before + 3, "claim, marker, outcome: {log:?}");
    for c in &log[..3] {
        assert_eq!(
            (c.message.as_str(), c.committer.as_str(), c.email.as_str()),
            ("bd: update d1", "beads", "beads@local")
        );
    }
    w.db.assert_committed().await;
    // Four events (status and three notes), each added by one of those commits.
    let events = w.db.events("d1").await;
    let kinds: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(kinds, ["status_changed", "updated", "updated", "updated"]);
    let mut c = w.db.conn().await;
    let uncommitted_events: Option<u64> = c
        .query_first("SELECT COUNT(*) FROM dolt_diff_events WHERE to_commit = 'WORKING'")
        .await
        .unwrap();
    assert_eq!(uncommitted_events, Some(0));
    // The claim lock is set but never enters history.
    let lock: Option<String> = c
        .exec_first(
            "SELECT value FROM local_metadata WHERE `key` = ?",
            (beads_runner::store::CLAIM_LOCK_KEY,),
        )
        .await
        .unwrap();
    assert_eq!(lock.map(|v| v.len()), Some(36), "a UUID");
    drop(c);

    // The reaper's block, with GIT_AUTHOR_* as bd reads them.
    let reap = w
        .run_with(
            &["reap"],
            &[
                ("GIT_AUTHOR_NAME", "ops"),
                ("GIT_AUTHOR_EMAIL", "ops@example.org"),
            ],
        )
        .await;
    assert_eq!(reap.code, 0, "{reap:?}");
    let log = w.db.dolt_log().await;
    assert_eq!(log.len(), before + 4);
    assert_eq!(
        (
            log[0].message.as_str(),
            log[0].committer.as_str(),
            log[0].email.as_str()
        ),
        ("bd: update r1", "ops", "ops@example.org")
    );
    assert_eq!(w.db.bead("r1").await.status, "blocked");
    w.db.assert_committed().await;
}

/// Several runners race for one bead. On Dolt every one of them gets one
/// row from its conditional `UPDATE` (each logs the pause that comes after
/// that check); one commits, every other fails with 1213 at `DOLT_COMMIT`,
/// decides again and finds the bead taken. On MariaDB the row lock makes
/// them wait, and only the first ever gets its row. Either way: one claim,
/// one request.
async fn runners_racing_for_one_bead(b: Backend) {
    const RUNNERS: usize = 6;
    let w = World::new(b).await;
    w.db.seed(&[Seed::agent("r1")]).await;
    let mut runners: Vec<Running> = (0..RUNNERS)
        .map(|n| {
            let mut cmd = w.command(&["dispatch"]);
            cmd.env(failpoint::PAUSE_AT, failpoint::BEFORE_CLAIM_COMMIT)
                .env(failpoint::PAUSE_FOR, "2s")
                .env("BEADS_LOG", "debug")
                .env("BEADS_ACTOR", format!("racer-{n}"));
            Running::start(cmd)
        })
        .collect();
    let mut paused = 0;
    let mut lost_at_commit = 0;
    for r in &mut runners {
        let (code, lines) = r.finish().await;
        assert_eq!(code, Some(0), "{lines:#?}");
        paused += lines
            .iter()
            .filter(|l| l.contains("paused at before-claim-commit"))
            .count();
        if lines.iter().any(|l| {
            l.contains("committing to Dolt history bead r1") && l.contains("ERROR 1213 (40001)")
        }) {
            lost_at_commit += 1;
        }
    }
    assert_eq!(w.board.dispatched_ids(), ["r1"], "one request");
    let bead = w.db.bead("r1").await;
    assert_eq!(claims(&bead.notes), 1, "{bead:?}");
    assert_eq!(bead.note_lines().last(), Some(&"dispatched: job=job-1"));
    match b {
        Backend::Dolt => {
            assert_eq!(paused, RUNNERS, "every UPDATE reported one row");
            assert_eq!(
                lost_at_commit,
                RUNNERS - 1,
                "every other one lost at DOLT_COMMIT"
            );
            let log = w.db.dolt_log().await;
            let ours = log.iter().filter(|c| c.message == "bd: update r1").count();
            assert_eq!(ours, 3, "one claim, one marker, one outcome: {log:?}");
            w.db.assert_committed().await;
        }
        Backend::MariaDb => {
            assert_eq!(paused, 1, "the others waited on the row lock");
            assert_eq!(lost_at_commit, 0);
        }
    }
    assert_eq!(w.db.events("r1").await.len(), 4, "one claim's events only");
}

/// Two runners, `max_in_flight` 1, claiming different beads at once: A's
/// claim of c0 is held open before its commit while B claims c1. On Dolt
/// both counted no bead in progress in their snapshots; without the shared
/// claim lock both would commit (they wrote different rows). With it the
/// later commit fails with 1213, counts again, and stops at capacity. On
/// MariaDB B's locking count waits for A. Either way one bead is in progress.
async fn the_in_flight_cap_holds_across_runners(b: Backend) {
    let w = World::new(b).await;
    w.db.seed(&[Seed::agent("c0").priority(0), Seed::agent("c1").priority(1)])
        .await;
    let vars = [("BEADS_MAX_IN_FLIGHT", "1"), ("BEADS_LOG", "debug")];
    let mut a = w.command(&["dispatch"]);
    a.env(failpoint::PAUSE_AT, failpoint::BEFORE_CLAIM_COMMIT)
        .env(failpoint::PAUSE_FOR, "4s")
        .envs(vars);
    let mut a = Running::start(a);
    a.wait_for("paused at before-claim-commit").await;
    // c0 leaves B's queue (hidden from BeadBoard), so B goes for c1. On
    // MariaDB this insert waits for A's lock on c0.
    let hide =
        w.db.exec("INSERT INTO labels (issue_id, label) VALUES ('c0', 'gt:agent')");
    let b_run = match b {
        Backend::Dolt => {
            hide.await;
            w.run_with(&["dispatch"], &vars).await
        }
        Backend::MariaDb => {
            let (_, run) = tokio::join!(hide, async {
                tokio::time::sleep(Duration::from_millis(500)).await;
                w.run_with(&["dispatch"], &vars).await
            });
            run
        }
    };
    assert_eq!(b_run.code, 0, "{b_run:?}");
    let (code, a_lines) = a.finish().await;
    assert_eq!(code, Some(0), "{a_lines:#?}");
    let in_progress: Vec<String> =
        w.db.beads()
            .await
            .into_iter()
            .filter(|b| b.status == "in_progress")
            .map(|b| b.id)
            .collect();
    assert_eq!(in_progress.len(), 1, "the cap holds: {in_progress:?}");
    assert_eq!(w.board.dispatched_ids(), in_progress);
    if b == Backend::Dolt {
        assert_eq!(in_progress, ["c1"], "B committed first");
        assert!(
            a_lines.iter().any(|l| l.contains("ERROR 1213 (40001)")),
            "A's claim of c0 lost at commit: {a_lines:#?}"
        );
        assert!(
            a_lines.iter().any(|l| l.contains("at_capacity")),
            "{a_lines:#?}"
        );
        assert_eq!(w.db.bead("c0").await.notes, "", "A left nothing");
        w.db.assert_committed().await;
    }
}

/// A conflict at `DOLT_COMMIT`, provoked deterministically: the runner is
/// held after its `UPDATE`, and another dispatcher claims the bead and
/// commits first. The runner's commit fails with 1213; that is a lost race
/// (exit 0, nothing sent, nothing of its own written), never an unknown
/// outcome. When the other writer only added a person's note, the runner
/// decides again on the new row and claims it.
#[tokio::test]
async fn on_dolt_a_conflict_at_dolt_commit_is_a_lost_race() {
    let w = World::new(Backend::Dolt).await;
    w.db.seed(&[Seed::agent("x1"), Seed::agent("x2").priority(3)])
        .await;
    let start = |vars: &[(&str, &str)]| {
        let mut cmd = w.command(&["dispatch"]);
        cmd.env(failpoint::PAUSE_AT, failpoint::BEFORE_CLAIM_COMMIT)
            .env(failpoint::PAUSE_FOR, "2s")
            .env("BEADS_LOG", "debug")
            .envs(vars.iter().copied());
        Running::start(cmd)
    };
    let other = "auto-dispatcher claimed at 2026-01-01T00:00:00Z by other#1";
    let mut r = start(&[("BEADS_MAX_IN_FLIGHT", "1")]);
    r.wait_for("paused at before-claim-commit").await;
    let before = w.db.dolt_log().await.len();
    let mut c = w.db.conn().await;
    c.exec_drop(
        "UPDATE issues SET status = 'in_progress', notes = ? WHERE id = 'x1'",
        (other,),
    )
    .await
    .unwrap();
    c.query_drop("CALL DOLT_ADD('issues')").await.unwrap();
    c.query_drop("CALL DOLT_COMMIT('-m', 'bd: update x1', '--author', 'beads <beads@local>')")
        .await
        .unwrap();
    drop(c);
    let (code, lines) = r.finish().await;
    assert_eq!(code, Some(0), "a lost race, not a failure: {lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("committing to Dolt history bead x1")
                && l.contains("ERROR 1213 (40001)")),
        "{lines:#?}"
    );
    assert!(!lines.iter().any(|l| l.contains("outcome unknown")));
    // x1 was taken; with max_in_flight 1 the other's claim fills the slot.
    assert!(w.board.dispatched_ids().is_empty(), "nothing sent");
    assert_eq!(
        w.db.bead("x1").await.notes,
        other,
        "nothing of the runner's"
    );
    assert_eq!(w.db.bead("x2").await.notes, "");
    assert_eq!(w.db.event_count().await, 0, "no events of the lost claim");
    assert_eq!(
        w.db.dolt_log().await.len(),
        before + 1,
        "only the other's commit"
    );
    w.db.assert_committed().await;

    // A person's note lands between the runner's UPDATE and its commit: the
    // runner loses that commit, decides again on the row with the note, and
    // claims x2 once, keeping the note.
    let mut r = start(&[("BEADS_MAX_IN_FLIGHT", "2")]);
    r.wait_for("paused at before-claim-commit").await;
    w.db.exec("UPDATE issues SET notes = 'a person was here' WHERE id = 'x2'")
        .await;
    let (code, lines) = r.finish().await;
    assert_eq!(code, Some(0), "{lines:#?}");
    assert!(
        lines.iter().any(|l| l.contains("ERROR 1213 (40001)")),
        "{lines:#?}"
    );
    assert_eq!(w.board.dispatched_ids(), ["x2"]);
    let x2 = w.db.bead("x2").await;
    assert_eq!(x2.note_lines()[0], "a person was here");
    assert_eq!(claims(&x2.notes), 1, "{x2:?}");
    w.db.assert_committed().await;
}

/// A runner and the reaper's release of its claim race at commit, both
/// ways round. Whoever commits second loses with 1213 on Dolt (both write
/// `notes`) and decides again; on MariaDB the row lock orders them. Never
/// sent after a release, never released after a send.
async fn a_runner_racing_the_reapers_release(b: Backend) {
    let reap_vars = [("BEADS_CLAIM_TIMEOUT", "1s")];
    // 1. The reaper's release is held before its commit while the runner
    //    writes its marker.
    let w = World::new(b).await;
    w.db.seed(&[Seed::agent("p1")]).await;
    let mut runner = w.command(&["dispatch"]);
    // Margins of seconds: a loaded 2-core machine starts a process slowly.
    runner
        .env(failpoint::PAUSE_AT, failpoint::CLAIMED)
        .env(failpoint::PAUSE_FOR, "6s");
    let mut runner = Running::start(runner);
    runner.wait_for("paused at claimed").await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let mut reaper = w.command(&["reap"]);
    reaper
        .envs(reap_vars)
        .env(failpoint::PAUSE_AT, failpoint::BEFORE_WRITE_COMMIT)
        .env(failpoint::PAUSE_FOR, "5s");
    let mut reaper = Running::start(reaper);
    reaper.wait_for("paused at before-write-commit").await;
    let (code, lines) = runner.finish().await;
    assert_eq!(code, Some(0), "{lines:#?}");
    let (code, reaper_lines) = reaper.finish().await;
    assert_eq!(code, Some(0), "{reaper_lines:#?}");
    let p1 = w.db.bead("p1").await;
    match b {
        // The marker committed first; the reaper's release lost and, on the
        // row with the fresh marker, kept the bead.
        Backend::Dolt => {
            assert_eq!(w.board.dispatched_ids(), ["p1"]);
            assert_eq!(p1.status, "in_progress", "{p1:?}");
            assert_eq!(p1.note_lines().last(), Some(&"dispatched: job=job-1"));
            assert!(!p1.notes.contains("returning to open"), "{p1:?}");
            w.db.assert_committed().await;
        }
        // The reaper held the row: the marker waited, found the release,
        // and nothing was sent.
        Backend::MariaDb => {
            assert!(w.board.dispatched_ids().is_empty());
            assert_eq!(p1.status, "open", "{p1:?}");
            assert!(
                p1.note_lines()
                    .last()
                    .unwrap()
                    .contains("returning to open"),
                "{p1:?}"
            );
        }
    }

    // 2. The runner's marker is held before its commit while the reaper
    //    releases the claim.
    let w = World::new(b).await;
    w.db.seed(&[Seed::agent("p2")]).await;
    let mut runner = w.command(&["dispatch"]);
    runner
        .env(failpoint::PAUSE_AT, failpoint::BEFORE_WRITE_COMMIT)
        .env(failpoint::PAUSE_FOR, "6s");
    let mut runner = Running::start(runner);
    runner.wait_for("paused at before-write-commit").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let reap = w.run_with(&["reap"], &reap_vars).await;
    assert_eq!(reap.code, 0, "{reap:?}");
    let (code, lines) = runner.finish().await;
    assert_eq!(code, Some(0), "{lines:#?}");
    let p2 = w.db.bead("p2").await;
    match b {
        // The release committed first; the marker lost, found the claim
        // released, and nothing was sent.
        Backend::Dolt => {
            assert!(
                w.board.dispatched_ids().is_empty(),
                "never sent after a release"
            );
            assert_eq!(p2.status, "open", "{p2:?}");
            assert!(!p2.notes.contains("dispatching to BeadBoard"), "{p2:?}");
            assert!(
                lines.iter().any(|l| l.contains("no longer this runner's")),
                "{lines:#?}"
            );
            w.db.assert_committed().await;
        }
        // The runner held the row: the reaper waited, then found the
        // marker (timed before the runner's 6 s pause, so older than the
        // 1 s claim timeout) and blocked the bead as sent without an
        // outcome, never reopening it; the job note is still kept.
        Backend::MariaDb => {
            assert_eq!(w.board.dispatched_ids(), ["p2"], "sent once");
            assert_eq!(p2.status, "blocked", "{p2:?}");
            assert!(
                p2.notes.contains("reaper: dispatch outcome unknown"),
                "{p2:?}"
            );
            assert_eq!(p2.note_lines().last(), Some(&"dispatched: job=job-1"));
        }
    }
}

/// The database server killed (SIGKILL) while a claim is open: nothing of
/// it is written, no Dolt commit is made, and the next tick dispatches
/// the bead once.
async fn the_server_killed_mid_claim_writes_nothing(b: Backend) {
    let server = beads_testkit::PrivateServer::start_for(b);
    let db = BeadsDb::create_on_backend(&server.url, b).await;
    db.seed(&[Seed::agent("k1")]).await;
    let board = beads_testkit::StubBeadBoard::start().await;
    let dir = tempfile::tempdir().unwrap();
    let metadata = dir.path().join("metadata.json");
    std::fs::write(&metadata, db.metadata_json(None)).unwrap();
    let command = |pause: bool| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_beads-runner"));
        cmd.env_clear()
            .env("BEADS_METADATA", &metadata)
            .env("BEADBOARD_URL", board.url())
            .arg("dispatch")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        if pause {
            cmd.env(failpoint::PAUSE_AT, failpoint::BEFORE_CLAIM_COMMIT)
                .env(failpoint::PAUSE_FOR, "3s");
        }
        cmd
    };
    let log_before = match b {
        Backend::Dolt => db.dolt_log().await.len(),
        Backend::MariaDb => 0,
    };
    let mut runner = Running::start(command(true));
    runner.wait_for("paused at before-claim-commit").await;
    server.crash();
    let (code, lines) = runner.finish().await;
    assert_eq!(code, Some(1), "{lines:#?}");
    assert!(board.dispatched_ids().is_empty());
    let k1 = db.bead("k1").await;
    assert_eq!((k1.status.as_str(), k1.notes.as_str()), ("open", ""));
    assert_eq!(db.event_count().await, 0);
    if b == Backend::Dolt {
        assert_eq!(db.dolt_log().await.len(), log_before, "no commit");
        db.assert_committed().await;
    }
    let next = command(false).output().await.unwrap();
    assert_eq!(next.status.code(), Some(0), "{next:?}");
    assert_eq!(board.dispatched_ids(), ["k1"]);
    if b == Backend::Dolt {
        assert_eq!(db.dolt_log().await.len(), log_before + 3);
        db.assert_committed().await;
    }
}

on_both!(
    runners_racing_for_one_bead,
    the_in_flight_cap_holds_across_runners,
    a_runner_racing_the_reapers_release,
    the_server_killed_mid_claim_writes_nothing,
);

/// A Dolt test run without the Dolt server's URL fails, naming the
/// variable and the script; it never runs on MariaDB instead, nor passes.
#[test]
fn a_dolt_test_without_its_server_fails_and_says_why() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "dolt::runners_racing_for_one_bead"])
        .env_remove(beads_testkit::mariadb::DOLT_URL_VAR)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("BEADS_TEST_DOLT_URL is not set")
            && text.contains("scripts/dolt-throwaway start"),
        "{text}"
    );
    assert!(text.contains("1 failed"), "{text}");
}

/// On Dolt the claim lock's table is required: without it the cap could not
/// hold across runners, so the runner refuses (exit 2) and writes nothing.
#[tokio::test]
async fn on_dolt_a_database_without_local_metadata_is_refused() {
    let w = World::new(Backend::Dolt).await;
    w.db.seed(&[Seed::agent("l1")]).await;
    w.db.exec("DROP TABLE local_metadata").await;
    let run = w.run(&["dispatch"]).await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains("local_metadata.key, local_metadata.value"),
        "{}",
        run.stderr
    );
    assert!(w.board.dispatched_ids().is_empty());
    assert_eq!(w.db.bead("l1").await.notes, "");
    // MariaDB needs no such table: the locking count orders claimers there.
    let m = World::new(Backend::MariaDb).await;
    m.db.seed(&[Seed::agent("l1")]).await;
    m.db.exec("DROP TABLE local_metadata").await;
    let run = m.run(&["dispatch"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(m.board.dispatched_ids(), ["l1"]);
}

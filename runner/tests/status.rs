#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected values
//! `beads-runner status` against a real MariaDB holding beads in every state.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};

use beads_contract::{env, notes};
use beads_testkit::{BeadsDb, Seed};
use chrono::{Duration, Utc};
use common::{Backend, World};
use mysql_async::prelude::*;

/// The runner's default first pause after a failure (2m).
const RETRY_DELAY: Duration = Duration::minutes(2);

/// Beads in every stage, plus beads `status` must leave out. Times are
/// chosen far from the edges of their relative-time buckets, so the table
/// text is the same however long the test takes to reach the runner.
/// Returns the end of the runner-wide pause the failed dispatch starts.
async fn seed_every_state(db: &BeadsDb) -> chrono::DateTime<Utc> {
    assert_eq!(
        Duration::from_std(beads_contract::defaults::RETRY_DELAY).unwrap(),
        RETRY_DELAY
    );
    let now = Utc::now();
    let ago = |m: i64| now - Duration::minutes(m);
    let claim = notes::claimed_by(now - Duration::seconds(20), "beads-dispatcher#0123456789ab");
    let paused_until = notes::claimed_at(&claim).unwrap() + RETRY_DELAY;
    let failed = [claim, notes::dispatch_failed_http(502, "Queue full")].join("\n");
    let dispatched = [
        notes::claimed(ago(10)),
        notes::dispatching(ago(10)),
        notes::dispatched("job-42"),
    ]
    .join("\n");
    let claimed = notes::claimed_by(ago(95), "beads-dispatcher#ba9876543210");
    db.seed(&[
        Seed::agent("w-first").priority(0).updated(ago(90)),
        Seed::agent("w-second").priority(2).updated(ago(90)),
        // Failed 20s ago: the whole runner pauses; the bead keeps its place.
        Seed::agent("r-retry")
            .priority(1)
            .notes(&failed)
            .updated(ago(90)),
        Seed::agent("f-job")
            .status("in_progress")
            .notes(&dispatched)
            .updated(ago(10)),
        Seed::agent("b-stale")
            .status("blocked")
            .notes(&format!("{dispatched}\n{}", notes::reaper_stale(31, 30)))
            .updated(ago(90)),
        Seed::agent("b-person")
            .status("blocked")
            .notes("waiting on the design review")
            .updated(ago(90)),
        Seed::agent("b-refused")
            .status("blocked")
            .notes(&format!(
                "{claimed}\n{}",
                notes::refused_blocked("HTTP 400: Bead b-refused is missing acceptance criteria.")
            ))
            .updated(ago(90)),
        Seed::agent("b-unknown")
            .status("blocked")
            .notes(&format!(
                "{claimed}\n{}\n{}",
                notes::dispatching(ago(95)),
                notes::outcome_unknown("timed out after sending")
            ))
            .updated(ago(90)),
        Seed::agent("s-no-ac").acceptance("  ").updated(ago(90)),
        Seed::agent("s-full")
            .notes(&"x".repeat(beads_runner::decide::NOTES_LIMIT - 100))
            .updated(ago(90)),
        Seed::agent("s-label").label("gt:agent").updated(ago(90)),
        Seed::agent("s-template").updated(ago(90)),
        // Not the sentinel's, or done: never listed.
        Seed::agent("x-closed").status("closed"),
        Seed::agent("x-alice").assignee(Some("alice")),
        Seed::agent("x-case").assignee(Some("Agent")),
    ])
    .await;
    // `updated_at = updated_at` keeps ON UPDATE CURRENT_TIMESTAMP from bumping it.
    db.exec("UPDATE issues SET is_template = 1, updated_at = updated_at WHERE id = 's-template'")
        .await;
    paused_until
}

async fn the_queue_in_every_state_as_a_table(b: Backend) {
    let w = World::new(b).await;
    let until = seed_every_state(&w.db).await;
    let before = w.db.beads().await;
    let run = w.run(&["status"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let stale = notes::reaper_stale(31, 30);
    let refused =
        notes::refused_blocked("HTTP 400: Bead b-refused is missing acceptance criteria.");
    let unknown = notes::outcome_unknown("timed out after sending");
    let expected = format!(
        "dispatching paused until {} (in 1m) after 1 transient failure on r-retry: \
         dispatch failed HTTP 502: Queue full\n\
         \n\
         STAGE       ID           PRI   TITLE             UPDATED   DETAIL\n\
         waiting     w-first      P0    bead w-first      1h ago    #1 in dispatch order\n\
         waiting     r-retry      P1    bead r-retry      1h ago    #2 in dispatch order\n\
         waiting     w-second     P2    bead w-second     1h ago    #3 in dispatch order\n\
         in flight   f-job        P2    bead f-job        10m ago   since 10m ago, job job-42\n\
         blocked     b-person     P2    bead b-person     1h ago    not by the runner: waiting on the design review\n\
         blocked     b-refused    P2    bead b-refused    1h ago    by the dispatcher: {refused}\n\
         blocked     b-stale      P2    bead b-stale      1h ago    by the reaper: {stale}\n\
         blocked     b-unknown    P2    bead b-unknown    1h ago    by the dispatcher: {unknown}\n\
         skipped     s-full       P2    bead s-full       1h ago    notes full: no room for another attempt's notes\n\
         skipped     s-label      P2    bead s-label      1h ago    labelled gt:agent (hidden from BeadBoard)\n\
         skipped     s-no-ac      P2    bead s-no-ac      1h ago    no acceptance criteria\n\
         skipped     s-template   P2    bead s-template   1h ago    a template (bd never changes templates)\n",
        notes::timestamp(until)
    );
    assert_eq!(run.stdout, expected);
    assert!(!run.stdout.contains('\u{1b}'), "no colour off a terminal");
    // Read-only: every row as it was, and no events.
    assert_eq!(w.db.beads().await, before);
    assert!(w.db.events("f-job").await.is_empty());

    // The dispatch tick agrees: it pauses, and asks BeadBoard nothing.
    let tick = w.run(&["dispatch"]).await;
    assert_eq!(tick.code, 0, "{tick:?}");
    assert!(w.board.requests().is_empty(), "{:?}", w.board.requests());
    assert_eq!(w.db.beads().await, before);
}

async fn the_pause_follows_retry_delay_and_ends(b: Backend) {
    let w = World::new(b).await;
    let claim = notes::claimed_by(
        Utc::now() - Duration::seconds(20),
        "beads-dispatcher#0123456789ab",
    );
    let claimed_at = notes::claimed_at(&claim).unwrap();
    let failed = [
        claim,
        notes::dispatch_failed_transport("connection refused"),
    ]
    .join("\n");
    w.db.seed(&[
        Seed::agent("a-best").priority(0).updated_minutes_ago(90),
        Seed::agent("r-failed")
            .priority(1)
            .notes(&failed)
            .updated_minutes_ago(90),
    ])
    .await;
    fn delay(d: &str) -> [(&'static str, &str); 1] {
        [(env::RETRY_DELAY, d)]
    }
    // A longer first delay makes a longer pause, for status as for the tick.
    let run = w.run_with(&["status", "--json"], &delay("10m")).await;
    assert_eq!(run.code, 0, "{run:?}");
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        v["paused"]["until"],
        notes::timestamp(claimed_at + Duration::minutes(10))
    );
    assert_eq!(v["paused"]["bead_id"], "r-failed");
    let tick = w.run_with(&["dispatch"], &delay("10m")).await;
    assert_eq!(tick.code, 0, "{tick:?}");
    assert!(w.board.dispatched_ids().is_empty(), "{tick:?}");
    // A 1s delay has passed: no pause, and the tick dispatches the best bead.
    let run = w.run_with(&["status", "--json"], &delay("1s")).await;
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["paused"], serde_json::Value::Null, "{v}");
    assert_eq!(v["waiting"][0]["id"], "a-best");
    let tick = w.run_with(&["dispatch"], &delay("1s")).await;
    assert_eq!(tick.code, 0, "{tick:?}");
    assert_eq!(w.board.dispatched_ids(), ["a-best"]);
}

async fn the_queue_in_every_state_as_json(b: Backend) {
    let w = World::new(b).await;
    let until = seed_every_state(&w.db).await;
    let run = w.run(&["status", "--json"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let ids = |group: &str| -> Vec<String> {
        v[group]
            .as_array()
            .unwrap_or_else(|| panic!("no {group} in {v}"))
            .iter()
            .map(|b| b["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(v["assignee"], "agent");
    assert_eq!(ids("waiting"), ["w-first", "r-retry", "w-second"]);
    assert!(v.get("backing_off").is_none(), "{v}");
    assert_eq!(ids("in_flight"), ["f-job"]);
    assert_eq!(
        ids("blocked"),
        ["b-person", "b-refused", "b-stale", "b-unknown"]
    );
    assert_eq!(
        ids("skipped"),
        ["s-full", "s-label", "s-no-ac", "s-template"]
    );
    assert_eq!(v["waiting"][1]["position"], 2);
    assert_eq!(
        v["paused"],
        serde_json::json!({
            "until": notes::timestamp(until),
            "failures": 1,
            "last_reason": notes::dispatch_failed_http(502, "Queue full"),
            "bead_id": "r-retry",
        })
    );
    let flight = &v["in_flight"][0];
    assert_eq!(flight["job_id"], "job-42");
    assert_eq!(flight["phase"], "dispatched");
    let by: Vec<&str> = v["blocked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["by"].as_str().unwrap())
        .collect();
    assert_eq!(by, ["other", "dispatcher", "reaper", "dispatcher"]);
    let reasons: Vec<&str> = v["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        [
            "notes_full",
            "agent_label",
            "no_acceptance_criteria",
            "template"
        ]
    );

    // One bead's history: a waiting bead shows the pause holding it back.
    let run = w.run(&["status", "r-retry"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines[1],
        "status open, assigned to agent: waiting, #2 in dispatch order"
    );
    assert!(
        lines[2].starts_with(&format!(
            "dispatching paused until {} (in ",
            notes::timestamp(until)
        )),
        "{run:?}"
    );
    let json = w.run(&["status", "r-retry", "--json"]).await;
    let h: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(h["paused"], v["paused"]);
    let kinds: Vec<&str> = h["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["claimed", "dispatch_failed"]);
    // A blocked bead is not held back by the pause; its notes name their kinds.
    let json = w.run(&["status", "b-unknown", "--json"]).await;
    let h: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(h["paused"], serde_json::Value::Null);
    let kinds: Vec<&str> = h["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["claimed", "dispatching", "outcome_unknown"]);
    let json = w.run(&["status", "b-refused", "--json"]).await;
    let h: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(h["timeline"][1]["kind"], "refused_blocked");
}

async fn a_dispatched_bead_has_its_history_as_a_timeline(b: Backend) {
    let w = World::new(b).await;
    w.db.seed(&[Seed::agent("h1").notes("context from a person")])
        .await;
    let tick = w.run(&["dispatch"]).await;
    assert_eq!(tick.code, 0, "{tick:?}");

    let run = w.run(&["status", "h1"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines[0], "h1   bead h1");
    assert!(
        lines[1].starts_with("status in_progress, assigned to agent: in flight, since ")
            && lines[1].ends_with(", job job-1"),
        "{run:?}"
    );
    let whats: Vec<String> = lines[4..]
        .iter()
        .map(|l| {
            // TIME AGE ACTOR WHAT: the actor, then the rest.
            let cols: Vec<&str> = l.split("   ").filter(|c| !c.is_empty()).collect();
            format!("{} | {}", cols[2].trim(), cols[3..].join("   ").trim())
        })
        .collect();
    let claim = w.db.bead("h1").await.note_lines()[1].to_string();
    let marker = w.db.bead("h1").await.note_lines()[2].to_string();
    assert_eq!(
        whats,
        [
            "- | note: context from a person".to_string(),
            "beads-dispatcher | status open → in_progress".into(),
            format!("beads-dispatcher | note: {claim}"),
            format!("beads-dispatcher | note: {marker}"),
            "beads-dispatcher | note: dispatched: job=job-1".into(),
        ]
    );

    let json = w.run(&["status", "h1", "--json"]).await;
    assert_eq!(json.code, 0, "{json:?}");
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["stage"]["stage"], "in_flight");
    assert_eq!(v["stage"]["job_id"], "job-1");
    let steps: Vec<(String, String)> = v["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["event"].as_str().unwrap().to_string(),
                s["kind"].as_str().or(s["to"].as_str()).unwrap().to_string(),
            )
        })
        .collect();
    let pairs: Vec<(&str, &str)> = steps
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    assert_eq!(
        pairs,
        [
            ("note", "other"),
            ("status", "in_progress"),
            ("note", "claimed"),
            ("note", "dispatching"),
            ("note", "dispatched"),
        ]
    );
    assert_eq!(v["timeline"][1]["actor"], "beads-dispatcher");
    assert!(v["timeline"][1]["at"].as_str().unwrap().ends_with('Z'));
}

async fn a_bead_outside_the_queue_and_an_unknown_bead(b: Backend) {
    let w = World::new(b).await;
    w.db.seed(&[Seed::agent("mine").assignee(Some("alice"))])
        .await;
    let run = w.run(&["status", "mine"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        run.stdout,
        "mine   bead mine\nstatus open, assigned to alice: not in agent's queue\n\n\
         No dispatch history: no notes and no events.\n"
    );
    let json = w.run(&["status", "mine", "--json"]).await;
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["stage"], serde_json::Value::Null);
    assert_eq!(v["timeline"], serde_json::json!([]));

    let missing = w.run(&["status", "nope"]).await;
    assert_eq!(missing.code, 1, "{missing:?}");
    assert!(missing.stderr.contains("no bead nope in "), "{missing:?}");
    assert_eq!(missing.stdout, "");
}

async fn an_empty_queue_and_a_wrong_database(b: Backend) {
    let w = World::new(b).await;
    let run = w.run(&["status"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout, "No beads assigned to agent.\n");
    // No BeadBoard needed: the in-cluster recipes need only the database.
    let mut cmd = w.command(&["status"]);
    cmd.env_remove("BEADBOARD_URL");
    let out = cmd.output().await.unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(out.stdout, b"No beads assigned to agent.\n");

    w.db.set_project_id("the-other-project").await;
    std::fs::write(&w.metadata, w.db.metadata_json(Some("this-project"))).unwrap();
    let refused = w.run(&["status"]).await;
    assert_eq!(refused.code, 2, "{refused:?}");
    assert!(
        refused.stderr.contains("project identity mismatch"),
        "{refused:?}"
    );
    assert_eq!(refused.stdout, "");
}

static USERS: AtomicU32 = AtomicU32::new(0);

/// What one database user sent, from MariaDB's `USER_STATISTICS`
/// (`SELECT`s, writes, other statements, rows written).
async fn statements_of(w: &World, args: &[&str]) -> (u64, u64, u64, u64) {
    let user = format!(
        "st_{}_{}",
        std::process::id(),
        USERS.fetch_add(1, Ordering::SeqCst)
    );
    let mut admin = w.db.conn().await;
    admin.query_drop("SET GLOBAL userstat = 1").await.unwrap();
    admin
        .query_drop(format!("CREATE USER '{user}'@'%'"))
        .await
        .unwrap();
    admin
        .query_drop(format!("GRANT ALL ON `{}`.* TO '{user}'@'%'", w.db.name))
        .await
        .unwrap();
    let run = w
        .run_with(args, &[("BEADS_DOLT_SERVER_USER", user.as_str())])
        .await;
    assert_eq!(run.code, 0, "{run:?}");
    let row: Option<(u64, u64, u64, u64)> = admin
        .exec_first(
            "SELECT SELECT_COMMANDS, UPDATE_COMMANDS, OTHER_COMMANDS, \
                    ROWS_INSERTED + ROWS_UPDATED + ROWS_DELETED \
             FROM information_schema.USER_STATISTICS WHERE USER = ?",
            (&user,),
        )
        .await
        .unwrap();
    admin
        .query_drop(format!("DROP USER '{user}'@'%'"))
        .await
        .unwrap();
    row.unwrap_or_else(|| panic!("no statistics for {user}"))
}

#[tokio::test]
async fn an_empty_queue_costs_one_select_like_an_idle_tick() {
    let w = World::new(Backend::MariaDb).await;
    // Other people's work does not make it dearer.
    w.db.seed(&[Seed::agent("x").assignee(Some("alice"))]).await;
    let idle_tick = statements_of(&w, &["dispatch"]).await;
    let status = statements_of(&w, &["status"]).await;
    // Both include the connection's own setup (mysql_async reads server
    // variables, the store sets the time zone); beyond it each sends one SELECT.
    assert_eq!(status, idle_tick);
    assert_eq!((status.1, status.3), (0, 0), "no writes: {status:?}");
}

/// The runbook's in-cluster recipes run `status` with the CronJobs' binary
/// path, metadata mount, ConfigMap and variable names.
#[test]
fn the_runbook_recipes_use_the_cronjobs_names() {
    use beads_contract::{defaults, env};
    let runbook = include_str!("../../docs/runbook.md");
    assert!(runbook.contains(&format!(
        "kubectl -n beads-server exec deploy/beads-runner -- {} status",
        defaults::RUNNER_IMAGE_PATH
    )));
    let start = runbook.find("--overrides='").unwrap() + "--overrides='".len();
    let end = start + runbook[start..].find("}'\n").unwrap() + 1;
    let overrides: serde_json::Value =
        serde_json::from_str(&runbook[start..end].replace("'\"$IMAGE\"'", "IMAGE")).unwrap();
    let spec = &overrides["spec"];
    let c = &spec["containers"][0];
    assert_eq!(
        c["command"],
        serde_json::json!([defaults::RUNNER_IMAGE_PATH])
    );
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args, ["status"]);
    use clap::Parser;
    let cli = beads_runner::cli::Cli::try_parse_from(std::iter::once("beads-runner").chain(args));
    assert!(matches!(
        cli.unwrap().command,
        beads_runner::cli::Command::Status {
            bead: None,
            json: false
        }
    ));
    let names: Vec<&str> = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, [env::AGENT_ASSIGNEE, env::DOLT_PASSWORD]);
    assert_eq!(c["volumeMounts"][0]["mountPath"], defaults::METADATA_DIR);
    let volume = &spec["volumes"][0];
    assert_eq!(volume["name"], c["volumeMounts"][0]["name"]);
    // The provider names the ConfigMap `<name>-metadata`; the runbook's name is "beads".
    assert_eq!(volume["configMap"]["name"], "beads-metadata");
}

on_both!(
    the_queue_in_every_state_as_a_table,
    the_pause_follows_retry_delay_and_ends,
    the_queue_in_every_state_as_json,
    a_dispatched_bead_has_its_history_as_a_timeline,
    a_bead_outside_the_queue_and_an_unknown_bead,
    an_empty_queue_and_a_wrong_database,
);

#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected values
//! Every bad configuration exits 2, names what is wrong, and writes nothing.

mod common;

use beads_testkit::Seed;
use common::{Backend, World};

async fn assert_refused(w: &World, args: &[&str], vars: &[(&str, &str)], names: &str) {
    let run = w.run_with(args, vars).await;
    assert_eq!(run.code, 2, "{args:?} {vars:?}: {run:?}");
    assert!(
        run.stderr.contains(names),
        "{args:?} {vars:?} should name {names:?}: {}",
        run.stderr
    );
    assert_eq!(
        w.db.event_count().await,
        0,
        "{args:?} {vars:?} wrote events"
    );
    assert_eq!(
        w.db.bead("ok").await.notes,
        "",
        "{args:?} {vars:?} wrote a note"
    );
    assert!(w.board.dispatched_ids().is_empty());
}

/// Arguments, environment, and what the error must name.
type Case = (
    &'static [&'static str],
    &'static [(&'static str, &'static str)],
    &'static str,
);

async fn world(b: Backend) -> World {
    let w = World::new(b).await;
    w.db.seed(&[
        Seed::agent("ok"),
        Seed::agent("st")
            .status("in_progress")
            .updated_minutes_ago(90),
    ])
    .await;
    w
}

async fn bad_flags_and_environment(b: Backend) {
    let w = world(b).await;
    let cases: [Case; 12] = [
        (
            &["dispatch", "--stale-after", "soon"],
            &[],
            "--stale-after / BEADS_REAP_STALE_AFTER",
        ),
        (
            &["reap"],
            &[("BEADS_REAP_STALE_AFTER", "-5m")],
            "BEADS_REAP_STALE_AFTER",
        ),
        (
            &["reap"],
            &[("BEADS_REAP_STALE_AFTER", "30s")],
            "at least 1m",
        ),
        (
            &["dispatch"],
            &[("BEADS_MAX_IN_FLIGHT", "many")],
            "BEADS_MAX_IN_FLIGHT",
        ),
        (
            &["dispatch"],
            &[("BEADBOARD_URL", "beadboard:3000")],
            "BEADBOARD_URL",
        ),
        (&["dispatch"], &[("BEADBOARD_URL", "")], "BEADBOARD_URL"),
        (
            &["dispatch"],
            &[("BEADS_DOLT_SERVER_PORT", "99999")],
            "BEADS_DOLT_SERVER_PORT",
        ),
        (
            &["dispatch"],
            &[("BEADS_DOLT_SERVER_TLS", "maybe")],
            "BEADS_DOLT_SERVER_TLS",
        ),
        (
            &["dispatch"],
            &[("BEADS_DOLT_SERVER_DATABASE", "drop table")],
            "BEADS_DOLT_SERVER_DATABASE",
        ),
        (
            &["dispatch"],
            &[("BEADS_AGENT_ASSIGNEE", "")],
            "BEADS_AGENT_ASSIGNEE",
        ),
        (
            &["dispatch"],
            &[("BEADS_HTTP_TIMEOUT", "forever")],
            "BEADS_HTTP_TIMEOUT",
        ),
        (&["reap", "--log-format", "xml"], &[], "xml"),
    ];
    for (args, vars, names) in cases {
        assert_refused(&w, args, vars, names).await;
    }
}

async fn unknown_flag_or_subcommand(b: Backend) {
    let w = world(b).await;
    assert_refused(&w, &["dispatch", "--frobnicate"], &[], "--frobnicate").await;
    assert_refused(&w, &["launch"], &[], "launch").await;
}

async fn broken_metadata_files(b: Backend) {
    let w = world(b).await;
    let good = std::fs::read_to_string(&w.metadata).unwrap();
    let corpus = [
        ("", "metadata.json"),
        ("{", "metadata.json"),
        ("[]", "object"),
        (r#"{"dolt_server_port": "3306x"}"#, "dolt_server_port"),
        (r#"{"dolt_server_port": 70000}"#, "dolt_server_port"),
        (r#"{"dolt_database": "a b"}"#, "dolt_database"),
        (r#"{"dolt_server_tls": "yes"}"#, "dolt_server_tls"),
        (r#"{"dolt_mode": "embedded"}"#, "dolt_mode"),
        ("\u{feff}\u{0}", "metadata.json"),
    ];
    for (text, names) in corpus {
        std::fs::write(&w.metadata, text).unwrap();
        for sub in ["dispatch", "reap"] {
            assert_refused(&w, &[sub], &[], names).await;
        }
    }
    std::fs::write(&w.metadata, [0xff, 0xfe, 0x00]).unwrap();
    assert_refused(&w, &["dispatch"], &[], "metadata.json").await;
    std::fs::write(&w.metadata, good).unwrap();
    let missing = w.dir.path().join("nope.json");
    assert_refused(
        &w,
        &["dispatch"],
        &[("BEADS_METADATA", missing.to_str().unwrap())],
        "nope.json",
    )
    .await;
}

async fn project_identity_mismatch(b: Backend) {
    let w = world(b).await;
    w.db.set_project_id("11111111-1111-4111-8111-111111111111")
        .await;
    std::fs::write(
        &w.metadata,
        w.db.metadata_json(Some("22222222-2222-4222-8222-222222222222")),
    )
    .unwrap();
    assert_refused(
        &w,
        &["dispatch"],
        &[("BEADS_MAX_IN_FLIGHT", "2")],
        "project identity mismatch",
    )
    .await;
    assert_refused(&w, &["reap"], &[], "project identity mismatch").await;
    let run = w.run(&["check"]).await;
    assert_eq!(run.code, 2, "{run:?}");
    // Matching ids: dispatch proceeds.
    std::fs::write(
        &w.metadata,
        w.db.metadata_json(Some("11111111-1111-4111-8111-111111111111")),
    )
    .unwrap();
    let run = w
        .run_with(&["dispatch"], &[("BEADS_MAX_IN_FLIGHT", "2")])
        .await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(w.board.dispatched_ids(), ["ok"]);
}

async fn schema_missing_a_column(b: Backend) {
    let w = world(b).await;
    w.db.exec("ALTER TABLE events DROP COLUMN old_value").await;
    assert_refused(
        &w,
        &["dispatch"],
        &[("BEADS_MAX_IN_FLIGHT", "2")],
        "events.old_value",
    )
    .await;
    assert_refused(&w, &["reap"], &[], "events.old_value").await;
}

async fn schema_missing_a_column_the_candidate_query_reads(b: Backend) {
    let w = world(b).await;
    w.db.exec("ALTER TABLE issues DROP COLUMN acceptance_criteria")
        .await;
    assert_refused(&w, &["dispatch"], &[], "acceptance_criteria").await;
}

async fn missing_database_is_a_refusal_and_unreachable_server_a_failure(b: Backend) {
    let w = world(b).await;
    assert_refused(
        &w,
        &["dispatch"],
        &[("BEADS_DOLT_SERVER_DATABASE", "no_such_db")],
        "no_such_db",
    )
    .await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let run = w
        .run_with(&["dispatch"], &[("BEADS_DOLT_SERVER_PORT", &closed)])
        .await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains(&format!("127.0.0.1:{closed}")),
        "{}",
        run.stderr
    );
}

async fn password_never_logged(b: Backend) {
    let w = world(b).await;
    let run = w
        .run_with(
            &["--log-format", "json", "dispatch"],
            &[("BEADS_DOLT_PASSWORD", "hunter2-secret")],
        )
        .await;
    // root has no password: the server refuses it, and the message must not echo it.
    assert!(!run.stderr.contains("hunter2-secret"), "{}", run.stderr);
    assert!(!run.stdout.contains("hunter2-secret"));
}

async fn check_reports_what_it_found_and_changes_nothing(b: Backend) {
    let w = world(b).await;
    w.db.set_project_id("p-1").await;
    std::fs::write(&w.metadata, w.db.metadata_json(Some("p-1"))).unwrap();
    let run = w.run(&["check"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    match b {
        Backend::MariaDb => {
            assert!(run.stdout.contains("MariaDB"), "{}", run.stdout);
            assert!(run.stdout.contains("dolt:         no"), "{}", run.stdout);
        }
        // The real server's own answer to `SELECT dolt_version()`.
        Backend::Dolt => assert!(
            run.stdout.contains("dolt:         1.83.2"),
            "{}",
            run.stdout
        ),
    }
    assert!(run.stdout.contains("project id:   p-1"), "{}", run.stdout);
    assert!(
        run.stdout.contains("agent: 1 open, 1 in progress"),
        "{}",
        run.stdout
    );
    assert_eq!(w.db.event_count().await, 0);
    assert!(w.board.requests().is_empty());
}

on_both!(
    bad_flags_and_environment,
    unknown_flag_or_subcommand,
    broken_metadata_files,
    project_identity_mismatch,
    schema_missing_a_column,
    schema_missing_a_column_the_candidate_query_reads,
    missing_database_is_a_refusal_and_unreachable_server_a_failure,
    password_never_logged,
    check_reports_what_it_found_and_changes_nothing,
);

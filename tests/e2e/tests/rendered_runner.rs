#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected values
//! What the provider renders is what the runner needs: apply a
//! `beads_autodispatch`, read the dispatcher and reaper CronJobs back from
//! the API, and run their containers as local processes (command, args, env,
//! the ConfigMap mounted into a temp dir) against MariaDB and a stub BeadBoard.

use std::collections::BTreeMap;

use beads_e2e::cluster::Cluster;
use beads_e2e::deployed;
use beads_e2e::local_pod::{self, Local};
use beads_testkit::{BeadsDb, Seed, StubBeadBoard};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rendered_cron_jobs_run_the_runner_against_the_database() {
    let db = BeadsDb::create().await;
    db.set_project_id("p-123").await;
    db.seed(&[
        Seed::agent("e2e-1").priority(1),
        Seed::agent("e2e-stale")
            .status("in_progress")
            .updated_minutes_ago(45),
    ])
    .await;
    let board = StubBeadBoard::start().await;
    let cluster = Cluster::real().unwrap();
    let deployed = deployed::apply(&cluster, &db, &board.url()).unwrap();
    let config_maps = &deployed.config_maps;
    let scratch = tempfile::tempdir().unwrap();
    let local = Local {
        binary: &beads_e2e::bin_dir().join("beads-runner"),
        config_maps,
        secrets: &BTreeMap::new(),
        scratch: scratch.path(),
        extra_args: &[],
        extra_env: &[],
    };
    for job in ["beads-reaper", "beads-dispatcher"] {
        let cj = cluster
            .get_json(&deployed.ns, "cronjob", job)
            .unwrap()
            .unwrap();
        let exit = local_pod::run(local_pod::cron_job_pod(&cj), &local).unwrap();
        assert_eq!(exit.code, Some(0), "{job}: {exit:?}");
        // The provider asked for JSON logs.
        assert!(
            exit.stderr.lines().all(|l| l.starts_with('{')),
            "{job}: {}",
            exit.stderr
        );
    }
    assert_eq!(board.dispatched_ids(), ["e2e-1"]);
    let b = db.bead("e2e-1").await;
    assert_eq!(b.status, "in_progress");
    assert_eq!(b.note_lines().last(), Some(&"dispatched: job=job-1"));
    assert_eq!(db.bead("e2e-stale").await.status, "blocked");
    // The runner wrote its events under the actors the CronJobs imply.
    assert!(
        db.events("e2e-1")
            .await
            .iter()
            .all(|e| e.actor == "beads-dispatcher")
    );
    assert!(
        db.events("e2e-stale")
            .await
            .iter()
            .all(|e| e.actor == "beads-reaper")
    );
}

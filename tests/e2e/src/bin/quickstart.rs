//! The quickstart: the whole pipeline on one machine, no cluster, no external
//! service. Run through `scripts/quickstart`, which builds everything and
//! starts a throwaway MariaDB and a throwaway kube-apiserver first.
//!
//! 1. connect to the throwaway kube-apiserver and start the stub BeadBoard;
//! 2. create a beads database with sample beads;
//! 3. `terraform apply` examples/basic against the kube-apiserver;
//! 4. run the reaper and the dispatcher exactly as the created CronJobs say;
//! 5. show each bead before and after;
//! 6. flip the kill switch and show both CronJobs suspended;
//! 7. clean up, and end with `beads-runner status`: the queue at a glance.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, bail};
use beads_e2e::cluster::Cluster;
use beads_e2e::terraform::Workspace;
use beads_e2e::{bin_dir, local_pod, repo_root};
use beads_testkit::{BeadsDb, Seed, StubBeadBoard};
use chrono::Utc;

fn step(n: u32, text: &str) {
    println!("\n[{n}/7] {text}");
}

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("\nquickstart failed: {e:#}");
        std::process::exit(1);
    }
}

async fn run() -> anyhow::Result<()> {
    let real_db = std::env::args()
        .skip_while(|a| a != "--database-url")
        .nth(1);
    if std::env::args().any(|a| a == "--database-url") && real_db.is_none() {
        bail!("--database-url needs a value: mysql://user:password@host:port/database");
    }
    let bins = bin_dir();
    let runner = bins.join("beads-runner");

    step(
        1,
        "a throwaway kube-apiserver (real, with etcd) and a stub BeadBoard",
    );
    let cluster = Cluster::real()?;
    // A namespace of its own: the test suite runs it on its shared server.
    let namespace = cluster.namespace("beads-server")?;
    let namespace = namespace.as_str();
    let board = StubBeadBoard::start().await;
    println!(
        "      API server kubeconfig: {}",
        cluster.kubeconfig.display()
    );
    println!("      BeadBoard stub:        {}", board.url());

    step(
        2,
        if real_db.is_some() {
            "connecting to the given beads database"
        } else {
            "creating a beads database with sample beads"
        },
    );
    let db = BeadsDb::create().await;
    let target = Target::new(&db, real_db.as_deref())?;
    let now = Utc::now();
    if target.real {
        println!(
            "      using the real database {} (the ticks below run with --dry-run)",
            target.database
        );
    } else {
        db.seed(&[
            Seed::agent("qs-1")
                .priority(1)
                .acceptance("Uploads retry three times with backoff."),
            Seed::agent("qs-2")
                .priority(2)
                .acceptance("The settings page loads in under 1s."),
            Seed::agent("qs-3").priority(0).acceptance(""),
            Seed::agent("qs-4").assignee(Some("alice")).priority(0),
            Seed::agent("qs-5")
                .status("in_progress")
                .notes(&format!(
                    "{}\n{}\n{}",
                    beads_contract::notes::claimed(now - chrono::Duration::hours(2)),
                    beads_contract::notes::dispatching(now - chrono::Duration::hours(2)),
                    beads_contract::notes::dispatched("7c1e4d9a2b3f")
                ))
                .updated(now - chrono::Duration::minutes(95)),
        ])
        .await;
        println!("      qs-1  P1 agent, acceptance criteria        -> should be dispatched");
        println!("      qs-2  P2 agent, acceptance criteria        -> waits (max_in_flight 1)");
        println!("      qs-3  P0 agent, NO acceptance criteria     -> never dispatched");
        println!("      qs-4  P0 alice                              -> not the agent's");
        println!("      qs-5  agent, in_progress, silent for 95m    -> the reaper blocks it");
    }
    if !target.real {
        show(&db, "before").await;
    }

    step(
        3,
        "terraform apply examples/basic against the kube-apiserver",
    );
    let mut ws = Workspace::for_cluster(std::path::Path::new("terraform"), &cluster, namespace)?;
    ws.env("TF_VAR_beadboard_url", &board.url())
        .env("TF_VAR_dolt_host", &target.host)
        .env("TF_VAR_dolt_port", &target.port.to_string())
        .env("TF_VAR_dolt_database", &target.database);
    ws.copy_from(&repo_root().join("examples/basic"))?;
    let applied = ws.apply(&[])?;
    for line in applied
        .lines()
        .filter(|l| l.contains("Creation complete") || l.contains("Apply complete"))
    {
        println!("      {}", line.trim());
    }
    println!(
        "{}",
        indent(&cluster.kubectl_ok(&["get", "cronjobs,configmaps", "-n", namespace])?)
    );

    step(
        4,
        "running the reaper and the dispatcher exactly as their CronJobs specify",
    );
    let cm = cluster
        .get_json(namespace, "configmap", "beads-metadata")?
        .context("ConfigMap beads-metadata missing")?;
    let config_maps = BTreeMap::from([("beads-metadata".to_string(), cm)]);
    let scratch = tempfile::tempdir()?;
    for job in ["beads-reaper", "beads-dispatcher"] {
        let cj = cluster
            .get_json(namespace, "cronjob", job)?
            .with_context(|| format!("CronJob {job} missing"))?;
        let container = local_pod::cron_job_container(&cj);
        println!(
            "      {job}: {} {}",
            container["command"][0].as_str().unwrap_or_default(),
            container["args"]
        );
        let exit = local_pod::run(
            local_pod::cron_job_pod(&cj),
            &local_pod::Local {
                binary: &runner,
                config_maps: &config_maps,
                secrets: &BTreeMap::new(),
                scratch: scratch.path(),
                // A real database is only read: the stub BeadBoard is not a real agent.
                extra_args: if target.real { &["--dry-run"] } else { &[] },
                extra_env: &target.env,
            },
        )?;
        for line in exit.stdout.lines() {
            println!("        {line}");
        }
        for line in exit.stderr.lines() {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
                let outcome = v["outcome"].as_str().unwrap_or("");
                let message = v["message"].as_str().unwrap_or("");
                let bead = v["bead_id"].as_str().unwrap_or("");
                let detail = if message == outcome { "" } else { message };
                println!("        {outcome:<14} {bead:<6} {detail}");
            }
        }
        if exit.code != Some(0) {
            bail!("{job} exited {:?}:\n{}", exit.code, exit.stderr);
        }
    }
    println!(
        "      BeadBoard received dispatches for: {:?}",
        board.dispatched_ids()
    );

    step(5, "the beads after one reaper and one dispatcher tick");
    if !target.real {
        show(&db, "after").await;
        let qs1 = db.bead("qs-1").await;
        let qs5 = db.bead("qs-5").await;
        if qs1.status != "in_progress" || !qs1.notes.contains("dispatched: job=") {
            bail!("qs-1 was not dispatched: {qs1:?}");
        }
        if qs5.status != "blocked" {
            bail!("qs-5 was not blocked by the reaper: {qs5:?}");
        }
        if board.dispatched_ids() != ["qs-1"] {
            bail!("unexpected dispatches: {:?}", board.dispatched_ids());
        }
    }

    step(
        6,
        "kill switch: terraform apply -var=beads_dispatcher_enabled=false",
    );
    ws.write(
        "kill_switch.tf",
        "variable \"beads_dispatcher_enabled\" {\n  type    = bool\n  default = true\n}\n",
    )?;
    let main_tf = std::fs::read_to_string(ws.work.join("main.tf"))?.replace(
        "  namespace     = var.namespace\n",
        "  namespace     = var.namespace\n  enabled       = var.beads_dispatcher_enabled\n",
    );
    ws.write("main.tf", &main_tf)?;
    let (changes, plan) = ws.plan(&["-var=beads_dispatcher_enabled=false"])?;
    if !changes {
        bail!("the kill switch planned no change:\n{plan}");
    }
    for line in plan
        .lines()
        .filter(|l| l.contains("enabled") || l.contains("Plan:"))
    {
        println!("      {}", line.trim_end());
    }
    ws.apply(&["-var=beads_dispatcher_enabled=false"])?;
    let listing = cluster.kubectl_ok(&["get", "cronjobs", "-n", namespace])?;
    println!("{}", indent(&listing));
    for job in ["beads-dispatcher", "beads-reaper"] {
        let cj = cluster
            .get_json(namespace, "cronjob", job)?
            .context("CronJob gone")?;
        if cj["spec"]["suspend"] != true {
            bail!("{job} is not suspended");
        }
    }

    // Kept for the last word below, which runs this CronJob's container.
    let dispatcher = cluster
        .get_json(namespace, "cronjob", "beads-dispatcher")?
        .context("CronJob beads-dispatcher missing")?;

    step(7, "cleaning up (terraform destroy, stopping the servers)");
    ws.ok(&[
        "destroy",
        "-auto-approve",
        "-no-color",
        "-var=beads_dispatcher_enabled=false",
    ])?;
    drop(board);
    tokio::time::sleep(Duration::from_millis(100)).await;
    println!(
        "\nDone: qs-1 dispatched once, the stale qs-5 blocked, both CronJobs suspended by the kill switch."
    );
    print_status(&runner, &dispatcher, &config_maps, scratch.path(), &target)
}

/// The last word: the queue as `beads-runner status` shows it, run with the
/// dispatcher CronJob's container (its ConfigMap, env and Secret references)
/// and `status` for its args, as the runbook's `kubectl run` recipe does.
fn print_status(
    runner: &std::path::Path,
    dispatcher: &serde_json::Value,
    config_maps: &BTreeMap<String, serde_json::Value>,
    scratch: &std::path::Path,
    target: &Target,
) -> anyhow::Result<()> {
    let mut pod = local_pod::cron_job_pod(dispatcher).clone();
    pod["containers"][0]["args"] = serde_json::json!(["status"]);
    let exit = local_pod::run(
        &pod,
        &local_pod::Local {
            binary: runner,
            config_maps,
            secrets: &BTreeMap::new(),
            scratch,
            extra_args: &[],
            extra_env: &target.env,
        },
    )?;
    if exit.code != Some(0) {
        bail!(
            "beads-runner status exited {:?}:\n{}",
            exit.code,
            exit.stderr
        );
    }
    println!("\nThe queue at a glance: beads-runner status (read-only; see docs/runner.md#status)");
    println!("{}", indent(&exit.stdout));
    if !target.real {
        for (stage, bead) in [
            ("waiting", "qs-2"),
            ("in flight", "qs-1"),
            ("blocked", "qs-5"),
            ("skipped", "qs-3"),
        ] {
            let listed = exit
                .stdout
                .lines()
                .any(|l| l.starts_with(stage) && l.split_whitespace().any(|w| w == bead));
            if !listed {
                bail!("status does not list {bead} as {stage}:\n{}", exit.stdout);
            }
        }
    }
    Ok(())
}

/// The database the runner is pointed at: the throwaway one, or a real one.
struct Target {
    real: bool,
    host: String,
    port: u16,
    database: String,
    /// The password of a real database, passed to the local runner only.
    env: Vec<(&'static str, String)>,
}

impl Target {
    fn new(db: &BeadsDb, url: Option<&str>) -> anyhow::Result<Self> {
        let Some(url) = url else {
            return Ok(Target {
                real: false,
                host: db.host.clone(),
                port: db.port,
                database: db.name.clone(),
                env: Vec::new(),
            });
        };
        let opts = mysql_async::Opts::from_url(url).context("--database-url")?;
        let database = opts
            .db_name()
            .context(
                "--database-url must name the database: mysql://user:password@host:port/database",
            )?
            .to_string();
        let mut env = Vec::new();
        if let Some(user) = opts.user() {
            env.push((beads_contract::env::DOLT_SERVER_USER, user.to_string()));
        }
        if let Some(pass) = opts.pass() {
            env.push((beads_contract::env::DOLT_PASSWORD, pass.to_string()));
        }
        Ok(Target {
            real: true,
            host: opts.ip_or_hostname().to_string(),
            port: opts.tcp_port(),
            database,
            env,
        })
    }
}

async fn show(db: &BeadsDb, when: &str) {
    println!("      beads {when}:");
    for b in db.beads().await {
        println!(
            "        {:<5} {:<12} {}",
            b.id,
            b.status,
            b.assignee.as_deref().unwrap_or("-")
        );
        for line in b.note_lines() {
            println!("                           | {line}");
        }
    }
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("      {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

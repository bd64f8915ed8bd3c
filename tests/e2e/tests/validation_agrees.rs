#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected values
//! Plan-time validation and the API server agree: every value `terraform
//! validate` accepts is accepted by the real kube-apiserver when applied,
//! and every schedule it refuses (a server-side dry-run create of a CronJob
//! with that schedule) is refused at validate. Checked for schedules (one grammar,
//! `beads_contract::cron`, in both schedule attributes) and names (DNS-1123,
//! CronJob names ≤ 52), with the edges pinned: a 41-character name applies
//! and a 42-character one is refused, `@every 1h` is applied and read back,
//! `0 0 * * 7` and `TZ=` are refused with the attribute's summary.

use std::collections::BTreeMap;

use beads_e2e::cluster::Cluster;
use beads_e2e::terraform::{self, Workspace};
use serde_json::{Value, json};

/// Schedules on both sides of the grammar's edges.
const SCHEDULES: &[&str] = &[
    "*/5 * * * *",
    "0 3 * * 1-5",
    "0 0 1 jan,jul *",
    "15 2 * * SUN",
    "0 0 * * 0",
    "0 0 * * 6",
    "0 0 * * 7",
    "0 0 ? * *",
    "5/15 * * * *",
    "1,,2 * * * *",
    "0 0 31 2 *",
    "@hourly",
    "@daily",
    "@midnight",
    "@weekly",
    "@monthly",
    "@yearly",
    "@annually",
    "@every 1h",
    "@every 90s",
    "@every 1h30m",
    "@every 1d",
    "@often",
    "@hourly ",
    "CRON_TZ=UTC 0 * * * *",
    "TZ=UTC @daily",
    "TZ=UTC 0 0 * * *",
    "60 * * * *",
    "0 24 * * *",
    "0 0 0 * *",
    "0 0 * 13 *",
    "*/0 * * * *",
    "1-2-3 * * * *",
    "5-1 * * * *",
    "mon * * * *",
    "0 0 * * mon-fri",
    "* * * *",
    "* * * * * *",
    "x * * * *",
];

/// Schedules tried as `reap_schedule` too: the same grammar and the same
/// summary naming that attribute.
const REAP_SCHEDULES: &[&str] = &["0 0 * * 6", "0 0 * * 7", "TZ=UTC 0 0 * * *"];

/// Names around the length limits and the DNS-1123 label rules.
fn names() -> Vec<String> {
    let mut out: Vec<String> = (1..=64).map(|n| "a".repeat(n)).collect();
    out.extend(
        [
            "beads", "Beads", "beads_x", "-beads", "beads-", "beads.x", "b-1", "1b",
        ]
        .map(String::from),
    );
    out
}

/// The real API server's verdict on a CronJob with this schedule (a
/// server-side dry-run create): its complaints about `spec.schedule`.
fn server_schedule_errors(cluster: &Cluster, ns: &str, schedule: &str) -> Vec<String> {
    let cj = json!({"apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": "c", "namespace": ns}, "spec": {
        "schedule": schedule, "concurrencyPolicy": "Forbid",
        "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "c", "image": "i"}]}}}}}});
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), cj.to_string()).unwrap();
    let out = cluster
        .kubectl(&[
            "create",
            "--dry-run=server",
            "-o",
            "name",
            "-f",
            &file.path().display().to_string(),
        ])
        .unwrap();
    if out.status.success() {
        return Vec::new();
    }
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        err.contains("spec.schedule"),
        "the dry run failed for another reason than the schedule {schedule:?}: {err}"
    );
    vec![err]
}

fn resource(ns: &str, label: &str, name: &str, schedule: &str) -> String {
    resource_reaping(ns, label, name, schedule, "*/10 * * * *")
}

fn resource_reaping(ns: &str, label: &str, name: &str, schedule: &str, reap: &str) -> String {
    let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    format!(
        r#"
resource "beads_autodispatch" "{label}" {{
  name              = "{}"
  namespace         = "{ns}"
  image             = "ghcr.io/example/beads-runner"
  image_tag         = "0.1.0"
  beadboard_url     = "http://beadboard.beads-server.svc.cluster.local"
  dispatch_schedule = "{}"
  reap_schedule     = "{}"
  dolt {{
    host     = "dolt.beads-server.svc.cluster.local"
    database = "code"
  }}
}}
"#,
        esc(name),
        esc(schedule),
        esc(reap)
    )
}

/// `terraform validate -json`: the resource labels with an error diagnostic.
fn refused_at_validate(ws: &Workspace, config: &str) -> BTreeMap<String, String> {
    ws.write("main.tf", config).unwrap();
    let out = ws.run(&["validate", "-json", "-no-color"]).unwrap();
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("validate -json: {e}\n{}", terraform::text(&out)));
    let mut refused = BTreeMap::new();
    for d in v["diagnostics"].as_array().unwrap() {
        if d["severity"] != "error" {
            continue;
        }
        let context = d["snippet"]["context"].as_str().unwrap_or_default();
        let label = context
            .strip_prefix("resource \"beads_autodispatch\" \"")
            .and_then(|rest| rest.strip_suffix('"'))
            .unwrap_or_else(|| panic!("a diagnostic outside a resource: {d}"));
        refused.insert(
            label.to_string(),
            format!("{}: {}", d["summary"], d["detail"]),
        );
    }
    refused
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_accepts_exactly_what_the_api_server_accepts() {
    let cluster = Cluster::real().unwrap();
    let ns = cluster.namespace("beads-validate").unwrap();
    let tf = terraform::binaries().remove(0);
    let ws = Workspace::new(&tf, &beads_e2e::bin_dir()).unwrap();
    let header = terraform::header(&format!(
        "  config_path = \"{}\"",
        cluster.kubeconfig.display()
    ));

    // Schedules, in both attributes: the verdicts are equal, value for value.
    let mut config = header.clone();
    for (i, s) in SCHEDULES.iter().enumerate() {
        config.push_str(&resource(&ns, &format!("s{i}"), &format!("s{i}"), s));
    }
    for (i, s) in REAP_SCHEDULES.iter().enumerate() {
        let label = format!("r{i}");
        config.push_str(&resource_reaping(&ns, &label, &label, "*/5 * * * *", s));
    }
    let refused_schedules = refused_at_validate(&ws, &config);
    let mut disagreements = Vec::new();
    let mut agree = |label: String, s: &str| {
        let at_validate = refused_schedules.get(&label);
        let at_server = server_schedule_errors(&cluster, &ns, s);
        match (at_validate, at_server.is_empty()) {
            (None, true) => return true,
            (Some(_), false) => {}
            (None, false) => disagreements.push(format!(
                "{s:?}: validate accepts, API server: {at_server:?}"
            )),
            (Some(why), true) => {
                disagreements.push(format!("{s:?}: API server accepts, validate: {why}"))
            }
        }
        false
    };
    let accepted_schedules: Vec<usize> = (0..SCHEDULES.len())
        .filter(|i| agree(format!("s{i}"), SCHEDULES[*i]))
        .collect();
    let accepted_reap: Vec<usize> = (0..REAP_SCHEDULES.len())
        .filter(|i| agree(format!("r{i}"), REAP_SCHEDULES[*i]))
        .collect();
    // The edges, each refused with the summary naming its attribute.
    let label_of = |s: &str| format!("s{}", SCHEDULES.iter().position(|x| *x == s).unwrap());
    for (label, summary) in [
        (label_of("0 0 * * 7"), "Invalid dispatch_schedule"),
        (label_of("TZ=UTC 0 0 * * *"), "Invalid dispatch_schedule"),
        ("r1".to_string(), "Invalid reap_schedule"),
        ("r2".to_string(), "Invalid reap_schedule"),
    ] {
        let why = refused_schedules.get(&label);
        assert!(
            why.is_some_and(|w| w.contains(summary)),
            "{label}: {summary} expected, got {why:?}"
        );
    }
    assert_eq!(accepted_reap, [0], "{refused_schedules:?}");
    let every_hour = SCHEDULES.iter().position(|x| *x == "@every 1h").unwrap();
    assert!(
        accepted_schedules.contains(&every_hour),
        "{refused_schedules:?}"
    );

    // Names: every one validate accepts is applied for real.
    let names = names();
    let mut config = header.clone();
    for (i, n) in names.iter().enumerate() {
        config.push_str(&resource(&ns, &format!("n{i}"), n, "*/5 * * * *"));
    }
    let refused = refused_at_validate(&ws, &config);
    let accepted_names: Vec<usize> = (0..names.len())
        .filter(|i| !refused.contains_key(&format!("n{i}")))
        .collect();
    assert!(
        refused.len() > 5 && accepted_names.len() > 30,
        "the corpus must have values on both sides: {refused:?}"
    );
    // The longest name: "<name>-dispatcher" is exactly 52 characters.
    let longest = "a".repeat(41);
    let too_long = names.iter().position(|n| *n == "a".repeat(42)).unwrap();
    assert!(
        accepted_names.iter().any(|i| names[*i] == longest),
        "{refused:?}"
    );
    let why = refused.get(&format!("n{too_long}"));
    assert!(
        why.is_some_and(|w| w.contains("Invalid name")),
        "42 characters: {why:?}"
    );

    // One apply of everything validate accepted: the API server must take all.
    let mut config = header;
    for i in &accepted_schedules {
        config.push_str(&resource(
            &ns,
            &format!("s{i}"),
            &format!("s{i}"),
            SCHEDULES[*i],
        ));
    }
    for i in &accepted_reap {
        let label = format!("r{i}");
        config.push_str(&resource_reaping(
            &ns,
            &label,
            &label,
            "*/5 * * * *",
            REAP_SCHEDULES[*i],
        ));
    }
    for i in &accepted_names {
        config.push_str(&resource(&ns, &format!("n{i}"), &names[*i], "*/5 * * * *"));
    }
    ws.write("main.tf", &config).unwrap();
    let out = ws
        .run(&["apply", "-auto-approve", "-no-color", "-parallelism=4"])
        .unwrap();
    if !out.status.success() {
        disagreements.push(format!(
            "validate accepted values the API server refused at apply:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    assert!(
        disagreements.is_empty(),
        "validate and the API server disagree:\n{}",
        disagreements.join("\n")
    );

    // Applied as written and read back, and nothing left to change.
    let schedule = |cron_job: &str| {
        cluster
            .get_json(&ns, "cronjob", cron_job)
            .unwrap()
            .unwrap_or_else(|| panic!("no CronJob {cron_job}"))["spec"]["schedule"]
            .clone()
    };
    assert_eq!(schedule(&format!("s{every_hour}-dispatcher")), "@every 1h");
    assert_eq!(schedule("r0-reaper"), "0 0 * * 6");
    assert_eq!(schedule(&format!("{longest}-dispatcher")), "*/5 * * * *");
    let (changes, plan) = ws.plan(&["-parallelism=4"]).unwrap();
    assert!(
        !changes,
        "every value applied reads back unchanged:\n{plan}"
    );
}

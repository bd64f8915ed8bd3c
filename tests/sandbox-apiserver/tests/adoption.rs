//! What the migration from today's stack needs of the stand-in, driven by the
//! real kubectl: client-side writes under the hashicorp/kubernetes manager
//! name, writes of `metadata.managedFields` (client-go `csaupgrade`), and a
//! forced server-side apply by the new owner removing only what it owned.
//! Skipped (with a message) when kubectl is not installed.

use std::path::PathBuf;
use std::process::{Command, Output};

use beads_sandbox_apiserver::{Config, Handle, spawn};
use serde_json::{Value, json};

const NS: &str = "beads-server";
const OLD: &str = "HashiCorp";
const NEW: &str = "terraform-provider-beads";

struct Kubectl {
    bin: PathBuf,
    dir: tempfile::TempDir,
    _server: Handle,
}

impl Kubectl {
    async fn start() -> Option<Self> {
        let bin = std::env::var_os("KUBECTL")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/bin/kubectl"));
        if !bin.exists() {
            eprintln!("skipping: kubectl not found at /usr/bin/kubectl (set KUBECTL to override)");
            return None;
        }
        let server = spawn(Config::default()).await.expect("server starts");
        let dir = tempfile::tempdir().expect("tempdir");
        server
            .write_kubeconfig(&dir.path().join("kubeconfig"))
            .expect("kubeconfig written");
        Some(Self {
            bin,
            dir,
            _server: server,
        })
    }

    /// kubectl with `-f <file>` holding `manifest` when given.
    fn run(&self, args: &[&str], manifest: Option<&Value>) -> Output {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--kubeconfig")
            .arg(self.dir.path().join("kubeconfig"))
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .env("HOME", self.dir.path())
            .args(args);
        if let Some(m) = manifest {
            let file = self.dir.path().join("manifest.json");
            std::fs::write(&file, m.to_string()).expect("manifest written");
            cmd.arg("-f").arg(file);
        }
        cmd.output().expect("kubectl runs")
    }

    fn ok(&self, args: &[&str], manifest: Option<&Value>) -> String {
        let out = self.run(args, manifest);
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn get(&self) -> Value {
        serde_json::from_str(&self.ok(
            &[
                "get",
                "cronjob",
                "beads-dispatcher",
                "-n",
                NS,
                "-o",
                "json",
                "--show-managed-fields",
            ],
            None,
        ))
        .expect("JSON")
    }
}

/// The dispatcher CronJob as hashicorp/kubernetes writes it (abridged to the
/// fields that matter here: the container, its env from a Secret, the label).
fn old_cron_job(suspend: bool) -> Value {
    json!({
      "apiVersion": "batch/v1", "kind": "CronJob",
      "metadata": {"name": "beads-dispatcher", "namespace": NS},
      "spec": {"schedule": "*/2 * * * *", "concurrencyPolicy": "Forbid", "suspend": suspend,
        "jobTemplate": {"metadata": {}, "spec": {"backoffLimit": 0, "template": {
          "metadata": {"labels": {"app": "beads-dispatcher"}},
          "spec": {"restartPolicy": "Never", "imagePullSecrets": [{"name": "registry-credentials"}],
            "containers": [{"name": "dispatcher", "image": "ghcr.io/viktorbarzin/claude-agent-service:latest",
              "command": ["/bin/sh", "-c", "echo tick"],
              "env": [{"name": "API_BEARER_TOKEN", "valueFrom": {"secretKeyRef": {"name": "beadboard-agent-service", "key": "api_bearer_token"}}},
                      {"name": "HOME", "value": "/tmp"}]}]}}}}}
    })
}

fn managers(obj: &Value) -> Vec<(String, String)> {
    obj["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            (
                m["manager"].as_str().unwrap_or("").to_string(),
                m["operation"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn pair(m: &str, op: &str) -> (String, String) {
    (m.to_string(), op.to_string())
}

fn pod(obj: &Value) -> &Value {
    &obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
}

/// `managedFields` with `from`'s Update entry turned into `to`'s Apply entry:
/// csaupgrade's result when `to` has no Apply entry yet.
fn upgraded(obj: &Value, from: &str, to: &str) -> Value {
    let mut list = obj["metadata"]["managedFields"].clone();
    for e in list.as_array_mut().into_iter().flatten() {
        if e["manager"] == from && e["operation"] == "Update" {
            e["manager"] = json!(to);
            e["operation"] = json!("Apply");
        }
    }
    list
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_side_writes_then_csaupgrade_then_forced_apply_removes_only_the_old_fields() {
    let Some(k) = Kubectl::start().await else {
        return;
    };
    k.ok(&["create", "namespace", NS], None);

    // Client-side writes under the hashicorp provider's manager name are
    // recorded as `Update` (kube-apiserver: every non-apply write is an
    // Update, named by fieldManager, else the User-Agent prefix).
    k.ok(
        &["create", "--field-manager", OLD],
        Some(&old_cron_job(false)),
    );
    assert_eq!(managers(&k.get()), [pair(OLD, "Update")]);
    k.ok(
        &["apply", "--field-manager", OLD, "-n", NS],
        Some(&old_cron_job(true)),
    );
    let applied = k.get();
    assert_eq!(applied["spec"]["suspend"], true);
    assert_eq!(managers(&applied), [pair(OLD, "Update")]);
    let mut replaced = old_cron_job(true);
    replaced["spec"]["startingDeadlineSeconds"] = json!(60);
    k.ok(
        &["replace", "--field-manager", OLD, "-n", NS],
        Some(&replaced),
    );
    let live = k.get();
    assert_eq!(live["spec"]["startingDeadlineSeconds"], 60);
    assert_eq!(managers(&live), [pair(OLD, "Update")]);
    let uid = live["metadata"]["uid"].clone();

    // A webhook-style mutation by another manager.
    k.ok(
        &[
            "patch", "cronjob", "beads-dispatcher", "-n", NS, "--type=merge",
            "--field-manager", "kyverno", "-p",
            r#"{"spec":{"jobTemplate":{"spec":{"template":{"spec":{"dnsConfig":{"options":[{"name":"ndots","value":"2"}]}}}}}}}"#,
        ],
        None,
    );
    let live = k.get();
    assert_eq!(
        managers(&live),
        [pair(OLD, "Update"), pair("kyverno", "Update")]
    );

    // Writes that must leave managedFields alone: an empty list (clients
    // unaware of the field) and an undecodable one.
    for body in [
        r#"{"metadata":{"managedFields":[]}}"#,
        r#"{"metadata":{"managedFields":[{"manager":"x","operation":"Bogus"}]}}"#,
    ] {
        k.ok(
            &[
                "patch",
                "cronjob",
                "beads-dispatcher",
                "-n",
                NS,
                "--type=merge",
                "-p",
                body,
            ],
            None,
        );
        assert_eq!(
            k.get()["metadata"]["managedFields"],
            live["metadata"]["managedFields"],
            "{body}"
        );
    }

    // The csaupgrade write: a JSON patch replacing managedFields, with the
    // resourceVersion it was computed from. A stale one is a 409.
    let patch = |rv: &Value| {
        json!([
            {"op": "replace", "path": "/metadata/managedFields", "value": upgraded(&live, OLD, NEW)},
            {"op": "replace", "path": "/metadata/resourceVersion", "value": rv},
        ])
        .to_string()
    };
    let stale = k.run(
        &[
            "patch",
            "cronjob",
            "beads-dispatcher",
            "-n",
            NS,
            "--type=json",
            "-p",
            &patch(&json!("1")),
        ],
        None,
    );
    assert!(!stale.status.success());
    assert!(
        String::from_utf8_lossy(&stale.stderr).contains("Conflict")
            || String::from_utf8_lossy(&stale.stderr).contains("modified"),
        "{}",
        String::from_utf8_lossy(&stale.stderr)
    );
    k.ok(
        &[
            "patch",
            "cronjob",
            "beads-dispatcher",
            "-n",
            NS,
            "--type=json",
            "-p",
            &patch(&live["metadata"]["resourceVersion"]),
        ],
        None,
    );
    let moved = k.get();
    assert_eq!(
        managers(&moved),
        [pair(NEW, "Apply"), pair("kyverno", "Update")]
    );
    assert_ne!(
        moved["metadata"]["resourceVersion"], live["metadata"]["resourceVersion"],
        "a managedFields change is a write"
    );

    // The new owner's forced apply, without the old container, env and label:
    // they go (only it owned them now); dnsConfig stays (kyverno owns it).
    let config = json!({
      "apiVersion": "batch/v1", "kind": "CronJob",
      "metadata": {"name": "beads-dispatcher", "namespace": NS},
      "spec": {"schedule": "*/2 * * * *", "concurrencyPolicy": "Forbid", "suspend": true,
        "jobTemplate": {"spec": {"template": {
          "metadata": {"labels": {"app.kubernetes.io/name": "beads-runner"}},
          "spec": {"restartPolicy": "Never",
            "containers": [{"name": "runner", "image": "ghcr.io/example/beads-runner:0.1.0",
              "env": [{"name": "BEADS_AGENT_ASSIGNEE", "value": "agent"}]}]}}}}}
    });
    k.ok(
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager",
            NEW,
            "-n",
            NS,
        ],
        Some(&config),
    );
    let after = k.get();
    assert_eq!(after["metadata"]["uid"], uid, "adopted in place");
    let names: Vec<&str> = pod(&after)["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["runner"]);
    assert_eq!(
        pod(&after)["containers"][0]["env"],
        json!([{"name": "BEADS_AGENT_ASSIGNEE", "value": "agent"}])
    );
    assert_eq!(
        after["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"],
        json!({"app.kubernetes.io/name": "beads-runner"})
    );
    assert!(pod(&after).get("imagePullSecrets").is_none(), "{after}");
    assert_eq!(
        pod(&after)["dnsConfig"],
        json!({"options": [{"name": "ndots", "value": "2"}]})
    );
    assert_eq!(after["spec"]["startingDeadlineSeconds"], Value::Null);

    // `[{}]` clears managedFields (the documented reset).
    k.ok(
        &[
            "patch",
            "cronjob",
            "beads-dispatcher",
            "-n",
            NS,
            "--type=merge",
            "-p",
            r#"{"metadata":{"managedFields":[{}]}}"#,
        ],
        None,
    );
    assert_eq!(managers(&k.get()), Vec::<(String, String)>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_transfer_a_forced_apply_leaves_the_old_container() {
    let Some(k) = Kubectl::start().await else {
        return;
    };
    k.ok(&["create", "namespace", NS], None);
    k.ok(
        &["create", "--field-manager", OLD],
        Some(&old_cron_job(true)),
    );
    let mut config = old_cron_job(true);
    config["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"] =
        json!([{"name": "runner", "image": "ghcr.io/example/beads-runner:0.1.0"}]);
    k.ok(
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager",
            NEW,
            "-n",
            NS,
        ],
        Some(&config),
    );
    let names: Vec<String> = pod(&k.get())["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["dispatcher", "runner"]);
}

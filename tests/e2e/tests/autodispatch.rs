#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected values
//! `beads_autodispatch` end to end: the real Terraform CLIs (1.11.4 and 1.0),
//! the provider, the real kube-apiserver and the real `kubectl` as the
//! out-of-band editor.

use std::path::Path;

use beads_e2e::cluster::Cluster;
use beads_e2e::terraform::{self, Workspace};
use serde_json::Value;

/// One Terraform version against one cluster, in a fresh namespace.
struct Case {
    cluster: Cluster,
    ws: Workspace,
    ns: String,
}

impl Case {
    async fn new(terraform: &Path) -> Case {
        Self::with_cluster(terraform, Cluster::real().unwrap())
    }

    fn with_cluster(terraform: &Path, cluster: Cluster) -> Case {
        let ns = cluster.namespace("beads-e2e").unwrap();
        let ws = Workspace::for_cluster(terraform, &cluster, &ns).unwrap();
        Case { cluster, ws, ns }
    }

    fn config(&self, body: &str) {
        self.ws
            .write(
                "main.tf",
                &format!(
                    r#"{}
variable "kubeconfig" {{ type = string }}
variable "namespace" {{ type = string }}
variable "beads_dispatcher_enabled" {{
  type    = bool
  default = true
}}
{body}
"#,
                    terraform::header("  config_path = var.kubeconfig")
                ),
            )
            .unwrap();
    }

    fn get(&self, kind: &str, name: &str) -> Option<Value> {
        self.cluster.get_json(&self.ns, kind, name).unwrap()
    }

    fn kubectl(&self, args: &[&str]) -> String {
        let mut all = args.to_vec();
        all.extend(["-n", &self.ns]);
        self.cluster.kubectl_ok(&all).unwrap()
    }
}

fn resource(extra: &str) -> String {
    format!(
        r#"
resource "beads_autodispatch" "this" {{
  namespace     = var.namespace
  enabled       = var.beads_dispatcher_enabled
  image         = "ghcr.io/example/beads-runner"
  image_tag     = "0.1.0"
  beadboard_url = "http://beadboard.beads-server.svc.cluster.local"
{extra}
  dolt {{
    host                 = "dolt.beads-server.svc.cluster.local"
    user                 = "beads"
    database             = "code"
    password_secret_name = "dolt-beads"
    password_secret_key  = "password"
  }}
}}
"#
    )
}

fn container(cj: &Value) -> &Value {
    beads_e2e::local_pod::cron_job_container(cj)
}

async fn each_terraform<F, Fut>(test: F)
where
    F: Fn(std::path::PathBuf) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for tf in terraform::binaries() {
        eprintln!("--- with {}", tf.display());
        test(tf).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_plan_kill_switch_image_change_destroy() {
    each_terraform(|tf| async move {
        let c = Case::new(&tf).await;
        c.config(&resource(""));
        c.ws.apply(&[]).unwrap();

        let cm = c.get("configmap", "beads-metadata").expect("ConfigMap");
        let meta = cm["data"]["metadata.json"].as_str().unwrap();
        assert!(meta.contains("\"dolt_database\": \"code\""), "{meta}");
        for job in ["beads-dispatcher", "beads-reaper"] {
            let cj = c.get("cronjob", job).expect(job);
            assert_eq!(cj["spec"]["suspend"], false);
            assert_eq!(cj["spec"]["concurrencyPolicy"], "Forbid");
            assert_eq!(
                container(&cj)["image"],
                "ghcr.io/example/beads-runner:0.1.0"
            );
        }

        let (changes, plan) = c.ws.plan(&[]).unwrap();
        assert!(!changes, "second plan must be empty:\n{plan}");

        // The kill switch, through a variable.
        let (changes, plan) = c.ws.plan(&["-var=beads_dispatcher_enabled=false"]).unwrap();
        assert!(changes);
        assert!(
            plan.contains("~ enabled") && plan.contains("1 to change"),
            "{plan}"
        );
        for job in ["cronjob/beads-dispatcher", "cronjob/beads-reaper"] {
            assert!(shows(&plan, job, "spec.suspend", "false", "true"), "{plan}");
        }
        assert!(!plan.contains("must be replaced"), "{plan}");
        c.ws.apply(&["-var=beads_dispatcher_enabled=false"])
            .unwrap();
        for job in ["beads-dispatcher", "beads-reaper"] {
            assert_eq!(
                c.get("cronjob", job).unwrap()["spec"]["suspend"],
                true,
                "{job}"
            );
        }
        let (changes, plan) = c.ws.plan(&["-var=beads_dispatcher_enabled=false"]).unwrap();
        assert!(!changes, "{plan}");
        c.ws.apply(&["-var=beads_dispatcher_enabled=true"]).unwrap();
        for job in ["beads-dispatcher", "beads-reaper"] {
            assert_eq!(
                c.get("cronjob", job).unwrap()["spec"]["suspend"],
                false,
                "{job}"
            );
        }

        // Image tag changed in code: only the tag moves.
        c.config(&resource("").replace("\"0.1.0\"", "\"0.2.0\""));
        let (changes, plan) = c.ws.plan(&[]).unwrap();
        assert!(changes);
        assert!(
            plan.contains(r#"~ image_tag"#) && plan.contains(r#""0.1.0" -> "0.2.0""#),
            "{plan}"
        );
        c.ws.apply(&[]).unwrap();
        let cj = c.get("cronjob", "beads-reaper").unwrap();
        assert_eq!(
            container(&cj)["image"],
            "ghcr.io/example/beads-runner:0.2.0"
        );

        c.ws.ok(&["destroy", "-auto-approve", "-no-color"]).unwrap();
        assert!(c.get("cronjob", "beads-dispatcher").is_none());
        assert!(c.get("cronjob", "beads-reaper").is_none());
        assert!(c.get("configmap", "beads-metadata").is_none());
    })
    .await;
}

/// Whether `plan` shows field `path` of `object` changing from `from` to `to`
/// (the `objects` attribute: object → field path → value).
fn shows(plan: &str, object: &str, path: &str, from: &str, to: &str) -> bool {
    let q = |s: &str| serde_json::to_string(s).unwrap();
    // Terraform pads map keys to align the values.
    let plan = plan.split_whitespace().collect::<Vec<_>>().join(" ");
    plan.contains(&q(object)) && plan.contains(&format!("{} = {} -> {}", q(path), q(from), q(to)))
}

const POD: &str = "spec.jobTemplate.spec.template.spec";
const RUNNER: &str = "spec.jobTemplate.spec.template.spec.containers[name=runner]";

fn json_patch(c: &Case, object: &str, ops: serde_json::Value) {
    c.kubectl(&["patch", object, "--type=json", "-p", &ops.to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_band_changes_to_owned_fields_show_by_object_and_field_and_apply_restores_them() {
    each_terraform(|tf| async move {
        let c = Case::new(&tf).await;
        c.config(&resource(""));
        c.ws.apply(&[]).unwrap();
        let before: Vec<Value> = ["beads-dispatcher", "beads-reaper"]
            .iter()
            .map(|j| c.get("cronjob", j).unwrap()["spec"].clone())
            .collect();
        let pod = "/spec/jobTemplate/spec/template/spec";
        let ctr = "/spec/jobTemplate/spec/template/spec/containers/0";
        // Every kind of field the provider sets, changed out of band at once.
        json_patch(&c, "cronjob/beads-reaper", serde_json::json!([
            {"op": "replace", "path": format!("{ctr}/args"), "value": ["dispatch"]},
            {"op": "replace", "path": format!("{ctr}/image"), "value": "ghcr.io/example/beads-runner:0.0.9"},
            {"op": "replace", "path": "/spec/suspend", "value": true},
            {"op": "replace", "path": "/spec/schedule", "value": "0 * * * *"},
            {"op": "replace", "path": "/spec/concurrencyPolicy", "value": "Allow"},
            {"op": "replace", "path": "/spec/successfulJobsHistoryLimit", "value": 10},
            {"op": "replace", "path": "/spec/startingDeadlineSeconds", "value": 300},
            {"op": "replace", "path": "/spec/jobTemplate/spec/activeDeadlineSeconds", "value": 999},
            {"op": "replace", "path": "/spec/failedJobsHistoryLimit", "value": 7},
            {"op": "replace", "path": "/spec/jobTemplate/spec/backoffLimit", "value": 6},
            {"op": "replace", "path": "/spec/jobTemplate/spec/ttlSecondsAfterFinished", "value": 60},
        ]));
        json_patch(&c, "cronjob/beads-dispatcher", serde_json::json!([
            {"op": "replace", "path": format!("{ctr}/env/0/value"), "value": "http://evil.example"},
            {"op": "replace", "path": format!("{ctr}/resources/limits/memory"), "value": "1Gi"},
            {"op": "replace", "path": format!("{ctr}/securityContext/readOnlyRootFilesystem"), "value": false},
            {"op": "replace", "path": format!("{ctr}/volumeMounts/0/readOnly"), "value": false},
            {"op": "replace", "path": format!("{ctr}/command"), "value": ["/bin/sh"]},
            {"op": "replace", "path": format!("{pod}/securityContext/runAsUser"), "value": 0},
            {"op": "replace", "path": format!("{pod}/volumes/0/configMap/name"), "value": "other"},
            {"op": "replace", "path": "/metadata/labels/app.kubernetes.io~1component", "value": "x"},
        ]));
        c.kubectl(&[
            "patch", "configmap/beads-metadata", "--type=merge", "-p",
            r#"{"data":{"metadata.json":"{\"dolt_mode\":\"server\",\"dolt_server_host\":\"elsewhere\",\"dolt_database\":\"code\",\"dolt_server_user\":\"beads\"}"}}"#,
        ]);
        let (changes, plan) = c.ws.plan(&[]).unwrap();
        assert!(changes && plan.contains("1 to change"), "{plan}");
        let r = "cronjob/beads-reaper";
        let d = "cronjob/beads-dispatcher";
        for (object, path, from, to) in [
            (r, format!("{RUNNER}.image"), "ghcr.io/example/beads-runner:0.0.9", "ghcr.io/example/beads-runner:0.1.0"),
            (r, "spec.suspend".into(), "true", "false"),
            (r, "spec.schedule".into(), "0 * * * *", "*/10 * * * *"),
            (r, "spec.concurrencyPolicy".into(), "Allow", "Forbid"),
            (r, "spec.successfulJobsHistoryLimit".into(), "10", "3"),
            (r, "spec.startingDeadlineSeconds".into(), "300", "60"),
            (r, "spec.jobTemplate.spec.activeDeadlineSeconds".into(), "999", "120"),
            (r, "spec.failedJobsHistoryLimit".into(), "7", "3"),
            (r, "spec.jobTemplate.spec.backoffLimit".into(), "6", "0"),
            (r, "spec.jobTemplate.spec.ttlSecondsAfterFinished".into(), "60", "600"),
            (d, format!("{RUNNER}.env[name=BEADBOARD_URL].value"), "http://evil.example", "http://beadboard.beads-server.svc.cluster.local"),
            (d, format!("{RUNNER}.resources.limits.memory"), "1Gi", "64Mi"),
            (d, format!("{RUNNER}.securityContext.readOnlyRootFilesystem"), "false", "true"),
            (d, format!("{POD}.securityContext.runAsUser"), "0", "65532"),
            (d, format!("{POD}.volumes[name=beads-metadata].configMap.name"), "other", "beads-metadata"),
            (d, "metadata.labels[app.kubernetes.io/component]".into(), "x", "dispatcher"),
        ] {
            assert!(shows(&plan, object, &path, from, to), "{object} {path}: {from} -> {to}\n{plan}");
        }
        // `readOnly: false` is the field's zero value: kube-apiserver stores
        // no such field (omitempty), so the plan shows it to be added.
        let flat = plan.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            flat.contains(&format!(
                "+ \"{RUNNER}.volumeMounts[mountPath=/etc/beads-metadata].readOnly\" = \"true\""
            )),
            "{plan}"
        );
        // Lists (args, command) and JSON data show as jsonencode diffs.
        // (Terraform 1.0 shows a changed list element as a removal and an addition.)
        for (path, from, to) in [
            (format!("{RUNNER}.args"), "dispatch", "reap"),
            (format!("{RUNNER}.command"), "/bin/sh", "/usr/local/bin/beads-runner"),
            ("data[metadata.json]".to_string(), "elsewhere", "dolt.beads-server.svc.cluster.local"),
        ] {
            let changed = plan.contains(&format!("{from:?} -> {to:?}"))
                || (plan.contains(&format!("- {from:?}")) && plan.contains(&format!("+ {to:?}")));
            assert!(plan.contains(&format!("{path:?}")) && changed, "{path}\n{plan}");
        }
        // The user's own attributes keep their configured meaning.
        assert!(!plan.contains("~ image_tag") && !plan.contains("~ enabled"), "{plan}");
        c.ws.apply(&[]).unwrap();
        for (job, spec) in ["beads-dispatcher", "beads-reaper"].iter().zip(&before) {
            let now = c.get("cronjob", job).unwrap();
            assert_eq!(&now["spec"], spec, "{job} restored");
            assert_eq!(now["metadata"]["labels"]["app.kubernetes.io/component"], job.trim_start_matches("beads-"));
        }
        let meta = c.get("configmap", "beads-metadata").unwrap()["data"]["metadata.json"].clone();
        assert!(meta.as_str().unwrap().contains("dolt.beads-server.svc.cluster.local"));
        let (changes, plan) = c.ws.plan(&[]).unwrap();
        assert!(!changes, "empty after the repair:\n{plan}");

        // One CronJob deleted: the plan names it.
        c.kubectl(&["delete", "cronjob/beads-reaper"]);
        let (changes, plan) = c.ws.plan(&[]).unwrap();
        assert!(changes && plan.contains(r#"+ "cronjob/beads-reaper""#) && plan.contains("1 to change"), "{plan}");
        c.ws.apply(&[]).unwrap();
        assert!(c.get("cronjob", "beads-reaper").is_some());
        assert!(!c.ws.plan(&[]).unwrap().0);

        // Everything deleted: the resource is gone.
        c.kubectl(&["delete", "cronjob/beads-reaper", "cronjob/beads-dispatcher", "configmap/beads-metadata"]);
        let (changes, plan) = c.ws.plan(&[]).unwrap();
        assert!(changes && plan.contains("will be created") && plan.contains("1 to add"), "{plan}");
        c.ws.apply(&[]).unwrap();
        assert!(!c.ws.plan(&[]).unwrap().0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_switch_drift_survives_a_saved_refresh() {
    each_terraform(|tf| async move {
        let old = terraform::version_of(&tf).starts_with("Terraform v1.0");
        let c = Case::new(&tf).await;
        c.config(&resource(""));
        let off = "-var=beads_dispatcher_enabled=false";
        c.ws.apply(&[off]).unwrap();
        c.kubectl(&[
            "patch",
            "cronjob/beads-dispatcher",
            "-p",
            r#"{"spec":{"suspend":false}}"#,
        ]);
        if old {
            c.ws.ok(&["refresh", "-no-color", off]).unwrap();
        } else {
            c.ws.ok(&["apply", "-refresh-only", "-auto-approve", "-no-color", off])
                .unwrap();
        }
        let (changes, plan) = c.ws.plan(&[off]).unwrap();
        assert!(
            changes,
            "a dispatcher runs against the kill switch:\n{plan}"
        );
        assert!(
            shows(
                &plan,
                "cronjob/beads-dispatcher",
                "spec.suspend",
                "false",
                "true"
            ),
            "{plan}"
        );
        c.ws.apply(&[off]).unwrap();
        assert_eq!(
            c.get("cronjob", "beads-dispatcher").unwrap()["spec"]["suspend"],
            true
        );
        assert!(!c.ws.plan(&[off]).unwrap().0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_other_managers_add_never_shows() {
    each_terraform(|tf| async move {
        let c = Case::new(&tf).await;
        c.config(&resource(""));
        c.ws.apply(&[]).unwrap();
        let pod = "/spec/jobTemplate/spec/template/spec";
        c.kubectl(&["label", "cronjob/beads-dispatcher", "team=a"]);
        c.kubectl(&["annotate", "cronjob/beads-dispatcher", "note=b"]);
        c.kubectl(&["annotate", "configmap/beads-metadata", "note=c"]);
        json_patch(&c, "cronjob/beads-reaper", serde_json::json!([
            {"op": "add", "path": format!("{pod}/dnsConfig"), "value": {"options": [{"name": "ndots", "value": "2"}]}},
            {"op": "add", "path": format!("{pod}/imagePullSecrets"), "value": [{"name": "kyverno-added"}]},
            {"op": "add", "path": format!("{pod}/containers/-"), "value": {
                "name": "sidecar", "image": "busybox", "env": [{"name": "EXTRA", "value": "1"}]}},
        ]));
        let (changes, plan) = c.ws.plan(&[]).unwrap();
        assert!(!changes, "{plan}");
        // An apply keeps them (they are the other managers').
        c.config(&resource("").replace("\"0.1.0\"", "\"0.2.0\""));
        c.ws.apply(&[]).unwrap();
        let cj = c.get("cronjob", "beads-reaper").unwrap();
        let p = beads_e2e::local_pod::cron_job_pod(&cj);
        assert_eq!(p["imagePullSecrets"][0]["name"], "kyverno-added", "{cj}");
        assert!(!c.ws.plan(&[]).unwrap().0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_pull_secrets_empty_and_unset_agree_and_duplicates_are_refused() {
    let tf = terraform::binaries().remove(0);
    let c = Case::new(&tf).await;
    c.config(&resource("  image_pull_secrets = []\n"));
    c.ws.apply(&[]).unwrap();
    c.config(&resource(""));
    let (changes, plan) = c.ws.plan(&[]).unwrap();
    assert!(!changes, "[] and unset are the same:\n{plan}");
    c.config(&resource("  image_pull_secrets = [\"a\", \"a\"]\n"));
    let out = c.ws.run(&["plan", "-no-color"]).unwrap();
    let text = terraform::text(&out);
    assert!(
        !out.status.success() && text.contains("listed twice"),
        "{text}"
    );
    c.config(&resource("  image_pull_secrets = [\"a\", \"b\"]\n"));
    c.ws.apply(&[]).unwrap();
    let cj = c.get("cronjob", "beads-dispatcher").unwrap();
    assert_eq!(
        beads_e2e::local_pod::cron_job_pod(&cj)["imagePullSecrets"],
        serde_json::json!([{"name": "a"}, {"name": "b"}])
    );
    assert!(!c.ws.plan(&[]).unwrap().0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_replicas_and_strategy_drift_show_and_are_repaired() {
    each_terraform(|tf| async move {
        let c = Case::new(&tf).await;
        c.config(&resource("  mode = \"deployment\"\n"));
        c.ws.apply(&[]).unwrap();
        c.kubectl(&[
            "patch",
            "deployment/beads-runner",
            "--type=merge",
            "-p",
            r#"{"spec":{"replicas":3,"strategy":{"type":"RollingUpdate"}}}"#,
        ]);
        let (changes, plan) = c.ws.plan(&[]).unwrap();
        assert!(changes, "{plan}");
        assert!(
            shows(&plan, "deployment/beads-runner", "spec.replicas", "3", "1"),
            "{plan}"
        );
        assert!(
            shows(
                &plan,
                "deployment/beads-runner",
                "spec.strategy.type",
                "RollingUpdate",
                "Recreate"
            ),
            "{plan}"
        );
        c.ws.apply(&[]).unwrap();
        let d = c.get("deployment", "beads-runner").unwrap();
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(d["spec"]["strategy"]["type"], "Recreate");
        assert!(!c.ws.plan(&[]).unwrap().0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_mutations_cause_no_diff() {
    each_terraform(|tf| async move {
        let c = Case::new(&tf).await;
        let _webhook = beads_e2e::webhook::KyvernoLike::register(&c.cluster, &c.ns)
            .await
            .unwrap();
        c.config(&resource(""));
        c.ws.apply(&[]).unwrap();
        let cj = c.get("cronjob", "beads-dispatcher").unwrap();
        let pod = beads_e2e::local_pod::cron_job_pod(&cj);
        assert!(
            pod["dnsConfig"].is_object()
                && cj["metadata"]["labels"][beads_e2e::webhook::LABEL] == "true",
            "the webhook mutated the CronJob: {cj}"
        );
        let (changes, plan) = c.ws.plan(&[]).unwrap();
        assert!(!changes, "{plan}");
        c.ws.apply(&[]).unwrap();
        assert!(!c.ws.plan(&[]).unwrap().0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_adopts_existing_objects() {
    each_terraform(|tf| async move {
        let c = Case::new(&tf).await;
        c.config(&resource(""));
        c.ws.apply(&[]).unwrap();
        // Forget the state, then adopt what is in the cluster.
        std::fs::remove_file(c.ws.work.join("terraform.tfstate")).unwrap();
        let id = format!("{}/beads", c.ns);
        c.ws.ok(&["import", "-no-color", "beads_autodispatch.this", &id])
            .unwrap();
        let (changes, plan) = c.ws.plan(&[]).unwrap();
        assert!(
            !changes,
            "imported objects match the configuration:\n{plan}"
        );
        // An env var edited by hand to a value its attribute refuses: import
        // does not take it (stale_after keeps its default, which is also the
        // configured value), and the plan shows the live field's drift.
        c.kubectl(&[
            "set",
            "env",
            "cronjob/beads-dispatcher",
            "BEADS_REAP_STALE_AFTER=thirty minutes",
        ]);
        std::fs::remove_file(c.ws.work.join("terraform.tfstate")).unwrap();
        c.ws.ok(&["import", "-no-color", "beads_autodispatch.this", &id])
            .unwrap();
        let (changes, plan) = c.ws.plan(&[]).unwrap();
        assert!(
            changes
                && shows(
                    &plan,
                    "cronjob/beads-dispatcher",
                    &format!("{RUNNER}.env[name=BEADS_REAP_STALE_AFTER].value"),
                    "thirty minutes",
                    "30m"
                )
                && !plan.contains("stale_after "),
            "{plan}"
        );
        c.ws.apply(&[]).unwrap();
        assert!(!c.ws.plan(&[]).unwrap().0);
        let err =
            c.ws.run(&[
                "import",
                "-no-color",
                "beads_autodispatch.other",
                "no-slash",
            ])
            .unwrap();
        assert!(!err.status.success());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mode_switch_replaces_cron_jobs_with_a_deployment() {
    each_terraform(|tf| async move {
        let c = Case::new(&tf).await;
        c.config(&resource(""));
        c.ws.apply(&[]).unwrap();
        c.config(&resource("  mode = \"deployment\"\n"));
        let (changes, plan) = c.ws.plan(&[]).unwrap();
        assert!(
            changes && plan.contains(r#"~ mode"#) && plan.contains(r#""cronjob" -> "deployment""#),
            "{plan}"
        );
        c.ws.apply(&[]).unwrap();
        assert!(c.get("cronjob", "beads-dispatcher").is_none());
        assert!(c.get("cronjob", "beads-reaper").is_none());
        let d = c.get("deployment", "beads-runner").expect("Deployment");
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(d["spec"]["strategy"]["type"], "Recreate");
        assert!(!c.ws.plan(&[]).unwrap().0);
        c.ws.apply(&["-var=beads_dispatcher_enabled=false"])
            .unwrap();
        assert_eq!(
            c.get("deployment", "beads-runner").unwrap()["spec"]["replicas"],
            0
        );
        c.config(&resource(""));
        c.ws.apply(&[]).unwrap();
        assert!(c.get("deployment", "beads-runner").is_none());
        assert!(c.get("cronjob", "beads-dispatcher").is_some());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_config_map_state_or_plan() {
    let tf = terraform::binaries().remove(0);
    let c = Case::new(&tf).await;
    c.config(&resource(""));
    let (_, plan) = c.ws.plan(&[]).unwrap();
    c.ws.apply(&[]).unwrap();
    let state = std::fs::read_to_string(c.ws.work.join("terraform.tfstate")).unwrap();
    let cm = c.get("configmap", "beads-metadata").unwrap().to_string();
    for text in [&plan, &state, &cm] {
        assert!(!text.to_lowercase().contains("\"password\":"), "{text}");
    }
    let cj = c.get("cronjob", "beads-dispatcher").unwrap();
    let env = container(&cj)["env"].as_array().unwrap().clone();
    let pw = env
        .iter()
        .find(|e| e["name"] == "BEADS_DOLT_PASSWORD")
        .unwrap();
    assert_eq!(pw["valueFrom"]["secretKeyRef"]["name"], "dolt-beads");
    assert!(pw.get("value").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn examples_and_the_stack_apply() {
    let tf = terraform::binaries().remove(0);
    let root = beads_e2e::repo_root();
    for dir in [
        "examples/basic",
        "examples/kill-switch",
        "examples/pinned-digest",
        "examples/import",
        "terraform/beads-server",
    ] {
        let c = Case::new(&tf).await;
        c.ws.copy_from(&root.join(dir)).unwrap();
        c.ws.ok(&["validate", "-no-color"])
            .unwrap_or_else(|e| panic!("{dir}: {e}"));
        c.ws.apply(&[]).unwrap_or_else(|e| panic!("{dir}: {e}"));
        let (changes, plan) = c.ws.plan(&[]).unwrap();
        assert!(!changes, "{dir}: {plan}");
        if dir == "terraform/beads-server" || dir == "examples/kill-switch" {
            c.ws.apply(&["-var=beads_dispatcher_enabled=false"])
                .unwrap();
            for job in ["beads-dispatcher", "beads-reaper"] {
                assert_eq!(
                    c.get("cronjob", job).unwrap()["spec"]["suspend"],
                    true,
                    "{dir} {job}"
                );
            }
        }
        if dir == "examples/pinned-digest" {
            let cj = c.get("cronjob", "beads-dispatcher").unwrap();
            let pinned = container(&cj)["image"].as_str().unwrap().to_string();
            assert!(pinned.contains("@sha256:"));
            c.kubectl(&[
                "set",
                "image",
                "cronjob/beads-dispatcher",
                "runner=ghcr.io/example/beads-runner:latest",
            ]);
            let (changes, plan) = c.ws.plan(&[]).unwrap();
            let path = format!("{RUNNER}.image");
            assert!(
                changes
                    && shows(
                        &plan,
                        "cronjob/beads-dispatcher",
                        &path,
                        "ghcr.io/example/beads-runner:latest",
                        &pinned
                    ),
                "{plan}"
            );
            c.ws.apply(&[]).unwrap();
            let cj = c.get("cronjob", "beads-dispatcher").unwrap();
            assert_eq!(container(&cj)["image"], pinned.as_str());
        }
    }
}

/// An owned list item removed or the list reordered out of band: the plan
/// shows it, and apply restores the object exactly as applied, order
/// included (kube-apiserver merges an applied list in the applied order).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_or_reordered_list_items_are_restored_in_order() {
    each_terraform(|tf| async move {
        let c = Case::new(&tf).await;
        c.config(&resource(""));
        c.ws.apply(&[]).unwrap();
        let before = c.get("cronjob", "beads-dispatcher").unwrap()["spec"].clone();
        let ctr = "/spec/jobTemplate/spec/template/spec/containers/0";
        let env = before
            .pointer("/jobTemplate/spec/template/spec/containers/0/env")
            .and_then(Value::as_array)
            .unwrap()
            .clone();
        assert!(env.len() >= 3, "{env:?}");
        let names = |list: &[Value]| -> Vec<String> {
            list.iter().map(|e| e["name"].as_str().unwrap().to_string()).collect()
        };
        for (what, ops) in [
            (
                "the second env var removed",
                serde_json::json!([{"op": "remove", "path": format!("{ctr}/env/1")}]),
            ),
            (
                "the first env var moved to the end",
                serde_json::json!([{"op": "move", "from": format!("{ctr}/env/0"), "path": format!("{ctr}/env/-")}]),
            ),
        ] {
            json_patch(&c, "cronjob/beads-dispatcher", ops);
            let changed = c.get("cronjob", "beads-dispatcher").unwrap();
            let live_env = changed
                .pointer("/spec/jobTemplate/spec/template/spec/containers/0/env")
                .and_then(Value::as_array)
                .unwrap()
                .clone();
            assert_ne!(names(&live_env), names(&env), "{what}: the patch took");
            let (changes, plan) = c.ws.plan(&[]).unwrap();
            assert!(changes && plan.contains("cronjob/beads-dispatcher"), "{what}:\n{plan}");
            if what.contains("moved") {
                assert!(plan.contains("containers[name=runner].env[*]"), "{what}:\n{plan}");
            }
            c.ws.apply(&[]).unwrap();
            let after = c.get("cronjob", "beads-dispatcher").unwrap()["spec"].clone();
            let after_env = after
                .pointer("/jobTemplate/spec/template/spec/containers/0/env")
                .and_then(Value::as_array)
                .unwrap()
                .clone();
            assert_eq!(names(&after_env), names(&env), "{what}: the order as applied");
            assert_eq!(after, before, "{what}: the object as applied");
            let (changes, plan) = c.ws.plan(&[]).unwrap();
            assert!(!changes, "{what}: empty after the repair:\n{plan}");
        }
    })
    .await;
}

#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected values
//! `beads_autodispatch` end to end: the real Terraform CLIs (1.11.4 and 1.0),
//! the provider, the stand-in API server (or a real cluster from
//! `BEADS_E2E_KUBECONFIG`) and the real `kubectl` as the out-of-band editor.

use std::path::Path;

use beads_e2e::bin_dir;
use beads_e2e::cluster::Cluster;
use beads_e2e::terraform::{self, Workspace};
use serde_json::Value;

/// One Terraform version against one cluster, in a fresh namespace.
struct Case {
    cluster: Cluster,
    ws: Workspace,
    ns: String,
}

static NS_COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl Case {
    async fn new(terraform: &Path) -> Case {
        Self::with_cluster(terraform, Cluster::sandbox().await.unwrap())
    }

    fn with_cluster(terraform: &Path, cluster: Cluster) -> Case {
        let ns = format!(
            "beads-e2e-{}-{}",
            std::process::id(),
            NS_COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        );
        cluster.create_namespace(&ns).unwrap();
        let mut ws = Workspace::new(terraform, &bin_dir()).unwrap();
        ws.env(
            "TF_VAR_kubeconfig",
            &cluster.kubeconfig.display().to_string(),
        )
        .env("TF_VAR_namespace", &ns);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_band_changes_show_as_drift_and_apply_restores_them() {
    each_terraform(|tf| async move {
        let c = Case::new(&tf).await;
        c.config(&resource(""));
        c.ws.apply(&[]).unwrap();

        // kubectl set image
        c.kubectl(&["set", "image", "cronjob/beads-reaper", "runner=ghcr.io/example/beads-runner:0.0.9"]);
        let (changes, plan) = c.ws.plan(&[]).unwrap();
        assert!(changes, "set image must show");
        assert!(
            plan.contains(r#""0.1.0 (dispatcher) / 0.0.9 (reaper)" -> "0.1.0""#),
            "{plan}"
        );
        assert!(plan.contains("updated in-place") && plan.contains("1 to change"), "{plan}");
        c.ws.apply(&[]).unwrap();
        let cj = c.get("cronjob", "beads-reaper").unwrap();
        assert_eq!(container(&cj)["image"], "ghcr.io/example/beads-runner:0.1.0");
        assert!(!c.ws.plan(&[]).unwrap().0);

        // suspend patched
        c.kubectl(&["patch", "cronjob/beads-dispatcher", "--type=merge", "-p", r#"{"spec":{"suspend":true}}"#]);
        let (changes, plan) = c.ws.plan(&[]).unwrap();
        assert!(changes && plan.contains("~ enabled"), "{plan}");
        c.ws.apply(&[]).unwrap();
        assert_eq!(c.get("cronjob", "beads-dispatcher").unwrap()["spec"]["suspend"], false);

        // schedule patched
        c.kubectl(&["patch", "cronjob/beads-dispatcher", "--type=merge", "-p", r#"{"spec":{"schedule":"0 * * * *"}}"#]);
        let (changes, plan) = c.ws.plan(&[]).unwrap();
        assert!(changes && plan.contains(r#""0 * * * *" -> "*/2 * * * *""#), "{plan}");
        c.ws.apply(&[]).unwrap();
        assert_eq!(c.get("cronjob", "beads-dispatcher").unwrap()["spec"]["schedule"], "*/2 * * * *");

        // ConfigMap edited
        c.kubectl(&[
            "patch", "configmap/beads-metadata", "--type=merge", "-p",
            r#"{"data":{"metadata.json":"{\"dolt_mode\":\"server\",\"dolt_server_host\":\"elsewhere\",\"dolt_database\":\"code\",\"dolt_server_user\":\"beads\"}"}}"#,
        ]);
        let (changes, plan) = c.ws.plan(&[]).unwrap();
        assert!(changes && plan.contains(r#""elsewhere" -> "dolt.beads-server.svc.cluster.local""#), "{plan}");
        c.ws.apply(&[]).unwrap();
        let meta = c.get("configmap", "beads-metadata").unwrap()["data"]["metadata.json"].clone();
        assert!(meta.as_str().unwrap().contains("dolt.beads-server.svc.cluster.local"));

        // one CronJob deleted
        c.kubectl(&["delete", "cronjob/beads-reaper"]);
        let (changes, plan) = c.ws.plan(&[]).unwrap();
        assert!(changes && plan.contains("reap_schedule") && plan.contains("1 to change"), "{plan}");
        c.ws.apply(&[]).unwrap();
        assert!(c.get("cronjob", "beads-reaper").is_some());

        // everything deleted: the resource is gone
        c.kubectl(&["delete", "cronjob/beads-reaper", "cronjob/beads-dispatcher", "configmap/beads-metadata"]);
        let (changes, plan) = c.ws.plan(&[]).unwrap();
        assert!(changes && plan.contains("will be created") && plan.contains("1 to add"), "{plan}");
        c.ws.apply(&[]).unwrap();
        assert!(!c.ws.plan(&[]).unwrap().0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_mutations_cause_no_diff() {
    each_terraform(|tf| async move {
        let options = beads_sandbox_apiserver::Options {
            mutate_like_kyverno: true,
            ..beads_sandbox_apiserver::Options::default()
        };
        let c = Case::with_cluster(&tf, Cluster::sandbox_with(options).await.unwrap());
        c.config(&resource(""));
        c.ws.apply(&[]).unwrap();
        let cj = c.get("cronjob", "beads-dispatcher").unwrap();
        let pod = beads_e2e::local_pod::cron_job_pod(&cj);
        assert!(
            pod["dnsConfig"].is_object(),
            "the stand-in mutated the pod: {pod}"
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
            assert!(
                container(&cj)["image"]
                    .as_str()
                    .unwrap()
                    .contains("@sha256:")
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_cluster_when_given() {
    match Cluster::real() {
        None => eprintln!(
            "{} not set: real-cluster runs skipped",
            beads_e2e::cluster::REAL_CLUSTER_VAR
        ),
        Some(cluster) => {
            let tf = terraform::binaries().remove(0);
            let c = Case::with_cluster(&tf, cluster.unwrap());
            c.config(&resource(""));
            c.ws.apply(&[]).unwrap();
            assert!(!c.ws.plan(&[]).unwrap().0);
            c.kubectl(&[
                "set",
                "image",
                "cronjob/beads-reaper",
                "runner=ghcr.io/example/beads-runner:0.0.9",
            ]);
            assert!(c.ws.plan(&[]).unwrap().0);
            c.ws.ok(&["destroy", "-auto-approve", "-no-color"]).unwrap();
            c.cluster
                .kubectl_ok(&["delete", "namespace", &c.ns])
                .unwrap();
        }
    }
}

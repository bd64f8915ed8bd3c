#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected values
//! `beads_autodispatch` touches only what it owns: objects it did not
//! create are never changed or deleted, create refuses them and points at
//! `terraform import`, and import adopts them. Real Terraform and kubectl
//! against the real kube-apiserver.

use beads_e2e::cluster::Cluster;
use beads_e2e::terraform::{self, Workspace};
use serde_json::{Value, json};

struct Case {
    cluster: Cluster,
    ws: Workspace,
    ns: String,
}

impl Case {
    async fn new() -> Case {
        let cluster = Cluster::real().unwrap();
        let ns = cluster.namespace("beads-own").unwrap();
        let tf = terraform::binaries().remove(0);
        let ws = Workspace::new(&tf, &beads_e2e::bin_dir()).unwrap();
        Case { cluster, ws, ns }
    }

    fn config(&self, extra: &str) {
        let kc = self.cluster.kubeconfig.display();
        let header = terraform::header(&format!("  config_path = \"{kc}\""));
        self.ws
            .write(
                "main.tf",
                &format!(
                    r#"{header}
variable "enabled" {{
  type    = bool
  default = true
}}
resource "beads_autodispatch" "this" {{
  namespace     = "{ns}"
  enabled       = var.enabled
  image         = "ghcr.io/example/beads-runner"
  image_tag     = "0.1.0"
  beadboard_url = "http://beadboard.beads-server.svc.cluster.local"
{extra}
  dolt {{
    host     = "dolt.beads-server.svc.cluster.local"
    database = "code"
  }}
}}
"#,
                    ns = self.ns
                ),
            )
            .unwrap();
    }

    fn get(&self, kind: &str, name: &str) -> Option<Value> {
        self.cluster.get_json(&self.ns, kind, name).unwrap()
    }

    /// Creates an object the way an operator would, with kubectl.
    fn kubectl_apply(&self, object: &Value) {
        let file = self.ws.work.join("foreign.json");
        std::fs::write(&file, object.to_string()).unwrap();
        self.cluster
            .kubectl_ok(&["apply", "-n", &self.ns, "-f", &file.display().to_string()])
            .unwrap();
    }
}

fn hand_made_deployment() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "beads-runner", "labels": {"made-by": "hand"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "hand"}},
            "template": {
                "metadata": {"labels": {"app": "hand"}},
                "spec": {"containers": [{"name": "runner", "image": "ghcr.io/example/beads-runner:0.1.0"}]},
            },
        },
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_made_deployment_survives_every_operation_including_destroy() {
    let c = Case::new().await;
    c.kubectl_apply(&hand_made_deployment());
    c.config("");
    c.ws.apply(&[]).unwrap();
    c.ws.apply(&["-var=enabled=false"]).unwrap();
    assert!(!c.ws.plan(&["-var=enabled=false"]).unwrap().0);
    c.ws.apply(&[]).unwrap();
    // Switching to deployment mode would take it over: refused, nothing written.
    c.config("  mode = \"deployment\"\n");
    let out = c.ws.run(&["apply", "-auto-approve", "-no-color"]).unwrap();
    let text = one_line(&terraform::text(&out));
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains(&format!("Deployment {}/beads-runner", c.ns))
            && text.contains("terraform import")
            && text.contains("Nothing was written"),
        "{text}"
    );
    assert!(c.get("cronjob", "beads-dispatcher").is_some());
    c.config("");
    c.ws.ok(&["destroy", "-auto-approve", "-no-color"]).unwrap();
    assert!(c.get("cronjob", "beads-dispatcher").is_none());
    assert!(c.get("configmap", "beads-metadata").is_none());
    let d = c
        .get("deployment", "beads-runner")
        .expect("the hand-made Deployment survives");
    assert_eq!(d["metadata"]["labels"]["made-by"], "hand");
    assert_eq!(d["spec"]["replicas"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_refuses_existing_objects_and_import_adopts_them() {
    let c = Case::new().await;
    c.kubectl_apply(&json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "beads-metadata"},
        "data": {"metadata.json": "{}"},
    }));
    c.config("");
    let out = c.ws.run(&["apply", "-auto-approve", "-no-color"]).unwrap();
    let text = one_line(&terraform::text(&out));
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains(&format!("ConfigMap {}/beads-metadata", c.ns))
            && text.contains(&format!("terraform import <address> {}/beads", c.ns)),
        "{text}"
    );
    // Nothing written, nothing recorded.
    assert_eq!(
        c.get("configmap", "beads-metadata").unwrap()["data"]["metadata.json"],
        "{}"
    );
    assert!(c.get("cronjob", "beads-dispatcher").is_none());
    assert!(
        c.ws.run(&["state", "list"])
            .map(|o| terraform::text(&o))
            .unwrap()
            .trim()
            .is_empty()
    );

    c.ws.ok(&[
        "import",
        "-no-color",
        "beads_autodispatch.this",
        &format!("{}/beads", c.ns),
    ])
    .unwrap();
    let (changes, plan) = c.ws.plan(&[]).unwrap();
    assert!(
        changes
            && plan.contains("configmap/beads-metadata")
            && plan.contains("+ \"cronjob/beads-dispatcher\""),
        "{plan}"
    );
    // No workload gave the image or BeadBoard's URL: nothing was made up,
    // the configured values arrive.
    let flat = plan.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains("+ image = \"ghcr.io/example/beads-runner\"")
            && flat.contains("+ beadboard_url = \"http://beadboard")
            && !flat.contains("\"\" ->"),
        "{plan}"
    );
    c.ws.apply(&[]).unwrap();
    let cm = c.get("configmap", "beads-metadata").unwrap();
    assert!(
        cm["data"]["metadata.json"]
            .as_str()
            .unwrap()
            .contains("dolt.beads-server")
    );
    assert!(
        cm["metadata"]["annotations"]["beads-autodispatch/instance-id"].is_string(),
        "{cm}"
    );
    assert!(!c.ws.plan(&[]).unwrap().0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_configurations_never_share_objects() {
    let c = Case::new().await;
    c.config("");
    c.ws.apply(&[]).unwrap();
    // A second configuration for the same names in its own directory.
    let other = Workspace::new(&c.ws.terraform, &beads_e2e::bin_dir()).unwrap();
    std::fs::copy(c.ws.work.join("main.tf"), other.work.join("main.tf")).unwrap();
    let out = other.run(&["apply", "-auto-approve", "-no-color"]).unwrap();
    let text = one_line(&terraform::text(&out));
    assert!(
        !out.status.success() && text.contains("belongs to another beads_autodispatch instance"),
        "{text}"
    );
    // Destroying the refused one leaves the first's objects alone.
    other
        .ok(&["destroy", "-auto-approve", "-no-color"])
        .unwrap();
    assert!(c.get("cronjob", "beads-dispatcher").is_some());
    assert!(!c.ws.plan(&[]).unwrap().0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_before_destroy_replace_is_refused_and_the_cluster_stays_intact() {
    let c = Case::new().await;
    c.config("  lifecycle {\n    create_before_destroy = true\n  }\n");
    c.ws.apply(&[]).unwrap();
    let out =
        c.ws.run(&[
            "apply",
            "-auto-approve",
            "-no-color",
            "-replace=beads_autodispatch.this",
        ])
        .unwrap();
    let text = one_line(&terraform::text(&out));
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("create_before_destroy"), "{text}");
    for job in ["beads-dispatcher", "beads-reaper"] {
        assert!(c.get("cronjob", job).is_some(), "{job}");
    }
    assert!(c.get("configmap", "beads-metadata").is_some());
    assert!(!c.ws.plan(&[]).unwrap().0);
}

/// Terraform wraps long details; compare with whitespace collapsed.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

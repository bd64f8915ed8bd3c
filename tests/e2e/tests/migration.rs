#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected values
//! docs/migration.md, end to end: today's stack (the ConfigMap and two
//! CronJobs hashicorp/kubernetes wrote with client-side writes, then mutated
//! by a webhook) is taken over by `terraform/beads-server` with the real
//! Terraform CLIs, 1.11.4 with `removed` and `import` blocks and 1.0 with
//! `terraform state rm` and `terraform import`.
//!
//! The old stack's state is made with `terraform import` through a stand-in
//! for hashicorp/kubernetes (`fake-hashicorp-kubernetes`: the real provider
//! is not on this machine and there is no network). Its destroy really
//! deletes the object, so a step that destroyed instead of forgetting fails
//! the UID checks.

use std::path::{Path, PathBuf};

use beads_e2e::cluster::Cluster;
use beads_e2e::terraform::{self, Workspace};
use beads_e2e::{bin_dir, repo_root};
use serde_json::{Value, json};

/// The manager kube-apiserver records for hashicorp/kubernetes' writes
/// (its User-Agent `HashiCorp/1.0 Terraform/<version>`, up to the first `/`).
const OLD_MANAGER: &str = "HashiCorp";
const CRON_JOBS: [&str; 2] = ["beads-dispatcher", "beads-reaper"];
const OLD_ADDRESSES: [&str; 3] = [
    "kubernetes_config_map.beads-metadata",
    "kubernetes_cron_job_v1.beads_dispatcher",
    "kubernetes_cron_job_v1.beads_reaper",
];

/// A fresh namespace for one run, created.
fn namespace(cluster: &Cluster, purpose: &str) -> String {
    cluster.namespace(&format!("beads-{purpose}")).unwrap()
}

/// A workspace whose CLI config points both `beads-autodispatch/beads` and
/// `hashicorp/kubernetes` at binaries built by cargo.
struct Stack {
    ws: Workspace,
    _plugins: tempfile::TempDir,
}

fn stack(tf: &Path, cluster: &Cluster, ns: &str) -> Stack {
    let plugins = tempfile::tempdir().unwrap();
    let dir = plugins.path();
    std::os::unix::fs::symlink(
        bin_dir().join("terraform-provider-beads"),
        dir.join("terraform-provider-beads"),
    )
    .unwrap();
    std::os::unix::fs::symlink(
        PathBuf::from(env!("CARGO_BIN_EXE_fake-hashicorp-kubernetes")),
        dir.join("terraform-provider-kubernetes"),
    )
    .unwrap();
    let rc = dir.join("terraform.rc");
    std::fs::write(
        &rc,
        format!(
            "provider_installation {{\n  dev_overrides {{\n    \"{}\" = \"{d}\"\n    \"hashicorp/kubernetes\" = \"{d}\"\n  }}\n  direct {{}}\n}}\n",
            terraform::SOURCE,
            d = dir.display()
        ),
    )
    .unwrap();
    let mut ws = Workspace::new(tf, &bin_dir()).unwrap();
    let kubeconfig = cluster.kubeconfig.display().to_string();
    ws.env("TF_CLI_CONFIG_FILE", &rc.display().to_string())
        .env("KUBECONFIG", &kubeconfig)
        .env("TF_VAR_kube_config_path", &kubeconfig)
        .env("TF_VAR_namespace", ns);
    Stack {
        ws,
        _plugins: plugins,
    }
}

/// The dispatcher script's shape (abridged; §3.5 of the facts sheet).
const DISPATCH_SCRIPT: &str = r#"set -euo pipefail
mkdir -p /tmp/.beads
cp /etc/beads-metadata/metadata.json /tmp/.beads/metadata.json
BUSY=$(curl -sf "$BEADBOARD_URL/api/agent-status" | jq -r '.busy // false')
if [ "$BUSY" != "false" ]; then echo "busy — skipping tick"; exit 0; fi
BEAD=$(bd --db /tmp/.beads query 'assignee=agent AND status=open' --json | jq -r '[.[] | select(.acceptance_criteria != null and .acceptance_criteria != "")] | sort_by(.priority, .updated_at)[0].id // empty')
[ -z "$BEAD" ] && { echo "no eligible beads (assignee=agent, status=open, has acceptance_criteria)"; exit 0; }
bd update "$BEAD" -s in_progress
"#;

const REAP_SCRIPT: &str = r#"set -euo pipefail
mkdir -p /tmp/.beads
cp /etc/beads-metadata/metadata.json /tmp/.beads/metadata.json
THRESHOLD_MIN=30
bd --db /tmp/.beads query 'assignee=agent AND status=in_progress' --json | jq -c '.[]' | while read -r b; do echo "$b"; done
"#;

/// A CronJob of today's stack, every field `kubernetes_cron_job_v1` sets.
fn old_cron_job(ns: &str, name: &str) -> Value {
    let dispatcher = name == "beads-dispatcher";
    let mut env = vec![];
    if dispatcher {
        env.push(json!({"name": "BEADBOARD_URL", "value": "http://beadboard.beads-server.svc.cluster.local"}));
        env.push(json!({"name": "API_BEARER_TOKEN", "valueFrom": {"secretKeyRef": {"name": "beadboard-agent-service", "key": "api_bearer_token"}}}));
    }
    env.push(json!({"name": "BEADS_ACTOR", "value": name}));
    env.push(json!({"name": "HOME", "value": "/tmp"}));
    json!({
      "apiVersion": "batch/v1", "kind": "CronJob",
      "metadata": {"name": name, "namespace": ns},
      "spec": {
        "schedule": if dispatcher { "*/2 * * * *" } else { "*/10 * * * *" },
        "concurrencyPolicy": "Forbid",
        "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 3,
        "startingDeadlineSeconds": 60,
        "suspend": false,
        "jobTemplate": {"metadata": {}, "spec": {
          "backoffLimit": 0, "ttlSecondsAfterFinished": 600,
          "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {
              "restartPolicy": "Never",
              "imagePullSecrets": [{"name": "registry-credentials"}],
              "dnsPolicy": "ClusterFirst",
              "terminationGracePeriodSeconds": 30,
              "containers": [{
                "name": if dispatcher { "dispatcher" } else { "reaper" },
                "image": "ghcr.io/viktorbarzin/claude-agent-service:latest",
                "command": ["/bin/sh", "-c", if dispatcher { DISPATCH_SCRIPT } else { REAP_SCRIPT }],
                "env": env,
                "volumeMounts": [{"name": "beads-metadata", "mountPath": "/etc/beads-metadata", "readOnly": true}],
                "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
                "terminationMessagePath": "/dev/termination-log"
              }],
              "volumes": [{"name": "beads-metadata", "configMap": {"name": "beads-metadata"}}]
            }
          }
        }}
      }
    })
}

fn old_config_map(ns: &str) -> Value {
    // jsonencode() output: keys sorted, no spaces.
    let meta = r#"{"backend":"dolt","database":"dolt","dolt_database":"code","dolt_mode":"server","dolt_server_host":"dolt.beads-server.svc.cluster.local","dolt_server_port":3306,"dolt_server_user":"beads","project_id":"a8f8bae7-ce65-4145-a5db-a13d11d297da"}"#;
    json!({
      "apiVersion": "v1", "kind": "ConfigMap",
      "metadata": {"name": "beads-metadata", "namespace": ns},
      "data": {"metadata.json": meta}
    })
}

fn kubectl_file(cluster: &Cluster, args: &[&str], manifest: &Value) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("object.json");
    std::fs::write(&file, manifest.to_string()).unwrap();
    let mut all = args.to_vec();
    let path = file.display().to_string();
    all.extend(["-f", &path]);
    cluster.kubectl_ok(&all).unwrap();
}

/// Today's stack as it stands: created with the kill switch on, switched
/// off by a later apply (hashicorp/kubernetes updates with a JSON patch),
/// and the pod templates mutated by an admission webhook (Kyverno's ndots).
fn build_old_stack(cluster: &Cluster, ns: &str) {
    let create = ["create", "--field-manager", OLD_MANAGER];
    kubectl_file(cluster, &create, &old_config_map(ns));
    for name in CRON_JOBS {
        kubectl_file(cluster, &create, &old_cron_job(ns, name));
        cluster
            .kubectl_ok(&[
                "patch",
                "cronjob",
                name,
                "-n",
                ns,
                "--field-manager",
                OLD_MANAGER,
                "--type=json",
                "-p",
                r#"[{"op":"replace","path":"/spec/suspend","value":true}]"#,
            ])
            .unwrap();
        cluster
            .kubectl_ok(&[
                "patch", "cronjob", name, "-n", ns, "--field-manager", "kyverno", "--type=merge", "-p",
                r#"{"spec":{"jobTemplate":{"spec":{"template":{"spec":{"dnsConfig":{"options":[{"name":"ndots","value":"2"}]}}}}}}}"#,
            ])
            .unwrap();
    }
}

/// The old stack's configuration (its three resources) and its state,
/// made by importing the objects.
fn old_stack_state(s: &Stack, ns: &str) {
    let tf = r#"variable "namespace" { type = string }

resource "kubernetes_config_map" "beads-metadata" {
  namespace = var.namespace
  name      = "beads-metadata"
}

resource "kubernetes_cron_job_v1" "beads_dispatcher" {
  namespace = var.namespace
  name      = "beads-dispatcher"
}

resource "kubernetes_cron_job_v1" "beads_reaper" {
  namespace = var.namespace
  name      = "beads-reaper"
}
"#;
    s.ws.write("old_stack.tf", tf).unwrap();
    for (address, name) in
        OLD_ADDRESSES
            .iter()
            .zip(["beads-metadata", "beads-dispatcher", "beads-reaper"])
    {
        s.ws.ok(&["import", "-no-color", address, &format!("{ns}/{name}")])
            .unwrap();
    }
    assert_eq!(state_list(s), sorted(&OLD_ADDRESSES));
    std::fs::remove_file(s.ws.work.join("old_stack.tf")).unwrap();
}

fn state_list(s: &Stack) -> Vec<String> {
    let out = s.ws.ok(&["state", "list"]).unwrap();
    sorted(
        &out.lines()
            .filter(|l| !l.trim().is_empty())
            .collect::<Vec<_>>(),
    )
}

fn sorted(v: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| s.trim().to_string()).collect();
    v.sort();
    v
}

/// The new stack: terraform/beads-server with the operator's settings.
fn new_stack(s: &Stack) {
    s.ws.copy_from(&repo_root().join("terraform/beads-server"))
        .unwrap();
}

fn uids(cluster: &Cluster, ns: &str) -> Vec<Value> {
    [
        ("configmap", "beads-metadata"),
        ("cronjob", CRON_JOBS[0]),
        ("cronjob", CRON_JOBS[1]),
    ]
    .iter()
    .map(|(kind, name)| {
        cluster
            .get_json(ns, kind, name)
            .unwrap()
            .unwrap_or_else(|| panic!("{kind} {name} exists"))["metadata"]["uid"]
            .clone()
    })
    .collect()
}

fn suspended(cluster: &Cluster, ns: &str) -> Vec<Value> {
    CRON_JOBS
        .iter()
        .map(|n| cluster.get_json(ns, "cronjob", n).unwrap().unwrap()["spec"]["suspend"].clone())
        .collect()
}

/// `spec` of a CronJob with what only the webhook owns taken out (on a
/// real cluster with Kyverno the fresh install has it too).
fn spec_without_webhook(cj: &Value) -> Value {
    let mut spec = cj["spec"].clone();
    if let Some(pod) = spec
        .pointer_mut("/jobTemplate/spec/template/spec")
        .and_then(Value::as_object_mut)
    {
        pod.shift_remove("dnsConfig");
    }
    spec
}

/// Asserts the migrated objects are exactly what the provider renders (a
/// fresh install in `reference`), bar the webhook's dnsConfig, which stays.
fn assert_exactly_rendered(cluster: &Cluster, ns: &str, reference: &str) {
    for name in CRON_JOBS {
        let got = cluster.get_json(ns, "cronjob", name).unwrap().unwrap();
        let want = cluster
            .get_json(reference, "cronjob", name)
            .unwrap()
            .unwrap();
        let pod = &got["spec"]["jobTemplate"]["spec"]["template"]["spec"];
        let containers: Vec<&str> = pod["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(containers, ["runner"], "{name}: {pod}");
        let text = got.to_string();
        for gone in [
            "API_BEARER_TOKEN",
            "/bin/sh",
            "claude-agent-service",
            "registry-credentials",
            "\"app\":",
        ] {
            assert!(!text.contains(gone), "{name} still has {gone}: {got}");
        }
        assert_eq!(
            pod["dnsConfig"],
            json!({"options": [{"name": "ndots", "value": "2"}]}),
            "{name}: the webhook's dnsConfig stays"
        );
        assert_eq!(
            spec_without_webhook(&got),
            spec_without_webhook(&want),
            "{name}"
        );
        assert_eq!(
            got["metadata"]["labels"], want["metadata"]["labels"],
            "{name}"
        );
    }
    let got = cluster
        .get_json(ns, "configmap", "beads-metadata")
        .unwrap()
        .unwrap();
    let want = cluster
        .get_json(reference, "configmap", "beads-metadata")
        .unwrap()
        .unwrap();
    assert_eq!(got["data"], want["data"]);
    assert_eq!(got["metadata"]["labels"], want["metadata"]["labels"]);
}

const OFF: &str = "-var=beads_dispatcher_enabled=false";
const ON: &str = "-var=beads_dispatcher_enabled=true";

/// The kill switch both ways, as `tg apply -var=…` passes it.
fn kill_switch_both_ways(s: &Stack, cluster: &Cluster, ns: &str) {
    s.ws.apply(&[ON]).unwrap();
    assert_eq!(suspended(cluster, ns), [json!(false), json!(false)]);
    let outputs: Value = serde_json::from_str(&s.ws.ok(&["output", "-json"]).unwrap()).unwrap();
    assert_eq!(outputs["enabled"]["value"], true);
    assert_eq!(outputs["dispatcher_cron_job"]["value"], "beads-dispatcher");
    assert_eq!(
        outputs["image"]["value"],
        "ghcr.io/example/beads-runner:0.1.0"
    );
    assert!(
        outputs["kubectl_jobs"]["value"]
            .as_str()
            .unwrap()
            .starts_with(&format!(
                "kubectl -n {ns} get jobs -l app.kubernetes.io/instance=beads,"
            )),
        "{outputs}"
    );
    // The selector of kubectl_jobs matches what Jobs inherit from the template.
    let cj = cluster
        .get_json(ns, "cronjob", "beads-dispatcher")
        .unwrap()
        .unwrap();
    let job_labels = &cj["spec"]["jobTemplate"]["metadata"]["labels"];
    assert_eq!(job_labels["app.kubernetes.io/instance"], "beads");
    assert_eq!(job_labels["app.kubernetes.io/component"], "dispatcher");
    let (changes, plan) = s.ws.plan(&[ON]).unwrap();
    assert!(!changes, "{plan}");
    s.ws.apply(&[OFF]).unwrap();
    assert_eq!(suspended(cluster, ns), [json!(true), json!(true)]);
    let (changes, plan) = s.ws.plan(&[OFF]).unwrap();
    assert!(!changes, "{plan}");
    // Without the override the committed default (true) comes back.
    let (changes, plan) = s.ws.plan(&[]).unwrap();
    assert!(
        changes && plan.contains("~ enabled") && plan.contains("false -> true"),
        "{plan}"
    );
}

/// A fresh install of terraform/beads-server: what the provider renders.
fn reference_install(tf: &Path, cluster: &Cluster) -> (Stack, String) {
    let ns = namespace(cluster, "reference");
    let s = stack(tf, cluster, &ns);
    new_stack(&s);
    s.ws.apply(&[OFF]).unwrap();
    (s, ns)
}

fn migration_blocks(ns: &str) -> String {
    let mut tf = String::new();
    for address in OLD_ADDRESSES {
        tf.push_str(&format!(
            "removed {{\n  from = {address}\n\n  lifecycle {{\n    destroy = false\n  }}\n}}\n\n"
        ));
    }
    tf.push_str(&format!(
        "import {{\n  to = beads_autodispatch.this\n  id = \"{ns}/beads\"\n}}\n"
    ));
    tf
}

/// Terraform ≥ 1.7: `removed` blocks forget the old resources and an
/// `import` block adopts the objects, in one plan and one apply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_and_import_blocks_adopt_todays_stack_in_place() {
    let tf = terraform::binaries().remove(0);
    let cluster = Cluster::real().unwrap();
    let ns = namespace(&cluster, "migrated");
    build_old_stack(&cluster, &ns);
    let before = uids(&cluster, &ns);
    let (_reference, reference) = reference_install(&tf, &cluster);

    let s = stack(&tf, &cluster, &ns);
    old_stack_state(&s, &ns);
    assert_eq!(
        suspended(&cluster, &ns),
        [json!(true), json!(true)],
        "the old stack is switched off"
    );
    // The documented check, verbatim.
    let check = cluster
        .kubectl_ok(&[
            "-n",
            &ns,
            "get",
            "cronjob",
            "beads-dispatcher",
            "beads-reaper",
            "-o",
            "custom-columns=NAME:.metadata.name,SUSPEND:.spec.suspend",
        ])
        .unwrap();
    assert_eq!(
        check.split_whitespace().collect::<Vec<_>>(),
        [
            "NAME",
            "SUSPEND",
            "beads-dispatcher",
            "true",
            "beads-reaper",
            "true"
        ],
        "{check}"
    );

    new_stack(&s);
    s.ws.write("migration.tf", &migration_blocks(&ns)).unwrap();
    let (changes, plan) = s.ws.plan(&[OFF]).unwrap();
    assert!(changes, "{plan}");
    for address in OLD_ADDRESSES {
        assert!(
            plan.contains(&format!(
                "{address} will no longer be managed by Terraform, but will not be destroyed"
            )),
            "{address}:\n{plan}"
        );
    }
    assert!(
        plan.contains("beads_autodispatch.this will be imported")
            || plan.contains("beads_autodispatch.this will be updated in-place"),
        "{plan}"
    );
    assert!(
        plan.contains("Plan: 1 to import, 0 to add, 1 to change, 0 to destroy."),
        "{plan}"
    );

    s.ws.apply(&[OFF]).unwrap();
    assert_eq!(state_list(&s), ["beads_autodispatch.this"]);
    assert_eq!(
        uids(&cluster, &ns),
        before,
        "no object deleted and recreated"
    );
    assert_eq!(
        suspended(&cluster, &ns),
        [json!(true), json!(true)],
        "still switched off"
    );
    assert_exactly_rendered(&cluster, &ns, &reference);
    let (changes, plan) = s.ws.plan(&[OFF]).unwrap();
    assert!(!changes, "the next plan is empty:\n{plan}");

    // The migration blocks have done their work and can go.
    std::fs::remove_file(s.ws.work.join("migration.tf")).unwrap();
    let (changes, plan) = s.ws.plan(&[OFF]).unwrap();
    assert!(!changes, "{plan}");

    kill_switch_both_ways(&s, &cluster, &ns);
    assert_eq!(uids(&cluster, &ns), before);
}

/// Terraform < 1.7 (here 1.0): `terraform state rm`, then `terraform
/// import`, then one apply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_rm_and_import_adopt_todays_stack_in_place() {
    let Some(tf) = terraform::binaries().into_iter().nth(1) else {
        eprintln!(
            "{} not set: the Terraform 1.0 migration is skipped",
            terraform::TERRAFORM_1_0_VAR
        );
        return;
    };
    let cluster = Cluster::real().unwrap();
    let ns = namespace(&cluster, "migrated");
    build_old_stack(&cluster, &ns);
    let before = uids(&cluster, &ns);
    let (_reference, reference) = reference_install(&tf, &cluster);

    let s = stack(&tf, &cluster, &ns);
    old_stack_state(&s, &ns);
    new_stack(&s);
    // Without their blocks and still in the state, the old resources
    // would be destroyed: hence `state rm` first.
    let (changes, plan) = s.ws.plan(&[OFF]).unwrap();
    assert!(changes && plan.contains("3 to destroy"), "{plan}");
    let mut rm = vec!["state", "rm", "-no-color"];
    rm.extend(OLD_ADDRESSES);
    s.ws.ok(&rm).unwrap();
    assert_eq!(state_list(&s), Vec::<String>::new());

    s.ws.ok(&[
        "import",
        "-no-color",
        OFF,
        "beads_autodispatch.this",
        &format!("{ns}/beads"),
    ])
    .unwrap();
    let (changes, plan) = s.ws.plan(&[OFF]).unwrap();
    assert!(
        changes && plan.contains("0 to add, 1 to change, 0 to destroy"),
        "{plan}"
    );
    s.ws.apply(&[OFF]).unwrap();
    assert_eq!(
        uids(&cluster, &ns),
        before,
        "no object deleted and recreated"
    );
    assert_eq!(suspended(&cluster, &ns), [json!(true), json!(true)]);
    assert_exactly_rendered(&cluster, &ns, &reference);
    let (changes, plan) = s.ws.plan(&[OFF]).unwrap();
    assert!(!changes, "the next plan is empty:\n{plan}");

    kill_switch_both_ways(&s, &cluster, &ns);
    assert_eq!(uids(&cluster, &ns), before);
}

/// The guard behind the UID checks above: the stand-in for
/// hashicorp/kubernetes really deletes on destroy, so a `removed` block
/// without `destroy = false` takes the objects away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_block_that_destroys_would_delete_the_objects() {
    let tf = terraform::binaries().remove(0);
    let cluster = Cluster::real().unwrap();
    let ns = namespace(&cluster, "destroyed");
    build_old_stack(&cluster, &ns);
    let s = stack(&tf, &cluster, &ns);
    old_stack_state(&s, &ns);
    s.ws.write(
        "migration.tf",
        migration_blocks(&ns)
            .replace("destroy = false", "destroy = true")
            .split("import {")
            .next()
            .unwrap(),
    )
    .unwrap();
    s.ws.apply(&[]).unwrap();
    assert!(
        cluster
            .get_json(&ns, "cronjob", "beads-dispatcher")
            .unwrap()
            .is_none()
    );
    assert!(
        cluster
            .get_json(&ns, "configmap", "beads-metadata")
            .unwrap()
            .is_none()
    );
}

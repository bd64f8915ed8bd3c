#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected values
//! The provider when the API server fails halfway through an apply, and
//! when Terraform is interrupted: the state says what exists, and the next
//! apply converges.

use std::time::Duration;

use beads_e2e::cluster::Cluster;
use beads_e2e::terraform::{self, Workspace};
use beads_fault_proxy::Fault;

/// Where a test applies: the fault proxy's kubeconfig and a namespace of
/// the test's own on the real server behind it.
struct At {
    kubeconfig: String,
    ns: String,
}

fn main_tf(at: &At, tag: &str) -> String {
    let header = terraform::header(&format!("  config_path = \"{}\"", at.kubeconfig));
    format!(
        r#"{header}
resource "beads_autodispatch" "this" {{
  namespace     = "{ns}"
  image         = "ghcr.io/example/beads-runner"
  image_tag     = "{tag}"
  beadboard_url = "http://beadboard.beads-server.svc.cluster.local"
  dolt {{
    host     = "dolt.beads-server.svc.cluster.local"
    database = "code"
  }}
}}
"#,
        ns = at.ns
    )
}

fn fail_once(verb: &str, resource: &str, name: &str, delay_ms: Option<u64>) -> Fault {
    serde_json::from_value(serde_json::json!({
        "verb": verb, "resource": resource, "name": name, "status": 500, "times": 1,
        "message": "injected failure", "delayMs": delay_ms,
    }))
    .unwrap()
}

async fn setup() -> (Cluster, Workspace, At) {
    setup_with(&terraform::binaries().remove(0)).await
}

async fn setup_with(tf: &std::path::Path) -> (Cluster, Workspace, At) {
    let cluster = Cluster::with_faults().await.unwrap();
    let ns = cluster.namespace("beads-faults").unwrap();
    let ws = Workspace::new(tf, &beads_e2e::bin_dir()).unwrap();
    let kubeconfig = cluster.kubeconfig.display().to_string();
    (cluster, ws, At { kubeconfig, ns })
}

fn image(cluster: &Cluster, at: &At, job: &str) -> String {
    let cj = cluster.get_json(&at.ns, "cronjob", job).unwrap().unwrap();
    beads_e2e::local_pod::cron_job_container(&cj)["image"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_failing_at_the_second_object_records_what_exists_and_converges() {
    let (cluster, ws, at) = setup().await;
    ws.write("main.tf", &main_tf(&at, "0.1.0")).unwrap();
    let proxy = cluster.proxy();
    proxy.inject_fault(fail_once("apply", "cronjobs", "beads-dispatcher", None));

    let out = ws.run(&["apply", "-auto-approve", "-no-color"]).unwrap();
    let text = terraform::text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains(&format!("CronJob {}/beads-dispatcher", at.ns))
            && text.contains("injected failure"),
        "{text}"
    );
    // The ConfigMap exists, so the state holds the resource (tainted).
    assert!(
        cluster
            .get_json(&at.ns, "configmap", "beads-metadata")
            .unwrap()
            .is_some()
    );
    let listed = ws.ok(&["state", "list"]).unwrap();
    assert!(listed.contains("beads_autodispatch.this"), "{listed}");

    let (changes, plan) = ws.plan(&[]).unwrap();
    assert!(changes, "{plan}");
    ws.apply(&[]).unwrap();
    let (changes, plan) = ws.plan(&[]).unwrap();
    assert!(!changes, "converged:\n{plan}");
    assert_eq!(
        image(&cluster, &at, "beads-reaper"),
        "ghcr.io/example/beads-runner:0.1.0"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_failing_at_the_second_cron_job_shows_the_rest_next_plan() {
    let (cluster, ws, at) = setup().await;
    ws.write("main.tf", &main_tf(&at, "0.1.0")).unwrap();
    ws.apply(&[]).unwrap();

    ws.write("main.tf", &main_tf(&at, "0.2.0")).unwrap();
    cluster
        .proxy()
        .inject_fault(fail_once("apply", "cronjobs", "beads-reaper", None));
    let out = ws.run(&["apply", "-auto-approve", "-no-color"]).unwrap();
    assert!(!out.status.success());
    assert!(terraform::text(&out).contains(&format!("CronJob {}/beads-reaper", at.ns)));
    assert_eq!(
        image(&cluster, &at, "beads-dispatcher"),
        "ghcr.io/example/beads-runner:0.2.0"
    );
    assert_eq!(
        image(&cluster, &at, "beads-reaper"),
        "ghcr.io/example/beads-runner:0.1.0"
    );

    // The state says what exists; the plan shows what is left to do.
    let objects = state_objects(&ws);
    let image_of = |job: &str| {
        objects[job]["spec.jobTemplate.spec.template.spec.containers[name=runner].image"].clone()
    };
    assert_eq!(
        image_of("cronjob/beads-dispatcher"),
        "ghcr.io/example/beads-runner:0.2.0"
    );
    assert_eq!(
        image_of("cronjob/beads-reaper"),
        "ghcr.io/example/beads-runner:0.1.0"
    );
    let (changes, plan) = ws.plan(&[]).unwrap();
    assert!(
        changes
            && plan.contains(
                r#""ghcr.io/example/beads-runner:0.1.0" -> "ghcr.io/example/beads-runner:0.2.0""#
            ),
        "{plan}"
    );
    ws.apply(&[]).unwrap();
    assert_eq!(
        image(&cluster, &at, "beads-reaper"),
        "ghcr.io/example/beads-runner:0.2.0"
    );
    assert!(!ws.plan(&[]).unwrap().0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_apply_is_fixed_by_the_next_apply() {
    let (cluster, ws, at) = setup().await;
    ws.write("main.tf", &main_tf(&at, "0.1.0")).unwrap();
    // The reaper's write hangs for a while: Terraform is interrupted meanwhile.
    let mut slow: Fault = fail_once("apply", "cronjobs", "beads-reaper", Some(20_000));
    slow.status = 500;
    cluster.proxy().inject_fault(slow);

    let child = ws
        .command(&["apply", "-auto-approve", "-no-color"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the dispatcher exists (the reaper's write is hanging), then SIGINT.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while cluster
        .get_json(&at.ns, "cronjob", "beads-dispatcher")
        .unwrap()
        .is_none()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "apply never reached the dispatcher"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let text = terraform::text(&out);
    assert!(!out.status.success(), "{text}");
    // Terraform may wait for the write or stop the provider; either way
    // one diagnostic from the provider (Terraform adds its own "execution
    // halted"), never a second one from the read-back.
    let from_provider = text.matches("Error: Cannot create").count()
        + text.matches("Error: Operation cancelled").count();
    assert!(from_provider <= 1, "{text}");
    // The read-back after the stop is not cancelled with it: the state
    // records the ConfigMap and the dispatcher written before the signal.
    assert_eq!(recorded(&ws), existing(&cluster, &at), "{text}");
    assert!(recorded(&ws).contains(&"cronjob/beads-dispatcher".to_string()));

    cluster.proxy().clear_faults();
    ws.apply(&[]).unwrap();
    let (changes, plan) = ws.plan(&[]).unwrap();
    assert!(!changes, "{plan}");
    assert_eq!(
        image(&cluster, &at, "beads-reaper"),
        "ghcr.io/example/beads-runner:0.1.0"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_errors_name_the_object_and_the_cause() {
    let (cluster, ws, at) = setup().await;
    // 404: the namespace does not exist.
    ws.write(
        "main.tf",
        &main_tf(&at, "0.1.0").replace(&format!("\"{}\"", at.ns), "\"no-such-ns\""),
    )
    .unwrap();
    let out = ws.run(&["apply", "-auto-approve", "-no-color"]).unwrap();
    // Terraform wraps long details; compare with whitespace collapsed.
    let text = one_line(&terraform::text(&out));
    assert!(!out.status.success());
    assert!(
        text.contains(
            "applying ConfigMap no-such-ns/beads-metadata on the API server http://127.0.0.1:"
        ) && text.contains("namespaces \"no-such-ns\" not found (404 NotFound)"),
        "{text}"
    );

    ws.write("main.tf", &main_tf(&at, "0.1.0")).unwrap();
    let proxy = cluster.proxy();
    for (status, expect) in [(403, "403"), (409, "409"), (422, "422")] {
        let mut fault = fail_once("apply", "configmaps", "beads-metadata", None);
        fault.status = status;
        proxy.inject_fault(fault);
        let out = ws.run(&["apply", "-auto-approve", "-no-color"]).unwrap();
        let text = one_line(&terraform::text(&out));
        assert!(!out.status.success(), "{status}: {text}");
        assert!(
            text.contains(&format!("ConfigMap {}/beads-metadata", at.ns)) && text.contains(expect),
            "{status}: {text}"
        );
    }
    ws.apply(&[]).unwrap();
    assert!(!ws.plan(&[]).unwrap().0);
}

/// The `objects` attribute of the one resource in the state.
fn state_objects(ws: &Workspace) -> serde_json::Value {
    let state = ws.state_json().unwrap();
    state["values"]["root_module"]["resources"][0]["values"]["objects"].clone()
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

const ALL: [(&str, &str); 4] = [
    ("configmap", "beads-metadata"),
    ("cronjob", "beads-dispatcher"),
    ("cronjob", "beads-reaper"),
    ("deployment", "beads-runner"),
];

/// The objects the state records (none when the resource is not in it).
fn recorded(ws: &Workspace) -> Vec<String> {
    match state_objects(ws).as_object() {
        Some(o) => o.keys().cloned().collect(),
        None => Vec::new(),
    }
}

/// The objects the cluster holds, named as the state names them.
fn existing(cluster: &Cluster, at: &At) -> Vec<String> {
    ALL.iter()
        .filter(|(kind, name)| cluster.get_json(&at.ns, kind, name).unwrap().is_some())
        .map(|(kind, name)| format!("{kind}/{name}"))
        .collect()
}

/// Each write of one phase failing in turn: the apply fails naming the
/// object, the saved state records exactly the objects that exist, and
/// the next apply converges to an empty plan.
async fn each_write_failing(
    phase: &str,
    writes: &[(&str, &str, &str)],
    before: impl Fn(&Workspace, &At),
    during: impl Fn(&Workspace, &At),
    command: &[&str],
) {
    for (verb, resource, name) in writes {
        let (cluster, ws, at) = setup().await;
        before(&ws, &at);
        during(&ws, &at);
        cluster
            .proxy()
            .inject_fault(fail_once(verb, resource, name, None));
        let out = ws.run(command).unwrap();
        let text = one_line(&terraform::text(&out));
        assert!(!out.status.success(), "{phase} {verb} {name}: {text}");
        assert!(
            text.contains(name) && text.contains("injected failure"),
            "{phase} {verb} {name}: {text}"
        );
        assert_eq!(
            text.matches("Error:").count(),
            1,
            "one diagnostic per failure: {text}"
        );
        assert_eq!(
            recorded(&ws),
            existing(&cluster, &at),
            "{phase}: {verb} {resource}/{name} failed"
        );
        ws.ok(command).unwrap();
        if command[0] == "destroy" {
            assert_eq!(existing(&cluster, &at), Vec::<String>::new());
            assert_eq!(recorded(&ws), Vec::<String>::new());
        } else {
            let (changes, plan) = ws.plan(&[]).unwrap();
            assert!(!changes, "{phase} {verb} {name}: converged:\n{plan}");
        }
    }
}

fn deployment_tf(at: &At) -> String {
    main_tf(at, "0.1.0").replace(
        "  image_tag",
        "  mode          = \"deployment\"\n  image_tag",
    )
}

const CRON_WRITES: [(&str, &str, &str); 3] = [
    ("apply", "configmaps", "beads-metadata"),
    ("apply", "cronjobs", "beads-dispatcher"),
    ("apply", "cronjobs", "beads-reaper"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_with_each_write_failing_leaves_a_true_state() {
    each_write_failing(
        "create",
        &CRON_WRITES,
        |_, _| {},
        |ws, at| ws.write("main.tf", &main_tf(at, "0.1.0")).unwrap(),
        &["apply", "-auto-approve", "-no-color"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_with_each_write_failing_leaves_a_true_state() {
    each_write_failing(
        "update",
        &CRON_WRITES,
        |ws, at| {
            ws.write("main.tf", &main_tf(at, "0.1.0")).unwrap();
            ws.apply(&[]).unwrap();
        },
        |ws, at| ws.write("main.tf", &main_tf(at, "0.2.0")).unwrap(),
        &["apply", "-auto-approve", "-no-color"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mode_switch_with_each_write_failing_leaves_a_true_state() {
    each_write_failing(
        "mode switch",
        &[
            ("apply", "configmaps", "beads-metadata"),
            ("apply", "deployments", "beads-runner"),
            ("delete", "cronjobs", "beads-dispatcher"),
            ("delete", "cronjobs", "beads-reaper"),
        ],
        |ws, at| {
            ws.write("main.tf", &main_tf(at, "0.1.0")).unwrap();
            ws.apply(&[]).unwrap();
        },
        |ws, at| ws.write("main.tf", &deployment_tf(at)).unwrap(),
        &["apply", "-auto-approve", "-no-color"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroy_with_each_delete_failing_leaves_a_true_state() {
    each_write_failing(
        "destroy",
        &[
            ("delete", "cronjobs", "beads-dispatcher"),
            ("delete", "cronjobs", "beads-reaper"),
            ("delete", "configmaps", "beads-metadata"),
        ],
        |ws, at| {
            ws.write("main.tf", &main_tf(at, "0.1.0")).unwrap();
            ws.apply(&[]).unwrap();
        },
        |_, _| {},
        &["destroy", "-auto-approve", "-no-color"],
    )
    .await;
}

/// Runs `terraform <args>` and fails the test if it has not ended within
/// `BOUND`: a dead API server must end the run, never hang it. The bound
/// is far above any run here (the provider's own request timeout is 30 s).
async fn run_bounded(ws: &Workspace, args: &[&str]) -> std::process::Output {
    const BOUND: Duration = Duration::from_secs(180);
    let mut cmd = tokio::process::Command::from(ws.command(args));
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let child = cmd.spawn().unwrap();
    match tokio::time::timeout(BOUND, child.wait_with_output()).await {
        Ok(out) => out.unwrap(),
        Err(_) => panic!("terraform {} still running after {BOUND:?}", args.join(" ")),
    }
}

/// The names of every object of `kind` in the namespace, each with its
/// instance annotation.
fn listed(cluster: &Cluster, at: &At, kind: &str) -> Vec<(String, Option<String>)> {
    let out = cluster
        .kubectl_ok(&["get", kind, "-n", &at.ns, "-o", "json"])
        .unwrap();
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["metadata"]["name"].as_str().unwrap().to_string(),
                o["metadata"]["annotations"]["beads-autodispatch/instance-id"]
                    .as_str()
                    .map(String::from),
            )
        })
        .collect()
}

/// The API server dies in the middle of a create: the ConfigMap is written,
/// then the server is killed as the dispatcher CronJob is sent (that write
/// never happens; every connection closes; the port refuses). The apply
/// fails within a bound, naming the object and the cause; the state keeps
/// the resource. Once the server is back with what it had stored, the next
/// apply converges, and no object is duplicated or left foreign.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_server_dying_mid_create_fails_the_apply_and_the_next_apply_converges() {
    for tf in terraform::binaries() {
        eprintln!("--- with {}", tf.display());
        let (mut cluster, ws, at) = setup_with(&tf).await;
        ws.write("main.tf", &main_tf(&at, "0.1.0")).unwrap();
        let die: Fault = serde_json::from_value(serde_json::json!({
            "verb": "apply", "resource": "cronjobs", "name": "beads-dispatcher", "die": true,
        }))
        .unwrap();
        cluster.proxy().inject_fault(die);

        let out = run_bounded(&ws, &["apply", "-auto-approve", "-no-color"]).await;
        let text = one_line(&terraform::text(&out));
        assert!(!out.status.success(), "{text}");
        assert!(cluster.proxy().is_dead(), "{text}");
        assert!(
            text.contains(&format!(
                "CronJob {}/beads-dispatcher on the API server http://127.0.0.1:",
                at.ns
            )) && text.contains("no answer: connection closed before message completed"),
            "the object and the cause: {text}"
        );
        assert_eq!(text.matches("Error:").count(), 1, "one diagnostic: {text}");
        assert!(
            !text.contains("panic") && !text.contains("Plugin did not respond"),
            "the provider ended cleanly: {text}"
        );
        // What may have been written is assumed to exist: the resource is
        // in the state, tainted, so the next apply replaces it whole.
        let state = ws.state_json().unwrap();
        let resource = &state["values"]["root_module"]["resources"][0];
        assert_eq!(resource["address"], "beads_autodispatch.this", "{state}");
        assert_eq!(resource["tainted"], true, "{state}");

        // The API server comes back with what it had stored: the ConfigMap.
        cluster.faults.as_mut().unwrap().restart().await.unwrap();
        assert_eq!(existing(&cluster, &at), ["configmap/beads-metadata"]);

        // The refresh finds the ConfigMap; Terraform replaces the tainted
        // resource: its objects are deleted, then all written anew.
        let (changes, plan) = ws.plan(&[]).unwrap();
        assert!(
            changes && plan.contains("beads_autodispatch.this is tainted, so must be replaced"),
            "{plan}"
        );
        ws.apply(&[]).unwrap();
        let (changes, plan) = ws.plan(&[]).unwrap();
        assert!(!changes, "converged:\n{plan}");

        // Each object once, and each this resource's.
        let state = ws.state_json().unwrap();
        let instance = state["values"]["root_module"]["resources"][0]["values"]["instance_id"]
            .as_str()
            .unwrap()
            .to_string();
        let mine = |name: &str| (name.to_string(), Some(instance.clone()));
        assert_eq!(
            listed(&cluster, &at, "configmaps"),
            [mine("beads-metadata")]
        );
        assert_eq!(
            listed(&cluster, &at, "cronjobs"),
            [mine("beads-dispatcher"), mine("beads-reaper")]
        );
        assert_eq!(listed(&cluster, &at, "deployments"), []);
        assert_eq!(recorded(&ws), existing(&cluster, &at));
        assert_eq!(
            image(&cluster, &at, "beads-dispatcher"),
            "ghcr.io/example/beads-runner:0.1.0"
        );
    }
}

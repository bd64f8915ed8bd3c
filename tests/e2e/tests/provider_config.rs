#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected values
//! The provider block as Terraform hands it over: values not known until
//! apply never send the provider to another cluster, and connection
//! failures say where the provider tried to go and why.

use beads_e2e::cluster::Cluster;
use beads_e2e::terraform::{self, Workspace};
use beads_fault_proxy::Fault;

fn resource(ns: &str) -> String {
    format!(
        r#"
resource "beads_autodispatch" "this" {{
  namespace     = "{ns}"
  image         = "ghcr.io/example/beads-runner"
  image_tag     = "0.1.0"
  beadboard_url = "http://beadboard.beads-server.svc.cluster.local"
  dolt {{
    host     = "dolt.beads-server.svc.cluster.local"
    database = "code"
  }}
}}
"#
    )
}

/// `config_path` known at plan time.
fn known(kubeconfig: &str, ns: &str) -> String {
    format!(
        "{}{}",
        terraform::header(&format!("  config_path = \"{kubeconfig}\"")),
        resource(ns)
    )
}

/// `config_path` from a `terraform_data` that is applied in the same run,
/// so it is unknown while planning.
fn unknown(kubeconfig: &str, ns: &str) -> String {
    format!(
        "{}\nresource \"terraform_data\" \"kubeconfig\" {{\n  input = \"{kubeconfig}\"\n}}\n{}",
        terraform::header("  config_path = terraform_data.kubeconfig.output"),
        resource(ns)
    )
}

/// Terraform's output with its line wrapping undone.
fn flat(out: &std::process::Output) -> String {
    terraform::text(out)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// A fault on every request that never runs out: while it is armed with
/// its full count, nothing has reached the server.
const TRIPWIRE: u32 = 1_000_000;

fn arm_tripwire(cluster: &Cluster) {
    let f: Fault = serde_json::from_value(serde_json::json!({
        "status": 500, "times": TRIPWIRE, "message": "the wrong cluster was contacted",
    }))
    .unwrap();
    cluster.proxy().inject_fault(f);
}

fn untouched(cluster: &Cluster) -> bool {
    cluster
        .proxy()
        .armed_faults()
        .iter()
        .any(|f| f.times == TRIPWIRE)
}

/// Two API servers as the provider sees them: `a`, where the resource
/// lives, and `b`, the fallback kubeconfig, whose every request would trip
/// a wire. Both are fault proxies in front of the one real server: two
/// addresses, so that which one the provider contacted is known.
/// Also returns a fresh namespace for the resource.
async fn clusters() -> (Cluster, Cluster, String) {
    let a = Cluster::with_faults().await.unwrap();
    let b = Cluster::with_faults().await.unwrap();
    let ns = a.namespace("beads-config").unwrap();
    arm_tripwire(&b);
    (a, b, ns)
}

fn workspace(fallback: &Cluster) -> Workspace {
    let tf = terraform::binaries().remove(0);
    let mut ws = Workspace::new(&tf, &beads_e2e::bin_dir()).unwrap();
    ws.env(
        "KUBE_CONFIG_PATH",
        &fallback.kubeconfig.display().to_string(),
    );
    ws
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_config_path_stops_the_refresh_and_never_reads_another_cluster() {
    let (a, b, ns) = clusters().await;
    let ws = workspace(&b);
    let a_path = a.kubeconfig.display().to_string();
    ws.write("main.tf", &known(&a_path, &ns)).unwrap();
    ws.apply(&[]).unwrap();
    assert!(untouched(&b));

    // The kubeconfig path now comes from a resource not yet applied.
    ws.write("main.tf", &unknown(&a_path, &ns)).unwrap();
    let out = ws.run(&["plan", "-no-color"]).unwrap();
    let text = flat(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("the provider configuration is not known yet: config_path will be known only after apply"),
        "{text}"
    );
    assert!(
        !text.contains("beads_autodispatch.this will be created"),
        "{text}"
    );
    assert!(
        untouched(&b),
        "the plan reached KUBE_CONFIG_PATH's cluster:\n{text}"
    );

    // Once the value is known, the plan reads the right cluster: nothing to do.
    ws.apply(&["-target=terraform_data.kubeconfig"]).unwrap();
    let (changes, text) = ws.plan(&[]).unwrap();
    assert!(!changes, "{text}");
    assert!(untouched(&b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_config_path_still_plans_and_applies_a_new_resource() {
    let (a, b, ns) = clusters().await;
    let ws = workspace(&b);
    ws.write(
        "main.tf",
        &unknown(&a.kubeconfig.display().to_string(), &ns),
    )
    .unwrap();
    // Planning a create needs no cluster; the apply configures the provider
    // again once terraform_data is applied, with the known path.
    let (changes, text) = ws.plan(&[]).unwrap();
    assert!(
        changes && text.contains("beads_autodispatch.this will be created"),
        "{text}"
    );
    ws.apply(&[]).unwrap();
    assert!(
        a.get_json(&ns, "configmap", "beads-metadata")
            .unwrap()
            .is_some()
    );
    assert!(untouched(&b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_failures_name_the_server_and_the_kubeconfig() {
    let (a, b, ns) = clusters().await;
    let ws = workspace(&b);

    // A server that is down: the message names its address and the cause.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let down = dir.path().join("down.kubeconfig");
    beads_fault_proxy::kubeconfig::write(&down, &format!("http://127.0.0.1:{port}")).unwrap();
    ws.write("main.tf", &known(&down.display().to_string(), &ns))
        .unwrap();
    let out = ws.run(&["apply", "-auto-approve", "-no-color"]).unwrap();
    let text = flat(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains(&format!(
            "on the API server http://127.0.0.1:{port}/: no answer"
        )) && text.contains("Connection refused")
            && !text.contains("ServiceError"),
        "{text}"
    );

    // A context the kubeconfig does not define: name the file and its contexts.
    let a_path = a.kubeconfig.display().to_string();
    let header = terraform::header(&format!(
        "  config_path    = \"{a_path}\"\n  config_context = \"nope\""
    ));
    ws.write("main.tf", &format!("{header}{}", resource(&ns)))
        .unwrap();
    let out = ws.run(&["apply", "-auto-approve", "-no-color"]).unwrap();
    let text = flat(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains(&format!(
            "config_context \"nope\" is not a context in the kubeconfig {a_path}; its contexts are: fault-proxy"
        )),
        "{text}"
    );
    assert!(untouched(&b));
}

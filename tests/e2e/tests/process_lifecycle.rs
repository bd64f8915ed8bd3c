#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected values
//! The provider process lives no longer than the Terraform that started it:
//! when Terraform is killed mid-plan, the provider exits and removes its
//! socket directory.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use beads_e2e::cluster::Cluster;
use beads_e2e::terraform::{self, Workspace};
use beads_fault_proxy::Fault;

fn main_tf(kubeconfig: &str, ns: &str) -> String {
    let header = terraform::header(&format!("  config_path = \"{kubeconfig}\""));
    format!(
        r#"{header}
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

/// The pids whose parent is `parent`, from /proc.
fn children(parent: u32) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid ..." — comm may hold spaces, so split after ')'.
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let comm = head
            .split_once('(')
            .map(|(_, c)| c.to_string())
            .unwrap_or_default();
        let ppid = rest
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) {
            out.push((pid, comm));
        }
    }
    out
}

/// Whether `pid` still runs (a zombie waiting for its new parent has exited).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().chars().next())
        })
        .flatten()
        .is_some_and(|state| state != 'Z' && state != 'X')
}

fn socket_dirs(tmp: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(tmp)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("tfplugin-"))
        })
        .collect()
}

/// Polls `cond` until it holds, failing after a generous deadline (a bound
/// so that a broken build fails instead of hanging; not a speed check).
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_exits_and_removes_its_socket_when_terraform_is_killed_mid_plan() {
    let cluster = Cluster::with_faults().await.unwrap();
    let ns = cluster.namespace("beads-lifecycle").unwrap();
    let tf = terraform::binaries().remove(0);
    let mut ws = Workspace::new(&tf, &beads_e2e::bin_dir()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    ws.env("TMPDIR", &tmp.path().display().to_string());
    ws.write(
        "main.tf",
        &main_tf(&cluster.kubeconfig.display().to_string(), &ns),
    )
    .unwrap();
    ws.apply(&[]).unwrap();
    assert!(
        socket_dirs(tmp.path()).is_empty(),
        "a clean run leaves no socket directory"
    );

    // The plan's refresh now hangs inside the provider, in ReadResource.
    let proxy = cluster.proxy();
    let hang: Fault = serde_json::from_value(serde_json::json!({
        "verb": "get", "status": 500, "times": 0, "delayMs": 120_000,
    }))
    .unwrap();
    proxy.inject_fault(hang);
    let mut plan = ws
        .command(&["plan", "-no-color"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let terraform_pid = plan.id();
    // Terraform prints this line as it asks the provider to read the
    // resource, whose GET then hangs: the plan is under way in the provider.
    let mut stdout = std::io::BufReader::new(plan.stdout.take().unwrap());
    let mut seen = String::new();
    while !seen.contains("Refreshing state...") {
        let mut line = String::new();
        let n = std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
        assert!(n > 0, "terraform plan ended before refreshing:\n{seen}");
        seen.push_str(&line);
    }
    let mut provider = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    while provider.is_none() || socket_dirs(tmp.path()).is_empty() {
        assert!(
            Instant::now() < deadline,
            "gave up waiting for the provider to start and bind its socket: terraform \
             running {}, its children {:?}, socket dirs {:?}, faults left {:?}, output:\n{seen}",
            running(terraform_pid),
            children(terraform_pid),
            socket_dirs(tmp.path()),
            proxy.armed_faults(),
        );
        std::thread::sleep(Duration::from_millis(50));
        provider = children(terraform_pid)
            .into_iter()
            .find(|(_, comm)| comm.starts_with("terraform-prov"))
            .map(|(pid, _)| pid);
    }
    let provider = provider.unwrap();
    let dirs = socket_dirs(tmp.path());

    plan.kill().unwrap(); // SIGKILL: Terraform cannot tell the provider
    plan.wait().unwrap();

    wait_for("the provider to exit", || !running(provider));
    for dir in dirs {
        assert!(!dir.exists(), "{} was left behind", dir.display());
    }
    proxy.clear_faults();
}

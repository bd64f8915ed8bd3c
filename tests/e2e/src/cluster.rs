//! The cluster the tests apply to: the real kube-apiserver (with etcd) that
//! `scripts/kube-throwaway start` runs for the whole test run, shared by
//! every test, each in namespaces of its own. Where a test needs what the
//! real server cannot be made to do on demand (5xx, late answers, dying),
//! it talks to the same server through a fault proxy.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context, bail};

/// Names the folder `scripts/kube-throwaway start` made (set by
/// `scripts/test` and the quickstart).
pub const KUBE_DIR_VAR: &str = "BEADS_TEST_KUBE_DIR";

/// A cluster and a kubeconfig for it.
pub struct Cluster {
    pub kubeconfig: PathBuf,
    /// The fault proxy the kubeconfig points at, when the test asked for one.
    pub faults: Option<beads_fault_proxy::Handle>,
    /// The real server's own kubeconfig (kubectl and namespace set-up go
    /// there directly, never through the faults).
    admin_kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
}

/// The throwaway server's folder, or an error saying how to start one.
pub fn kube_dir() -> anyhow::Result<PathBuf> {
    kube_dir_from(std::env::var_os(KUBE_DIR_VAR))
}

/// [`kube_dir`] with the variable's value given.
pub fn kube_dir_from(value: Option<std::ffi::OsString>) -> anyhow::Result<PathBuf> {
    let dir = value
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .with_context(|| {
            format!(
                "{KUBE_DIR_VAR} is not set: these tests need the real kube-apiserver. \
                 Run them with scripts/test, or start one with \
                 `eval \"$(scripts/kube-throwaway start)\"` (built by scripts/setup)"
            )
        })?;
    if !dir.join("kubeconfig").is_file() {
        bail!(
            "{KUBE_DIR_VAR}={} holds no kubeconfig: is its kube-apiserver still running \
             (scripts/kube-throwaway start)?",
            dir.display()
        );
    }
    Ok(dir)
}

impl Cluster {
    /// The real kube-apiserver of this test run.
    pub fn real() -> anyhow::Result<Self> {
        let kubeconfig = kube_dir()?.join("kubeconfig");
        Ok(Cluster {
            admin_kubeconfig: kubeconfig.clone(),
            kubeconfig,
            faults: None,
            _dir: tempfile::tempdir()?,
        })
    }

    /// The real kube-apiserver behind a fault proxy of this test's own,
    /// served by the caller's runtime: use a multi-threaded runtime, since
    /// Terraform and kubectl are run with blocking calls while it serves.
    pub async fn with_faults() -> anyhow::Result<Self> {
        let dir = kube_dir()?;
        let upstream = beads_fault_proxy::Upstream::from_kube_dir(&dir)?;
        let proxy = beads_fault_proxy::spawn(upstream)
            .await
            .context("starting the fault proxy")?;
        let tmp = tempfile::tempdir()?;
        let kubeconfig = tmp.path().join("kubeconfig");
        proxy.write_kubeconfig(&kubeconfig)?;
        Ok(Cluster {
            kubeconfig,
            faults: Some(proxy),
            admin_kubeconfig: dir.join("kubeconfig"),
            _dir: tmp,
        })
    }

    /// The fault proxy; panics in a test that did not ask for one.
    pub fn proxy(&self) -> &beads_fault_proxy::Handle {
        self.faults
            .as_ref()
            .expect("this test's cluster has no fault proxy: use Cluster::with_faults")
    }

    /// Runs `kubectl` against the real server (never through the faults).
    pub fn kubectl(&self, args: &[&str]) -> anyhow::Result<Output> {
        kubectl(&self.admin_kubeconfig, args)
    }

    /// Runs `kubectl` and fails with its stderr unless it succeeds.
    pub fn kubectl_ok(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self.kubectl(args)?;
        if !out.status.success() {
            bail!(
                "kubectl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `kubectl get KIND NAME -n NS -o json`, or `None` when it does not exist.
    pub fn get_json(
        &self,
        ns: &str,
        kind: &str,
        name: &str,
    ) -> anyhow::Result<Option<serde_json::Value>> {
        let out = self.kubectl(&["get", kind, name, "-n", ns, "-o", "json"])?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            if err.contains("NotFound") || err.contains("not found") {
                return Ok(None);
            }
            bail!("kubectl get {kind} {name}: {err}");
        }
        Ok(Some(serde_json::from_slice(&out.stdout)?))
    }

    /// Creates a fresh namespace named `<prefix>-<process>-<n>` and returns
    /// its name. Tests share the server, so each works in namespaces of its
    /// own; they are left behind, since without kube-controller-manager a
    /// deleted namespace is never finalized.
    pub fn namespace(&self, prefix: &str) -> anyhow::Result<String> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "{prefix}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        self.kubectl_ok(&["create", "namespace", &name])?;
        Ok(name)
    }
}

/// Runs the real `kubectl` with a kubeconfig.
pub fn kubectl(kubeconfig: &Path, args: &[&str]) -> anyhow::Result<Output> {
    std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .context("running kubectl (install it with scripts/setup)")
}

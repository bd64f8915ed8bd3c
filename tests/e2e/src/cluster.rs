//! The cluster the tests apply to: the stand-in API server, started
//! in-process, or a real cluster when `BEADS_E2E_KUBECONFIG` names a kubeconfig.

use std::path::{Path, PathBuf};
use std::process::Output;

use anyhow::{Context, bail};

/// Names a kubeconfig of a real cluster to run the suite against.
pub const REAL_CLUSTER_VAR: &str = "BEADS_E2E_KUBECONFIG";

/// A cluster and a kubeconfig for it.
pub struct Cluster {
    pub kubeconfig: PathBuf,
    /// Kept alive for the stand-in; `None` on a real cluster.
    pub sandbox: Option<beads_sandbox_apiserver::Handle>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// The stand-in API server on a free loopback port, served by the
    /// caller's runtime: use a multi-threaded runtime, since Terraform and
    /// kubectl are run with blocking calls while it serves them.
    pub async fn sandbox() -> anyhow::Result<Self> {
        Self::sandbox_with(beads_sandbox_apiserver::Options::default()).await
    }

    /// The stand-in with options (e.g. Kyverno-like mutations).
    pub async fn sandbox_with(options: beads_sandbox_apiserver::Options) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let handle = beads_sandbox_apiserver::spawn(beads_sandbox_apiserver::Config {
            listen: "127.0.0.1:0".parse()?,
            options,
            faults: Vec::new(),
        })
        .await
        .context("starting the stand-in API server")?;
        let kubeconfig = dir.path().join("kubeconfig");
        handle.write_kubeconfig(&kubeconfig)?;
        Ok(Cluster {
            kubeconfig,
            sandbox: Some(handle),
            _dir: dir,
        })
    }

    /// The real cluster named by [`REAL_CLUSTER_VAR`], if any.
    pub fn real() -> Option<anyhow::Result<Self>> {
        let path = std::env::var(REAL_CLUSTER_VAR)
            .ok()
            .filter(|p| !p.is_empty())?;
        Some((|| {
            let dir = tempfile::tempdir()?;
            Ok(Cluster {
                kubeconfig: PathBuf::from(path),
                sandbox: None,
                _dir: dir,
            })
        })())
    }

    /// Runs `kubectl` against this cluster.
    pub fn kubectl(&self, args: &[&str]) -> anyhow::Result<Output> {
        kubectl(&self.kubeconfig, args)
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

    /// Creates a namespace (a unique one per test on a real cluster).
    pub fn create_namespace(&self, name: &str) -> anyhow::Result<()> {
        self.kubectl_ok(&["create", "namespace", name]).map(|_| ())
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

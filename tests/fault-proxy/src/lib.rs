//! `beads-fault-proxy`: a thin fault-injecting proxy in front of a real
//! kube-apiserver, for the few things a real server cannot be made to do on
//! demand: answer 5xx, answer late, die mid-request.
//!
//! Every request it does not fail is forwarded unchanged to the real server
//! (started by `scripts/kube-throwaway`) as its admin user, and the real
//! answer is streamed back; it implements no API semantics of its own. It
//! listens on plain HTTP on loopback and writes a kubeconfig for itself.
//!
//! ```no_run
//! # async fn f() -> anyhow::Result<()> {
//! let upstream = beads_fault_proxy::Upstream::from_kube_dir("/tmp/beads-kube.x".as_ref())?;
//! let proxy = beads_fault_proxy::spawn(upstream).await?;
//! proxy.inject_fault(serde_json::from_str(r#"{"verb":"apply","resource":"cronjobs","status":500}"#)?);
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod death;
pub mod faults;
pub mod kubeconfig;
mod proxy;
pub mod request_info;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use faults::Fault;

/// The real API server behind the proxy.
#[derive(Clone)]
pub struct Upstream {
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    /// The CA that signed its serving certificate (PEM).
    pub ca_pem: Vec<u8>,
    /// A bearer token of a `system:masters` user.
    pub token: String,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Upstream {
    /// The server `scripts/kube-throwaway start` made in `dir` (its `port`,
    /// `ca.crt` and `token` files).
    pub fn from_kube_dir(dir: &Path) -> anyhow::Result<Self> {
        let read = |name: &str| {
            std::fs::read(dir.join(name)).with_context(|| {
                format!(
                    "reading {} (a folder made by scripts/kube-throwaway start?)",
                    dir.join(name).display()
                )
            })
        };
        let port = String::from_utf8(read("port")?)?;
        Ok(Upstream {
            url: format!("https://127.0.0.1:{}", port.trim()),
            ca_pem: read("ca.crt")?,
            token: String::from_utf8(read("token")?)?.trim().to_string(),
        })
    }
}

/// A running proxy. Dropping it stops it.
pub struct Handle {
    addr: SocketAddr,
    state: Arc<proxy::State>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Handle {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Writes a kubeconfig for the proxy.
    pub fn write_kubeconfig(&self, path: &Path) -> std::io::Result<()> {
        kubeconfig::write(path, &self.url())
    }

    /// Arms a fault: the next matching request(s) fail.
    pub fn inject_fault(&self, fault: Fault) {
        self.state.faults.add(fault);
    }

    /// Disarms all faults.
    pub fn clear_faults(&self) {
        self.state.faults.clear();
    }

    /// The faults still armed, each with the count it has left (a fault
    /// armed with a large count is a tripwire: it shows whether anything
    /// reached the server).
    pub fn armed_faults(&self) -> Vec<Fault> {
        self.state.faults.list()
    }

    /// Whether a `die` fault killed the proxy (and it was not restarted).
    pub fn is_dead(&self) -> bool {
        self.state.life().is_cancelled()
    }

    /// Serves again on the same address: the real server kept its objects
    /// in etcd, as a restarted kube-apiserver finds them. Kills the proxy
    /// first, as a crash would, if it is still running.
    pub async fn restart(&mut self) -> std::io::Result<()> {
        self.state.life().cancel();
        self.stop();
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
        let listener = tokio::net::TcpListener::bind(self.addr).await?;
        let (shutdown, task) = serve(listener, Arc::clone(&self.state));
        self.shutdown = Some(shutdown);
        self.task = Some(task);
        Ok(())
    }

    fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Binds a free loopback port and starts forwarding to `upstream` in the
/// background of the current tokio runtime.
pub async fn spawn(upstream: Upstream) -> anyhow::Result<Handle> {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let addr = listener.local_addr()?;
    let state = Arc::new(proxy::State::new(upstream)?);
    let (shutdown, task) = serve(listener, Arc::clone(&state));
    Ok(Handle {
        addr,
        state,
        shutdown: Some(shutdown),
        task: Some(task),
    })
}

/// Serves on `listener` in a new life, until the returned sender fires or a
/// `die` fault ends that life.
fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<proxy::State>,
) -> (oneshot::Sender<()>, JoinHandle<()>) {
    let life = state.new_life();
    let listener = death::MortalListener {
        inner: listener,
        life: life.clone(),
    };
    let app = proxy::router(state);
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                tokio::select! {
                    _ = rx => {}
                    () = life.cancelled() => {}
                }
            })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "fault proxy stopped");
        }
    });
    (tx, task)
}

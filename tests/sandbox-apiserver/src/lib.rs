//! `beads-sandbox-apiserver`: a stand-in Kubernetes API server for tests.
//!
//! It serves namespaces, configmaps, secrets, batch/v1 cronjobs and apps/v1
//! deployments over plain HTTP with upstream-shaped behaviour: discovery,
//! resourceVersion, defaulting, validation, `Status` errors, server-side
//! apply with managed fields and conflicts, merge/JSON/strategic patches,
//! dry run, delete propagation, selectors, watches and kubectl Tables.
//!
//! Start it in-process with [`spawn`]:
//!
//! ```no_run
//! # async fn f() -> std::io::Result<()> {
//! let server = beads_sandbox_apiserver::spawn(Default::default()).await?;
//! println!("{}", server.url());
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod api;
mod death;
pub mod defaults;
pub mod discovery;
pub mod error;
pub mod faults;
pub mod fieldpath;
pub mod kubeconfig;
pub mod kyverno;
pub mod managed_fields;
pub mod patch;
pub mod protobuf;
pub mod resources;
pub mod routes;
pub mod schema;
pub mod selector;
pub mod ssa;
pub mod store;
pub mod table;
pub mod util;
pub mod validate;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use api::Options;
pub use faults::Fault;

/// Environment variable holding a JSON fault (or array of faults) armed at start.
pub const FAULTS_ENV: &str = "SANDBOX_APISERVER_FAULTS";

/// How to start a server.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to bind; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Behaviour switches.
    pub options: Options,
    /// Faults armed at start.
    pub faults: Vec<Fault>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            options: Options::default(),
            faults: Vec::new(),
        }
    }
}

/// A running server. Dropping it stops the server.
pub struct Handle {
    addr: SocketAddr,
    state: Arc<routes::AppState>,
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

    /// A kubeconfig (YAML) for this server.
    pub fn kubeconfig(&self) -> String {
        kubeconfig::render(&self.url())
    }

    /// Writes a kubeconfig for this server.
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

    /// The API semantics, for direct inspection in tests.
    pub fn api(&self) -> &Arc<api::ApiServer> {
        &self.state.api
    }

    /// Stops the server and waits for it.
    pub async fn shutdown(mut self) {
        self.stop();
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }

    /// Whether a `die` fault killed the server (and it was not restarted).
    pub fn is_dead(&self) -> bool {
        self.state.life().is_cancelled()
    }

    /// Serves again on the same address, with the objects and armed faults
    /// it had: a kube-apiserver restarted after a crash finds its objects in
    /// etcd. Kills the server first, as a crash would, if it is still
    /// running.
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

/// Parses [`FAULTS_ENV`]-style JSON: one fault or an array.
pub fn parse_faults(json: &str) -> Result<Vec<Fault>, serde_json::Error> {
    serde_json::from_str::<Vec<Fault>>(json)
        .or_else(|_| serde_json::from_str::<Fault>(json).map(|f| vec![f]))
}

/// Binds and starts serving in the background of the current tokio runtime.
pub async fn spawn(config: Config) -> std::io::Result<Handle> {
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let faults = Arc::new(faults::Faults::default());
    for f in config.faults {
        faults.add(f);
    }
    let state = Arc::new(routes::AppState {
        api: Arc::new(api::ApiServer::new(config.options)),
        faults,
        address: addr.to_string(),
        life: std::sync::Mutex::default(),
    });
    let (shutdown, task) = serve(listener, Arc::clone(&state));
    Ok(Handle {
        addr,
        state,
        shutdown: Some(shutdown),
        task: Some(task),
    })
}

/// Serves `state` on `listener` in a new life, until the returned sender
/// fires or a `die` fault ends that life.
fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<routes::AppState>,
) -> (oneshot::Sender<()>, JoinHandle<()>) {
    let life = tokio_util::sync::CancellationToken::new();
    *state
        .life
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = life.clone();
    let listener = death::MortalListener {
        inner: listener,
        life: life.clone(),
    };
    let app = routes::router(state);
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
            tracing::error!(error = %e, "sandbox apiserver stopped");
        }
    });
    (tx, task)
}

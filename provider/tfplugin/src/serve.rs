//! Running a provider as a Terraform plugin process: handshake, AutoMTLS,
//! the gRPC server on a unix socket, signals and shutdown, and `--debug`
//! mode for attaching Terraform to a provider started by hand.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::{ReceiverStream, UnixListenerStream};
use tonic::codegen::{Context, Poll, Service, http};
use tonic::server::NamedService;
use tonic::{Request, Response, Status};

use crate::framework::server::MAX_MESSAGE_SIZE;
use crate::framework::{CancelToken, Provider, ProviderService};
use crate::handshake::{HandshakeError, LaunchEnv, SocketDir, handshake_line};
use crate::log::{mark_handshake, micros, since_handshake_us, since_start_us};
use crate::proto::plugin::Empty;
use crate::proto::plugin::grpc_controller_server::{GrpcController, GrpcControllerServer};
use crate::proto::tfplugin6::provider_server::ProviderServer;
use crate::tls::{ServerIdentity, TlsError, parse_client_cert, server_config};

/// How long a client may take to finish the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// After Shutdown, how long a graceful stop may take before the process stops anyway.
const SHUTDOWN_BACKSTOP: Duration = Duration::from_millis(500);
/// How often the plugin checks that Terraform is still its parent.
const PARENT_POLL: Duration = Duration::from_millis(250);

/// Why the plugin could not serve.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("socket setup failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// What [`main`] needs to know about the provider binary.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Full provider source address for debug mode's `TF_REATTACH_PROVIDERS`,
    /// e.g. `registry.terraform.io/beads-autodispatch/beads`.
    pub provider_address: String,
    /// `@module` of log lines, e.g. `provider.terraform-provider-beads`.
    pub log_module: String,
}

/// The whole plugin process: call from `main` and return its exit code.
///
/// Without `--debug`, the process must have been started by Terraform
/// (magic cookie); otherwise it explains that on stderr and exits 1.
/// With `--debug`, it serves in the foreground without TLS and prints the
/// `TF_REATTACH_PROVIDERS` value to use; Ctrl-C stops it.
pub fn main(provider: impl Provider, cfg: ServeConfig) -> ExitCode {
    crate::log::mark_start();
    crate::log::install_panic_hook();
    crate::log::init(&cfg.log_module);
    let debug = std::env::args()
        .skip(1)
        .any(|a| a == "--debug" || a == "-debug");
    let env = LaunchEnv::from_process();
    if !debug && let Err(e) = env.check_magic_cookie() {
        eprintln!("{e}");
        return ExitCode::from(1);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = rt.block_on(async {
        if debug {
            serve_debug(provider, &env, &cfg.provider_address).await
        } else {
            serve_terraform(provider, &env).await
        }
    });
    rt.shutdown_timeout(Duration::from_millis(100));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "plugin server failed");
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}

/// Serves Terraform: negotiate, TLS if Terraform sent its certificate,
/// print the handshake line, serve until Shutdown (or SIGTERM).
pub async fn serve_terraform(provider: impl Provider, env: &LaunchEnv) -> Result<(), ServeError> {
    let version = env.negotiate_version()?;
    let tls_started = Instant::now();
    let tls = match env.client_cert.as_deref() {
        Some(pem) => {
            let identity = ServerIdentity::generate()?;
            let cfg = server_config(&identity, parse_client_cert(pem)?)?;
            Some((identity, cfg))
        }
        None => {
            tracing::warn!(
                "PLUGIN_CLIENT_CERT not set: serving without TLS (TF_DISABLE_PLUGIN_TLS)"
            );
            None
        }
    };
    let tls_setup = tls_started.elapsed();
    let shutdown = CancelToken::new();
    ignore_sigint()?;
    on_sigterm(shutdown.clone())?;
    on_parent_death(shutdown.clone());
    let running = start(
        ProviderService::new(provider),
        tls.as_ref().map(|(_, c)| c.clone()),
        env.socket_dir.as_deref(),
        shutdown.clone(),
    )
    .await?;
    let line = handshake_line(
        version,
        running.socket_path(),
        tls.as_ref().map(|(id, _)| id.cert_der.as_ref()),
    );
    // Marked before the write: Terraform may connect before the write returns.
    mark_handshake();
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")?;
        out.flush()?;
    }
    tracing::info!(
        socket = %running.socket_path().display(),
        tls = tls.is_some(),
        pid = std::process::id(),
        startup_us = since_start_us(),
        tls_setup_us = micros(tls_setup),
        "plugin serving"
    );
    let result = running.wait().await;
    tracing::debug!(
        at_us = since_handshake_us(),
        cpu_us = cpu_time_us(),
        "plugin stopping"
    );
    result
}

/// CPU time this process's threads have used so far, in microseconds
/// (`/proc/self/task/*/schedstat`; 0 where that is not available): a
/// figure for `scripts/bench`, which cannot tell it apart from Terraform's.
fn cpu_time_us() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    let ns: u64 = tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    ns / 1000
}

/// Debug mode: plaintext, prints the reattach configuration, stops on Ctrl-C.
pub async fn serve_debug(
    provider: impl Provider,
    env: &LaunchEnv,
    provider_address: &str,
) -> Result<(), ServeError> {
    let shutdown = CancelToken::new();
    {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                shutdown.cancel();
            }
        });
    }
    on_sigterm(shutdown.clone())?;
    let running = start(
        ProviderService::new(provider),
        None,
        env.socket_dir.as_deref(),
        shutdown,
    )
    .await?;
    let value = reattach_json(provider_address, std::process::id(), running.socket_path());
    {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "Provider started in debug mode. To attach Terraform, set this in Terraform's environment:\n\n\
             \tTF_REATTACH_PROVIDERS='{value}'\n\nPress Ctrl-C to stop."
        )?;
        out.flush()?;
    }
    running.wait().await
}

/// The `TF_REATTACH_PROVIDERS` value for a provider serving on `socket`.
/// `Test: true` is required for protocol 6 (go-plugin only keeps the
/// protocol version of test reattachments).
pub fn reattach_json(provider_address: &str, pid: u32, socket: &Path) -> String {
    let mut root = serde_json::Map::new();
    root.insert(
        provider_address.to_string(),
        serde_json::json!({
            "Protocol": "grpc",
            "ProtocolVersion": 6,
            "Pid": pid,
            "Test": true,
            "Addr": {"Network": "unix", "String": socket.display().to_string()},
        }),
    );
    serde_json::Value::Object(root).to_string()
}

fn ignore_sigint() -> std::io::Result<()> {
    // Installing a handler replaces the default action (terminate). Ctrl-C
    // reaches the whole process group; Terraform handles it and calls
    // StopProvider, as go-plugin servers expect.
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    tokio::spawn(async move {
        while sigint.recv().await.is_some() {
            tracing::debug!("ignoring SIGINT; Terraform will call StopProvider");
        }
    });
    Ok(())
}

fn on_sigterm(shutdown: CancelToken) -> std::io::Result<()> {
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::spawn(async move {
        if sigterm.recv().await.is_some() {
            shutdown.cancel();
        }
    });
    Ok(())
}

/// Stops the server when the process that started the plugin (Terraform)
/// is gone: killed with SIGKILL, or dead of SIGPIPE under `terraform … |
/// head`, it never calls Shutdown, and the plugin would live on under PID 1
/// with its socket directory.
///
/// The plugin watches for being re-parented rather than asking for
/// `PR_SET_PDEATHSIG`: that signal fires when the *thread* that forked the
/// child exits, and Go (Terraform) forks from whichever runtime thread runs
/// `os/exec`, so it can stop a provider whose Terraform is alive
/// (golang/go#27505). A changed parent pid means the parent died, whichever
/// way; checking it is one `getppid` call, from the standard library.
pub fn on_parent_death(shutdown: CancelToken) {
    let parent = std::os::unix::process::parent_id();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PARENT_POLL);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            if std::os::unix::process::parent_id() != parent {
                tracing::warn!(parent, "Terraform (the parent process) is gone; stopping");
                shutdown.cancel();
                return;
            }
        }
    });
}

/// go-plugin's controller: Shutdown replies, then stops the server.
struct Controller {
    shutdown: CancelToken,
}

#[tonic::async_trait]
impl GrpcController for Controller {
    async fn shutdown(&self, _req: Request<Empty>) -> Result<Response<Empty>, Status> {
        tracing::debug!("GRPCController.Shutdown");
        self.shutdown.cancel();
        Ok(Response::new(Empty {}))
    }
}

/// A server started by [`start`].
#[derive(Debug)]
pub struct Running {
    socket: SocketDir,
    task: JoinHandle<Result<(), ServeError>>,
    accept: Option<JoinHandle<()>>,
    shutdown: CancelToken,
}

impl Running {
    /// The unix socket the server listens on.
    pub fn socket_path(&self) -> &Path {
        self.socket.socket_path()
    }

    /// Owned copy of the socket path.
    pub fn socket_path_buf(&self) -> PathBuf {
        self.socket.socket_path().to_path_buf()
    }

    /// The token that stops the server.
    pub fn shutdown_token(&self) -> CancelToken {
        self.shutdown.clone()
    }

    /// Waits until the server stopped (after shutdown, at most
    /// half a second later), then removes the socket.
    pub async fn wait(mut self) -> Result<(), ServeError> {
        let shutdown = self.shutdown.clone();
        let backstop = async move {
            shutdown.cancelled().await;
            tokio::time::sleep(SHUTDOWN_BACKSTOP).await;
        };
        let result = tokio::select! {
            r = &mut self.task => match r {
                Ok(r) => r,
                Err(e) => Err(ServeError::Io(std::io::Error::other(e))),
            },
            _ = backstop => {
                tracing::debug!("graceful shutdown took too long; stopping anyway");
                self.task.abort();
                Ok(())
            }
        };
        if let Some(a) = self.accept.take() {
            a.abort();
        }
        result
    }
}

/// Binds a socket in a new private directory and serves the provider
/// service (plus GRPCController and the health service `plugin`) on it,
/// over TLS when `tls` is given. Stops when `shutdown` is cancelled.
pub async fn start(
    service: ProviderService,
    tls: Option<Arc<rustls::ServerConfig>>,
    socket_parent: Option<&Path>,
    shutdown: CancelToken,
) -> Result<Running, ServeError> {
    let socket = SocketDir::create(socket_parent)?;
    let listener = UnixListener::bind(socket.socket_path())?;

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_service_status("plugin", tonic_health::ServingStatus::Serving)
        .await;
    let provider = ProviderServer::new(service)
        .max_decoding_message_size(MAX_MESSAGE_SIZE)
        .max_encoding_message_size(MAX_MESSAGE_SIZE);
    let router = tonic::transport::Server::builder()
        .add_service(Timed(health_service))
        .add_service(Timed(GrpcControllerServer::new(Controller {
            shutdown: shutdown.clone(),
        })))
        .add_service(Timed(provider));

    let stop = shutdown.clone();
    let (task, accept) = match tls {
        Some(cfg) => {
            let (tx, rx) = mpsc::channel(16);
            let accept = tokio::spawn(accept_tls(
                listener,
                tokio_rustls::TlsAcceptor::from(cfg),
                tx,
            ));
            let task = tokio::spawn(async move {
                router
                    .serve_with_incoming_shutdown(ReceiverStream::new(rx), async move {
                        stop.cancelled().await
                    })
                    .await
                    .map_err(ServeError::from)
            });
            (task, Some(accept))
        }
        None => {
            let incoming = UnixListenerStream::new(listener);
            let task = tokio::spawn(async move {
                router
                    .serve_with_incoming_shutdown(incoming, async move { stop.cancelled().await })
                    .await
                    .map_err(ServeError::from)
            });
            (task, None)
        }
    };
    Ok(Running {
        socket,
        task,
        accept,
        shutdown,
    })
}

type TlsConn = tokio_rustls::server::TlsStream<UnixStream>;

/// Accepts connections and runs each TLS handshake in its own task, so a
/// slow or refused client never blocks the next one.
async fn accept_tls(
    listener: UnixListener,
    acceptor: tokio_rustls::TlsAcceptor,
    tx: mpsc::Sender<Result<TlsConn, std::io::Error>>,
) {
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let tx = tx.clone();
        let (at_us, started) = (since_handshake_us(), Instant::now());
        tokio::spawn(async move {
            match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(conn)) => {
                    tracing::debug!(
                        at_us,
                        duration_us = micros(started.elapsed()),
                        "TLS handshake done"
                    );
                    let _ = tx.send(Ok(conn)).await;
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "TLS handshake refused"),
                Err(_) => tracing::warn!("TLS handshake timed out"),
            }
        });
    }
}

/// A gRPC service whose every call logs, at debug level, the method, when
/// it arrived (`at_us`, microseconds after the handshake line) and how long
/// the server took from the request to the response (`duration_us`: decoding
/// and the handler; the response body is encoded as it is sent).
#[derive(Debug, Clone)]
struct Timed<S>(S);

impl<S: NamedService> NamedService for Timed<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> Service<http::Request<B>> for Timed<S>
where
    S: Service<http::Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let at_us = since_handshake_us();
        let started = Instant::now();
        // "/tfplugin6.Provider/ReadResource" -> "ReadResource"
        let rpc = req
            .uri()
            .path()
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string();
        let fut = self.0.call(req);
        Box::pin(async move {
            let out = fut.await;
            tracing::debug!(
                rpc = %rpc,
                at_us,
                duration_us = micros(started.elapsed()),
                "RPC served"
            );
            out
        })
    }
}

#[cfg(test)]
mod tests;

//! HTTPS hosts on loopback, each over TLS with a certificate from a
//! throwaway CA made for that server alone: [`Host`] serves any router (the
//! admission webhook kube-apiserver calls), [`StaticHttps`] the files under
//! one directory, as a provider network mirror is served. Terraform trusts
//! the CA through `SSL_CERT_FILE` (Go's TLS reads it on Linux),
//! kube-apiserver through a webhook's `caBundle`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// One request the server answered: its path and the status it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    /// The request's path, as sent (`/registry.terraform.io/…/index.json`).
    pub path: String,
    /// The HTTP status answered: 200, or 404 for anything not a file under the root.
    pub status: u16,
}

/// A running HTTPS server of any router; stops when dropped.
pub struct Host {
    /// `https://127.0.0.1:<port>/`
    pub url: String,
    /// The throwaway CA's certificate (PEM), the only one that trusts the
    /// server's.
    pub ca_pem: String,
    task: tokio::task::JoinHandle<()>,
}

impl Host {
    /// Serves `app` on a free loopback port, from the caller's runtime.
    pub async fn serve(app: axum::Router) -> anyhow::Result<Self> {
        let (ca_pem, tls) = throwaway_tls().context("making the throwaway CA")?;
        let tcp = TcpListener::bind("127.0.0.1:0").await?;
        let addr = tcp.local_addr()?;
        let listener = TlsListener {
            tcp,
            tls: TlsAcceptor::from(tls),
        };
        let task = tokio::spawn(async move {
            // Runs until the handle is dropped (the task is aborted).
            let _ = axum::serve(listener, app).await;
        });
        Ok(Host {
            url: format!("https://{addr}/"),
            ca_pem,
            task,
        })
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A running static HTTPS server; stops when dropped.
pub struct StaticHttps {
    /// `https://127.0.0.1:<port>/`
    pub url: String,
    /// The throwaway CA's certificate (PEM), the only one that trusts the
    /// server's: give it to clients as `SSL_CERT_FILE`.
    pub ca_file: PathBuf,
    log: Arc<Mutex<Vec<Served>>>,
    _host: Host,
    _dir: tempfile::TempDir,
}

impl StaticHttps {
    /// Serves the files under `root` on a free loopback port, from the
    /// caller's runtime (a multi-threaded one, since the clients are run
    /// with blocking calls while it serves them).
    pub async fn serve(root: &Path) -> anyhow::Result<Self> {
        Self::serve_json_as(root, "application/json").await
    }

    /// As [`StaticHttps::serve`], with `.json` files sent as `json_type`
    /// (to show what a host with another type does to its clients).
    pub async fn serve_json_as(root: &Path, json_type: &'static str) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let files = Files {
            root: root.to_path_buf(),
            json_type,
            log: log.clone(),
        };
        let app = axum::Router::new()
            .fallback(file)
            .with_state(Arc::new(files));
        let host = Host::serve(app).await?;
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, &host.ca_pem)?;
        Ok(StaticHttps {
            url: host.url.clone(),
            ca_file,
            log,
            _host: host,
            _dir: dir,
        })
    }

    /// Every request answered so far, in order.
    pub fn served(&self) -> Vec<Served> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

/// A CA certificate (PEM) and a server configuration whose certificate, for
/// `127.0.0.1` and `localhost`, that CA signed. Both keys live only here.
fn throwaway_tls() -> anyhow::Result<(String, Arc<rustls::ServerConfig>)> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "beads e2e throwaway CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);

    let key = KeyPair::generate()?;
    let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])?;
    leaf.distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = leaf.signed_by(&key, &issuer)?;

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )?;
    Ok((ca_cert.pem(), Arc::new(config)))
}

/// Accepts TCP connections and completes their TLS handshake.
struct TlsListener {
    tcp: TcpListener,
    tls: TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (tcp, addr) = match self.tcp.accept().await {
                Ok(accepted) => accepted,
                Err(_) => {
                    // Out of descriptors or similar: wait, do not spin.
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            // A client that rejects the certificate ends only its own
            // connection; the clients under test show that as their error.
            if let Ok(tls) = self.tls.accept(tcp).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

struct Files {
    root: PathBuf,
    json_type: &'static str,
    log: Arc<Mutex<Vec<Served>>>,
}

/// `GET /a/b` answers the file `root/a/b`, or 404. Only plain path
/// segments are followed, so nothing outside `root` is reachable.
async fn file(State(files): State<Arc<Files>>, uri: Uri) -> Response {
    let path = uri.path().to_string();
    let rel = path.trim_start_matches('/');
    let plain = !rel.is_empty()
        && rel
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != ".." && !s.contains('\\'));
    let body = if plain {
        tokio::fs::read(files.root.join(rel)).await.ok()
    } else {
        None
    };
    let status = if body.is_some() {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    };
    if let Ok(mut log) = files.log.lock() {
        log.push(Served {
            path: path.clone(),
            status: status.as_u16(),
        });
    }
    match body {
        Some(bytes) => {
            let kind = match Path::new(rel).extension().and_then(|e| e.to_str()) {
                Some("json") => files.json_type,
                Some("zip") => "application/zip",
                _ => "application/octet-stream",
            };
            ([(header::CONTENT_TYPE, kind)], bytes).into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

//! The server on a real unix socket: AutoMTLS accepts only Terraform's
//! certificate, and shutdown removes the socket.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use super::*;
use crate::framework::{DynResource, Provider};
use crate::tls::crypto_provider;
use crate::tls::tests::terraform_like_client_cert;

struct Empty;

#[tonic::async_trait]
impl Provider for Empty {
    fn resources(&self) -> Vec<Arc<dyn DynResource>> {
        vec![]
    }
}

/// HTTP/2 client preface plus an empty SETTINGS frame.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0";

/// Connects with TLS (optionally presenting a client certificate), sends the
/// HTTP/2 preface and returns the first bytes the server answers.
async fn talk_h2(
    path: &Path,
    server_cert: &CertificateDer<'static>,
    client: Option<(CertificateDer<'static>, PrivateKeyDer<'static>)>,
) -> std::io::Result<Vec<u8>> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(server_cert.clone())
        .map_err(std::io::Error::other)?;
    let builder = rustls::ClientConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_root_certificates(roots);
    let mut cfg = match client {
        Some((c, k)) => builder
            .with_client_auth_cert(vec![c], k)
            .map_err(std::io::Error::other)?,
        None => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let stream = UnixStream::connect(path).await?;
    let name = ServerName::try_from("localhost").map_err(std::io::Error::other)?;
    let mut tls = connector.connect(name, stream).await?;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    tls.write_all(H2_PREFACE).await?;
    tls.flush().await?;
    let mut buf = vec![0u8; 9];
    let n = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut buf))
        .await
        .map_err(std::io::Error::other)??;
    buf.truncate(n);
    Ok(buf)
}

#[tokio::test]
async fn only_terraforms_certificate_is_accepted() {
    let (tf_cert, tf_key, _) = terraform_like_client_cert();
    let (other_cert, other_key, _) = terraform_like_client_cert();
    let identity = ServerIdentity::generate().expect("identity");
    let cfg = server_config(&identity, tf_cert.clone()).expect("config");
    let dir = tempfile::tempdir().expect("tempdir");
    let shutdown = CancelToken::new();
    let running = start(
        ProviderService::new(Empty),
        Some(cfg),
        Some(dir.path()),
        shutdown.clone(),
    )
    .await
    .expect("start");
    let path = running.socket_path_buf();

    // Terraform's certificate: the server speaks HTTP/2 (a SETTINGS frame, type 4).
    let (tf_cert_again, tf_key_again) = (tf_cert.clone(), tf_key.clone_key());
    let answer = talk_h2(&path, &identity.cert_der, Some((tf_cert, tf_key)))
        .await
        .expect("accepted");
    assert!(
        answer.len() >= 4 && answer[3] == 4,
        "expected a SETTINGS frame, got {answer:?}"
    );

    // Any other certificate, or none: refused before gRPC is reached.
    let refused = talk_h2(&path, &identity.cert_der, Some((other_cert, other_key))).await;
    assert!(
        refused.is_err() || refused.as_ref().is_ok_and(Vec::is_empty),
        "{refused:?}"
    );
    let refused = talk_h2(&path, &identity.cert_der, None).await;
    assert!(
        refused.is_err() || refused.as_ref().is_ok_and(Vec::is_empty),
        "{refused:?}"
    );

    // The server still serves Terraform after refusing others.
    let again = talk_h2(
        &path,
        &identity.cert_der,
        Some((tf_cert_again, tf_key_again)),
    )
    .await
    .expect("accepted");
    assert!(again.len() >= 4 && again[3] == 4, "{again:?}");

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(2), running.wait())
        .await
        .expect("stops promptly")
        .expect("clean");
    assert!(!path.exists(), "socket removed");
}

#[tokio::test]
async fn plaintext_without_client_cert_and_prompt_shutdown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let shutdown = CancelToken::new();
    let running = start(
        ProviderService::new(Empty),
        None,
        Some(dir.path()),
        shutdown.clone(),
    )
    .await
    .expect("start");
    let mut s = UnixStream::connect(running.socket_path())
        .await
        .expect("connect");
    s.write_all(H2_PREFACE).await.expect("write");
    let mut buf = [0u8; 9];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("answer")
        .expect("read");
    assert!(
        n >= 4 && buf[3] == 4,
        "SETTINGS frame expected, got {:?}",
        &buf[..n]
    );
    let started = std::time::Instant::now();
    shutdown.cancel();
    running.wait().await.expect("clean");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "shutdown took {:?}",
        started.elapsed()
    );
}

#[test]
fn reattach_json_has_protocol_6_and_test_flag() {
    let v: serde_json::Value = serde_json::from_str(&reattach_json(
        "registry.terraform.io/a/b",
        42,
        Path::new("/tmp/s"),
    ))
    .expect("json");
    let c = &v["registry.terraform.io/a/b"];
    assert_eq!(c["ProtocolVersion"], 6);
    assert_eq!(c["Test"], true);
    assert_eq!(c["Protocol"], "grpc");
    assert_eq!(c["Pid"], 42);
    assert_eq!(c["Addr"]["Network"], "unix");
    assert_eq!(c["Addr"]["String"], "/tmp/s");
}

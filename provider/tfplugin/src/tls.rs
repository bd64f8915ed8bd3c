//! AutoMTLS: the TLS setup go-plugin expects when Terraform passes its
//! client certificate in `PLUGIN_CLIENT_CERT`.
//!
//! * The server certificate is generated fresh for every process (rcgen,
//!   SAN `localhost`); its DER goes into the handshake line.
//! * Only the exact certificate Terraform sent is accepted as client
//!   certificate ([`PinnedClientCertVerifier`], a DER comparison). rustls'
//!   stock WebPKI verifier cannot be used: Terraform's certificate is a CA
//!   certificate used as end entity, which WebPKI rejects.
//! * rustls runs on the aws-lc-rs provider, which verifies the ECDSA P-521
//!   signatures Terraform's certificate makes (ring cannot).
//! * ALPN is `h2` (grpc-go ≥ 1.67 insists on it).

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// `PLUGIN_CLIENT_CERT` holds no PEM certificate.
    #[error("PLUGIN_CLIENT_CERT does not contain a PEM certificate")]
    NoClientCert,
    /// `PLUGIN_CLIENT_CERT` is not valid PEM.
    #[error("PLUGIN_CLIENT_CERT is not valid PEM: {0}")]
    BadPem(String),
    /// The server certificate could not be generated.
    #[error("generating the server certificate failed: {0}")]
    CertGeneration(#[from] rcgen::Error),
    /// rustls refused the configuration.
    #[error("TLS configuration failed: {0}")]
    Config(#[from] rustls::Error),
}

/// The crypto provider every TLS object here uses (aws-lc-rs, explicitly,
/// so a second provider compiled into the binary cannot cause ambiguity).
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The server's certificate and private key, made for this process.
pub struct ServerIdentity {
    /// DER of the self-signed certificate (what the handshake line carries).
    pub cert_der: CertificateDer<'static>,
    key_der: PrivatePkcs8KeyDer<'static>,
}

impl std::fmt::Debug for ServerIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerIdentity")
            .field("cert_der_len", &self.cert_der.len())
            .finish_non_exhaustive()
    }
}

impl ServerIdentity {
    /// A fresh self-signed certificate for `localhost` (ECDSA P-256).
    pub fn generate() -> Result<ServerIdentity, TlsError> {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])?;
        Ok(ServerIdentity {
            cert_der: ck.cert.der().clone(),
            key_der: PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()),
        })
    }
}

/// Reads the single certificate in `PLUGIN_CLIENT_CERT` (PEM).
pub fn parse_client_cert(pem: &str) -> Result<CertificateDer<'static>, TlsError> {
    use rustls::pki_types::pem::PemObject as _;
    match CertificateDer::pem_slice_iter(pem.as_bytes()).next() {
        Some(Ok(c)) => Ok(c),
        Some(Err(e)) => Err(TlsError::BadPem(e.to_string())),
        None => Err(TlsError::NoClientCert),
    }
}

/// Accepts exactly one client certificate, compared byte for byte, and
/// checks the handshake signatures made with its key.
#[derive(Debug)]
pub struct PinnedClientCertVerifier {
    pinned: CertificateDer<'static>,
    algs: WebPkiSupportedAlgorithms,
}

impl PinnedClientCertVerifier {
    /// A verifier that accepts only `pinned`.
    pub fn new(
        pinned: CertificateDer<'static>,
        provider: &CryptoProvider,
    ) -> PinnedClientCertVerifier {
        PinnedClientCertVerifier {
            pinned,
            algs: provider.signature_verification_algorithms,
        }
    }
}

impl ClientCertVerifier for PinnedClientCertVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.pinned.as_ref() {
            Ok(ClientCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// The rustls server configuration for AutoMTLS: our certificate, client
/// authentication pinned to `client_cert`, ALPN `h2`.
pub fn server_config(
    identity: &ServerIdentity,
    client_cert: CertificateDer<'static>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = crypto_provider();
    let verifier = Arc::new(PinnedClientCertVerifier::new(client_cert, &provider));
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![identity.cert_der.clone()],
            PrivateKeyDer::Pkcs8(identity.key_der.clone_key()),
        )?;
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(cfg))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A client certificate made the way go-plugin makes Terraform's:
    /// ECDSA P-521, self-signed, CA:TRUE, CN=localhost.
    pub(crate) fn terraform_like_client_cert()
    -> (CertificateDer<'static>, PrivateKeyDer<'static>, String) {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P521_SHA512).expect("p521 key");
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "localhost");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "HashiCorp");
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::DigitalSignature,
            rcgen::KeyUsagePurpose::KeyEncipherment,
            rcgen::KeyUsagePurpose::KeyAgreement,
            rcgen::KeyUsagePurpose::KeyCertSign,
        ];
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        ];
        let cert = params.self_signed(&key).expect("self-signed");
        let pem = cert.pem();
        (
            cert.der().clone(),
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            pem,
        )
    }

    #[test]
    fn parses_pem_and_rejects_garbage() {
        let (der, _, pem) = terraform_like_client_cert();
        assert_eq!(parse_client_cert(&pem).expect("parses"), der);
        assert!(matches!(
            parse_client_cert("hello"),
            Err(TlsError::NoClientCert)
        ));
    }

    #[test]
    fn verifier_pins_exact_certificate() {
        let (der, _, _) = terraform_like_client_cert();
        let (other, _, _) = terraform_like_client_cert();
        let v = PinnedClientCertVerifier::new(der.clone(), &crypto_provider());
        assert!(v.verify_client_cert(&der, &[], UnixTime::now()).is_ok());
        assert!(v.verify_client_cert(&other, &[], UnixTime::now()).is_err());
        assert!(
            v.supported_verify_schemes()
                .contains(&SignatureScheme::ECDSA_NISTP521_SHA512)
        );
        assert!(v.client_auth_mandatory());
    }

    #[test]
    fn server_config_offers_h2() {
        let id = ServerIdentity::generate().expect("identity");
        let (der, _, _) = terraform_like_client_cert();
        let cfg = server_config(&id, der).expect("config");
        assert_eq!(cfg.alpn_protocols, vec![b"h2".to_vec()]);
    }
}

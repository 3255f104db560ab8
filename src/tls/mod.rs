//! TLS towards HTTPS MCP servers and HTTP dependencies: the `tls = { ca_file, server_name }`
//! key, the rustls client configuration built from it, and what each connection's handshake
//! showed (the certificate chain's earliest not-after, the TLS version), for the certificate
//! families in `src/tls/metrics.rs`. What operators see is in docs/metrics.md#tls.
//!
//! reqwest hands a response only the leaf certificate (`TlsInfo`), so the whole chain is read
//! where rustls verifies it: a [`chain::RecordingVerifier`] wraps the verifier reqwest would use
//! and notes every chain it accepted, keyed by its leaf; a response's leaf then finds its chain.

pub mod chain;
pub mod config;
pub mod metrics;
pub mod observe;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};

pub use chain::{ChainBook, ChainFacts, RecordingVerifier};
pub use observe::{TlsObservation, TlsWatch};

/// The `tls` key of an `https` server or dependency: whom to trust and which name to verify.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct TlsSettings {
    /// PEM file of the certificate authorities to trust instead of the system's (a private CA).
    pub ca_file: Option<PathBuf>,
    /// The name the server's certificate must be valid for, instead of the URL's host.
    pub server_name: Option<String>,
}

impl TlsSettings {
    /// True when nothing is configured (the system's roots, the URL's host).
    pub fn is_default(&self) -> bool {
        self.ca_file.is_none() && self.server_name.is_none()
    }
}

/// Why a TLS client configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The CA file cannot be read.
    #[error("cannot read tls.ca_file {path}: {source}")]
    ReadCaFile {
        /// The configured path.
        path: PathBuf,
        /// What the file system said.
        #[source]
        source: std::io::Error,
    },
    /// The CA file holds no usable certificate.
    #[error("tls.ca_file {path} holds no PEM certificate the verifier accepts ({detail})")]
    NoCertificates {
        /// The configured path.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// `server_name` is neither a DNS name nor an IP address.
    #[error("tls.server_name {0:?} is not a DNS name or an IP address")]
    ServerName(String),
    /// rustls refused to build the verifier or the configuration.
    #[error("cannot build the TLS verifier: {0}")]
    Verifier(String),
}

/// The crypto provider every TLS client of the exporter uses (the one reqwest ships with).
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
}

/// Reads the certificates of a PEM CA file.
pub fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = std::fs::read(path).map_err(|source| TlsError::ReadCaFile {
        path: path.to_path_buf(),
        source,
    })?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::NoCertificates {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificates {
            path: path.to_path_buf(),
            detail: "no CERTIFICATE section".into(),
        });
    }
    Ok(certs)
}

/// Parses a configured `server_name`.
pub fn parse_server_name(name: &str) -> Result<ServerName<'static>, TlsError> {
    ServerName::try_from(name.to_string()).map_err(|_| TlsError::ServerName(name.to_string()))
}

/// The verifier `settings` call for: webpki over the CA file's certificates alone when
/// `ca_file` is set, else the platform verifier reqwest uses by default.
fn inner_verifier(settings: &TlsSettings) -> Result<Arc<dyn ServerCertVerifier>, TlsError> {
    let provider = provider();
    match &settings.ca_file {
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in read_ca_file(path)? {
                roots.add(cert).map_err(|e| TlsError::NoCertificates {
                    path: path.clone(),
                    detail: e.to_string(),
                })?;
            }
            let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsError::Verifier(e.to_string()))?;
            Ok(verifier)
        }
        None => Ok(Arc::new(
            rustls_platform_verifier::Verifier::new(provider)
                .map_err(|e| TlsError::Verifier(e.to_string()))?,
        )),
    }
}

/// A rustls client configuration for `settings` whose verifier notes every accepted chain in
/// `book`; ALPN offers HTTP/2 and HTTP/1.1, as reqwest's own configuration does.
pub fn client_config(
    settings: &TlsSettings,
    book: &Arc<ChainBook>,
) -> Result<rustls::ClientConfig, TlsError> {
    let name = settings
        .server_name
        .as_deref()
        .map(parse_server_name)
        .transpose()?;
    let verifier = RecordingVerifier::new(inner_verifier(settings)?, name, Arc::clone(book));
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Verifier(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

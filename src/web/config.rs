//! `--web.config.file`: the web configuration file of Prometheus' exporter-toolkit, so an
//! operator can reuse the file they already have for node_exporter.
//!
//! Supported: `tls_server_config` (`cert_file`, `key_file`, `client_auth_type`,
//! `client_ca_file`, `min_version`, `max_version`), `basic_auth_users` (bcrypt hashes) and
//! `http_server_config.headers`. `cipher_suites`, `curve_preferences` and
//! `prefer_server_cipher_suites` are accepted and ignored (rustls only offers modern suites).
//! Relative paths are relative to the web config file's directory, as in exporter-toolkit.
//! Unknown keys are errors.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

/// Why a web configuration file is unusable; names the file, the key and what to do.
#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read web configuration: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// YAML syntax error, unknown key or wrong type.
    #[error("{path}: invalid web configuration: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (with line and column).
        message: String,
    },
    /// A value is wrong.
    #[error("{path}: `{key}`: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Dotted key, e.g. `tls_server_config.cert_file`.
        key: String,
        /// What is wrong and what is expected.
        message: String,
    },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebConfig {
    tls_server_config: Option<RawTls>,
    http_server_config: Option<RawHttp>,
    #[serde(default)]
    basic_auth_users: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert_file: Option<String>,
    key_file: Option<String>,
    client_auth_type: Option<String>,
    client_ca_file: Option<String>,
    min_version: Option<String>,
    max_version: Option<String>,
    #[serde(default)]
    cipher_suites: Vec<String>,
    #[serde(default)]
    curve_preferences: Vec<String>,
    prefer_server_cipher_suites: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    http2: Option<bool>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

/// A validated web configuration.
#[derive(Clone)]
pub struct WebConfig {
    /// The file it came from.
    pub path: PathBuf,
    /// TLS server settings, when `tls_server_config` is present.
    pub tls: Option<Arc<ServerConfig>>,
    /// User name to bcrypt hash; empty means no authentication.
    pub users: BTreeMap<String, String>,
    /// Extra response headers.
    pub headers: Vec<(axum::http::HeaderName, axum::http::HeaderValue)>,
    /// Files the configuration depends on (itself, certificates, keys, CA), for change detection.
    pub files: Vec<PathBuf>,
    /// Settings accepted but ignored, to log once.
    pub ignored: Vec<String>,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("path", &self.path)
            .field("tls", &self.tls.is_some())
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Parses and validates the YAML text of a web configuration (no file access); for fuzzing
/// and tests. Returns the raw structure's user table.
pub fn parse_users(text: &str) -> Result<BTreeMap<String, String>, String> {
    let raw: RawWebConfig = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
    Ok(raw.basic_auth_users)
}

impl WebConfig {
    /// Reads and validates `path`, loading certificates and keys.
    pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| WebConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let raw: RawWebConfig = if text.trim().is_empty() {
            RawWebConfig::default()
        } else {
            serde_yaml_ng::from_str(&text).map_err(|e| WebConfigError::Parse {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?
        };
        let invalid = |key: &str, message: String| WebConfigError::Invalid {
            path: path.to_path_buf(),
            key: key.to_string(),
            message,
        };
        let base = path.parent().unwrap_or(Path::new("."));
        let resolve = |p: &str| {
            let p = PathBuf::from(p);
            if p.is_absolute() { p } else { base.join(p) }
        };
        let mut files = vec![path.to_path_buf()];
        let mut ignored = Vec::new();

        for (user, hash) in &raw.basic_auth_users {
            if user.contains(':') {
                return Err(invalid(
                    &format!("basic_auth_users.{user}"),
                    "a user name must not contain ':'".into(),
                ));
            }
            if <bcrypt::HashParts as std::str::FromStr>::from_str(hash).is_err() {
                return Err(invalid(
                    &format!("basic_auth_users.{user}"),
                    "is not a bcrypt hash; expected e.g. \"$2y$10$...\" (make one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`)".into(),
                ));
            }
        }

        let tls = match raw.tls_server_config {
            None => None,
            Some(t) => {
                if !t.cipher_suites.is_empty() {
                    ignored.push("tls_server_config.cipher_suites".to_string());
                }
                if !t.curve_preferences.is_empty() {
                    ignored.push("tls_server_config.curve_preferences".to_string());
                }
                if t.prefer_server_cipher_suites.is_some() {
                    ignored.push("tls_server_config.prefer_server_cipher_suites".to_string());
                }
                let cert_file = t.cert_file.ok_or_else(|| {
                    invalid(
                        "tls_server_config.cert_file",
                        "missing; TLS needs a certificate (PEM) and its key".into(),
                    )
                })?;
                let key_file = t.key_file.ok_or_else(|| {
                    invalid(
                        "tls_server_config.key_file",
                        "missing; TLS needs a certificate (PEM) and its key".into(),
                    )
                })?;
                let cert_path = resolve(&cert_file);
                let key_path = resolve(&key_file);
                let certs: Vec<CertificateDer<'static>> =
                    read_pem_certs(&cert_path).map_err(|m| {
                        invalid(
                            "tls_server_config.cert_file",
                            format!("{}: {m}", cert_path.display()),
                        )
                    })?;
                let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| {
                    invalid(
                        "tls_server_config.key_file",
                        format!("{}: no usable PEM private key ({e})", key_path.display()),
                    )
                })?;
                files.push(cert_path);
                files.push(key_path);

                let versions = tls_versions(t.min_version.as_deref(), t.max_version.as_deref())
                    .map_err(|(k, m)| invalid(k, m))?;
                let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
                let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
                    .with_protocol_versions(&versions)
                    .map_err(|e| invalid("tls_server_config.min_version", e.to_string()))?;

                let auth_type = match (&t.client_auth_type, &t.client_ca_file) {
                    (Some(a), _) => a.as_str(),
                    (None, Some(_)) => "RequireAndVerifyClientCert",
                    (None, None) => "NoClientCert",
                };
                let roots = match &t.client_ca_file {
                    Some(ca) => {
                        let ca_path = resolve(ca);
                        let mut roots = rustls::RootCertStore::empty();
                        for cert in read_pem_certs(&ca_path).map_err(|m| {
                            invalid(
                                "tls_server_config.client_ca_file",
                                format!("{}: {m}", ca_path.display()),
                            )
                        })? {
                            roots.add(cert).map_err(|e| {
                                invalid("tls_server_config.client_ca_file", e.to_string())
                            })?;
                        }
                        files.push(ca_path);
                        Some(Arc::new(roots))
                    }
                    None => None,
                };
                let builder = match auth_type {
                    "NoClientCert" => builder.with_no_client_auth(),
                    "VerifyClientCertIfGiven" | "RequireAndVerifyClientCert" => {
                        let Some(roots) = roots else {
                            return Err(invalid(
                                "tls_server_config.client_ca_file",
                                format!(
                                    "missing; client_auth_type {auth_type} needs the CA that signs client certificates"
                                ),
                            ));
                        };
                        let mut verifier = WebPkiClientVerifier::builder_with_provider(
                            roots,
                            Arc::clone(&provider),
                        );
                        if auth_type == "VerifyClientCertIfGiven" {
                            verifier = verifier.allow_unauthenticated();
                        }
                        let verifier = verifier.build().map_err(|e| {
                            invalid("tls_server_config.client_ca_file", e.to_string())
                        })?;
                        builder.with_client_cert_verifier(verifier)
                    }
                    "RequestClientCert" | "RequireAnyClientCert" => {
                        return Err(invalid(
                            "tls_server_config.client_auth_type",
                            format!(
                                "{auth_type} (a client certificate that is not verified) is not supported; use VerifyClientCertIfGiven or RequireAndVerifyClientCert with client_ca_file"
                            ),
                        ));
                    }
                    other => {
                        return Err(invalid(
                            "tls_server_config.client_auth_type",
                            format!(
                                "unknown value {other:?}; expected NoClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert"
                            ),
                        ));
                    }
                };
                let mut config = builder.with_single_cert(certs, key).map_err(|e| {
                    invalid(
                        "tls_server_config.key_file",
                        format!("the key does not fit the certificate: {e}"),
                    )
                })?;
                let http2 = raw
                    .http_server_config
                    .as_ref()
                    .and_then(|h| h.http2)
                    .unwrap_or(true);
                config.alpn_protocols = if http2 {
                    vec![b"h2".to_vec(), b"http/1.1".to_vec()]
                } else {
                    vec![b"http/1.1".to_vec()]
                };
                Some(Arc::new(config))
            }
        };

        let mut headers = Vec::new();
        if let Some(http) = &raw.http_server_config {
            for (name, value) in &http.headers {
                let key = format!("http_server_config.headers.{name}");
                let n = axum::http::HeaderName::from_bytes(name.as_bytes())
                    .map_err(|e| invalid(&key, e.to_string()))?;
                let v = axum::http::HeaderValue::from_str(value)
                    .map_err(|e| invalid(&key, e.to_string()))?;
                headers.push((n, v));
            }
        }
        Ok(WebConfig {
            path: path.to_path_buf(),
            tls,
            users: raw.basic_auth_users,
            headers,
            files,
            ignored,
        })
    }

    /// Modification times of every file the configuration depends on (None when unreadable).
    pub fn fingerprint(&self) -> Vec<Option<SystemTime>> {
        self.files
            .iter()
            .map(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok())
            .collect()
    }
}

fn read_pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read certificates ({e})"))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("invalid PEM certificate ({e})"))?;
    if certs.is_empty() {
        return Err("no PEM certificate found".into());
    }
    Ok(certs)
}

type VersionError = (&'static str, String);

fn tls_versions(
    min: Option<&str>,
    max: Option<&str>,
) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, VersionError> {
    let rank = |key: &'static str, v: Option<&str>, default: u8| match v {
        None => Ok(default),
        Some("TLS12") => Ok(12),
        Some("TLS13") => Ok(13),
        Some(other @ ("TLS10" | "TLS11")) => Err((
            key,
            format!("{other} is not supported (insecure); use TLS12 or TLS13"),
        )),
        Some(other) => Err((
            key,
            format!("unknown version {other:?}; expected TLS12 or TLS13"),
        )),
    };
    let lo = rank("tls_server_config.min_version", min, 12)?;
    let hi = rank("tls_server_config.max_version", max, 13)?;
    if lo > hi {
        return Err((
            "tls_server_config.max_version",
            "is lower than min_version".into(),
        ));
    }
    let mut out = Vec::new();
    if lo <= 12 {
        out.push(&rustls::version::TLS12);
    }
    if hi >= 13 {
        out.push(&rustls::version::TLS13);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).expect("write");
        p
    }

    #[test]
    fn empty_file_means_no_tls_and_no_auth() {
        let dir = tempfile::tempdir().expect("dir");
        let p = write(dir.path(), "web.yml", "");
        let c = WebConfig::load(&p).expect("valid");
        assert!(c.tls.is_none() && c.users.is_empty());
    }

    #[test]
    fn unknown_keys_and_bad_hashes_are_precise_errors() {
        let dir = tempfile::tempdir().expect("dir");
        let p = write(dir.path(), "web.yml", "tls_server_confg:\n  cert_file: x\n");
        let err = WebConfig::load(&p).expect_err("unknown key").to_string();
        assert!(err.contains("tls_server_confg"), "{err}");
        let p = write(dir.path(), "web.yml", "basic_auth_users:\n  alice: plain\n");
        let err = WebConfig::load(&p).expect_err("bad hash").to_string();
        assert!(
            err.contains("`basic_auth_users.alice`") && err.contains("bcrypt"),
            "{err}"
        );
        let p = write(
            dir.path(),
            "web.yml",
            "tls_server_config:\n  key_file: k.pem\n",
        );
        let err = WebConfig::load(&p).expect_err("no cert").to_string();
        assert!(
            err.contains("`tls_server_config.cert_file`: missing"),
            "{err}"
        );
        let p = write(
            dir.path(),
            "web.yml",
            "tls_server_config:\n  cert_file: nope.pem\n  key_file: k.pem\n",
        );
        let err = WebConfig::load(&p).expect_err("no file").to_string();
        assert!(err.contains("nope.pem"), "{err}");
    }

    #[test]
    fn tls_versions_are_checked() {
        assert_eq!(tls_versions(None, None).map(|v| v.len()), Ok(2));
        assert_eq!(tls_versions(Some("TLS13"), None).map(|v| v.len()), Ok(1));
        assert!(tls_versions(Some("TLS10"), None).is_err());
        assert!(tls_versions(Some("TLS13"), Some("TLS12")).is_err());
    }
}

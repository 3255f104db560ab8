//! The `tls = { ca_file = "...", server_name = "..." }` key of an `https` server
//! (`[[servers]]`) or HTTP dependency (`[[dependencies]]`): its TOML shape and validation.

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::{TlsSettings, parse_server_name, read_ca_file};
use crate::config::{KeyError, SourceText};

/// The TOML shape of a `tls` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    ca_file: Option<Spanned<PathBuf>>,
    server_name: Option<Spanned<String>>,
}

/// Validates a `tls` table for `url`: only `https` URLs take one, the CA file must hold at least
/// one PEM certificate now (it is read again whenever a client is built), and `server_name`
/// must be a DNS name or an IP address. Keys of errors are `tls.…`.
pub fn validate(
    raw: Spanned<RawTls>,
    url: &url::Url,
    src: &SourceText<'_>,
) -> Result<TlsSettings, KeyError> {
    let at = raw.span().start;
    let raw = raw.into_inner();
    if url.scheme() != "https" {
        return Err(src.key_error(
            at,
            "tls",
            format!("applies to https URLs only; {url} is {}://", url.scheme()),
        ));
    }
    let ca_file = match raw.ca_file {
        Some(path) => {
            let offset = path.span().start;
            let path = path.into_inner();
            read_ca_file(&path).map_err(|e| src.key_error(offset, "tls.ca_file", e.to_string()))?;
            Some(path)
        }
        None => None,
    };
    let server_name = match raw.server_name {
        Some(name) => {
            let offset = name.span().start;
            let name = name.into_inner();
            parse_server_name(&name)
                .map_err(|e| src.key_error(offset, "tls.server_name", e.to_string()))?;
            Some(name)
        }
        None => None,
    };
    Ok(TlsSettings {
        ca_file,
        server_name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Doc {
        tls: Spanned<RawTls>,
    }

    fn check(text: &str, url: &str) -> Result<TlsSettings, KeyError> {
        let doc: Doc = toml::from_str(text).expect("toml");
        validate(
            doc.tls,
            &url::Url::parse(url).expect("url"),
            &SourceText::new(text),
        )
    }

    #[test]
    fn a_ca_file_and_a_server_name_are_checked_when_loaded() {
        let dir = tempfile::tempdir().expect("dir");
        let key = rcgen::KeyPair::generate().expect("key");
        let ca = rcgen::CertificateParams::new(vec!["ca.test".to_string()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        let good = dir.path().join("ca.pem");
        std::fs::write(&good, ca.pem()).expect("write");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").expect("write");
        let text = format!(
            "tls = {{ ca_file = {:?}, server_name = \"mcp.internal\" }}",
            good.display().to_string()
        );
        let ok = check(&text, "https://127.0.0.1:8443/mcp").expect("valid");
        assert_eq!(ok.ca_file.as_deref(), Some(good.as_path()));
        assert_eq!(ok.server_name.as_deref(), Some("mcp.internal"));

        let plain = check(&text, "http://127.0.0.1:8443/mcp").expect_err("http");
        assert_eq!(plain.key, "tls");
        let text = format!("tls = {{ ca_file = {:?} }}", empty.display().to_string());
        let no_cert = check(&text, "https://h/").expect_err("no cert");
        assert_eq!(no_cert.key, "tls.ca_file");
        let missing = check("tls = { ca_file = \"/nonexistent/ca.pem\" }", "https://h/")
            .expect_err("missing");
        assert!(missing.message.contains("cannot read"), "{missing}");
        let name =
            check("tls = { server_name = \"not a name\" }", "https://h/").expect_err("bad name");
        assert_eq!(name.key, "tls.server_name");
        let unknown: Result<Doc, _> = toml::from_str("tls = { insecure = true }");
        assert!(unknown.is_err(), "unknown keys are refused");
    }
}

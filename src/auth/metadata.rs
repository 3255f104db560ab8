//! Fetching the two metadata documents of a protected MCP server: protected-resource metadata
//! (RFC 9728) and authorization-server metadata (RFC 8414 / OpenID Connect Discovery), with
//! the issuer check of RFC 8414 section 3.3.

use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::time::{Instant, timeout_at};
use url::Url;

/// Largest metadata document read.
const MAX_DOCUMENT_BYTES: usize = 256 * 1024;
/// Longest one metadata request may take, within the probe's deadline.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// RFC 9728 protected-resource metadata (the fields the prober uses).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ResourceMetadata {
    /// The resource identifier: the RFC 8707 `resource` of token requests.
    pub resource: Option<String>,
    /// Issuer URLs of the authorization servers that issue tokens for it.
    #[serde(default)]
    pub authorization_servers: Vec<String>,
    /// Scopes the resource understands.
    pub scopes_supported: Option<Vec<String>>,
}

/// RFC 8414 authorization-server metadata (the fields the prober uses).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ServerMetadata {
    /// The issuer; must equal the URL it was discovered from.
    pub issuer: String,
    /// Where tokens are requested.
    pub token_endpoint: Option<String>,
    /// Where a person authorizes (authorization-code grant).
    pub authorization_endpoint: Option<String>,
    /// Grants it supports (RFC 8414 default: authorization_code and implicit).
    pub grant_types_supported: Option<Vec<String>>,
    /// Client authentication methods at the token endpoint (default: client_secret_basic).
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
    /// Scopes it issues.
    pub scopes_supported: Option<Vec<String>>,
    /// DPoP proof algorithms it accepts (RFC 9449 section 5.1); absent: no DPoP.
    pub dpop_signing_alg_values_supported: Option<Vec<String>>,
    /// RFC 7591 dynamic client registration endpoint.
    pub registration_endpoint: Option<String>,
    /// PKCE methods it accepts (RFC 7636); `mcp-exporter login` refuses a list without `S256`.
    pub code_challenge_methods_supported: Option<Vec<String>>,
    /// RFC 9207: the authorization response carries `iss`.
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
    /// It accepts an HTTPS URL of a client ID metadata document as `client_id`.
    #[serde(default)]
    pub client_id_metadata_document_supported: bool,
}

/// Why a metadata document could not be had.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// The host did not answer, or answered 5xx: the authorization infrastructure is down.
    #[error("{url}: {detail}")]
    Unreachable {
        /// The document's URL.
        url: String,
        /// What went wrong.
        detail: String,
    },
    /// It answered with something that is not the document.
    #[error("{url}: {detail}")]
    Invalid {
        /// The document's URL.
        url: String,
        /// What is wrong with it.
        detail: String,
    },
    /// No candidate URL had the document.
    #[error("no {document} found (tried {})", tried.join(", "))]
    NotFound {
        /// Which document.
        document: &'static str,
        /// The URLs tried, in order.
        tried: Vec<String>,
    },
    /// The authorization server's metadata names another issuer (RFC 8414 section 3.3).
    #[error(
        "authorization server metadata at {url} states issuer {stated:?}, not {expected:?}; refusing it"
    )]
    IssuerMismatch {
        /// The document's URL.
        url: String,
        /// The issuer it was discovered for.
        expected: String,
        /// The issuer it states.
        stated: String,
    },
}

impl MetadataError {
    /// True when the failure is the authorization infrastructure being down (not a refusal or
    /// a configuration mistake).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, MetadataError::Unreachable { .. })
    }
}

/// Fetches one JSON document: `Ok(None)` when the URL has none (a 4xx), an error when the host
/// is unreachable, answers 5xx, or sends something that is not the document.
pub async fn fetch<T: DeserializeOwned>(
    http: &reqwest::Client,
    url: &Url,
    deadline: Instant,
) -> Result<Option<T>, MetadataError> {
    let until = deadline.min(Instant::now() + REQUEST_TIMEOUT);
    let unreachable = |detail: String| MetadataError::Unreachable {
        url: url.to_string(),
        detail,
    };
    let sent = timeout_at(
        until,
        http.get(url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .send(),
    )
    .await
    .map_err(|_| unreachable("no answer in time".into()))?
    .map_err(|e| unreachable(error_chain(&e)))?;
    let status = sent.status();
    if status.is_server_error() {
        return Err(unreachable(format!("HTTP {}", status.as_u16())));
    }
    if !status.is_success() {
        return Ok(None);
    }
    let body = timeout_at(until, read_limited(sent))
        .await
        .map_err(|_| unreachable("body not read in time".into()))?
        .map_err(|detail| MetadataError::Invalid {
            url: url.to_string(),
            detail,
        })?;
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|e| MetadataError::Invalid {
            url: url.to_string(),
            detail: format!("not a metadata document: {e}"),
        })
}

/// The first candidate that has protected-resource metadata.
pub async fn protected_resource(
    http: &reqwest::Client,
    candidates: &[Url],
    deadline: Instant,
) -> Result<(Url, ResourceMetadata), MetadataError> {
    for url in candidates {
        if let Some(doc) = fetch::<ResourceMetadata>(http, url, deadline).await? {
            return Ok((url.clone(), doc));
        }
    }
    Err(MetadataError::NotFound {
        document: "protected resource metadata",
        tried: candidates.iter().map(Url::to_string).collect(),
    })
}

/// The first candidate that has authorization-server metadata for `issuer`, whose stated
/// issuer must be `issuer` itself.
pub async fn authorization_server(
    http: &reqwest::Client,
    issuer: &str,
    candidates: &[Url],
    deadline: Instant,
) -> Result<ServerMetadata, MetadataError> {
    for url in candidates {
        if let Some(doc) = fetch::<ServerMetadata>(http, url, deadline).await? {
            check_issuer(url, issuer, &doc)?;
            return Ok(doc);
        }
    }
    Err(MetadataError::NotFound {
        document: "authorization server metadata",
        tried: candidates.iter().map(Url::to_string).collect(),
    })
}

/// RFC 8414 section 3.3: the `issuer` stated must be identical to the one discovered.
pub fn check_issuer(url: &Url, expected: &str, doc: &ServerMetadata) -> Result<(), MetadataError> {
    if doc.issuer == expected {
        Ok(())
    } else {
        Err(MetadataError::IssuerMismatch {
            url: url.to_string(),
            expected: expected.to_string(),
            stated: doc.issuer.clone(),
        })
    }
}

async fn read_limited(mut resp: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| error_chain(&e))? {
        if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
            return Err(format!("larger than {MAX_DOCUMENT_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// An error with its sources, one line.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuer_must_match_exactly() {
        let url = Url::parse("https://as/.well-known/oauth-authorization-server").unwrap();
        let doc = |issuer: &str| ServerMetadata {
            issuer: issuer.into(),
            ..ServerMetadata::default()
        };
        assert!(check_issuer(&url, "https://as", &doc("https://as")).is_ok());
        let err = check_issuer(&url, "https://as", &doc("https://evil.example")).unwrap_err();
        assert!(matches!(err, MetadataError::IssuerMismatch { .. }), "{err}");
        assert!(check_issuer(&url, "https://as", &doc("https://as/")).is_err());
    }

    #[test]
    fn documents_parse_with_missing_optional_fields() {
        let prm: ResourceMetadata = serde_json::from_str(
            r#"{"resource":"https://h/mcp","authorization_servers":["https://as"]}"#,
        )
        .unwrap();
        assert_eq!(prm.authorization_servers, vec!["https://as".to_string()]);
        assert_eq!(prm.scopes_supported, None);
        let asm: ServerMetadata = serde_json::from_str(
            r#"{"issuer":"https://as","token_endpoint":"https://as/token","grant_types_supported":["client_credentials"]}"#,
        )
        .unwrap();
        assert_eq!(asm.token_endpoint.as_deref(), Some("https://as/token"));
    }
}

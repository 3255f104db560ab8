//! How `mcp-exporter login` gets a client when none is configured (docs/auth.md#login): a
//! client ID metadata document the operator hosts (its HTTPS URL is the client id) when the
//! authorization server accepts them, else dynamic client registration (RFC 7591) at its
//! `registration_endpoint`, as a public native client with the loopback redirect URI.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::{Instant, timeout_at};
use url::Url;

use super::metadata::error_chain;

/// The `client_name` registered and written in the metadata document.
pub const CLIENT_NAME: &str = "mcp-exporter";
/// Longest the registration request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest registration response read.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// The client metadata of a registration (RFC 7591 section 2) or of a client ID metadata
/// document (which adds `client_id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientMetadata {
    /// The client id: only in a metadata document, where it is the document's own URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// `mcp-exporter`.
    pub client_name: &'static str,
    /// The loopback redirect URIs (RFC 8252 section 7.3).
    pub redirect_uris: Vec<String>,
    /// `authorization_code` and `refresh_token`.
    pub grant_types: [&'static str; 2],
    /// `code`.
    pub response_types: [&'static str; 1],
    /// `none`: a public client, its proof is PKCE.
    pub token_endpoint_auth_method: &'static str,
    /// `native` (a program on the operator's machine).
    pub application_type: &'static str,
}

impl ClientMetadata {
    /// The metadata of the prober's client with `redirect_uris`.
    pub fn new(client_id: Option<String>, redirect_uris: Vec<String>) -> Self {
        ClientMetadata {
            client_id,
            client_name: CLIENT_NAME,
            redirect_uris,
            grant_types: ["authorization_code", "refresh_token"],
            response_types: ["code"],
            token_endpoint_auth_method: "none",
            application_type: "native",
        }
    }
}

/// The client ID metadata document to host at `url` (printed by `mcp-exporter login
/// --print-client-metadata`): any port of the loopback redirect is accepted by RFC 8252, so the
/// document names the redirect without one.
pub fn metadata_document(url: &Url) -> serde_json::Value {
    let doc = ClientMetadata::new(
        Some(url.to_string()),
        vec![format!(
            "http://127.0.0.1{}",
            super::authorization_code::CALLBACK_PATH
        )],
    );
    serde_json::to_value(doc).unwrap_or_default()
}

/// What the registration endpoint issued (RFC 7591 section 3.2.1).
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct Registered {
    /// The client id.
    pub client_id: String,
    /// A secret, when the server issued one despite `none`.
    pub client_secret: Option<String>,
    /// The method the server registered, when it says.
    pub token_endpoint_auth_method: Option<String>,
}

impl std::fmt::Debug for Registered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registered")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// Why registration failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    /// The endpoint did not answer, or answered 5xx.
    #[error("registration endpoint {endpoint}: {detail}")]
    Unreachable {
        /// The endpoint.
        endpoint: String,
        /// What went wrong.
        detail: String,
    },
    /// It refused, or answered something that is not a registration.
    #[error("registration endpoint {endpoint}: {detail}")]
    Refused {
        /// The endpoint.
        endpoint: String,
        /// What it said.
        detail: String,
    },
}

/// Registers the prober's client at `endpoint` with `redirect_uri`.
pub async fn register(
    http: &reqwest::Client,
    endpoint: &Url,
    redirect_uri: &str,
    deadline: Instant,
) -> Result<Registered, RegistrationError> {
    let until = deadline.min(Instant::now() + REQUEST_TIMEOUT);
    let unreachable = |detail: String| RegistrationError::Unreachable {
        endpoint: endpoint.to_string(),
        detail,
    };
    let refused = |detail: String| RegistrationError::Refused {
        endpoint: endpoint.to_string(),
        detail,
    };
    let body = ClientMetadata::new(None, vec![redirect_uri.to_string()]);
    let mut resp = timeout_at(
        until,
        http.post(endpoint.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(&body).unwrap_or_default())
            .send(),
    )
    .await
    .map_err(|_| unreachable("no answer in time".into()))?
    .map_err(|e| unreachable(error_chain(&e)))?;
    let status = resp.status();
    if status.is_server_error() {
        return Err(unreachable(format!("HTTP {}", status.as_u16())));
    }
    let mut text = Vec::new();
    while let Some(chunk) = timeout_at(until, resp.chunk())
        .await
        .map_err(|_| unreachable("body not read in time".into()))?
        .map_err(|e| unreachable(error_chain(&e)))?
    {
        if text.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(refused(format!(
                "answer larger than {MAX_RESPONSE_BYTES} bytes"
            )));
        }
        text.extend_from_slice(&chunk);
    }
    if !status.is_success() {
        let said = serde_json::from_slice::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| {
                let error = v.get("error")?.as_str()?.to_string();
                let description = v
                    .get("error_description")
                    .and_then(|d| d.as_str())
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default();
                Some(format!("{error}{description}"))
            })
            .unwrap_or_else(|| "no OAuth error".into());
        return Err(refused(format!("HTTP {} ({said})", status.as_u16())));
    }
    serde_json::from_slice(&text).map_err(|e| refused(format!("not a registration: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_asks_for_a_public_native_client_with_refresh_tokens() {
        let body = serde_json::to_value(ClientMetadata::new(
            None,
            vec!["http://127.0.0.1:5000/callback".into()],
        ))
        .unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "client_name": "mcp-exporter",
                "redirect_uris": ["http://127.0.0.1:5000/callback"],
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "none",
                "application_type": "native",
            })
        );
    }

    #[test]
    fn the_metadata_document_names_itself() {
        let url = Url::parse("https://ops.example/mcp-exporter.json").unwrap();
        let doc = metadata_document(&url);
        assert_eq!(doc["client_id"], "https://ops.example/mcp-exporter.json");
        assert_eq!(doc["redirect_uris"][0], "http://127.0.0.1/callback");
        assert_eq!(doc["token_endpoint_auth_method"], "none");
    }

    #[test]
    fn registrations_parse_with_or_without_a_secret() {
        let r: Registered =
            serde_json::from_str(r#"{"client_id":"c1","client_name":"x"}"#).unwrap();
        assert_eq!(r.client_id, "c1");
        assert_eq!(r.client_secret, None);
        let r: Registered =
            serde_json::from_str(r#"{"client_id":"c2","client_secret":"s","token_endpoint_auth_method":"client_secret_basic"}"#)
                .unwrap();
        assert_eq!(r.client_secret.as_deref(), Some("s"));
        assert!(!format!("{r:?}").contains("\"s\""));
    }
}

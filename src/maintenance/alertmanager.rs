//! The Alertmanager client of maintenance windows (API v2): a window creates a silence of its
//! server's alerts until its end; ending a window early expires the silence. Security alerts
//! (MCPSecurityIncident, MCPMajorSecurityIncident) are left out of the silence: maintenance
//! never hides an attack (docs/runbooks/README.md).

use std::time::{Duration, SystemTime};

use serde::Deserialize;
use serde_json::json;

use super::window::{Scope, Window};
use crate::settings::AlertmanagerConfig;

/// `createdBy` of every silence the exporter makes.
pub const CREATED_BY: &str = "mcp-exporter";
/// Alerts a maintenance silence never covers (a regular expression on `alertname`).
pub const NEVER_SILENCED: &str = "MCPSecurityIncident|MCPMajorSecurityIncident";

/// Why a request to Alertmanager failed.
#[derive(Debug, thiserror::Error)]
pub enum AlertmanagerError {
    /// No answer (connection refused, timeout, TLS...).
    #[error("cannot reach Alertmanager at {url}: {source}")]
    Unreachable {
        /// The request's URL.
        url: String,
        /// Cause.
        source: reqwest::Error,
    },
    /// An answer other than success.
    #[error("Alertmanager at {url} answered {status}: {body}")]
    Refused {
        /// The request's URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// The start of its body.
        body: String,
    },
    /// A success whose body is not what API v2 promises.
    #[error("Alertmanager at {url} answered something that is not a silence id: {body}")]
    Unexpected {
        /// The request's URL.
        url: String,
        /// The start of its body.
        body: String,
    },
}

/// Talks to one Alertmanager.
#[derive(Debug, Clone)]
pub struct Alertmanager {
    base: String,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct Created {
    #[serde(rename = "silenceID")]
    silence_id: String,
}

/// The API v2 body of the silence of `window`.
pub fn silence_body(window: &Window) -> serde_json::Value {
    let server = match window.scope() {
        Scope::Server(name) => {
            json!({"name": "server", "value": name, "isRegex": false, "isEqual": true})
        }
        Scope::All => json!({"name": "server", "value": ".+", "isRegex": true, "isEqual": true}),
    };
    let time = |unix: f64| {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs_f64(unix.max(0.0));
        humantime::format_rfc3339_millis(at).to_string()
    };
    json!({
        "matchers": [
            server,
            {"name": "alertname", "value": NEVER_SILENCED, "isRegex": true, "isEqual": false},
        ],
        "startsAt": time(window.starts_at),
        "endsAt": time(window.ends_at),
        "createdBy": CREATED_BY,
        "comment": format!("mcp-exporter maintenance window {} ({}): {}", window.id, window.scope(), window.reason),
    })
}

fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    text.chars()
        .take(200)
        .collect::<String>()
        .trim()
        .to_string()
}

impl Alertmanager {
    /// A client of the Alertmanager `config` names.
    pub fn new(config: &AlertmanagerConfig) -> Result<Alertmanager, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .build()?;
        Ok(Alertmanager {
            base: config.url.as_str().trim_end_matches('/').to_string(),
            http,
        })
    }

    /// Creates the silence of `window`; returns its id.
    pub async fn create_silence(&self, window: &Window) -> Result<String, AlertmanagerError> {
        let url = format!("{}/api/v2/silences", self.base);
        let body = silence_body(window).to_string();
        let response = self
            .http
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|source| AlertmanagerError::Unreachable {
                url: url.clone(),
                source,
            })?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|source| AlertmanagerError::Unreachable {
                url: url.clone(),
                source,
            })?;
        if !status.is_success() {
            return Err(AlertmanagerError::Refused {
                url,
                status: status.as_u16(),
                body: excerpt(&bytes),
            });
        }
        serde_json::from_slice::<Created>(&bytes)
            .map(|c| c.silence_id)
            .map_err(|_| AlertmanagerError::Unexpected {
                url,
                body: excerpt(&bytes),
            })
    }

    /// Expires silence `id` now. An id Alertmanager no longer knows is not an error (it was
    /// expired or deleted already).
    pub async fn expire_silence(&self, id: &str) -> Result<(), AlertmanagerError> {
        let url = format!("{}/api/v2/silence/{id}", self.base);
        let response = self.http.delete(&url).send().await.map_err(|source| {
            AlertmanagerError::Unreachable {
                url: url.clone(),
                source,
            }
        })?;
        let status = response.status();
        if status.is_success() || status == reqwest::StatusCode::NOT_FOUND {
            return Ok(());
        }
        let body = response.bytes().await.unwrap_or_default();
        Err(AlertmanagerError::Refused {
            url,
            status: status.as_u16(),
            body: excerpt(&body),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(server: Option<&str>) -> Window {
        Window {
            id: 7,
            server: server.map(String::from),
            starts_at: 1_800_000_000.0,
            ends_at: 1_800_003_600.5,
            reason: "kernel upgrade".into(),
            ended_early: false,
            silence_id: None,
        }
    }

    #[test]
    fn the_silence_matches_the_server_spares_security_and_spans_the_window() {
        let body = silence_body(&window(Some("db")));
        assert_eq!(body["matchers"][0]["name"], "server");
        assert_eq!(body["matchers"][0]["value"], "db");
        assert_eq!(body["matchers"][0]["isRegex"], false);
        assert_eq!(body["matchers"][1]["name"], "alertname");
        assert_eq!(body["matchers"][1]["isEqual"], false);
        assert_eq!(body["matchers"][1]["value"], NEVER_SILENCED);
        assert_eq!(body["startsAt"], "2027-01-15T08:00:00.000Z");
        assert_eq!(body["endsAt"], "2027-01-15T09:00:00.500Z");
        assert_eq!(body["createdBy"], CREATED_BY);
        let comment = body["comment"].as_str().unwrap();
        assert!(comment.contains("window 7") && comment.contains("kernel upgrade"));
        let all = silence_body(&window(None));
        assert_eq!(all["matchers"][0]["value"], ".+");
        assert_eq!(all["matchers"][0]["isRegex"], true);
    }

    #[tokio::test]
    async fn an_unreachable_alertmanager_is_an_error_naming_it() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let config = AlertmanagerConfig {
            url: url::Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap(),
            timeout: Duration::from_secs(2),
        };
        let am = Alertmanager::new(&config).unwrap();
        let err = am.create_silence(&window(Some("db"))).await.unwrap_err();
        assert!(
            matches!(err, AlertmanagerError::Unreachable { .. }),
            "{err}"
        );
        assert!(err.to_string().contains(&format!("127.0.0.1:{port}")));
    }
}

//! `[alertmanager]`: where maintenance windows create their silences (Alertmanager API v2,
//! src/maintenance/alertmanager.rs). Absent: windows only silence the bundled rules through
//! `mcp_server_maintenance` (docs/metrics.md#maintenance).

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::config::{KeyError, SourceText};

/// How long one request to Alertmanager may take unless `timeout` says otherwise.
pub const DEFAULT_ALERTMANAGER_TIMEOUT: Duration = Duration::from_secs(5);

/// `[alertmanager]` as written in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlertmanager {
    url: Option<Spanned<String>>,
    #[serde(default, with = "crate::config::duration::opt_duration")]
    timeout: Option<Duration>,
}

/// `[alertmanager]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertmanagerConfig {
    /// Base URL of Alertmanager (`http://alertmanager:9093`); the API is under `/api/v2/`.
    pub url: url::Url,
    /// Longest wait for one request.
    pub timeout: Duration,
}

impl AlertmanagerConfig {
    /// Validates `[alertmanager]`: `None` when the table sets no `url`.
    pub fn from_raw(
        raw: RawAlertmanager,
        src: &SourceText<'_>,
    ) -> Result<Option<AlertmanagerConfig>, KeyError> {
        let Some(url) = raw.url else {
            if raw.timeout.is_some() {
                let at = src.text().find("[alertmanager]").unwrap_or(0);
                return Err(src.key_error(
                    at,
                    "alertmanager.url",
                    "missing; `timeout` needs the Alertmanager to talk to, e.g. url = \"http://127.0.0.1:9093\"",
                ));
            }
            return Ok(None);
        };
        let invalid =
            |message: String| src.key_error(url.span().start, "alertmanager.url", message);
        let text = url.get_ref();
        let parsed = url::Url::parse(text).map_err(|e| {
            invalid(format!(
                "{text:?} is not a URL ({e}); expected e.g. \"http://127.0.0.1:9093\""
            ))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
            return Err(invalid(format!(
                "{text:?} is not an http(s) URL with a host; expected e.g. \"http://127.0.0.1:9093\""
            )));
        }
        Ok(Some(AlertmanagerConfig {
            url: parsed,
            timeout: raw.timeout.unwrap_or(DEFAULT_ALERTMANAGER_TIMEOUT),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<Option<AlertmanagerConfig>, KeyError> {
        #[derive(Deserialize)]
        struct File {
            alertmanager: RawAlertmanager,
        }
        let file: File = toml::from_str(text).expect("parses");
        AlertmanagerConfig::from_raw(file.alertmanager, &SourceText::new(text))
    }

    #[test]
    fn url_and_timeout_are_validated() {
        let c = check("[alertmanager]\nurl = \"http://127.0.0.1:9093/am\"\n")
            .expect("valid")
            .expect("configured");
        assert_eq!(c.url.as_str(), "http://127.0.0.1:9093/am");
        assert_eq!(c.timeout, DEFAULT_ALERTMANAGER_TIMEOUT);
        let c = check("[alertmanager]\nurl = \"https://am.example\"\ntimeout = \"2s\"\n")
            .expect("valid")
            .expect("configured");
        assert_eq!(c.timeout, Duration::from_secs(2));
        assert_eq!(check("[alertmanager]\n").expect("valid"), None);
        let err = check("[alertmanager]\nurl = \"am:9093\"\n").expect_err("no scheme");
        assert_eq!(err.key, "alertmanager.url");
        assert_eq!(err.line, 2);
        let err = check("[alertmanager]\nurl = \"ftp://x\"\n").expect_err("ftp");
        assert!(err.message.contains("http(s)"), "{err}");
        let err = check("\n[alertmanager]\ntimeout = \"1s\"\n").expect_err("no url");
        assert_eq!((err.key.as_str(), err.line), ("alertmanager.url", 2));
    }
}

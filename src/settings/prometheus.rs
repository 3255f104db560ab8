//! `[prometheus]`: the Prometheus that scrapes this exporter. When set, `mcp-exporter report`
//! reads the resource trends and the alerts of its period from Prometheus' HTTP API (range
//! queries of our own series and of `ALERTS`, src/report/prometheus.rs) instead of the history
//! store. Absent: the report uses the store alone.

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::config::{KeyError, SourceText};

/// How long one query to Prometheus may take unless `timeout` says otherwise.
pub const DEFAULT_PROMETHEUS_TIMEOUT: Duration = Duration::from_secs(10);

/// `[prometheus]` as written in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrometheus {
    url: Option<Spanned<String>>,
    #[serde(default, with = "crate::config::duration::opt_duration")]
    timeout: Option<Duration>,
}

/// `[prometheus]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrometheusConfig {
    /// Base URL of Prometheus (`http://prometheus:9090`); the API is under `/api/v1/`.
    pub url: url::Url,
    /// Longest wait for one query.
    pub timeout: Duration,
}

impl PrometheusConfig {
    /// Validates `[prometheus]`: `None` when the table sets no `url`.
    pub fn from_raw(
        raw: RawPrometheus,
        src: &SourceText<'_>,
    ) -> Result<Option<PrometheusConfig>, KeyError> {
        let Some(url) = raw.url else {
            if raw.timeout.is_some() {
                let at = src.text().find("[prometheus]").unwrap_or(0);
                return Err(src.key_error(
                    at,
                    "prometheus.url",
                    "missing; `timeout` needs the Prometheus to query, e.g. url = \"http://127.0.0.1:9090\"",
                ));
            }
            return Ok(None);
        };
        let invalid = |message: String| src.key_error(url.span().start, "prometheus.url", message);
        let text = url.get_ref();
        let parsed = url::Url::parse(text).map_err(|e| {
            invalid(format!(
                "{text:?} is not a URL ({e}); expected e.g. \"http://127.0.0.1:9090\""
            ))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
            return Err(invalid(format!(
                "{text:?} is not an http(s) URL with a host; expected e.g. \"http://127.0.0.1:9090\""
            )));
        }
        Ok(Some(PrometheusConfig {
            url: parsed,
            timeout: raw.timeout.unwrap_or(DEFAULT_PROMETHEUS_TIMEOUT),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<Option<PrometheusConfig>, KeyError> {
        #[derive(Deserialize)]
        struct File {
            prometheus: RawPrometheus,
        }
        let file: File = toml::from_str(text).expect("parses");
        PrometheusConfig::from_raw(file.prometheus, &SourceText::new(text))
    }

    #[test]
    fn url_and_timeout_are_validated() {
        let c = check("[prometheus]\nurl = \"http://127.0.0.1:9090\"\n")
            .expect("valid")
            .expect("configured");
        assert_eq!(c.url.as_str(), "http://127.0.0.1:9090/");
        assert_eq!(c.timeout, DEFAULT_PROMETHEUS_TIMEOUT);
        assert_eq!(check("[prometheus]\n").expect("valid"), None);
        let err = check("[prometheus]\nurl = \"prom:9090\"\n").expect_err("no scheme");
        assert_eq!((err.key.as_str(), err.line), ("prometheus.url", 2));
        let err = check("\n[prometheus]\ntimeout = \"1s\"\n").expect_err("no url");
        assert_eq!((err.key.as_str(), err.line), ("prometheus.url", 2));
    }
}

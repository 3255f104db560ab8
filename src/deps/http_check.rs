//! `kind = "http"`: one request to an API the server needs (the playbook's GitHub and Brave
//! Search checks): status range, optional body match, header values from the environment, and
//! the API's rate-limit signals (`Retry-After`, `X-RateLimit-*`, `RateLimit-*`) read and exposed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use reqwest::header::HeaderMap;

use super::{DependencyCheck, DependencyFailure, DependencySpec, RateLimit, ms};
use crate::config::reference;
use crate::tls::{ChainBook, TlsError, TlsSettings};

/// Most of a body read for `body_contains`.
const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Back-off after a 429 that did not say how long to wait.
pub(super) const DEFAULT_RATE_LIMIT_BACKOFF: Duration = Duration::from_secs(60);
/// Longest back-off honoured, whatever the API asks.
const MAX_BACKOFF: Duration = Duration::from_secs(6 * 3600);

/// The clients HTTP dependencies share: one per distinct `tls` setting, each with the book its
/// verifier notes certificate chains in. No redirects (a moved API is reported), a recognisable
/// User-Agent (GitHub requires one).
#[derive(Debug, Default)]
pub struct HttpClients {
    clients: Mutex<HashMap<TlsSettings, (reqwest::Client, Arc<ChainBook>)>>,
}

impl HttpClients {
    /// The client for `tls` (built on first use) and its chain book.
    pub fn client_for(
        &self,
        tls: &TlsSettings,
    ) -> Result<(reqwest::Client, Arc<ChainBook>), TlsError> {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((client, book)) = clients.get(tls) {
            return Ok((client.clone(), Arc::clone(book)));
        }
        let book = Arc::new(ChainBook::default());
        let config = crate::tls::client_config(tls, &book)?;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("mcp-exporter/", env!("CARGO_PKG_VERSION")))
            .tls_backend_preconfigured(config)
            .tls_info(true)
            .build()
            .map_err(|e| TlsError::Verifier(e.to_string()))?;
        clients.insert(tls.clone(), (client.clone(), Arc::clone(&book)));
        Ok((client, book))
    }

    /// Forgets every client, so the next checks build new ones (and read CA files again).
    pub fn clear(&self) {
        self.clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

/// Sends the request and judges the answer.
pub(super) async fn check(
    spec: &DependencySpec,
    clients: &HttpClients,
    timeout: Duration,
    started_at: SystemTime,
) -> DependencyCheck {
    let mut result = DependencyCheck::healthy(started_at);
    let DependencySpec::Http {
        method,
        url,
        headers,
        expect_status,
        body_contains,
        tls,
    } = spec
    else {
        result.fail(DependencyFailure::Misconfigured, "not an http dependency");
        return result;
    };
    let (client, book) = match clients.client_for(tls) {
        Ok(pair) => pair,
        Err(err) => {
            result.fail(DependencyFailure::Misconfigured, err.to_string());
            return result;
        }
    };
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::GET);
    let mut request = client.request(method, url.clone()).timeout(timeout);
    for (name, value) in headers {
        match reference::expand(value, |v| std::env::var(v).map_err(|_| v.to_string())) {
            Ok(v) => request = request.header(name.as_str(), v),
            Err(var) => {
                result.fail(
                    DependencyFailure::Misconfigured,
                    format!("environment variable `{var}` (referenced by header {name}) is not set; export it for the daemon"),
                );
                return result;
            }
        }
    }
    let response = match request.send().await {
        Ok(r) => r,
        Err(err) => {
            let (failure, reason) = classify(&err, timeout);
            result.fail(failure, reason);
            return result;
        }
    };
    result.tls = crate::tls::observe::observe(&response, &book);
    let status = response.status().as_u16();
    result.details.insert("status", status.to_string());
    result.rate_limit = rate_limit(response.headers(), SystemTime::now());
    if let Some(r) = result.rate_limit.remaining {
        result.details.insert("rate_limit_remaining", r.to_string());
    }
    if status == 429 {
        let wait = result
            .rate_limit
            .retry_after
            .unwrap_or(DEFAULT_RATE_LIMIT_BACKOFF);
        result.rate_limit.retry_after = Some(wait);
        result.degrade(
            DependencyFailure::RateLimited,
            format!("rate limited (HTTP 429); backing off {} s", wait.as_secs()),
        );
        return result;
    }
    if !expect_status.contains(status) {
        result.fail(
            DependencyFailure::BadStatus,
            format!(
                "HTTP {status} from {url}; expected {}-{}",
                expect_status.low, expect_status.high
            ),
        );
        return result;
    }
    if let Some(needle) = body_contains {
        match read_bounded(response, timeout).await {
            Ok(body) if body.contains(needle.as_str()) => {}
            Ok(_) => {
                result.fail(
                    DependencyFailure::BodyMismatch,
                    format!("the body does not contain {needle:?}"),
                );
                return result;
            }
            Err(reason) => {
                result.fail(DependencyFailure::Error, reason.to_string());
                return result;
            }
        }
    }
    if result.rate_limit.remaining == Some(0) {
        let wait = result
            .rate_limit
            .retry_after
            .unwrap_or(DEFAULT_RATE_LIMIT_BACKOFF);
        result.rate_limit.retry_after = Some(wait);
        result.degrade(
            DependencyFailure::RateLimited,
            format!(
                "rate limit exhausted (0 requests left); backing off {} s",
                wait.as_secs()
            ),
        );
    }
    result
}

fn classify(err: &reqwest::Error, timeout: Duration) -> (DependencyFailure, String) {
    if err.is_timeout() {
        return (
            DependencyFailure::TimedOut,
            format!("timed out after {}", ms(timeout)),
        );
    }
    let mut source: Option<&dyn std::error::Error> = Some(err);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return (
                DependencyFailure::Refused,
                format!("connection refused: {err}"),
            );
        }
        source = e.source();
    }
    if err.is_connect() {
        return (
            DependencyFailure::Unreachable,
            format!("cannot connect: {}", chain(err)),
        );
    }
    (DependencyFailure::Error, chain(err))
}

fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// Why the body could not be read for `body_contains`.
#[derive(Debug, thiserror::Error)]
enum BodyError {
    /// The connection failed while reading.
    #[error("reading the body: {0}")]
    Read(#[source] reqwest::Error),
    /// The body did not arrive within the check's timeout.
    #[error("timed out after {} reading the body", ms(*.0))]
    TimedOut(Duration),
}

/// Reads at most `MAX_BODY_BYTES` of the body within `timeout`.
async fn read_bounded(
    mut response: reqwest::Response,
    timeout: Duration,
) -> Result<String, BodyError> {
    let mut body = Vec::new();
    let read = tokio::time::timeout(timeout, async {
        while let Some(chunk) = response.chunk().await.map_err(BodyError::Read)? {
            let room = MAX_BODY_BYTES.saturating_sub(body.len());
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if body.len() >= MAX_BODY_BYTES {
                break;
            }
        }
        Ok::<_, BodyError>(())
    })
    .await;
    match read {
        Err(_) => Err(BodyError::TimedOut(timeout)),
        Ok(Err(e)) => Err(e),
        Ok(Ok(())) => Ok(String::from_utf8_lossy(&body).into_owned()),
    }
}

/// Reads the rate-limit headers: `Retry-After` (seconds or an HTTP date), `X-RateLimit-Remaining`
/// / `RateLimit-Remaining`, and, when nothing is left, `X-RateLimit-Reset` (Unix time, GitHub) or
/// `RateLimit-Reset` (seconds from now) as the wait.
pub(super) fn rate_limit(headers: &HeaderMap, now: SystemTime) -> RateLimit {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let retry_after = text("retry-after").and_then(|v| {
        v.parse::<u64>().ok().map(Duration::from_secs).or_else(|| {
            httpdate::parse_http_date(v)
                .ok()
                .map(|at| at.duration_since(now).unwrap_or(Duration::ZERO))
        })
    });
    let remaining = text("x-ratelimit-remaining")
        .or_else(|| text("ratelimit-remaining"))
        .and_then(|v| v.parse::<u64>().ok());
    let reset_wait = if remaining == Some(0) {
        text("x-ratelimit-reset")
            .and_then(|v| v.parse::<u64>().ok())
            .map(|at| {
                (SystemTime::UNIX_EPOCH + Duration::from_secs(at))
                    .duration_since(now)
                    .unwrap_or(Duration::ZERO)
            })
            .or_else(|| {
                text("ratelimit-reset")
                    .and_then(|v| v.parse::<u64>().ok())
                    .map(Duration::from_secs)
            })
    } else {
        None
    };
    RateLimit {
        remaining,
        retry_after: retry_after.or(reset_wait).map(|d| d.min(MAX_BACKOFF)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                HeaderName::from_static(k),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    #[test]
    fn rate_limit_headers_are_understood() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(
            rate_limit(&headers(&[("retry-after", "7")]), now).retry_after,
            Some(Duration::from_secs(7))
        );
        let date = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            rate_limit(&headers(&[("retry-after", &date)]), now).retry_after,
            Some(Duration::from_secs(30))
        );
        let github = rate_limit(
            &headers(&[
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", "1000120"),
            ]),
            now,
        );
        assert_eq!(github.remaining, Some(0));
        assert_eq!(github.retry_after, Some(Duration::from_secs(120)));
        let ietf = rate_limit(
            &headers(&[("ratelimit-remaining", "5"), ("ratelimit-reset", "9")]),
            now,
        );
        assert_eq!(
            ietf,
            RateLimit {
                remaining: Some(5),
                retry_after: None
            }
        );
        assert_eq!(
            rate_limit(&headers(&[("retry-after", "999999999")]), now).retry_after,
            Some(MAX_BACKOFF)
        );
    }
}

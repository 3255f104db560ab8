//! `GET /probe?target=URL&module=NAME[&debug=true]`: probes a target on request, as
//! blackbox_exporter's `/probe` does, with a module from the config (`[modules.NAME]`,
//! src/probe/module.rs). Each request probes once through the same probe, deadline, health
//! model and metric families as a configured server, into a fresh registry of its own; the
//! reply holds the families of that one probe (`server` = the target).
//!
//! - A probe that fails is still HTTP 200, with `mcp_probe_success 0`: the failure is data.
//! - 400 names what is wrong: no or unknown module, no or bad target, a bad
//!   `X-Prometheus-Scrape-Timeout-Seconds`.
//! - The deadline is the module's `timeout`, shortened to the scrape's timeout (Prometheus
//!   sends it in `X-Prometheus-Scrape-Timeout-Seconds`) less [`SCRAPE_TIMEOUT_MARGIN`], so the
//!   answer arrives before Prometheus gives up.
//! - At most [`MAX_CONCURRENT_PROBES`] run at once; more get 503, so requests cannot exhaust
//!   the daemon's sockets.
//! - `debug=true` returns the probe told step by step (src/probe/narrative.rs) and the metrics
//!   it produced, as text.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::assessment::{ServerMemory, Sink};
use crate::mcp::{Limits, WireCounters};
use crate::metrics::Metrics;
use crate::probe::{ServerConfig, ServerProbe, deadline, narrative};

use super::AppState;

/// Taken off the scrape timeout Prometheus announces, for the reply to travel back.
pub const SCRAPE_TIMEOUT_MARGIN: Duration = Duration::from_millis(500);

/// Probes `/probe` runs at the same time.
pub const MAX_CONCURRENT_PROBES: usize = 32;

/// The header Prometheus announces its scrape timeout in.
const SCRAPE_TIMEOUT_HEADER: &str = "x-prometheus-scrape-timeout-seconds";

/// The slots of [`MAX_CONCURRENT_PROBES`].
pub fn probe_slots() -> Arc<tokio::sync::Semaphore> {
    Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_PROBES))
}

fn bad_request(message: String) -> Response {
    (StatusCode::BAD_REQUEST, format!("{message}\n")).into_response()
}

/// The deadline the scrape allows, from its timeout header; `Ok(None)` without the header.
fn scrape_deadline(headers: &HeaderMap) -> Result<Option<Duration>, String> {
    let Some(value) = headers.get(SCRAPE_TIMEOUT_HEADER) else {
        return Ok(None);
    };
    let seconds = value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .ok_or_else(|| {
            format!(
                "X-Prometheus-Scrape-Timeout-Seconds: {:?} is not a positive number of seconds",
                String::from_utf8_lossy(value.as_bytes())
            )
        })?;
    let allowed = Duration::from_secs_f64(seconds).saturating_sub(SCRAPE_TIMEOUT_MARGIN);
    // A scrape timeout at or under the margin still gets a probe, a short one.
    Ok(Some(allowed.max(Duration::from_millis(100))))
}

pub(super) async fn probe_handler(
    State(state): State<AppState>,
    Query(params): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let modules = state.modules.current();
    let configured = || {
        if modules.is_empty() {
            "none (add [modules.NAME] tables to the config)".to_string()
        } else {
            modules.keys().cloned().collect::<Vec<_>>().join(", ")
        }
    };
    let Some(module_name) = params.get("module") else {
        return bad_request(format!(
            "missing ?module=NAME; configured modules: {}",
            configured()
        ));
    };
    let Some(module) = modules.get(module_name) else {
        return bad_request(format!(
            "unknown module {module_name:?}; configured modules: {}",
            configured()
        ));
    };
    let Some(target) = params.get("target") else {
        return bad_request("missing ?target=URL, e.g. ?target=http://127.0.0.1:3001/mcp".into());
    };
    let debug = params
        .get("debug")
        .is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
    let deadline = match scrape_deadline(&headers) {
        Ok(deadline) => deadline,
        Err(message) => return bad_request(message),
    };
    let server = match module.server_for(target, deadline) {
        Ok(server) => server,
        Err(err) => return bad_request(err.to_string()),
    };
    let Ok(_slot) = state.probe_slots.try_acquire() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{MAX_CONCURRENT_PROBES} /probe requests are already running; retry later\n"),
        )
            .into_response();
    };
    let (lines, exposition) = probe_once(server).await;
    let body = if debug {
        format!(
            "{}\n\nMetrics of this probe:\n\n{exposition}",
            lines.join("\n")
        )
    } else {
        exposition
    };
    (
        [(
            header::CONTENT_TYPE,
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        )],
        super::redact(body),
    )
        .into_response()
}

/// Probes `server` once and returns the probe's story and its metrics in the text format.
async fn probe_once(server: ServerConfig) -> (Vec<String>, String) {
    let server = Arc::new(server);
    let counters = Arc::new(WireCounters::default());
    let mut probe = ServerProbe::new(
        Arc::clone(&server),
        Limits::default(),
        Arc::clone(&counters),
    );
    let outcome = deadline::within_deadline(&server, probe.probe_with(server.check)).await;
    probe.shutdown().await;
    let lines = narrative::narrate(&server, &outcome);
    tracing::debug!(target = %server.name, outcome = %outcome.summary(), "/probe");
    let assessment = ServerMemory::default().after_probe(
        Arc::clone(&server),
        outcome,
        Vec::new(),
        None,
        Default::default(),
    );
    let metrics = Metrics::new();
    metrics.server_added(&server, &counters);
    metrics.assessed(&assessment);
    (lines, server_families(&metrics.encode_prometheus()))
}

/// The families of `text` (the text format) that have a series with a `server` label: the
/// probe's own, without the exporter-wide families a fresh registry also holds.
fn server_families(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut family = String::new();
    let mut has_server = false;
    let flush = |family: &mut String, has_server: &mut bool, out: &mut String| {
        if *has_server {
            out.push_str(family);
        }
        family.clear();
        *has_server = false;
    };
    for line in text.lines() {
        if line.starts_with("# HELP ") {
            flush(&mut family, &mut has_server, &mut out);
        }
        if !line.starts_with('#') && (line.contains("{server=\"") || line.contains(",server=\"")) {
            has_server = true;
        }
        family.push_str(line);
        family.push('\n');
    }
    flush(&mut family, &mut has_server, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_families_with_a_server_series_are_kept() {
        let text = "# HELP a A.\n# TYPE a gauge\na{server=\"x\"} 1\n# HELP b B.\n# TYPE b gauge\nb 1\n# HELP c C.\n# TYPE c counter\nc_total{kind=\"k\",server=\"x\"} 2\n# EOF\n";
        let kept = server_families(text);
        assert!(kept.contains("a{server=\"x\"} 1"), "{kept}");
        assert!(
            kept.contains("c_total{kind=\"k\",server=\"x\"} 2"),
            "{kept}"
        );
        assert!(!kept.contains("# HELP b"), "{kept}");
    }

    #[test]
    fn the_scrape_timeout_header_shortens_the_deadline_by_the_margin() {
        let mut headers = HeaderMap::new();
        assert_eq!(scrape_deadline(&headers), Ok(None));
        headers.insert(SCRAPE_TIMEOUT_HEADER, "4.5".parse().expect("header"));
        assert_eq!(scrape_deadline(&headers), Ok(Some(Duration::from_secs(4))));
        headers.insert(SCRAPE_TIMEOUT_HEADER, "0.2".parse().expect("header"));
        assert_eq!(
            scrape_deadline(&headers),
            Ok(Some(Duration::from_millis(100)))
        );
        headers.insert(SCRAPE_TIMEOUT_HEADER, "soon".parse().expect("header"));
        let err = scrape_deadline(&headers).expect_err("not a number");
        assert!(err.contains("\"soon\""), "{err}");
    }
}

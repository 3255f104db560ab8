//! `/servers/<name>`: one server's page, server-rendered HTML like `/`. Its health and reasons,
//! its process and dependencies (the status board), its availability and health transitions of
//! the last 24 hours (the history store, when enabled), and its recent probes, newest first and
//! each told step by step (src/recent_probes.rs keeps failures longer than successes).

use std::fmt::Write;

use crate::health::HealthStatus;
use crate::recent_probes::RecentProbe;
use crate::status::ServerStatus;
use crate::store::query::History;

use super::status_page::{STYLE, dependency_cell, escape};

/// The period of the availability and transitions shown.
pub const HISTORY_SECONDS: f64 = 24.0 * 3600.0;

/// What the history store said for the page.
pub enum HistoryView {
    /// The store is disabled.
    Disabled,
    /// The query failed (the words say why).
    Failed(String),
    /// The last 24 hours.
    Found(History),
}

fn class_of(status: HealthStatus) -> &'static str {
    match status {
        HealthStatus::Healthy => "healthy",
        HealthStatus::Degraded => "degraded",
        HealthStatus::Unhealthy => "unhealthy",
        HealthStatus::Unknown => "unknown",
    }
}

/// Renders the page of `status`.
pub fn render(status: &ServerStatus, history: &HistoryView, probes: &[RecentProbe]) -> String {
    let mut html = String::new();
    let name = escape(&status.name);
    let _ = write!(
        html,
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{name} - mcp-exporter</title>\n<style>{STYLE}</style></head><body>\n\
<p><a href=\"/\">all servers</a> · <a href=\"/config\">/config</a></p>\n\
<h1>{name}</h1>\n\
<p id=\"health\" class=\"{}\"><span class=\"word\">{}</span> ({}){}</p>\n",
        class_of(status.health.status),
        status.health.status.word(),
        status.health.status.code(),
        if status.health.reasons.is_empty() {
            String::new()
        } else {
            format!(": {}", escape(&status.health.reasons.join("; ")))
        }
    );
    let last_error = status
        .last_failure
        .as_ref()
        .map(|f| {
            format!(
                "{} ({})",
                f.failure,
                crate::wall_clock::format_rfc3339(f.at_unix)
            )
        })
        .unwrap_or_else(|| "-".into());
    let _ = write!(
        html,
        "<table id=\"summary\">\n<tr><th>transport</th><td>{}</td></tr>\n<tr><th>check</th><td>{} every {}</td></tr>\n\
<tr><th>failures in a row</th><td>{}</td></tr>\n<tr><th>last error</th><td>{}</td></tr>\n\
<tr><th>process</th><td>{}</td></tr>\n<tr><th>dependencies</th><td>{}</td></tr>\n</table>\n",
        status.transport,
        status.check,
        humantime::format_duration(status.interval),
        status.consecutive_failures,
        escape(&last_error),
        escape(&status.process.summary()),
        match dependency_cell(status) {
            cell if cell.is_empty() => "none".to_string(),
            cell => cell,
        },
    );
    html.push_str("<h2>Last 24 hours</h2>\n");
    match history {
        HistoryView::Disabled => {
            html.push_str("<p id=\"history\">The history store is disabled (<code>[store] enabled = false</code>).</p>\n")
        }
        HistoryView::Failed(why) => {
            let _ = writeln!(html, "<p id=\"history\">The history store could not be read: {}</p>", escape(why));
        }
        HistoryView::Found(h) => {
            let availability = h
                .availability
                .as_ref()
                .map(|a| format!("{:.3}%", a.percent))
                .unwrap_or_else(|| "-".into());
            let _ = writeln!(
                html,
                "<p id=\"history\">availability {availability}; {} probes, {} up, {} passed the full check; {} restarts</p>",
                h.probes, h.probes_up, h.probes_successful, h.restarts
            );
            html.push_str("<table id=\"transitions\"><tr><th>time</th><th>transition</th><th>from</th><th>to</th><th>reason</th></tr>\n");
            for t in h.transitions.iter().rev() {
                let _ = writeln!(
                    html,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    crate::wall_clock::format_rfc3339(t.ts),
                    escape(&t.kind),
                    escape(&t.from),
                    escape(&t.to),
                    escape(&t.reason)
                );
            }
            html.push_str("</table>\n");
        }
    }
    let _ = writeln!(
        html,
        "<h2>Recent probes</h2>\n<p>Newest first; the last {} successes and {} failures are kept.</p>\n<ol id=\"probes\">",
        crate::recent_probes::SUCCESSES_KEPT,
        crate::recent_probes::FAILURES_KEPT
    );
    for probe in probes {
        let _ = writeln!(
            html,
            "<li class=\"probe {}\"><details{}><summary>{} · {} · {:.1} ms{}</summary><pre>{}</pre></details></li>",
            if probe.success { "ok" } else { "failed" },
            if probe.success { "" } else { " open" },
            crate::wall_clock::format_rfc3339(probe.at_unix),
            escape(&probe.summary),
            probe.duration_seconds * 1e3,
            probe
                .trace_id
                .as_deref()
                .map_or_else(String::new, |id| format!(
                    " · trace <code class=\"trace-id\">{}</code>",
                    escape(id)
                )),
            escape(&probe.steps.join("\n"))
        );
    }
    html.push_str("</ol>\n</body></html>\n");
    html
}

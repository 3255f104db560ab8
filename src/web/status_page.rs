//! The small HTML page at `/`: every server, its state and its last error.

use std::fmt::Write;
use std::time::SystemTime;

use crate::health::HealthStatus;
use crate::status::ServerStatus;

/// The style the exporter's pages share.
pub(super) const STYLE: &str = "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}\
td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}\
.healthy .word,li.ok summary{color:#1a7f37}.degraded .word{color:#9a6700}\
.unhealthy .word,li.failed summary{color:#cf222e}.unknown .word{color:#6e7781}pre{margin:4px 0 8px 1em;white-space:pre-wrap}";

/// Renders the status page.
pub fn render(servers: &[ServerStatus]) -> String {
    let mut rows = String::new();
    for s in servers {
        let (up, latency, age, identity) = match &s.last_probe {
            Some(p) => (
                if p.up { "1" } else { "0" },
                p.latency
                    .map(|l| format!("{:.1} ms", l.as_secs_f64() * 1000.0))
                    .unwrap_or_else(|| "-".into()),
                SystemTime::now()
                    .duration_since(p.started_at)
                    .map(|d| format!("{} s ago", d.as_secs()))
                    .unwrap_or_else(|_| "just now".into()),
                p.identity
                    .as_ref()
                    .map(|i| {
                        format!(
                            "{} {} ({}, {})",
                            i.name, i.version, i.protocol_version, i.era
                        )
                    })
                    .unwrap_or_default(),
            ),
            None => ("-", "-".into(), "never".into(), String::new()),
        };
        let last_error = s
            .last_failure
            .as_ref()
            .map(|f| f.failure.to_string())
            .unwrap_or_default();
        let class = match s.health.status {
            HealthStatus::Healthy => "healthy",
            HealthStatus::Degraded => "degraded",
            HealthStatus::Unhealthy => "unhealthy",
            HealthStatus::Unknown => "unknown",
        };
        let dependencies = dependency_cell(s);
        let tools = tools_cell(s);
        let _ = writeln!(
            rows,
            "<tr class=\"{class}\"><td><a href=\"/servers/{}\">{}</a></td><td>{}</td><td>{}</td><td>{} ({})</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&s.name),
            escape(&s.name),
            s.transport,
            s.check,
            s.health.status.word(),
            s.health.status.code(),
            up,
            escape(&latency),
            escape(&age),
            escape(&identity),
            escape(&s.health.reasons.join("; ")),
            dependencies,
            escape(&last_error),
            escape(&s.process.summary()),
            tools,
        );
    }
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>mcp-exporter</title>\n<style>{STYLE}\
tr.healthy td:nth-child(4){{color:#1a7f37}}tr.degraded td:nth-child(4){{color:#9a6700}}tr.unhealthy td:nth-child(4){{color:#cf222e}}tr.unknown td:nth-child(4){{color:#6e7781}}\
</style></head><body>\n<h1>mcp-exporter {}</h1>\n<p><a href=\"/metrics\">/metrics</a> · <a href=\"/health\">/health</a> · <a href=\"/api/servers\">/api/servers</a> · <a href=\"/config\">/config</a> · <a href=\"/reports\">/reports</a></p>\n\
<table><tr><th>server</th><th>transport</th><th>check</th><th>health</th><th>up</th><th>latency</th><th>last probe</th><th>server info</th><th>reasons</th><th>dependencies</th><th>last error</th><th>process</th><th>tools</th></tr>\n{rows}</table>\n</body></html>\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// One line per dependency: name, kind, criticality, status and what its last check saw.
pub(super) fn dependency_cell(s: &ServerStatus) -> String {
    s.dependencies
        .iter()
        .map(|d| {
            let mut line = format!(
                "{} ({}{}): {}",
                d.name,
                d.kind,
                if d.critical { ", critical" } else { "" },
                d.status.word()
            );
            if let Some(reason) = &d.reason {
                line.push_str(" - ");
                line.push_str(reason);
            }
            escape(&line)
        })
        .collect::<Vec<_>>()
        .join("<br>")
}

/// The catalog's cost (tokens against the budget), its largest tools and the lock comparison.
fn tools_cell(s: &ServerStatus) -> String {
    let Some(tools) = &s.tools else {
        return String::new();
    };
    let mut lines = vec![format!(
        "{} tools, {} tokens (budget {}), {} bytes",
        tools.count, tools.tokens, tools.token_budget, tools.bytes
    )];
    if !tools.largest.is_empty() {
        let largest: Vec<String> = tools
            .largest
            .iter()
            .map(|t| format!("{} {}", t.name, t.tokens))
            .collect();
        lines.push(format!("largest: {}", largest.join(", ")));
    }
    match (&tools.lock_differences, tools.unapproved) {
        (Some(differences), Some(n)) => {
            lines.push(format!("{n} unapproved: {differences}"));
        }
        (None, Some(_)) => lines.push("matches the lock".to_string()),
        _ => {}
    }
    lines
        .iter()
        .map(|l| escape(l))
        .collect::<Vec<_>>()
        .join("<br>")
}

/// Escapes text for HTML element content and attribute values.
pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_neutralises_markup() {
        assert_eq!(
            escape("<script>\"x\" & 'y'</script>"),
            "&lt;script&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/script&gt;"
        );
    }
}

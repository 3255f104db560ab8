//! The report as Markdown (for a terminal or a ticket) and as HTML (`/reports`, or a file to
//! mail); JSON is the [`Report`] serialized (docs/report.schema.json).

use std::fmt::Write;

use super::series::{Series, sparkline};
use super::{Percentiles, Report, ServerReport, chart};

/// The formats a report is rendered in (`--output` of `report`, `format=` of `/reports`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportOutput {
    /// Markdown.
    Markdown,
    /// A standalone HTML page.
    Html,
    /// JSON (schema: docs/report.schema.json).
    Json,
}

/// The report in `output`'s format, secrets redacted.
pub fn rendered(report: &Report, output: ReportOutput) -> String {
    let text = match output {
        ReportOutput::Markdown => markdown(report),
        ReportOutput::Html => html(report),
        ReportOutput::Json => serde_json::to_string_pretty(report).unwrap_or_default() + "\n",
    };
    crate::security::redact::redact(&text)
}

fn ts(unix: f64) -> String {
    crate::wall_clock::format_rfc3339(unix)
}

fn ms(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.1} ms"))
        .unwrap_or_else(|| "-".into())
}

fn percent(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.3}%")).unwrap_or_else(|| "-".into())
}

fn duration(seconds: f64) -> String {
    humantime::format_duration(std::time::Duration::from_secs(seconds.max(0.0) as u64)).to_string()
}

const OUTAGE_COLUMNS: [&str; 5] = ["start", "end", "duration", "cause", "reason"];
const EVENT_COLUMNS: [&str; 3] = ["time", "security event", "what"];
const ALERT_COLUMNS: [&str; 5] = ["alert", "server", "severity", "start", "end"];

/// One row per alert firing.
fn alert_rows(fired: &[super::AlertFiring]) -> Vec<Vec<String>> {
    fired
        .iter()
        .map(|a| {
            vec![
                a.alert.clone(),
                a.server.clone().unwrap_or_else(|| "-".into()),
                a.severity.clone().unwrap_or_else(|| "-".into()),
                ts(a.start),
                a.end.map(ts).unwrap_or_else(|| "ongoing".into()),
            ]
        })
        .collect()
}

const TOOL_CHANGE_COLUMNS: [&str; 6] = ["time", "server", "kind", "name", "change", "fields"];
const THRESHOLD_COLUMNS: [&str; 7] = [
    "alert",
    "measure",
    "threshold",
    "worst observed",
    "on",
    "suggested",
    "why",
];

/// One row per tool definition change, all servers, oldest first.
fn tool_change_rows(r: &Report) -> Vec<Vec<String>> {
    let mut rows: Vec<(f64, Vec<String>)> = r
        .servers
        .iter()
        .flat_map(|s| {
            s.tool_changes.iter().map(|c| {
                (
                    c.ts,
                    vec![
                        ts(c.ts),
                        s.server.clone(),
                        c.kind.clone(),
                        c.tool.clone(),
                        c.change.clone(),
                        c.fields.join(", "),
                    ],
                )
            })
        })
        .collect();
    rows.sort_by(|a, b| a.0.total_cmp(&b.0));
    rows.into_iter().map(|(_, row)| row).collect()
}

/// The last backup and its age, and the period's runs.
fn backup_text(r: &Report) -> String {
    let b = &r.backup;
    let last = match (b.last_success, b.age_seconds) {
        (Some(at), Some(age)) => format!("last good backup {} ({} old)", ts(at), duration(age)),
        _ => "no good backup recorded".to_string(),
    };
    format!(
        "{last}; {} runs in the period, {} failed",
        b.runs_in_period, b.failed_in_period
    )
}

/// One row per reviewed threshold.
fn threshold_rows(r: &Report) -> Vec<Vec<String>> {
    let value = |v: Option<f64>, unit: &str| {
        v.map(|v| format!("{v:.3} {unit}"))
            .unwrap_or_else(|| "-".into())
    };
    r.thresholds
        .iter()
        .map(|t| {
            vec![
                t.alert.clone(),
                t.measure.clone(),
                value(t.threshold, &t.unit),
                value(t.observed, &t.unit),
                t.server.clone().unwrap_or_else(|| "-".into()),
                value(t.suggested, &t.unit),
                t.why.clone(),
            ]
        })
        .collect()
}

/// Where the alerts come from, in words.
fn alerts_heading(r: &Report) -> String {
    let source = match r.alerts.source {
        super::AlertSource::Prometheus => "Prometheus' ALERTS series",
        super::AlertSource::Store => {
            "the store's health transitions ([prometheus] url not set or not reachable)"
        }
    };
    let mut text = format!("{} fired, from {source}", r.alerts.fired.len());
    if let Some(e) = &r.prometheus_error {
        text.push_str(&format!("; Prometheus could not be read: {e}"));
    }
    text
}

/// One row per outage: start, end (or `ongoing`), duration, cause, reason.
fn outage_rows(outages: &[super::Outage]) -> Vec<Vec<String>> {
    outages
        .iter()
        .map(|o| {
            vec![
                ts(o.start),
                o.end.map(ts).unwrap_or_else(|| "ongoing".into()),
                duration(o.duration_seconds),
                format!("{:?}", o.cause).to_lowercase(),
                o.reason.clone(),
            ]
        })
        .collect()
}

/// One row per security event: time, kind, what was seen.
fn event_rows(events: &[super::SecurityEvent]) -> Vec<Vec<String>> {
    events
        .iter()
        .map(|e| vec![ts(e.ts), e.kind.clone(), e.message.clone()])
        .collect()
}

fn latency_row(label: &str, p: &Percentiles) -> [String; 5] {
    [
        label.to_string(),
        p.observations.to_string(),
        ms(p.p50_ms),
        ms(p.p95_ms),
        ms(p.p99_ms),
    ]
}

/// A Markdown table.
fn md_table(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(header.len()));
    for row in rows {
        let cells: Vec<String> = row.iter().map(|c| c.replace('|', "\\|")).collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    out.push('\n');
}

/// The report as Markdown.
pub fn markdown(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# MCP fleet report\n\n{} to {} ({}), made {}\n",
        ts(r.since),
        ts(r.until),
        duration(r.until - r.since),
        ts(r.generated_at)
    );
    let _ = writeln!(
        out,
        "**Fleet:** {} servers, {} probes, {} outages, {} security events, worst availability {}\n",
        r.fleet.servers,
        r.fleet.probes,
        r.fleet.outages,
        r.fleet.security_events,
        percent(r.fleet.worst_availability_percent)
    );
    for s in &r.servers {
        let _ = writeln!(out, "## {}\n", s.server);
        let _ = writeln!(
            out,
            "Availability {} (time-weighted); {} probes, {} up, {} passed the full check; {} restarts.\n",
            percent(s.history.availability.as_ref().map(|a| a.percent)),
            s.history.probes,
            s.history.probes_up,
            s.history.probes_successful,
            s.history.restarts
        );
        if s.outages.is_empty() {
            out.push_str("No outage.\n\n");
        } else {
            md_table(&mut out, &OUTAGE_COLUMNS, &outage_rows(&s.outages));
        }
        md_table(
            &mut out,
            &["latency", "probes", "p50", "p95", "p99"],
            &[
                latency_row("this period", &s.latency.current).to_vec(),
                latency_row("previous period", &s.latency.previous).to_vec(),
            ],
        );
        markdown_sparklines(&mut out, s);
        markdown_resources(&mut out, s);
        if !s.security_events.is_empty() {
            md_table(&mut out, &EVENT_COLUMNS, &event_rows(&s.security_events));
        }
    }
    let _ = writeln!(out, "## Alerts\n\n{}.\n", alerts_heading(r));
    if !r.alerts.fired.is_empty() {
        md_table(&mut out, &ALERT_COLUMNS, &alert_rows(&r.alerts.fired));
    }
    let _ = writeln!(
        out,
        "## Catalog changes (tools, prompts, resource templates)\n"
    );
    let changes = tool_change_rows(r);
    if changes.is_empty() {
        out.push_str("None.\n\n");
    } else {
        md_table(&mut out, &TOOL_CHANGE_COLUMNS, &changes);
    }
    let _ = writeln!(out, "## Backup\n\n{}.\n", backup_text(r));
    let _ = writeln!(out, "## Threshold review\n");
    md_table(&mut out, &THRESHOLD_COLUMNS, &threshold_rows(r));
    let c = &r.capacity;
    let _ = writeln!(
        out,
        "## Capacity\n\n{:.3} probes/s; store {:.1} MiB of {:.1} MiB, growing {:.1} MiB/day; full in {}.",
        c.probes_per_second,
        c.store_bytes as f64 / 1048576.0,
        c.store_max_bytes as f64 / 1048576.0,
        c.bytes_per_day / 1048576.0,
        c.days_until_full
            .map(|d| format!("{d:.0} days"))
            .unwrap_or_else(|| "never at this rate".into())
    );
    out
}

/// One sparkline per figure and period, `SLOTS` characters from the period's start to its end.
fn markdown_sparklines(out: &mut String, s: &ServerReport) {
    let p99 = |series: &Series| {
        sparkline(
            &series
                .slots
                .iter()
                .map(|x| x.latency.p99_ms)
                .collect::<Vec<_>>(),
        )
    };
    let availability = |series: &Series| {
        sparkline(
            &series
                .slots
                .iter()
                .map(|x| x.availability_percent)
                .collect::<Vec<_>>(),
        )
    };
    let _ = writeln!(
        out,
        "By time ({} per character, `·` without probes):\n\n```\np99 latency   this period      {}\np99 latency   previous period  {}\navailability  this period      {}\n```\n",
        duration(s.series.current.slot_seconds),
        p99(&s.series.current),
        p99(&s.series.previous),
        availability(&s.series.current),
    );
}

/// The server's charts: latency of this period beside the previous one's (on the same scale),
/// then availability with the outages shaded.
fn html_charts(out: &mut String, s: &ServerReport, id: &str) {
    let ceiling = chart::latency_ceiling(&[&s.series.current, &s.series.previous]);
    let figures = [
        (
            format!("latency-chart-{id}"),
            chart::latency_svg("latency, this period", &s.series.current, ceiling),
        ),
        (
            format!("latency-previous-chart-{id}"),
            chart::latency_svg("latency, previous period", &s.series.previous, ceiling),
        ),
        (
            format!("availability-chart-{id}"),
            chart::availability_svg(
                "availability (outages shaded)",
                &s.series.current,
                &s.outages,
            ),
        ),
    ];
    out.push_str("<div class=\"charts\">\n");
    for (figure_id, drawn) in figures {
        write_figure(out, &figure_id, drawn);
    }
    out.push_str("</div>\n");
}

/// The resource figures by time: (id, title, unit, value of a sample).
type ResourceFigure = (
    &'static str,
    &'static str,
    &'static str,
    fn(&super::ResourcePoint) -> Option<f64>,
);

const RESOURCE_FIGURES: [ResourceFigure; 4] = [
    ("cpu", "CPU", "% of a core", |p| p.cpu_percent),
    ("memory", "resident memory", "MiB", |p| {
        Some(p.memory_bytes as f64 / 1048576.0)
    }),
    ("fds", "open file descriptors", "fds", |p| {
        p.file_descriptors.map(|n| n as f64)
    }),
    ("processes", "processes", "processes", |p| {
        Some(p.processes as f64)
    }),
];

/// The server's resource trends, one chart per figure (none without samples).
fn html_resource_charts(out: &mut String, r: &Report, s: &ServerReport, id: &str) {
    if s.resources.points.is_empty() {
        let _ = writeln!(
            out,
            "<p class=\"resources\" id=\"resources-{id}\">no process samples in the period</p>"
        );
        return;
    }
    out.push_str("<div class=\"charts\">\n");
    for (figure, title, unit, value) in RESOURCE_FIGURES {
        let points: Vec<(f64, Option<f64>)> = s
            .resources
            .points
            .iter()
            .map(|p| (p.ts, value(p)))
            .collect();
        let figure_id = format!("{figure}-chart-{id}");
        write_figure(
            out,
            &figure_id,
            chart::trend_svg(title, unit, r.since, r.until, &points),
        );
    }
    out.push_str("</div>\n");
}

/// The resource trends as sparklines.
fn markdown_resources(out: &mut String, s: &ServerReport) {
    if s.resources.points.is_empty() {
        return;
    }
    out.push_str("Resources by time (one character per stored sample):\n\n```\n");
    for (_, title, unit, value) in RESOURCE_FIGURES {
        let values: Vec<Option<f64>> = s.resources.points.iter().map(value).collect();
        let last = values
            .iter()
            .rev()
            .flatten()
            .next()
            .map(|v| format!("{v:.1} {unit}"))
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(out, "{title:<22} {}  last {last}", sparkline(&values));
    }
    out.push_str("```\n\n");
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn html_table(out: &mut String, id: &str, header: &[&str], rows: &[Vec<String>]) {
    let _ = write!(out, "<table id=\"{id}\"><tr>");
    for h in header {
        let _ = write!(out, "<th>{}</th>", escape(h));
    }
    out.push_str("</tr>\n");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{}</td>", escape(cell));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
}

/// The report as a standalone HTML page (no script).
pub fn html(r: &Report) -> String {
    let mut out = String::from(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>MCP fleet report</title>\n<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:0.5em 0 1em}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}.charts{display:flex;flex-wrap:wrap;gap:1em}figure.chart{margin:0}</style></head><body>\n",
    );
    let _ = writeln!(
        out,
        "<h1>MCP fleet report</h1>\n<p id=\"period\">{} to {} ({})</p>\n<p id=\"fleet\">{} servers, {} probes, {} outages, {} security events, worst availability {}</p>",
        ts(r.since),
        ts(r.until),
        duration(r.until - r.since),
        r.fleet.servers,
        r.fleet.probes,
        r.fleet.outages,
        r.fleet.security_events,
        percent(r.fleet.worst_availability_percent)
    );
    for s in &r.servers {
        let id = escape(&s.server);
        let _ = writeln!(
            out,
            "<section class=\"server\" id=\"server-{id}\"><h2>{id}</h2>\n<p class=\"availability\">availability {}; {} probes, {} restarts</p>",
            percent(s.history.availability.as_ref().map(|a| a.percent)),
            s.history.probes,
            s.history.restarts
        );
        html_table(
            &mut out,
            &format!("outages-{id}"),
            &OUTAGE_COLUMNS,
            &outage_rows(&s.outages),
        );
        html_table(
            &mut out,
            &format!("latency-{id}"),
            &["latency", "probes", "p50", "p95", "p99"],
            &[
                latency_row("this period", &s.latency.current).to_vec(),
                latency_row("previous period", &s.latency.previous).to_vec(),
            ],
        );
        html_charts(&mut out, s, &id);
        html_resource_charts(&mut out, r, s, &id);
        html_table(
            &mut out,
            &format!("security-{id}"),
            &EVENT_COLUMNS,
            &event_rows(&s.security_events),
        );
        out.push_str("</section>\n");
    }
    let _ = writeln!(
        out,
        "<h2>Alerts</h2>\n<p id=\"alerts-source\">{}</p>",
        escape(&alerts_heading(r))
    );
    html_table(
        &mut out,
        "alerts",
        &ALERT_COLUMNS,
        &alert_rows(&r.alerts.fired),
    );
    out.push_str("<h2>Catalog changes (tools, prompts, resource templates)</h2>\n");
    html_table(
        &mut out,
        "tool-changes",
        &TOOL_CHANGE_COLUMNS,
        &tool_change_rows(r),
    );
    let _ = writeln!(
        out,
        "<h2>Backup</h2>\n<p id=\"backup\">{}</p>",
        escape(&backup_text(r))
    );
    out.push_str("<h2>Threshold review</h2>\n");
    html_table(
        &mut out,
        "thresholds",
        &THRESHOLD_COLUMNS,
        &threshold_rows(r),
    );
    let c = &r.capacity;
    let _ = writeln!(
        out,
        "<h2>Capacity</h2>\n<p id=\"capacity\">{:.3} probes/s; store {} of {} bytes, growing {:.0} bytes/day; full in {}</p>\n</body></html>",
        c.probes_per_second,
        c.store_bytes,
        c.store_max_bytes,
        c.bytes_per_day,
        c.days_until_full
            .map(|d| format!("{d:.0} days"))
            .unwrap_or_else(|| "never at this rate".into())
    );
    out
}

/// One chart of the HTML report: the drawn SVG in a `<figure>`, or why it could not be drawn.
fn write_figure(out: &mut String, figure_id: &str, drawn: Result<String, impl std::fmt::Display>) {
    match drawn {
        Ok(svg) => {
            let _ = writeln!(
                out,
                "<figure class=\"chart\" id=\"{figure_id}\">{svg}</figure>"
            );
        }
        Err(e) => {
            let _ = writeln!(
                out,
                "<p class=\"chart-error\" id=\"{figure_id}\">{}</p>",
                escape(&e.to_string())
            );
        }
    }
}

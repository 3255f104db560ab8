//! `mcp-exporter report` and `/reports` over a period with real outages: server-everything over
//! Streamable HTTP stopped and started again (an outage caused by the probe), and a stdio
//! server-everything whose critical TCP dependency goes away and comes back (an outage caused by
//! the dependency). The report's outages match `mcp-exporter history`; its JSON passes
//! docs/report.schema.json (and a mutated copy fails it); the Markdown reads in a terminal; the
//! HTML, loaded in headless Chromium, shows the outages and draws the charts (inline SVG; the
//! availability chart shades each outage). A second test holds the report's percentiles against
//! a real Prometheus' `histogram_quantile(q, increase(...[period]))` of the same probes.

use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::common::daemon::{Daemon, daemon_bin};
use crate::common::paths::repo_root;
use crate::common::processes::run_bounded;
use crate::common::prometheus::Prometheus;
use crate::common::servers::{
    everything_stdio_entry, spawn_http_everything, spawn_http_everything_on,
};
use crate::common::tools::{Tool, require, require_all, schemas_dir};
use crate::common::wait::eventually;
use mcp_exporter::report::chart;

const WAIT: Duration = Duration::from_secs(90);
const POLL: Duration = Duration::from_millis(250);
const CLI_TIMEOUT: Duration = Duration::from_secs(30);

/// `mcp-exporter ARGS --config <the daemon's>`: its stdout, or why it failed.
fn try_cli(daemon: &Daemon, args: &[&str]) -> Result<String, String> {
    let out = run_bounded(
        Command::new(daemon_bin())
            .args(args)
            .arg("--config")
            .arg(daemon.config_path()),
        CLI_TIMEOUT,
    )?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "mcp-exporter {args:?}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn cli(daemon: &Daemon, args: &[&str]) -> String {
    try_cli(daemon, args).unwrap_or_else(|e| panic!("{e}"))
}

fn history(daemon: &Daemon, server: &str) -> Result<Value, String> {
    let text = try_cli(daemon, &["history", "--server", server, "--output", "json"])?;
    serde_json::from_str(&text).map_err(|e| format!("history JSON: {e}: {text}"))
}

/// Waits until `server`'s history holds a transition of `kind`.
fn wait_for_transition(daemon: &Daemon, server: &str, kind: &str) {
    eventually(WAIT, POLL, || {
        let h = history(daemon, server)?;
        let kinds: Vec<&str> = h["transitions"]
            .as_array()
            .map(|a| a.iter().filter_map(|t| t["kind"].as_str()).collect())
            .unwrap_or_default();
        if kinds.contains(&kind) {
            Ok(())
        } else {
            Err(format!("{server}: no {kind:?} yet: {kinds:?}"))
        }
    });
}

/// `(start, end, reason)` of each outage `history` shows: from a transition to UNHEALTHY to
/// the next one away from it.
fn outages_in_history(h: &Value) -> Vec<(f64, Option<f64>, String)> {
    let mut out = Vec::new();
    let mut open: Option<(f64, String)> = None;
    for t in h["transitions"].as_array().expect("transitions") {
        let to_unhealthy = t["to"] == "UNHEALTHY";
        match (&open, to_unhealthy) {
            (None, true) => {
                open = Some((
                    t["ts"].as_f64().expect("ts"),
                    t["reason"].as_str().expect("reason").into(),
                ))
            }
            (Some((start, reason)), false) => {
                out.push((*start, t["ts"].as_f64(), reason.clone()));
                open = None;
            }
            _ => {}
        }
    }
    if let Some((start, reason)) = open {
        out.push((start, None, reason));
    }
    out
}

fn validate_against_schema(python: &std::path::Path, json: &Value) -> Result<(), String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("report.json");
    std::fs::write(&file, serde_json::to_vec(json).expect("json")).expect("write report");
    let out = run_bounded(
        Command::new(python).args([
            "-c",
            "import json,sys,jsonschema; jsonschema.validate(json.load(open(sys.argv[2])), json.load(open(sys.argv[1])))",
        ])
        .arg(repo_root().join("docs/report.schema.json"))
        .arg(&file),
        CLI_TIMEOUT,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn a_report_over_real_outages_matches_history_and_its_schema() {
    if !require_all(&[Tool::Node, Tool::DeploySchemas]) {
        return;
    }
    let Some(browser) = require(Tool::Chromium) else {
        return;
    };
    let python = schemas_dir().join(".venv/bin/python");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback listener");
    let gate = listener.local_addr().expect("listener address");
    let (web_guard, web_port) = spawn_http_everything("streamableHttp");
    let daemon = Daemon::start(&format!(
        r#"
[[dependencies]]
name = "gate"
kind = "tcp"
address = "{gate}"
interval = "1s"
timeout = "1s"

[[servers]]
name = "web"
transport = "http"
url = "http://127.0.0.1:{web_port}/mcp"
check = "liveness"
interval = "1s"
timeout = "2s"
{}"#,
        everything_stdio_entry("gated", "1h", r#"depends_on = ["gate"]"#)
    ));
    wait_for_transition(&daemon, "web", "up");
    wait_for_transition(&daemon, "gated", "up");

    // The probe's outage: the server stops, then starts again where it was.
    drop(web_guard);
    wait_for_transition(&daemon, "web", "down");
    let _web = spawn_http_everything_on("streamableHttp", web_port);
    wait_for_transition(&daemon, "web", "recovered");
    // The dependency's outage.
    drop(listener);
    wait_for_transition(&daemon, "gated", "down");
    let _gate = TcpListener::bind(gate).expect("re-bind the dependency");
    wait_for_transition(&daemon, "gated", "recovered");

    let report: Value = serde_json::from_str(&cli(
        &daemon,
        &["report", "--since", "1h", "--output", "json"],
    ))
    .expect("report JSON");
    for (server, cause) in [("web", "probe"), ("gated", "dependency")] {
        let entry = report["servers"]
            .as_array()
            .expect("servers")
            .iter()
            .find(|s| s["server"] == server)
            .unwrap_or_else(|| panic!("no {server} in {report}"));
        let expected = outages_in_history(&history(&daemon, server).expect("history"));
        let found: Vec<(f64, Option<f64>, String)> = entry["outages"]
            .as_array()
            .expect("outages")
            .iter()
            .map(|o| {
                (
                    o["start"].as_f64().expect("start"),
                    o["end"].as_f64(),
                    o["reason"].as_str().expect("reason").to_string(),
                )
            })
            .collect();
        assert!(!found.is_empty(), "{server}: no outage in {entry}");
        assert_eq!(found, expected, "{server}: report and history disagree");
        assert!(
            entry["outages"]
                .as_array()
                .expect("outages")
                .iter()
                .all(|o| o["cause"] == cause),
            "{server}: cause should be {cause}: {entry}"
        );
        assert!(
            entry["latency"]["current"]["observations"].as_u64() >= Some(1),
            "{entry}"
        );
    }
    assert!(report["fleet"]["outages"].as_u64() >= Some(2), "{report}");
    // The threshold review holds the bundled MCPSlowResponseTime's 5 s against the period's
    // worst p95 of a slot, seen on one of the servers.
    let slow = report["thresholds"]
        .as_array()
        .expect("thresholds")
        .iter()
        .find(|t| t["alert"] == "MCPSlowResponseTime")
        .unwrap_or_else(|| panic!("no MCPSlowResponseTime review: {report}"));
    assert_eq!(slow["threshold"].as_f64(), Some(5.0), "{slow}");
    assert!(
        slow["observed"]
            .as_f64()
            .is_some_and(|o| o > 0.0 && o < 5.0)
            && slow["suggested"].as_f64().is_some_and(|s| s <= 5.0),
        "{slow}"
    );
    assert_eq!(report["backup"]["runs_in_period"], 0, "{report}");
    assert_eq!(report["alerts"]["source"], "store", "{report}");
    let fired = report["alerts"]["fired"].as_array().expect("fired");
    for server in ["web", "gated"] {
        assert!(
            fired
                .iter()
                .any(|a| a["server"] == server && a["alert"] == "health UNHEALTHY"),
            "{server}'s outage is not among the alerts: {fired:?}"
        );
    }
    // The stdio server's process is sampled after each probe; the store keeps one a minute.
    let gated = report["servers"]
        .as_array()
        .expect("servers")
        .iter()
        .find(|s| s["server"] == "gated")
        .expect("gated");
    let samples = gated["resources"]["points"].as_array().expect("points");
    assert_eq!(gated["resources"]["source"], "store", "{gated}");
    assert!(
        !samples.is_empty()
            && samples
                .iter()
                .all(|p| p["memory_bytes"].as_u64() > Some(0) && p["processes"].as_u64() >= Some(1)),
        "no process sample of gated: {gated}"
    );

    validate_against_schema(&python, &report)
        .unwrap_or_else(|e| panic!("the report fails its schema: {e}"));
    let mut mutated = report.clone();
    mutated["servers"][0]["unexpected"] = Value::from(1);
    assert!(
        validate_against_schema(&python, &mutated).is_err(),
        "a report with an unknown field passed the schema"
    );
    let mut mutated = report.clone();
    mutated["fleet"]
        .as_object_mut()
        .expect("fleet")
        .remove("outages");
    assert!(
        validate_against_schema(&python, &mutated).is_err(),
        "a report without a required field passed the schema"
    );

    let markdown = cli(&daemon, &["report", "--since", "1h"]);
    assert!(markdown.starts_with("# MCP fleet report"), "{markdown}");
    assert!(
        markdown.contains("\n## web\n")
            && markdown.contains("| start | end | duration | cause | reason |"),
        "{markdown}"
    );
    assert!(
        markdown.contains("## Threshold review\n")
            && markdown.contains("p99 latency   this period      ")
            && markdown.contains("availability  this period      "),
        "no sparklines: {markdown}"
    );
    // The charts' numbers: one slot series per period, holding every probe of the period.
    for entry in report["servers"].as_array().expect("servers") {
        let slots = entry["series"]["current"]["slots"]
            .as_array()
            .expect("slots");
        let in_slots: u64 = slots
            .iter()
            .filter_map(|s| s["observations"].as_u64())
            .sum();
        assert_eq!(
            Some(in_slots),
            entry["latency"]["current"]["observations"].as_u64(),
            "the slots hold other probes than the period: {entry}"
        );
    }

    // The same report served by the daemon, rendered by a browser.
    let (status, served) = daemon.get("/reports?since=1h&format=json");
    assert_eq!(status, 200, "{served}");
    let served: Value = serde_json::from_str(&served).expect("served JSON");
    assert_eq!(
        served["servers"].as_array().map(Vec::len),
        Some(2),
        "{served}"
    );
    let profile = tempfile::tempdir().expect("browser profile");
    let dom = run_bounded(
        Command::new(&browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--dump-dom",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(daemon.url("/reports?since=1h")),
        Duration::from_secs(60),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let dom = String::from_utf8_lossy(&dom.stdout);
    screenshot(&browser, &daemon.url("/reports?since=1h"));
    let web = dom
        .split("id=\"outages-web\"")
        .nth(1)
        .unwrap_or_else(|| panic!("no outages table for web:\n{dom}"));
    let web = web.split("</table>").next().unwrap_or_default();
    assert!(web.contains("<td>probe</td>"), "{web}");
    let gated = dom
        .split("id=\"outages-gated\"")
        .nth(1)
        .and_then(|t| t.split("</table>").next())
        .unwrap_or_default();
    assert!(gated.contains("<td>dependency</td>"), "{gated}");

    // The charts, drawn inline (no script on the page).
    assert!(!dom.contains("<script"), "the report has a script");
    for server in ["web", "gated"] {
        // The previous period is before the daemon started: an empty frame.
        let previous = figure(&dom, &format!("latency-previous-chart-{server}"));
        assert!(previous.contains("<svg"), "{previous}");
        // A dot of each percentile's colour for every slot with probes.
        let latency = figure(&dom, &format!("latency-chart-{server}"));
        for color in [chart::P50_COLOR, chart::P95_COLOR, chart::P99_COLOR] {
            assert!(
                latency.contains("<svg") && latency.contains(&circle_of(color)),
                "latency-chart-{server} has no {} dot: {latency}",
                chart::hex(color)
            );
        }
        // Every outage of the period is shaded on the availability chart.
        let outages = report["servers"]
            .as_array()
            .expect("servers")
            .iter()
            .find(|s| s["server"] == server)
            .and_then(|s| s["outages"].as_array())
            .map_or(0, Vec::len);
        let shaded = figure(&dom, &format!("availability-chart-{server}"))
            .matches(&outage_fill())
            .count();
        assert_eq!(
            shaded, outages,
            "{server}: {outages} outages, {shaded} shaded"
        );
    }
    // web is probed every second: its availability is drawn, below 100 % where it was down.
    let availability = figure(&dom, "availability-chart-web");
    assert!(
        availability.contains(&circle_of(chart::AVAILABILITY_COLOR)),
        "no availability drawn: {availability}"
    );
    // CPU is unknown on a process's first sample (gated is probed once): a frame only.
    assert!(figure(&dom, "cpu-chart-gated").contains("<svg"));
    for figure_id in [
        "memory-chart-gated",
        "fds-chart-gated",
        "processes-chart-gated",
    ] {
        let svg = figure(&dom, figure_id);
        assert!(
            svg.contains("<svg") && svg.contains(&circle_of(chart::P50_COLOR)),
            "{figure_id} draws no sample: {svg}"
        );
    }
    let p99 = figure(&dom, "latency-chart-web");
    assert!(p99.contains("p99"), "no legend: {p99}");
}

/// The start of a dot of `color`, as plotters writes it.
fn circle_of(color: plotters::style::RGBColor) -> String {
    format!("fill=\"{}\"", chart::hex(color))
}

/// The fill of an outage's shading, as plotters writes it.
fn outage_fill() -> String {
    format!("fill=\"{}\"", chart::hex(chart::OUTAGE_COLOR))
}

/// The markup of the `<figure>` with `id` in `dom`.
fn figure<'a>(dom: &'a str, id: &str) -> &'a str {
    dom.split(&format!("id=\"{id}\""))
        .nth(1)
        .and_then(|rest| rest.split("</figure>").next())
        .unwrap_or_else(|| panic!("no figure {id}"))
}

/// A screenshot of `url` kept as `target/screenshots/report.png`.
fn screenshot(browser: &std::path::Path, url: &str) {
    let dir = repo_root().join("target/screenshots");
    std::fs::create_dir_all(&dir).expect("create target/screenshots");
    let path = dir.join("report.png");
    let profile = tempfile::tempdir().expect("browser profile");
    let out = run_bounded(
        Command::new(browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--window-size=1400,1600",
            ])
            .arg(format!("--screenshot={}", path.display()))
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(url),
        Duration::from_secs(60),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "chromium --screenshot: {}",
        out.status
    );
    let png = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(png.starts_with(b"\x89PNG"), "{} is no PNG", path.display());
}

/// The bucket of `mcp_request_duration_seconds` (src/probe/metrics.rs) holding `seconds`.
fn bucket_index(seconds: f64) -> usize {
    let bounds = mcp_exporter::probe::metrics::DURATION_BUCKETS;
    bounds
        .iter()
        .position(|le| seconds <= *le)
        .unwrap_or(bounds.len())
}

#[test]
fn report_percentiles_agree_with_prometheus_histogram_quantile_of_the_period() {
    if !require_all(&[Tool::Node]) {
        return;
    }
    let Some(prometheus) = require(Tool::Prometheus) else {
        return;
    };
    let daemon = Daemon::start(&everything_stdio_entry("steady", "1s", ""));
    let dir = tempfile::tempdir().expect("tempdir");
    // An alert that fires while the server is up, so the report has one from ALERTS.
    std::fs::write(
        dir.path().join("rules.yml"),
        "groups:\n  - name: report-test\n    rules:\n      - alert: ReportTestServerUp\n        expr: mcp_server_up == 1\n        labels:\n          severity: info\n",
    )
    .expect("write rules.yml");
    let prom = Prometheus::start(
        &prometheus,
        dir.path(),
        &format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: ['{}']\nscrape_configs:\n  - job_name: mcp\n    static_configs:\n      - targets: ['{}']\n",
            dir.path().join("rules.yml").display(),
            daemon.addr()
        ),
    );
    let scraped_from = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    // The probe's latency is its ping (the session lives on); Prometheus has it per method.
    let series =
        "mcp_request_duration_seconds_bucket{server=\"steady\",method=\"ping\",source=\"probe\"}";
    eventually(WAIT, POLL, || {
        let r = prom.query(&format!("count_over_time(sum({series})[40s:1s])"))?;
        match r.first().and_then(|v| v["value"][1].as_str()) {
            Some(n) if n.parse::<f64>().unwrap_or(0.0) >= 35.0 => Ok(()),
            other => Err(format!("Prometheus holds too little yet: {other:?}")),
        }
    });
    let report: Value = serde_json::from_str(&cli(
        &daemon,
        &[
            "report", "--since", "30s", "--server", "steady", "--output", "json",
        ],
    ))
    .expect("report JSON");
    let ours = &report["servers"][0]["latency"]["current"];
    assert!(ours["observations"].as_u64() >= Some(20), "{report}");
    for (q, key) in [(0.5, "p50_ms"), (0.95, "p95_ms"), (0.99, "p99_ms")] {
        let theirs = prom
            .query(&format!(
                "histogram_quantile({q}, sum by (le) (increase({series}[30s])))"
            ))
            .unwrap_or_else(|e| panic!("{e}"));
        let theirs: f64 = theirs
            .first()
            .and_then(|v| v["value"][1].as_str())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {q} quantile from Prometheus: {theirs:?}"));
        let ours = ours[key].as_f64().unwrap_or_else(|| panic!("no {key}")) / 1e3;
        let (a, b) = (bucket_index(ours), bucket_index(theirs));
        assert!(
            a.abs_diff(b) <= 1,
            "{key}: ours {ours} s (bucket {a}), Prometheus {theirs} s (bucket {b})"
        );
    }

    // The resource trends: from the store's samples, then, with `[prometheus] url`, from its
    // range queries of the same gauges; each stored sample has a Prometheus point within a
    // scrape interval (1 s, plus the query's 2 s step) that agrees with it.
    let resources = |daemon: &Daemon| -> Value {
        serde_json::from_str(&cli(
            daemon,
            &[
                "report", "--since", "5m", "--server", "steady", "--output", "json",
            ],
        ))
        .expect("report JSON")
    };
    // The store keeps a sample a minute: wait for one taken while Prometheus was scraping.
    let stored: Vec<Value> = eventually(WAIT, Duration::from_secs(2), || {
        let from_store = resources(&daemon);
        if from_store["alerts"]["source"] != "store"
            || from_store["servers"][0]["resources"]["source"] != "store"
        {
            return Err(format!("not from the store: {from_store}"));
        }
        let scraped: Vec<Value> = from_store["servers"][0]["resources"]["points"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|p| p["ts"].as_f64() > Some(scraped_from + 2.0))
            .collect();
        if scraped.is_empty() {
            Err(format!(
                "no stored sample since Prometheus started: {from_store}"
            ))
        } else {
            Ok(scraped)
        }
    });
    daemon.rewrite_config(&format!(
        "{}\n[prometheus]\nurl = \"http://{}\"\n",
        daemon.config_text(),
        prom.addr
    ));
    let from_prometheus = resources(&daemon);
    validate_schema_if_possible(&from_prometheus);
    assert_eq!(
        from_prometheus["prometheus_error"],
        Value::Null,
        "{from_prometheus}"
    );
    assert_eq!(from_prometheus["alerts"]["source"], "prometheus");
    let fired = from_prometheus["alerts"]["fired"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        fired.iter().any(|a| a["alert"] == "ReportTestServerUp"
            && a["server"] == "steady"
            && a["severity"] == "info"
            && a["start"].as_f64() < a["end"].as_f64()),
        "the firing alert is not in the report: {fired:?}"
    );
    let queried = &from_prometheus["servers"][0]["resources"];
    assert_eq!(queried["source"], "prometheus", "{queried}");
    let queried = queried["points"].as_array().cloned().unwrap_or_default();
    // Five minutes in steps of 2 s (src/report/prometheus.rs step_of), of which Prometheus has
    // scraped the last 40 s or more.
    assert!(
        queried.len() >= 15,
        "too few points from Prometheus: {queried:?}"
    );
    for sample in &stored {
        let ts = sample["ts"].as_f64().expect("ts");
        let memory = sample["memory_bytes"].as_f64().expect("memory");
        let agrees = queried.iter().any(|p| {
            (p["ts"].as_f64().unwrap_or(0.0) - ts).abs() <= 3.0
                && p["processes"] == sample["processes"]
                && p["file_descriptors"]
                    .as_i64()
                    .zip(sample["file_descriptors"].as_i64())
                    .is_some_and(|(a, b)| a.abs_diff(b) <= 2)
                && (p["memory_bytes"].as_f64().unwrap_or(0.0) - memory).abs() <= memory * 0.05
        });
        assert!(
            agrees,
            "no Prometheus point within a scrape interval agrees with {sample}: {queried:?}"
        );
    }
}

/// Validates against docs/report.schema.json when the schema tools are installed.
fn validate_schema_if_possible(report: &Value) {
    if Tool::DeploySchemas.locate().is_ok() {
        let python = schemas_dir().join(".venv/bin/python");
        validate_against_schema(&python, report)
            .unwrap_or_else(|e| panic!("the report fails its schema: {e}"));
    }
}

//! `mcp-exporter report` and `/reports` over a period with real outages: server-everything over
//! Streamable HTTP stopped and started again (an outage caused by the probe), and a stdio
//! server-everything whose critical TCP dependency goes away and comes back (an outage caused by
//! the dependency). The report's outages match `mcp-exporter history`; its JSON passes
//! docs/report.schema.json (and a mutated copy fails it); the Markdown reads in a terminal; the
//! HTML, loaded in headless Chromium, shows the outages.

use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::common::daemon::{Daemon, daemon_bin};
use crate::common::paths::repo_root;
use crate::common::processes::run_bounded;
use crate::common::servers::{
    everything_stdio_entry, spawn_http_everything, spawn_http_everything_on,
};
use crate::common::tools::{Tool, require, require_all, schemas_dir};
use crate::common::wait::eventually;

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
}

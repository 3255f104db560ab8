//! The operator's subcommands end to end against real reference servers: `check` (exit status,
//! table and JSON), `logs` (stderr lines and `notifications/message` in the history store,
//! with the trace id of the probe each came with), `history`, `metrics` (percentiles compared with real Prometheus' `histogram_quantile`), and
//! the store's durability when the daemon is SIGKILLed in the middle of writes.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

use crate::common::daemon::{Daemon, daemon_bin};
use crate::common::net::free_port;
use crate::common::paths::npm_server_js;
use crate::common::processes::{kill_pid, run_bounded, spawn_guarded};
use crate::common::prometheus::Prometheus;
use crate::common::servers::{everything_stdio_entry, spawn_http_everything};
use crate::common::tools::{Tool, require};
use crate::common::wait::eventually;

const WAIT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(250);
const CLI_TIMEOUT: Duration = Duration::from_secs(60);

fn cli(args: &[&str]) -> Output {
    run_bounded(Command::new(daemon_bin()).args(args), CLI_TIMEOUT)
        .unwrap_or_else(|e| panic!("mcp-exporter {args:?}: {e}"))
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn everything_stdio(name: &str, interval: &str, extra: &str) -> String {
    everything_stdio_entry(name, interval, extra)
}

fn write_config(dir: &Path, text: &str) -> String {
    let path = dir.join("check.toml");
    std::fs::write(&path, text).expect("write config");
    path.to_string_lossy().into_owned()
}

/// Table rows by server name: (status, code, whole line).
fn table_rows(text: &str) -> Vec<(String, String, String, String)> {
    text.lines()
        .skip(1)
        .map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (
                cols[0].to_string(),
                cols[1].to_string(),
                cols[2].to_string(),
                l.to_string(),
            )
        })
        .collect()
}

#[test]
fn check_reports_healthy_servers_then_a_killed_one_with_exit_2_and_why() {
    if require(Tool::Node).is_none() {
        return;
    }
    let (http, port) = spawn_http_everything("streamableHttp");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        &format!(
            "{}\n[[servers]]\nname = \"remote\"\ntransport = \"http\"\nurl = \"http://127.0.0.1:{port}/mcp\"\ntimeout = \"5s\"\n",
            everything_stdio("local", "1s", "")
        ),
    );

    let out = cli(&["check", "--config", &config]);
    let table = stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{table}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = table_rows(&table);
    assert_eq!(rows.len(), 2, "{table}");
    for (server, status, code, _) in &rows {
        assert_eq!(
            (status.as_str(), code.as_str()),
            ("HEALTHY", "2"),
            "{server}: {table}"
        );
    }

    let out = cli(&[
        "check",
        "--config",
        &config,
        "--server",
        "local",
        "--check-type",
        "liveness",
        "--output",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let json: Value = serde_json::from_slice(&out.stdout).expect("check --output json parses");
    assert_eq!(json["servers"].as_array().map(Vec::len), Some(1), "{json}");
    assert_eq!(json["servers"][0]["check"], "liveness");

    // Kill the HTTP server: the check now fails with the monitoring-plugin CRITICAL status.
    drop(http);
    let out = cli(&["check", "--config", &config]);
    let table = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{table}");
    let rows = table_rows(&table);
    let remote = rows.iter().find(|r| r.0 == "remote").expect("remote row");
    assert_eq!(
        (remote.1.as_str(), remote.2.as_str()),
        ("UNHEALTHY", "0"),
        "{table}"
    );
    assert!(remote.3.contains("down at"), "the row says why: {table}");
    let local = rows.iter().find(|r| r.0 == "local").expect("local row");
    assert_eq!(local.1, "HEALTHY", "{table}");

    // JSON output matches the table, server by server.
    let out = cli(&["check", "--config", &config, "--output", "json"]);
    assert_eq!(out.status.code(), Some(2));
    let json: Value = serde_json::from_slice(&out.stdout).expect("json parses");
    assert_eq!(json["status"], "UNHEALTHY");
    assert_eq!(json["exit_code"], 2);
    for (server, status, code, line) in &rows {
        let row = json["servers"]
            .as_array()
            .and_then(|a| a.iter().find(|r| r["server"] == server.as_str()))
            .unwrap_or_else(|| panic!("{server} missing from {json}"));
        assert_eq!(row["status"], status.as_str(), "{json}");
        assert_eq!(row["code"].to_string(), *code, "{json}");
        if status != "HEALTHY" {
            let reason = row["reason"].as_str().unwrap_or_default();
            assert!(
                line.ends_with(reason),
                "table {line:?} vs json reason {reason:?}"
            );
        }
    }

    // An unknown server name is UNKNOWN (3), like a monitoring plugin's usage error.
    let out = cli(&["check", "--config", &config, "--server", "nope"]);
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn continuous_check_prints_plain_lines_when_piped() {
    if require(Tool::Node).is_none() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), &everything_stdio("local", "1s", ""));
    let child = spawn_guarded(
        "check --continuous",
        Command::new(daemon_bin()).args([
            "check",
            "--config",
            &config,
            "--continuous",
            "--interval",
            "200ms",
        ]),
    );
    let text = eventually(WAIT, POLL, || {
        let text = child.output();
        let lines = text
            .lines()
            .filter(|l| l.contains(" local HEALTHY 2 "))
            .count();
        if lines >= 2 {
            Ok(text)
        } else {
            Err(format!("{lines} lines so far: {text}"))
        }
    });
    assert!(
        !text.contains('\x1b'),
        "no terminal escapes in a pipe: {text:?}"
    );
    drop(child);
}

fn logs_json(daemon: &Daemon, args: &[&str]) -> Vec<Value> {
    let config = daemon.config_path().to_string_lossy().into_owned();
    let mut all = vec!["logs", "--config", config.as_str(), "--output", "json"];
    all.extend_from_slice(args);
    let out = cli(&all);
    assert_eq!(
        out.status.code(),
        Some(0),
        "logs {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

#[test]
fn logs_finds_real_stderr_lines_and_notifications_by_text_level_and_server() {
    if require(Tool::Node).is_none() {
        return;
    }
    // The readiness call toggles server-everything's simulated logging: every other probe turns it
    // on, and it sends a random-level notifications/message at once.
    // Nothing listens on `gone`'s port: its connection errors are logged as HTTP errors.
    let daemon = Daemon::start(&format!(
        "{}{}\n[[servers]]\nname = \"gone\"\ntransport = \"http\"\nurl = \"http://127.0.0.1:{}/mcp\"\ninterval = \"1s\"\n",
        everything_stdio(
            "everything",
            "1s",
            r#"call = { tool = "toggle-simulated-logging" }"#
        ),
        everything_stdio("quiet", "1s", ""),
        free_port()
    ));
    let found = eventually(WAIT, POLL, || {
        let lines = logs_json(
            &daemon,
            &[
                "--search",
                "Starting default (STDIO) server...",
                "--server",
                "everything",
            ],
        );
        if lines.is_empty() {
            Err("no stderr line yet".into())
        } else {
            Ok(lines)
        }
    });
    assert!(
        found
            .iter()
            .all(|l| l["server"] == "everything" && l["source"] == "stderr"),
        "{found:?}"
    );

    let severe = eventually(WAIT, POLL, || {
        let lines = logs_json(&daemon, &["--level", "ERROR", "--server", "everything"]);
        let notes: Vec<Value> = lines
            .into_iter()
            .filter(|l| l["source"] == "notification")
            .collect();
        if notes.is_empty() {
            Err("no error-or-above notification yet".into())
        } else {
            Ok(notes)
        }
    });
    let severe_levels = ["error", "critical", "alert", "emergency"];
    for line in &severe {
        assert!(
            severe_levels.contains(&line["level"].as_str().unwrap_or("")),
            "{line}"
        );
        assert!(
            line["message"].as_str().unwrap_or("").contains("message"),
            "{line}"
        );
    }
    // Full-text search finds the notification's own words.
    let words = severe[0]["message"].as_str().unwrap_or("").to_string();
    let hits = logs_json(&daemon, &["--search", &words, "--server", "everything"]);
    assert!(
        hits.iter().any(|l| l["source"] == "notification"),
        "search {words:?}: {hits:?}"
    );
    // Level filter means that level and above, nothing below.
    let all_levels = logs_json(&daemon, &["--level", "warning"]);
    assert!(all_levels.iter().all(|l| {
        ["warning", "error", "critical", "alert", "emergency"]
            .contains(&l["level"].as_str().unwrap_or(""))
    }));
    // Server filter: the quiet server has its own stderr line and no notifications.
    let quiet = eventually(WAIT, POLL, || {
        let lines = logs_json(&daemon, &["--server", "quiet"]);
        if lines.is_empty() {
            Err("the quiet server's stderr line is not stored yet".into())
        } else {
            Ok(lines)
        }
    });
    assert!(
        quiet
            .iter()
            .all(|l| l["server"] == "quiet" && l["source"] == "stderr"),
        "{quiet:?}"
    );

    let http_errors = eventually(WAIT, POLL, || {
        let lines = logs_json(&daemon, &["--server", "gone", "--level", "error"]);
        if lines.is_empty() {
            Err("no HTTP error logged yet".into())
        } else {
            Ok(lines)
        }
    });
    assert!(
        http_errors.iter().all(|l| l["source"] == "http"
            && l["level"] == "error"
            && l["message"].as_str().unwrap_or("").starts_with("down at")),
        "{http_errors:?}"
    );

    // --follow prints what is there, then new lines as the server sends them.
    let follow = spawn_guarded(
        "logs --follow",
        Command::new(daemon_bin()).args([
            "logs",
            "--config",
            &daemon.config_path().to_string_lossy(),
            "--follow",
            "--output",
            "json",
            "--server",
            "everything",
        ]),
    );
    let first = eventually(WAIT, POLL, || {
        let n = follow
            .output()
            .lines()
            .filter(|l| l.starts_with('{'))
            .count();
        if n > 0 { Ok(n) } else { Err(follow.output()) }
    });
    eventually(WAIT, POLL, || {
        let n = follow
            .output()
            .lines()
            .filter(|l| l.starts_with('{'))
            .count();
        if n > first {
            Ok(())
        } else {
            Err(format!("still {n} lines: {}", follow.output()))
        }
    });
    drop(follow);

    // Text output, and history with availability.
    let config = daemon.config_path().to_string_lossy().into_owned();
    let out = cli(&[
        "logs", "--config", &config, "--search", "STDIO", "--server", "quiet",
    ]);
    assert!(
        stdout(&out).contains("quiet [stderr] Starting default (STDIO) server..."),
        "{}",
        stdout(&out)
    );
    let out = cli(&[
        "history", "--config", &config, "--server", "quiet", "--output", "json",
    ]);
    let h: Value = serde_json::from_slice(&out.stdout).expect("history json");
    assert_eq!(h["uptime_percent"], 100.0, "{h}");
    // By time too: every observed second of a server that never went down.
    if h["probes"].as_i64().unwrap_or(0) >= 2 {
        assert_eq!(h["availability"]["percent"], 100.0, "{h}");
        assert!(
            h["availability"]["observed_seconds"]
                .as_f64()
                .unwrap_or(0.0)
                > 0.0,
            "{h}"
        );
    } else {
        assert!(h["availability"].is_null(), "{h}");
    }
    assert_eq!(h["transitions"][0]["kind"], "up", "{h}");
}

fn is_trace_id(value: &Value) -> bool {
    value
        .as_str()
        .is_some_and(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[test]
fn logs_and_history_show_the_trace_of_the_probe_a_line_came_with() {
    if require(Tool::Node).is_none() {
        return;
    }
    // Traces on (their export fails: nothing listens at the collector's port; the trace ids
    // are kept all the same). `gone`'s failed probes log an HTTP error each; `everything`
    // sends a notifications/message during the probe's tools/call.
    let daemon = Daemon::start(&format!(
        "[otlp]\nendpoint = \"http://127.0.0.1:{}\"\n{}\n[[servers]]\nname = \"gone\"\ntransport = \"http\"\nurl = \"http://127.0.0.1:{}/mcp\"\ninterval = \"1s\"\n",
        free_port(),
        everything_stdio(
            "everything",
            "1s",
            r#"call = { tool = "toggle-simulated-logging" }"#
        ),
        free_port()
    ));
    let config = daemon.config_path().to_string_lossy().into_owned();
    // history's newest failed probe of `gone`, and its HTTP error line in `logs`.
    let (trace, history) = eventually(WAIT, POLL, || {
        let out = cli(&[
            "history", "--config", &config, "--server", "gone", "--output", "json",
        ]);
        let h: Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
        let newest = h["failed_probes"]
            .as_array()
            .and_then(|f| f.last())
            .ok_or_else(|| format!("no failed probe of gone yet: {h}"))?;
        let trace = newest["trace_id"].clone();
        is_trace_id(&trace)
            .then(|| (trace.as_str().unwrap_or_default().to_string(), h.clone()))
            .ok_or_else(|| format!("the failed probe has no trace id: {h}"))
    });
    let lines = logs_json(&daemon, &["--trace-id", &trace]);
    assert!(
        !lines.is_empty()
            && lines.iter().all(|l| l["server"] == "gone"
                && l["source"] == "http"
                && l["trace_id"] == trace.as_str()),
        "logs --trace-id {trace}: {lines:?} (history: {history})"
    );
    let all_gone = logs_json(&daemon, &["--server", "gone"]);
    assert!(
        all_gone.iter().all(|l| is_trace_id(&l["trace_id"])),
        "every HTTP error line of gone is its probe's: {all_gone:?}"
    );
    // Text: the same ` [trace ID]` ends the line in both commands.
    let suffix = format!("[trace {trace}]");
    let text = stdout(&cli(&["logs", "--config", &config, "--trace-id", &trace]));
    assert!(
        text.lines().all(|l| l.ends_with(&suffix)) && text.lines().count() == lines.len(),
        "{text}"
    );
    let text = stdout(&cli(&["history", "--config", &config, "--server", "gone"]));
    assert!(text.contains(&suffix), "{text}");

    // A notification sent while a probe ran carries that probe's trace; --trace-id keeps the
    // lines of that probe only.
    let traced = eventually(WAIT, POLL, || {
        logs_json(&daemon, &["--server", "everything"])
            .into_iter()
            .find(|l| l["source"] == "notification" && is_trace_id(&l["trace_id"]))
            .ok_or_else(|| "no traced notification yet".to_string())
    });
    let id = traced["trace_id"].as_str().unwrap_or_default().to_string();
    let of_probe = logs_json(&daemon, &["--trace-id", &id]);
    assert!(
        of_probe.contains(&traced)
            && of_probe
                .iter()
                .all(|l| l["server"] == "everything" && l["trace_id"] == id.as_str()),
        "{of_probe:?}"
    );
    let out = cli(&["logs", "--config", &config, "--trace-id", "not-a-trace"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a bad --trace-id is a usage error"
    );
}

#[test]
fn metrics_summary_percentiles_agree_with_prometheus_histogram_quantile() {
    if require(Tool::Node).is_none() {
        return;
    }
    let Some(prometheus) = require(Tool::Prometheus) else {
        return;
    };
    // One probe per hour: after the first, the buckets stay put while Prometheus scrapes.
    let daemon = Daemon::start(&everything_stdio(
        "everything",
        "1h",
        r#"call = { tool = "echo", arguments = { message = "hi" } }"#,
    ));
    eventually(WAIT, POLL, || {
        match daemon
            .scrape()
            .value("mcp_probes_total", &[("server", "everything")])
        {
            Some(v) if v >= 1.0 => Ok(()),
            other => Err(format!("no probe yet: {other:?}")),
        }
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let prom = Prometheus::start(
        &prometheus,
        dir.path(),
        &format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: mcp\n    static_configs:\n      - targets: ['{}']\n",
            daemon.addr()
        ),
    );
    let out = cli(&[
        "metrics",
        "--url",
        &daemon.url("/metrics"),
        "--output",
        "json",
        "--server",
        "everything",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ours: Value = serde_json::from_slice(&out.stdout).expect("metrics json");
    let methods = ours["everything"]["methods"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    assert!(methods.len() >= 3, "{ours}");
    for (q, key) in [(0.5, "p50"), (0.95, "p95"), (0.99, "p99")] {
        let query = format!(
            "histogram_quantile({q}, mcp_request_duration_seconds_bucket{{server=\"everything\"}})"
        );
        let result = eventually(WAIT, POLL, || {
            let r = prom.query(&query)?;
            if r.len() == methods.len() {
                Ok(r)
            } else {
                Err(format!("{} of {} series: {r:?}", r.len(), methods.len()))
            }
        });
        for series in result {
            let method = series["metric"]["method"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let theirs: f64 = series["value"][1]
                .as_str()
                .unwrap_or("NaN")
                .parse()
                .unwrap_or(f64::NAN);
            let mine = methods[&method][key].as_f64().unwrap_or(f64::NAN);
            assert!(
                (theirs - mine).abs() <= 1e-9 * theirs.abs().max(1e-9),
                "{key} of {method}: prometheus {theirs}, metrics summary {mine}"
            );
        }
    }
    let out = cli(&[
        "metrics",
        "--url",
        &daemon.url("/metrics"),
        "--output",
        "summary",
    ]);
    let text = stdout(&out);
    assert!(
        text.contains("everything: up=1 health=HEALTHY") && text.contains("tools/list"),
        "{text}"
    );
}

#[test]
fn sigkill_in_the_middle_of_writes_keeps_every_committed_row() {
    if require(Tool::Node).is_none() {
        return;
    }
    let mut daemon = Daemon::start(&format!(
        "{}{}",
        everything_stdio("a", "100ms", ""),
        everything_stdio("b", "100ms", "")
    ));
    let committed = eventually(WAIT, POLL, || {
        let v = daemon
            .scrape()
            .value("mcp_store_writes_total", &[("kind", "probe")])
            .unwrap_or(0.0);
        if v >= 30.0 {
            Ok(v)
        } else {
            Err(format!("{v} probe rows written"))
        }
    });
    kill_pid(daemon.pid(), libc::SIGKILL);
    let _ = daemon.stop();
    let db = daemon.dir().join("mcp-exporter.db");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let store = mcp_exporter::store::Store::open(&db)
            .await
            .expect("the store opens cleanly after SIGKILL");
        let check: String = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_one(store.pool())
            .await
            .expect("integrity_check");
        assert_eq!(check, "ok");
        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM probe_results")
            .fetch_one(store.pool())
            .await
            .expect("count");
        assert!(
            rows as f64 >= committed,
            "{rows} rows on disk, {committed} were committed before the kill"
        );
        store.close().await;
    });
}

#[test]
fn json_daemon_logs_use_elastic_common_schema_names() {
    if require(Tool::Node).is_none() {
        return;
    }
    let daemon = Daemon::start_with(
        &everything_stdio("everything", "1s", ""),
        &["--log-format", "json"],
        &[],
    );
    let text = eventually(WAIT, POLL, || {
        let text = daemon.stderr();
        if text.contains("health changed") {
            Ok(text)
        } else {
            Err(text)
        }
    });
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        for key in [
            "@timestamp",
            "log.level",
            "message",
            "log.logger",
            "service.name",
            "ecs.version",
        ] {
            assert!(v.get(key).is_some(), "{key} missing in {line}");
        }
    }
    let change = text
        .lines()
        .find(|l| l.contains("health changed"))
        .unwrap_or_default();
    let v: Value = serde_json::from_str(change).expect("json");
    assert_eq!(v["mcp.server"], "everything", "{change}");
    assert_eq!(v["service.name"], "mcp-exporter");
}

#[test]
fn check_includes_dependencies_by_criticality() {
    if require(Tool::Node).is_none() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let closed_port = free_port();
    let missing = dir.path().join("no-such-dir");
    let config = write_config(
        dir.path(),
        &format!(
            r#"
[[dependencies]]
name = "logs-dir"
kind = "filesystem"
path = "{}"
critical = false

[[dependencies]]
name = "api-port"
kind = "tcp"
address = "127.0.0.1:{closed_port}"
timeout = "2s"
{}
depends_on = ["logs-dir"]
{}
depends_on = ["api-port"]
"#,
            missing.display(),
            everything_stdio("soft", "1s", ""),
            everything_stdio("hard", "1s", ""),
        ),
    );
    let out = cli(&["check", "--config", &config, "--output", "json"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    let report: Value = serde_json::from_str(&text).expect("check JSON");
    let rows = report["servers"].as_array().expect("servers array");
    let row = |name: &str| {
        rows.iter()
            .find(|r| r["server"] == name)
            .unwrap_or_else(|| panic!("no row for {name}: {text}"))
            .clone()
    };
    let soft = row("soft");
    assert_eq!(soft["status"], "DEGRADED", "{text}");
    assert_eq!(
        soft["failing_dependencies"],
        serde_json::json!(["logs-dir"])
    );
    let hard = row("hard");
    assert_eq!(hard["status"], "UNHEALTHY", "{text}");
    assert_eq!(
        hard["failing_dependencies"],
        serde_json::json!(["api-port"])
    );
    assert!(
        hard["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("api-port"),
        "{text}"
    );

    // --server limits the round to one server and its own dependencies.
    let out = cli(&["check", "--config", &config, "--server", "soft"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
}

#[test]
fn continuous_check_redraws_in_place_on_a_terminal() {
    // util-linux `script` gives the command a pseudo-terminal and copies what it draws.
    if require(Tool::Node).is_none() {
        return;
    }
    let Some(script) = require(Tool::Script) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), &everything_stdio("local", "1s", ""));
    let command = format!(
        "{} check --config {} --continuous --interval 200ms",
        daemon_bin().display(),
        config
    );
    let child = spawn_guarded(
        "check --continuous on a pty",
        Command::new(script).args(["-q", "-e", "-c", &command, "/dev/null"]),
    );
    let text = eventually(WAIT, POLL, || {
        let text = child.output();
        // Each round homes the cursor and clears the screen before drawing the table again.
        let redraws = text.matches("\x1b[H\x1b[2J").count();
        if redraws >= 2 && text.contains("HEALTHY") {
            Ok(text)
        } else {
            Err(format!("{redraws} redraws so far: {text:?}"))
        }
    });
    assert!(
        text.contains("SERVER"),
        "the table header is drawn: {text:?}"
    );
    drop(child);
}

#[test]
fn an_imported_claude_desktop_config_checks_healthy_against_real_servers() {
    if require(Tool::Node).is_none() {
        return;
    }
    let (_http, port) = spawn_http_everything("streamableHttp");
    let dir = tempfile::tempdir().expect("tempdir");
    let memory_file = dir.path().join("memory.json");
    let client = serde_json::json!({
        "mcpServers": {
            "everything": {
                "command": "node",
                "args": [npm_server_js("everything").display().to_string()],
            },
            "memory": {
                "command": "node",
                "args": [npm_server_js("memory").display().to_string()],
                "env": {
                    "MEMORY_FILE_PATH": memory_file.display().to_string(),
                    "MEMORY_API_TOKEN": "tok-literal-123456",
                },
            },
            "remote everything": {
                "type": "streamable-http",
                "url": format!("http://127.0.0.1:{port}/mcp"),
            },
        }
    });
    let json_path = dir.path().join("claude_desktop_config.json");
    std::fs::write(&json_path, client.to_string()).expect("write client config");

    let out = cli(&["import", &json_path.display().to_string()]);
    assert!(out.status.success(), "{out:?}");
    let toml = stdout(&out);
    let notes = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!toml.contains("tok-literal-123456"), "{toml}");
    assert!(notes.contains("export MEMORY_API_TOKEN"), "{notes}");
    let config = dir.path().join("imported.toml");
    std::fs::write(&config, &toml).expect("write imported config");

    // The generated file validates without a literal-secret warning, and every server is
    // HEALTHY once the variable it now references is exported.
    let validated = cli(&["validate", &config.display().to_string()]);
    assert!(validated.status.success(), "{validated:?}");
    assert!(
        !stdout(&validated).contains("literal secret"),
        "{}",
        stdout(&validated)
    );
    let checked = run_bounded(
        Command::new(daemon_bin())
            .args([
                "check",
                "--config",
                &config.display().to_string(),
                "--output",
                "json",
            ])
            .env("MEMORY_API_TOKEN", "tok-literal-123456"),
        CLI_TIMEOUT,
    )
    .expect("check");
    let report: Value = serde_json::from_slice(&checked.stdout).expect("check json");
    assert_eq!(checked.status.code(), Some(0), "{report}");
    let healthy: Vec<&str> = report["servers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|s| s["status"] == "HEALTHY")
                .filter_map(|s| s["server"].as_str())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        healthy,
        ["everything", "memory", "remote-everything"],
        "{report}"
    );
    // The HTTP server's row says where its time went (new connections: connect is timed too;
    // server-everything may close one after a streamed response, so at least one).
    let remote = &report["servers"][2];
    assert!(
        remote["http_phases"]["processing"]
            .as_f64()
            .is_some_and(|s| s > 0.0),
        "{remote}"
    );
    assert!(
        remote["http_phases"]["connections_opened"]
            .as_u64()
            .is_some_and(|n| n >= 1),
        "{remote}"
    );
    assert!(
        report["servers"][0].get("http_phases").is_none(),
        "stdio has none: {report}"
    );

    // A file that is not a client config is refused with exit 2 and a reason.
    std::fs::write(&json_path, "{\"servers\": []}").expect("write");
    let refused = cli(&["import", &json_path.display().to_string()]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("no `mcpServers` object"),
        "{refused:?}"
    );
}

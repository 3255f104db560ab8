//! Maintenance windows end to end: the built CLI drives a live daemon's `/api/maintenance`; the
//! daemon creates, and on an early end expires, a silence in a real Alertmanager (Debian
//! package) configured from deploy/alertmanager.yml (receivers pointed at a webhook this test
//! listens on, as in alerts_e2e.rs). Alertmanager is driven with the alerts the bundled rules
//! send (their labels read from alerts/mcp-exporter.rules.yml). The daemon is restarted in the
//! middle of the window on the same history store and still knows it. Writes are refused with
//! their reason when the daemon listens beyond loopback without authentication.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::alerts_e2e::start_alertmanager;
use crate::alerts_support::{Webhook, alert_rules, rules};
use crate::common::daemon::{Daemon, daemon_bin};
use crate::common::http::http_request;
use crate::common::net::free_port;
use crate::common::processes::{run_bounded, spawn_listening};
use crate::common::tools::{Tool, located, require_all};
use crate::common::wait::eventually;

const WAIT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(200);
const CLI_TIMEOUT: Duration = Duration::from_secs(60);

/// Two HTTP servers at a loopback port nobody listens on (always down, probed every second,
/// no runtime needed), the history store at `store`, and the Alertmanager at `alertmanager`.
fn config(store: &Path, alertmanager: &str, closed: u16) -> String {
    format!(
        r#"
[alertmanager]
url = "http://{alertmanager}"
timeout = "3s"

[store]
path = "{}"

[[servers]]
name = "db"
transport = "http"
url = "http://127.0.0.1:{closed}/db"
interval = "1s"

[[servers]]
name = "web"
transport = "http"
url = "http://127.0.0.1:{closed}/web"
interval = "1s"
"#,
        store.display()
    )
}

/// Runs `mcp-exporter ARGS` to completion: (exit code, stdout, stderr).
fn cli(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(daemon_bin());
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = run_bounded(&mut cmd, CLI_TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The labels the bundled rule `alert` sends for `server` (its rule labels plus alertname and
/// server).
fn rule_alert(alert: &str, server: &str) -> Value {
    let rules = rules();
    let rule = alert_rules(&rules)
        .into_iter()
        .find(|r| r["alert"].as_str() == Some(alert))
        .unwrap_or_else(|| panic!("no rule {alert}"));
    let mut labels = serde_json::Map::new();
    for (k, v) in rule["labels"].as_mapping().expect("labels") {
        labels.insert(
            k.as_str().unwrap_or_default().to_string(),
            Value::from(v.as_str().unwrap_or_default()),
        );
    }
    labels.insert("alertname".into(), alert.into());
    labels.insert("server".into(), server.into());
    json!({"labels": labels})
}

fn am_json(am: &str, path: &str) -> Result<Value, String> {
    let r = http_request(am, "GET", path, &[], b"", Duration::from_secs(5))
        .map_err(|e| e.to_string())?;
    serde_json::from_str(&r.text()).map_err(|e| format!("{path}: {e}"))
}

fn post_alerts(am: &str, alerts: &[Value]) {
    let r = http_request(
        am,
        "POST",
        "/api/v2/alerts",
        &[("content-type", "application/json")],
        Value::from(alerts.to_vec()).to_string().as_bytes(),
        Duration::from_secs(5),
    )
    .expect("post alerts to alertmanager");
    assert_eq!(r.status, 200, "{}", r.text());
}

/// The state of silence `id` in Alertmanager (`active`, `expired`, `pending`).
fn silence_state(am: &str, id: &str) -> Result<(String, Value), String> {
    let silence = am_json(am, &format!("/api/v2/silence/{id}"))?;
    Ok((
        silence["status"]["state"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        silence,
    ))
}

/// (state, silencedBy) of the alert `alertname` of `server` in Alertmanager.
fn alert_state(am: &str, alertname: &str, server: &str) -> Option<(String, Vec<String>)> {
    let alerts = am_json(am, "/api/v2/alerts").ok()?;
    alerts.as_array()?.iter().find_map(|a| {
        (a["labels"]["alertname"] == alertname && a["labels"]["server"] == server).then(|| {
            (
                a["status"]["state"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                a["status"]["silencedBy"]
                    .as_array()
                    .map(|s| {
                        s.iter()
                            .filter_map(|x| x.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default(),
            )
        })
    })
}

fn maintenance_gauge(daemon: &Daemon, server: &str) -> Option<f64> {
    daemon
        .scrape()
        .value("mcp_server_maintenance", &[("server", server)])
}

#[test]
fn a_window_silences_its_server_in_alertmanager_survives_a_restart_and_ends_early() {
    if !require_all(&[Tool::Alertmanager]) {
        return;
    }
    let webhook = Webhook::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let (_am, am) = start_alertmanager(&located(Tool::Alertmanager), dir.path(), webhook.port);
    let store = dir.path().join("history.db");
    let text = config(&store, &am, free_port());
    let daemon = Daemon::start(&text);
    let url = daemon.url("");
    eventually(WAIT, POLL, || {
        match (
            maintenance_gauge(&daemon, "db"),
            maintenance_gauge(&daemon, "web"),
        ) {
            (Some(0.0), Some(0.0)) => Ok(()),
            other => Err(format!("gauges {other:?}")),
        }
    });

    // A body that is not declared JSON (what a web page could send across origins) is refused.
    let r = daemon.request(
        "POST",
        "/api/maintenance",
        &[("content-type", "text/plain")],
        br#"{"server":"db","duration_seconds":60,"reason":"csrf"}"#,
    );
    assert_eq!(r.status, 415, "{}", r.text());

    // Start a window for `db` with the CLI: the daemon answers with the silence it made.
    let (code, out, err) = cli(
        &[
            "maintenance",
            "start",
            "--server",
            "db",
            "--for",
            "1h",
            "--reason",
            "kernel upgrade",
            "--url",
            &url,
        ],
        &[],
    );
    assert_eq!(
        code,
        0,
        "stdout: {out}\nstderr: {err}\ndaemon: {}",
        daemon.stderr()
    );
    assert!(out.starts_with("maintenance window "), "{out}");
    let id: String = out["maintenance window ".len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let silence = out
        .trim()
        .rsplit_once("Alertmanager silence ")
        .map(|(_, s)| s.to_string())
        .unwrap_or_else(|| panic!("no silence in {out:?}; daemon: {}", daemon.stderr()));
    let (state, body) = silence_state(&am, &silence).expect("silence");
    assert_eq!(state, "active", "{body}");
    assert_eq!(body["createdBy"], "mcp-exporter");
    assert!(
        body["comment"]
            .as_str()
            .unwrap_or_default()
            .contains("kernel upgrade")
    );
    let matchers = body["matchers"].to_string();
    assert!(
        matchers.contains(r#""name":"server""#) && matchers.contains(r#""value":"db""#),
        "{matchers}"
    );
    assert_eq!(maintenance_gauge(&daemon, "db"), Some(1.0));
    assert_eq!(maintenance_gauge(&daemon, "web"), Some(0.0));

    // What the rules would send: MCPServerDown for both servers, MCPSecurityIncident for db.
    let down_db = rule_alert("MCPServerDown", "db");
    let down_web = rule_alert("MCPServerDown", "web");
    let security_db = rule_alert("MCPSecurityIncident", "db");
    post_alerts(
        &am,
        &[down_db.clone(), down_web.clone(), security_db.clone()],
    );
    let delivered = eventually(WAIT, POLL, || {
        webhook
            .find("MCPServerDown", "firing", &[("server", "web")])
            .ok_or_else(|| format!("webhook got: {}", webhook.summary()))
    });
    assert_eq!(delivered.path, "/pager", "L1 pages the on-call");
    let security = eventually(WAIT, POLL, || {
        webhook
            .find("MCPSecurityIncident", "firing", &[("server", "db")])
            .ok_or_else(|| format!("webhook got: {}", webhook.summary()))
    });
    assert_eq!(
        security.path, "/escalation-l2",
        "security is never silenced; L2"
    );
    let (state, by) = alert_state(&am, "MCPServerDown", "db").expect("db alert known");
    assert_eq!((state.as_str(), by), ("suppressed", vec![silence.clone()]));
    assert!(
        webhook
            .find("MCPServerDown", "firing", &[("server", "db")])
            .is_none(),
        "db is in maintenance: {}",
        webhook.summary()
    );

    // Restart the daemon on the same store: it still knows the window.
    drop(daemon);
    let daemon = Daemon::start(&text);
    let url = daemon.url("");
    eventually(WAIT, POLL, || match maintenance_gauge(&daemon, "db") {
        Some(1.0) => Ok(()),
        other => Err(format!("db gauge {other:?}")),
    });
    assert_eq!(maintenance_gauge(&daemon, "web"), Some(0.0));
    let (code, out, err) = cli(&["maintenance", "list", "--url", &url], &[]);
    assert_eq!(code, 0, "{err}");
    let row = out
        .lines()
        .find(|l| l.starts_with(&format!("{id} ")))
        .unwrap_or_else(|| panic!("window {id} not listed:\n{out}"));
    assert!(
        row.contains(" db ") && row.contains("kernel upgrade"),
        "{row}"
    );
    let (_, out, _) = cli(
        &["maintenance", "list", "--output", "json", "--url", &url],
        &[],
    );
    let listed: Value = serde_json::from_str(&out).expect("json list");
    assert_eq!(
        listed[0]["silence_id"],
        Value::from(silence.as_str()),
        "{listed}"
    );

    // End it early: the silence is expired and db's alert arrives.
    let (code, out, err) = cli(&["maintenance", "end", &id, "--url", &url], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("maintenance window {id} for db ended")),
        "{out}"
    );
    let (state, body) = silence_state(&am, &silence).expect("silence");
    assert_eq!(state, "expired", "{body}");
    assert_eq!(maintenance_gauge(&daemon, "db"), Some(0.0));
    post_alerts(&am, &[down_db.clone(), down_web.clone()]);
    // No longer silenced, but db's MCPSecurityIncident (L2) still inhibits its L1 alert.
    eventually(WAIT, POLL, || {
        match alert_state(&am, "MCPServerDown", "db") {
            Some((state, silenced_by)) if state == "suppressed" && silenced_by.is_empty() => Ok(()),
            other => Err(format!("db MCPServerDown: {other:?}")),
        }
    });
    let mut resolved = security_db;
    resolved["endsAt"] =
        Value::from(humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string());
    post_alerts(&am, &[resolved, down_db, down_web]);
    let released = eventually(WAIT, POLL, || {
        webhook
            .find("MCPServerDown", "firing", &[("server", "db")])
            .ok_or_else(|| format!("webhook got: {}", webhook.summary()))
    });
    assert_eq!(released.path, "/pager");
    let (code, out, _) = cli(&["maintenance", "end", &id, "--url", &url], &[]);
    assert_eq!(code, 1, "ending twice is an error: {out}");
    let (code, out, err) = cli(&["maintenance", "list", "--url", &url], &[]);
    assert_eq!(
        (code, out.as_str()),
        (0, "no maintenance window\n"),
        "{err}"
    );

    // history shows the window as planned downtime.
    let (code, out, err) = cli(
        &[
            "history",
            "--db",
            &store.display().to_string(),
            "--server",
            "db",
            "--since",
            "1h",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!(
            "(window {id}, ended early): planned downtime, not an outage: kernel upgrade"
        )),
        "{out}"
    );
    // Its time is left out of availability as planned (the writer commits within a second).
    let store_arg = store.display().to_string();
    eventually(WAIT, POLL, || {
        let (_, json_out, _) = cli(
            &[
                "history", "--db", &store_arg, "--server", "db", "--output", "json",
            ],
            &[],
        );
        let h: Value = serde_json::from_str(&json_out).map_err(|e| format!("{e}: {json_out}"))?;
        if h["availability"]["planned_seconds"].as_f64().unwrap_or(0.0) > 0.0 {
            Ok(())
        } else {
            Err(format!("history: {h}"))
        }
    });
}

/// Starts `mcp-exporter serve` listening on every interface (`0.0.0.0`), optionally with a web
/// config; returns the guard and the port. Requests of the test go to 127.0.0.1 only.
fn serve_on_all_interfaces(
    dir: &Path,
    web_config: Option<&Path>,
) -> (crate::common::processes::ChildGuard, u16) {
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        "[store]\nenabled = false\n\n[[servers]]\nname = \"db\"\ntransport = \"stdio\"\ncommand = \"/nonexistent/mcp-db\"\ninterval = \"1s\"\n",
    )
    .expect("write config");
    spawn_listening("mcp-exporter", |port| {
        let mut cmd = Command::new(daemon_bin());
        cmd.arg("serve")
            .arg("--config")
            .arg(&config)
            .arg("--listen")
            .arg(format!("0.0.0.0:{port}"));
        if let Some(web) = web_config {
            cmd.arg("--web.config.file").arg(web);
        }
        cmd
    })
}

#[test]
fn writes_are_refused_beyond_loopback_without_authentication_and_accepted_with_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_daemon, port) = serve_on_all_interfaces(dir.path(), None);
    let addr = format!("127.0.0.1:{port}");
    let url = format!("http://{addr}");
    let body = br#"{"server":"db","duration_seconds":600,"reason":"x"}"#;
    let refused = eventually(WAIT, POLL, || {
        http_request(
            &addr,
            "POST",
            "/api/maintenance",
            &[("content-type", "application/json")],
            body,
            Duration::from_secs(5),
        )
        .map_err(|e| e.to_string())
    });
    assert_eq!(refused.status, 403, "{}", refused.text());
    assert!(
        refused.text().contains(&format!(
            "listens on 0.0.0.0:{port} and --web.config.file sets no basic_auth_users"
        )),
        "{}",
        refused.text()
    );
    let (code, _, err) = cli(
        &[
            "maintenance",
            "start",
            "--server",
            "db",
            "--for",
            "10m",
            "--reason",
            "x",
            "--url",
            &url,
        ],
        &[],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("refused: changing maintenance windows needs authentication"),
        "{err}"
    );
    let (code, _, err) = cli(&["maintenance", "end", "1", "--url", &url], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("refused"), "{err}");
    // Reading stays open.
    let (code, out, err) = cli(&["maintenance", "list", "--url", &url], &[]);
    assert_eq!(
        (code, out.as_str()),
        (0, "no maintenance window\n"),
        "{err}"
    );
    drop(_daemon);

    // The same daemon with basic authentication: without credentials 401, with them accepted.
    let hash = bcrypt::hash("s3cret", 4).expect("bcrypt");
    let web = dir.path().join("web.yml");
    std::fs::write(&web, format!("basic_auth_users:\n  ops: '{hash}'\n"))
        .expect("write web config");
    let (_daemon, port) = serve_on_all_interfaces(dir.path(), Some(&web));
    let url = format!("http://127.0.0.1:{port}");
    let (code, _, err) = cli(
        &[
            "maintenance",
            "start",
            "--server",
            "db",
            "--for",
            "10m",
            "--reason",
            "x",
            "--url",
            &url,
        ],
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("Unauthorized"), "{err}");
    let start = [
        "maintenance",
        "start",
        "--server",
        "db",
        "--for",
        "10m",
        "--reason",
        "patch",
        "--url",
        &url,
        "--user",
        "ops",
    ];
    let (code, out, err) = eventually(WAIT, POLL, || {
        let (code, out, err) = cli(&start, &[("MCP_EXPORTER_WEB_PASSWORD", "s3cret")]);
        // The daemon learns its servers from the scheduler right after it starts listening.
        if err.contains("unknown server") {
            Err(err)
        } else {
            Ok((code, out, err))
        }
    });
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.starts_with("maintenance window 1 started for db until "),
        "{out}"
    );
    let (code, _, err) = cli(
        &[
            "maintenance",
            "start",
            "--server",
            "nope",
            "--for",
            "1m",
            "--reason",
            "x",
            "--url",
            &url,
            "--user",
            "ops",
        ],
        &[("MCP_EXPORTER_WEB_PASSWORD", "s3cret")],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("unknown server \"nope\"; configured servers: db"),
        "{err}"
    );
}

//! `mcp-exporter incident` after a real incident: server-everything's stdio child is killed
//! (a restart in the timeline), a fixture server prints a configured secret and a line matching
//! a security pattern on its stderr (a `pattern_match` event), and an HTTP server found by its
//! pid file holds a listening socket and the daemon's connections. The bundle holds the
//! timeline, the logs and the processes' connections, not the secret, and `sha256sum -c`
//! passes; without a reachable daemon the bundle says so.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

use crate::common::daemon::{Daemon, daemon_bin};
use crate::common::paths::npm_server_js;
use crate::common::processes::{kill_pid, run_bounded};
use crate::common::servers::{everything_stdio_entry, spawn_http_everything};
use crate::common::tools::{Tool, require};
use crate::common::wait::eventually;

const WAIT: Duration = Duration::from_secs(90);
const POLL: Duration = Duration::from_millis(250);
const CLI_TIMEOUT: Duration = Duration::from_secs(120);
/// The secret the fixture server is given and prints on its stderr.
const SECRET: &str = "incident-secret-7f3a91c0d2";

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn incident(args: &[&str]) -> Output {
    run_bounded(
        Command::new(daemon_bin())
            .arg("incident")
            .args(args)
            .env("INCIDENT_TOKEN", SECRET),
        CLI_TIMEOUT,
    )
    .unwrap_or_else(|e| panic!("mcp-exporter incident {args:?}: {e}"))
}

/// Extracts `bundle` into `into`; returns the bundle's top directory.
fn extract(bundle: &Path, into: &Path) -> PathBuf {
    let out = run_bounded(
        Command::new("tar")
            .arg("xzf")
            .arg(bundle)
            .arg("-C")
            .arg(into),
        CLI_TIMEOUT,
    )
    .expect("tar");
    assert!(out.status.success(), "tar: {}", text(&out));
    let tops: Vec<PathBuf> = std::fs::read_dir(into)
        .expect("extracted")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .collect();
    assert_eq!(tops.len(), 1, "one top directory: {tops:?}");
    tops.into_iter().next().unwrap_or_default()
}

/// Every file under `dir` with its text.
fn files_under(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            let text = std::fs::read_to_string(&path).expect("text file");
            out.push((path, text));
        }
    }
    out
}

fn read(top: &Path, rel: &str) -> String {
    std::fs::read_to_string(top.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn server_pids(daemon: &Daemon, name: &str) -> Vec<u64> {
    let (status, body) = daemon.get("/api/servers");
    assert_eq!(status, 200, "{body}");
    let list: Value = serde_json::from_str(&body).expect("json");
    list.as_array()
        .into_iter()
        .flatten()
        .find(|s| s["name"] == name)
        .and_then(|s| s["process"]["pids"].as_array())
        .map(|pids| pids.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default()
}

#[test]
fn a_real_incident_bundle_holds_timeline_logs_and_connections_but_not_the_secret() {
    if require(Tool::Node).is_none() {
        return;
    }
    let (web, web_port) = spawn_http_everything("streamableHttp");
    let pid_dir = tempfile::tempdir().expect("tempdir");
    let pid_file = pid_dir.path().join("web.pid");
    std::fs::write(&pid_file, web.pid().to_string()).expect("pid file");
    let everything_js = npm_server_js("everything");
    let config = format!(
        r#"[store]
path = "{{dir}}/history.db"
{everything}
[[servers]]
name = "leaky"
transport = "stdio"
command = "sh"
args = ["-c", "echo \"connecting with token $API_TOKEN\" >&2; echo 'permission denied: /etc/shadow' >&2; exec node {js} stdio"]
env = {{ API_TOKEN = "${{INCIDENT_TOKEN}}" }}
interval = "500ms"
timeout = "10s"

[[servers]]
name = "web"
transport = "http"
url = "http://127.0.0.1:{web_port}/mcp"
interval = "500ms"
pid_file = "{pid_file}"
"#,
        everything = everything_stdio_entry("everything", "500ms", ""),
        js = everything_js.display(),
        pid_file = pid_file.display(),
    );
    let daemon = Daemon::start_with(&config, &[], &[("INCIDENT_TOKEN", SECRET)]);
    let config_path = daemon.config_path().to_string_lossy().into_owned();

    // The incident: the stdio child killed, and the fixture's pattern on stderr.
    let child = eventually(WAIT, POLL, || {
        match server_pids(&daemon, "everything").first() {
            Some(pid) => Ok(*pid),
            None => Err("no pid of everything yet".to_string()),
        }
    });
    kill_pid(u32::try_from(child).expect("pid"), libc::SIGKILL);
    eventually(WAIT, POLL, || {
        let scrape = daemon.scrape();
        let restarts = scrape.sum("mcp_server_restarts_total", &[("server", "everything")]);
        let events = scrape.sum(
            "mcp_security_events_total",
            &[("server", "leaky"), ("kind", "pattern_match")],
        );
        let web_up = scrape.value("mcp_server_up", &[("server", "web")]);
        let restarted = server_pids(&daemon, "everything")
            .first()
            .is_some_and(|pid| *pid != child);
        if restarts >= 1.0 && events >= 1.0 && web_up == Some(1.0) && restarted {
            Ok(())
        } else {
            Err(format!(
                "restarts {restarts}, pattern events {events}, web up {web_up:?}, restarted {restarted}"
            ))
        }
    });
    // The rows reach the store within the writer's linger; wait for the restart's transition.
    let db = daemon.dir().join("history.db");
    eventually(WAIT, POLL, || {
        let out = run_bounded(
            Command::new(daemon_bin()).args([
                "history",
                "--db",
                &db.to_string_lossy(),
                "--server",
                "everything",
                "--output",
                "json",
            ]),
            CLI_TIMEOUT,
        )?;
        let h: Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
        let kinds: Vec<&str> = h["transitions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["kind"].as_str())
            .collect();
        if kinds.iter().any(|k| *k != "up") {
            Ok(())
        } else {
            Err(format!("transitions so far: {kinds:?}"))
        }
    });

    let work = tempfile::tempdir().expect("tempdir");
    let bundle = work.path().join("incident.tar.gz");
    let metrics_url = daemon.url("/metrics");
    let out = incident(&[
        "--config",
        &config_path,
        "--since",
        "1h",
        "--out",
        &bundle.to_string_lossy(),
        "--url",
        &metrics_url,
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let unpacked = work.path().join("unpacked");
    std::fs::create_dir(&unpacked).expect("mkdir");
    let top = extract(&bundle, &unpacked);

    // Integrity: the manifest verifies with the standard tool.
    let check = run_bounded(
        Command::new("sha256sum")
            .args(["-c", "SHA256SUMS"])
            .current_dir(&top),
        CLI_TIMEOUT,
    )
    .expect("sha256sum");
    assert!(check.status.success(), "sha256sum -c: {}", text(&check));
    let files = files_under(&top);
    let listed = read(&top, "SHA256SUMS");
    assert_eq!(listed.lines().count(), files.len() - 1, "{listed}");

    // Never the secret, anywhere; the line that carried it is there, masked.
    for (path, content) in &files {
        assert!(
            !content.contains(SECRET),
            "{} holds the secret",
            path.display()
        );
    }
    let logs = read(&top, "history/logs.jsonl");
    assert!(
        logs.contains("connecting with token [REDACTED]"),
        "the fixture's stderr line is in the logs, masked:\n{logs}"
    );

    // The timeline: the restart of everything and the security event of leaky.
    let summary = read(&top, "summary.md");
    let timeline = summary
        .split("## Timeline")
        .nth(1)
        .and_then(|rest| rest.split("## Processes").next())
        .unwrap_or_default();
    assert!(
        timeline.lines().any(|l| l.contains("| everything |")
            && (l.contains("| restart (") || l.contains("| down ("))),
        "no transition of everything in the timeline:\n{timeline}"
    );
    assert!(
        timeline
            .lines()
            .any(|l| l.contains("| leaky |") && l.contains("pattern_match")),
        "no security event in the timeline:\n{timeline}"
    );
    assert!(
        summary.contains(&format!("read from the running daemon at {metrics_url}")),
        "{summary}"
    );
    let security = read(&top, "history/security-events.jsonl");
    assert!(security.contains("pattern_match"), "{security}");
    let transitions = read(&top, "history/transitions.jsonl");
    assert!(transitions.contains("\"everything\""), "{transitions}");

    // Processes: the HTTP server's listening socket (found through its pid file), the stdio
    // children from the daemon with their command lines, environment names without values.
    let web_txt = read(&top, "processes/web.txt");
    assert!(web_txt.contains(&format!("pid {}", web.pid())), "{web_txt}");
    assert!(
        web_txt
            .lines()
            .any(|l| l.contains(&format!("127.0.0.1:{web_port}")) && l.contains("LISTEN")),
        "no listening socket on {web_port}:\n{web_txt}"
    );
    let web_json: Value =
        serde_json::from_str(&read(&top, "processes/web.json")).expect("web.json");
    assert!(
        web_json["found_by"]
            .as_str()
            .is_some_and(|f| f.starts_with("pid_file")),
        "{web_json}"
    );
    let leaky = read(&top, "processes/leaky.txt");
    assert!(
        leaky.contains("API_TOKEN") && leaky.contains("stdio"),
        "{leaky}"
    );
    let everything = read(&top, "processes/everything.txt");
    assert!(everything.contains("index.js stdio"), "{everything}");
    assert!(everything.contains("PATH"), "{everything}");
    assert!(!everything.contains("PATH=/"), "{everything}");
    let metrics = read(&top, "metrics/metrics.txt");
    assert!(
        metrics.contains("mcp_server_up{server=\"web\"} 1"),
        "{metrics}"
    );
    assert!(top.join("config/effective.txt").is_file());
    assert!(top.join("config/config.toml").is_file());

    // One server, and no daemon to ask: the bundle says what it lacks.
    let alone = work.path().join("alone.tar.gz");
    let out = incident(&[
        "--config",
        &config_path,
        "--server",
        "leaky",
        "--out",
        &alone.to_string_lossy(),
        "--url",
        "http://127.0.0.1:9/metrics",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let unpacked = work.path().join("alone");
    std::fs::create_dir(&unpacked).expect("mkdir");
    let top = extract(&alone, &unpacked);
    let summary = read(&top, "summary.md");
    assert!(summary.contains("/metrics: NOT READ"), "{summary}");
    assert!(top.join("metrics/UNAVAILABLE.txt").is_file());
    assert!(!top.join("processes/web.json").exists());
    assert!(!read(&top, "history/logs.jsonl").contains("\"everything\""));
    let check = run_bounded(
        Command::new("sha256sum")
            .args(["-c", "SHA256SUMS"])
            .current_dir(&top),
        CLI_TIMEOUT,
    )
    .expect("sha256sum");
    assert!(check.status.success(), "sha256sum -c: {}", text(&check));
    drop(web);
}

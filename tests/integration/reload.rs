//! Live reload through `POST /-/reload` (Prometheus' lifecycle endpoint) and the flag names
//! operators already type for Prometheus exporters (`--config.file`, `--web.listen-address`,
//! `--web.telemetry-path`, `--log.level`, `--log.format`).

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::common::daemon::{Daemon, daemon_bin, parse_listen_addr};
use crate::common::http::{HTTP_TIMEOUT, http_request};
use crate::common::processes::spawn_guarded;
use crate::common::scrape::Scrape;
use crate::common::servers::everything_stdio_entry;
use crate::common::tools::{Tool, require};
use crate::common::wait::eventually;

const WAIT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(250);

fn server(name: &str, check: &str) -> String {
    everything_stdio_entry(name, "1s", &format!("check = \"{check}\""))
}

fn post_reload(daemon: &Daemon) -> (u16, String) {
    let response = daemon.request("POST", "/-/reload", &[], b"");
    (response.status, response.text())
}

/// The pid of a server's stdio child, from `/api/servers`.
fn child_pid(daemon: &Daemon, name: &str) -> Option<u64> {
    let (_, body) = daemon.get("/api/servers");
    let servers: Value = serde_json::from_str(&body).ok()?;
    servers.as_array()?.iter().find(|s| s["name"] == name)?["process"]["pids"][0].as_u64()
}

fn wait_for(daemon: &Daemon, what: &str, check: impl Fn(&Scrape) -> bool) -> Scrape {
    eventually(WAIT, POLL, || {
        let scrape = daemon.scrape();
        if check(&scrape) {
            Ok(scrape)
        } else {
            Err(format!("{what}; status: {}", daemon.get("/api/servers").1))
        }
    })
}

fn is_up(scrape: &Scrape, server: &str) -> bool {
    scrape.value("mcp_server_up", &[("server", server)]) == Some(1.0)
}

#[test]
fn post_reload_adds_removes_and_changes_servers_and_keeps_unchanged_children() {
    if require(Tool::Node).is_none() {
        return;
    }
    let daemon = Daemon::start_with(
        &format!(
            "{}{}{}",
            server("kept", "liveness"),
            server("removed", "liveness"),
            server("changed", "liveness")
        ),
        &["--web.enable-lifecycle"],
        &[],
    );
    wait_for(&daemon, "all three up", |s| {
        ["kept", "removed", "changed"].iter().all(|n| is_up(s, n))
    });
    let kept_pid = eventually(WAIT, POLL, || {
        child_pid(&daemon, "kept").ok_or_else(|| "no pid for kept yet".to_string())
    });
    let changed_pid = eventually(WAIT, POLL, || {
        child_pid(&daemon, "changed").ok_or_else(|| "no pid for changed yet".to_string())
    });

    daemon.rewrite_config(&format!(
        "{}{}{}",
        server("kept", "liveness"),
        server("changed", "readiness"),
        server("added", "liveness")
    ));
    let (status, body) = post_reload(&daemon);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("configuration reloaded: 3 servers"), "{body}");
    let scrape = wait_for(&daemon, "removed gone, added and changed up", |s| {
        !s.text().contains("server=\"removed\"") && is_up(s, "added") && is_up(s, "changed")
    });
    assert_eq!(
        scrape.value("mcp_exporter_config_last_reload_successful", &[]),
        Some(1.0)
    );
    assert_eq!(
        child_pid(&daemon, "kept"),
        Some(kept_pid),
        "an unchanged server keeps its child"
    );
    let new_changed = eventually(WAIT, POLL, || {
        child_pid(&daemon, "changed").ok_or_else(|| "no pid for changed yet".to_string())
    });
    assert_ne!(new_changed, changed_pid, "a changed server is restarted");

    // A broken file is refused with its reason; everything keeps running.
    daemon.rewrite_config("[[servers]]\nname = \"x\"\ntransport = \"grpc\"\n");
    let (status, body) = post_reload(&daemon);
    assert_eq!(status, 500, "{body}");
    assert!(
        body.contains("configuration rejected") && body.contains("unknown variant `grpc`"),
        "{body}"
    );
    let scrape = daemon.scrape();
    assert_eq!(
        scrape.value("mcp_exporter_config_last_reload_successful", &[]),
        Some(0.0)
    );
    for name in ["kept", "changed", "added"] {
        assert!(
            is_up(&scrape, name),
            "{name} still probed after a bad reload"
        );
    }
    assert_eq!(child_pid(&daemon, "kept"), Some(kept_pid));
}

#[test]
fn the_lifecycle_endpoint_is_off_unless_enabled() {
    let daemon = Daemon::start("");
    let (status, body) = post_reload(&daemon);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("--web.enable-lifecycle"), "{body}");
}

#[test]
fn prometheus_exporter_flag_names_work_on_serve() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("exporter.toml");
    std::fs::write(&config, "").expect("write config");
    let mut command = Command::new(daemon_bin());
    command
        .arg("serve")
        .arg("--config.file")
        .arg(&config)
        .args([
            "--web.listen-address",
            "127.0.0.1:0",
            "--web.telemetry-path",
            "/custom-metrics",
            "--log.level",
            "debug",
            "--log.format",
            "json",
        ])
        .current_dir(dir.path())
        .env_remove("RUST_LOG");
    let daemon = spawn_guarded("mcp-exporter with Prometheus flag names", &mut command);
    let addr = eventually(WAIT, POLL, || {
        parse_listen_addr(&daemon.output()).ok_or_else(|| daemon.output())
    });
    let get = |path: &str| {
        http_request(&addr, "GET", path, &[], b"", HTTP_TIMEOUT)
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    };
    let metrics = get("/custom-metrics");
    assert_eq!(metrics.status, 200);
    assert!(metrics.text().contains("mcp_exporter_build_info"));
    assert_eq!(get("/metrics").status, 404, "the telemetry path moved");
    let logs = daemon.output();
    assert!(
        logs.lines()
            .any(|l| l.starts_with('{') && l.contains("\"log.level\":\"debug\"")),
        "--log.format json and --log.level debug apply:\n{logs}"
    );
}

#[test]
fn a_telemetry_path_that_is_not_a_path_is_refused() {
    let out = Command::new(daemon_bin())
        .args(["serve", "--web.telemetry-path", "metrics"])
        .output()
        .expect("run mcp-exporter");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not a URL path"), "{stderr}");
}

/// Servers found by `--discovery.dir` are not in the configuration file: a reload (SIGHUP and
/// `POST /-/reload`) that adds a static server keeps them probing on the session they had.
#[test]
fn a_reload_keeps_the_servers_found_by_discovery() {
    if require(Tool::Node).is_none() {
        return;
    }
    let (_everything, port) = crate::common::servers::spawn_http_everything("streamableHttp");
    let discovery = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        discovery.path().join("targets.json"),
        format!(
            r#"[{{"targets": ["127.0.0.1:{port}"], "labels": {{"name": "found", "check": "liveness"}}}}]"#
        ),
    )
    .expect("write the target file");
    // Discovered servers take the exporter's interval.
    let exporter = "[exporter]\ninterval = \"1s\"\n";
    let daemon = Daemon::start_with(
        &format!("{exporter}{}", server("static", "liveness")),
        &[
            "--web.enable-lifecycle",
            "--discovery.dir",
            &discovery.path().display().to_string(),
        ],
        &[],
    );
    let sessions = |s: &Scrape| s.value("mcp_sessions_started_total", &[("server", "found")]);
    let before = wait_for(&daemon, "static and found up", |s| {
        is_up(s, "static") && is_up(s, "found")
    });
    let started = sessions(&before);
    assert!(started.is_some_and(|n| n >= 1.0), "{}", before.text());
    let probes = |s: &Scrape| {
        s.value("mcp_probes_total", &[("server", "found")])
            .unwrap_or(0.0)
    };

    daemon.rewrite_config(&format!(
        "{exporter}{}{}",
        server("static", "liveness"),
        server("added", "liveness")
    ));
    daemon.signal(libc::SIGHUP);
    wait_for(&daemon, "added up after SIGHUP", |s| is_up(s, "added"));
    let (status, body) = post_reload(&daemon);
    assert_eq!(status, 200, "{body}");
    let probed_then = probes(&daemon.scrape());
    let after = wait_for(&daemon, "found probed again after the reloads", |s| {
        is_up(s, "found") && probes(s) >= probed_then + 2.0
    });
    assert_eq!(
        sessions(&after),
        started,
        "the discovered server kept its session across both reloads"
    );
}

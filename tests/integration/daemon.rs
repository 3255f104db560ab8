//! The daemon end to end: real reference MCP servers over stdio, Streamable HTTP and SSE, a
//! modern-era Python SDK server, and fixtures of our own for behaviour no real server shows.

use std::process::Command;
use std::time::Duration;

use crate::common::daemon::Daemon;
use crate::common::paths::{fixture, npm_server_js, repo_root};
use crate::common::process_table::pid_alive;
use crate::common::processes::kill_group;
use crate::common::scrape::{Sample, Scrape, promtool_check_metrics};
use crate::common::servers::{
    spawn_hang_server, spawn_http_everything, spawn_http_everything_on, spawn_py_modern,
};
use crate::common::tools::{Tool, require, require_all};
use crate::common::wait::eventually;

/// The exposition lines of one family, for assertion messages.
fn grep(scrape: &Scrape, family: &str) -> String {
    scrape
        .text()
        .lines()
        .filter(|l| l.contains(family))
        .collect::<Vec<_>>()
        .join("\n")
}

const WAIT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(200);

fn everything_stdio(name: &str, extra: &str) -> String {
    crate::common::servers::everything_stdio_entry(name, "1s", extra)
}

fn http_server(name: &str, transport: &str, url: &str, extra: &str) -> String {
    format!(
        r#"
[[servers]]
name = "{name}"
transport = "{transport}"
url = "{url}"
interval = "1s"
{extra}
"#
    )
}

const ECHO_CALL: &str =
    r#"call = { tool = "echo", arguments = { message = "probe" }, expect_text = "Echo: probe" }"#;

fn up(scrape: &Scrape, server: &str) -> Option<f64> {
    scrape.value("mcp_server_up", &[("server", server)])
}

fn wait_up(daemon: &Daemon, server: &str, want: f64) -> Scrape {
    eventually(WAIT, POLL, || {
        let scrape = daemon.scrape();
        match up(&scrape, server) {
            Some(v) if v == want => Ok(scrape),
            other => Err(format!(
                "mcp_server_up{{server={server:?}}} is {other:?}, want {want}; status: {}",
                daemon.get("/api/servers").1
            )),
        }
    })
}

#[test]
fn real_servers_over_every_transport_are_up_with_identity_and_metrics() {
    if !require_all(&[Tool::Node, Tool::Python]) {
        return;
    }
    let (_http, http_port) = spawn_http_everything("streamableHttp");
    let (_sse, sse_port) = spawn_http_everything("sse");
    let (_py, py_port) = spawn_py_modern("http");
    let memory_file = tempfile::NamedTempFile::new().expect("temp file");
    let fs_dir = tempfile::tempdir().expect("temp dir");
    let config = format!(
        "{}{}{}{}{}",
        everything_stdio("everything", ECHO_CALL),
        format_args!(
            r#"
[[servers]]
name = "memory"
transport = "stdio"
command = "node"
args = ["{}"]
env = {{ MEMORY_FILE_PATH = "{}" }}
interval = "1s"

[[servers]]
name = "filesystem"
transport = "stdio"
command = "node"
args = ["{}", "{}"]
interval = "1s"
expected_tools = ["list_directory"]
"#,
            npm_server_js("memory").display(),
            memory_file.path().display(),
            npm_server_js("filesystem").display(),
            fs_dir.path().display()
        ),
        http_server(
            "everything-http",
            "http",
            &format!("http://127.0.0.1:{http_port}/mcp"),
            ECHO_CALL
        ),
        http_server(
            "everything-sse",
            "sse",
            &format!("http://127.0.0.1:{sse_port}/sse"),
            ECHO_CALL
        ),
        http_server(
            "python-modern",
            "http",
            &format!("http://127.0.0.1:{py_port}/mcp"),
            ECHO_CALL
        ),
    );
    let daemon = Daemon::start(&config);
    let servers = [
        "everything",
        "memory",
        "filesystem",
        "everything-http",
        "everything-sse",
        "python-modern",
    ];
    let first = eventually(WAIT, POLL, || {
        let scrape = daemon.scrape();
        let down: Vec<&str> = servers
            .iter()
            .copied()
            .filter(|s| {
                up(&scrape, s) != Some(1.0)
                    || scrape.value("mcp_probe_success", &[("server", s)]) != Some(1.0)
            })
            .collect();
        if down.is_empty() {
            Ok(scrape)
        } else {
            Err(format!(
                "not up and successful yet: {down:?}; status: {}",
                daemon.get("/api/servers").1
            ))
        }
    });

    for (server, transport, era, version) in [
        ("everything", "stdio", "legacy", "2025-11-25"),
        ("everything-http", "http", "legacy", "2025-11-25"),
        ("everything-sse", "sse", "legacy", "2025-11-25"),
        ("python-modern", "http", "modern", "2026-07-28"),
    ] {
        let name = if server == "python-modern" {
            "py-probe-target"
        } else {
            "mcp-servers/everything"
        };
        assert_eq!(
            first.value(
                "mcp_server_info",
                &[
                    ("server", server),
                    ("server_name", name),
                    ("transport", transport),
                    ("era", era),
                    ("protocol_version", version),
                ]
            ),
            Some(1.0),
            "mcp_server_info of {server}:\n{}",
            grep(&first, "mcp_server_info")
        );
    }
    assert_eq!(
        first.value(
            "mcp_server_info",
            &[("server", "memory"), ("server_name", "memory-server")]
        ),
        Some(1.0)
    );

    // The era probe: a legacy server refuses server/discover and then completes initialize.
    // That refusal is counted as `unsupported`, never as an error, so a healthy legacy server
    // shows no error ratio; the modern server's discover is `ok`.
    for server in ["everything", "everything-http"] {
        assert_eq!(
            first.value(
                "mcp_requests_total",
                &[
                    ("server", server),
                    ("method", "server/discover"),
                    ("outcome", "unsupported")
                ]
            ),
            Some(1.0),
            "{}",
            grep(&first, "mcp_requests_total")
        );
    }
    assert!(
        first
            .value(
                "mcp_requests_total",
                &[
                    ("server", "python-modern"),
                    ("method", "server/discover"),
                    ("outcome", "ok")
                ]
            )
            .unwrap_or(0.0)
            >= 1.0,
        "{}",
        grep(&first, "mcp_requests_total")
    );
    let errors: Vec<&Sample> = first
        .all()
        .iter()
        .filter(|s| {
            s.name == "mcp_requests_total"
                && s.labels.get("outcome").map(String::as_str) == Some("error")
        })
        .collect();
    assert!(
        errors.is_empty(),
        "healthy servers counted errors: {errors:?}"
    );
    assert!(
        first
            .value("mcp_server_tools", &[("server", "everything")])
            .unwrap_or(0.0)
            >= 10.0
    );
    assert_eq!(
        first.value("mcp_server_health_status", &[("server", "everything")]),
        Some(2.0)
    );

    // The configured echo call lands in the tool histogram, on every transport.
    for server in [
        "everything",
        "everything-http",
        "everything-sse",
        "python-modern",
    ] {
        let calls = first
            .value(
                "mcp_tool_execution_duration_seconds_count",
                &[("server", server), ("tool", "echo")],
            )
            .unwrap_or(0.0);
        assert!(calls >= 1.0, "no echo call recorded for {server}");
    }

    // Histogram counts grow between scrapes: probes keep running on their own schedule.
    let before = first
        .value(
            "mcp_request_duration_seconds_count",
            &[("server", "everything"), ("method", "ping")],
        )
        .unwrap_or(0.0);
    eventually(WAIT, POLL, || {
        let now = daemon
            .scrape()
            .value(
                "mcp_request_duration_seconds_count",
                &[("server", "everything"), ("method", "ping")],
            )
            .unwrap_or(0.0);
        if now > before {
            Ok(())
        } else {
            Err(format!("ping count still {now} (was {before})"))
        }
    });

    // HTTP phases (as blackbox_exporter's probe_http_duration_seconds): every HTTP transport
    // reports the four phases of its last probe, the server's processing is never zero, and
    // stdio servers have none. Keep-alive works: after several probes, fewer connections were
    // opened than probes ran (the legacy SSE stream holds one of its own).
    let http_servers = ["everything-http", "everything-sse", "python-modern"];
    let after_probes = |at_least: f64| {
        eventually(WAIT, POLL, || {
            let scrape = daemon.scrape();
            let behind: Vec<&str> = http_servers
                .iter()
                .copied()
                .filter(|s| {
                    scrape
                        .value("mcp_probes_total", &[("server", s)])
                        .unwrap_or(0.0)
                        < at_least
                })
                .collect();
            if behind.is_empty() {
                Ok(scrape)
            } else {
                Err(format!("fewer than {at_least} probes yet: {behind:?}"))
            }
        })
    };
    let settled = after_probes(4.0);
    // Four probes later: start-up may open a few connections (the SSE stream, a second one
    // while the first is still busy), but kept-alive ones are not opened again per probe.
    let later = after_probes(8.0);
    for server in http_servers {
        let phase = |name: &str| {
            settled.value(
                "mcp_probe_http_phase_duration_seconds",
                &[("server", server), ("phase", name)],
            )
        };
        let detail = grep(&settled, "mcp_probe_http_phase_duration_seconds");
        for name in ["resolve", "connect", "transfer"] {
            assert!(
                phase(name).is_some_and(|v| v >= 0.0),
                "{server} {name}: {detail}"
            );
        }
        assert!(
            phase("processing").is_some_and(|v| v > 0.0),
            "{server}: {detail}"
        );
        let counts = |scrape: &Scrape| {
            (
                scrape
                    .value("mcp_http_connections_opened_total", &[("server", server)])
                    .unwrap_or(0.0),
                scrape
                    .value("mcp_probes_total", &[("server", server)])
                    .unwrap_or(0.0),
            )
        };
        let (opened, probes) = counts(&settled);
        let (opened_later, probes_later) = counts(&later);
        // One session, kept: every probe after the first was a hit of the session cache.
        let hit_rate = settled
            .value("mcp_cache_hit_rate", &[("server", server)])
            .unwrap_or(0.0);
        assert!(
            hit_rate >= 0.5,
            "{server}: {}",
            grep(&settled, "mcp_cache_hit_rate")
        );
        assert!(
            opened >= 1.0 && opened_later - opened < probes_later - probes,
            "{server}: {opened} connections in {probes} probes, then {opened_later} in {probes_later}\n{}",
            grep(&later, "mcp_http_connections_opened_total")
        );
    }
    assert_eq!(
        settled.value(
            "mcp_probe_http_phase_duration_seconds",
            &[("server", "everything"), ("phase", "processing")]
        ),
        None,
        "a stdio server has no HTTP phases"
    );

    // Messages are counted in both directions.
    let later = daemon.scrape();
    assert!(
        later
            .value(
                "mcp_messages_processed_total",
                &[("server", "everything"), ("direction", "sent")]
            )
            .unwrap_or(0.0)
            > 0.0
    );
    assert!(
        later
            .value(
                "mcp_messages_processed_total",
                &[("server", "everything"), ("direction", "received")]
            )
            .unwrap_or(0.0)
            > 0.0
    );

    // The exposition passes promtool's checks.
    if let Err(problems) = promtool_check_metrics(later.text()) {
        panic!(
            "promtool check metrics failed:\n{problems}\n--- exposition ---\n{}",
            later.text()
        );
    }

    // OpenMetrics by content negotiation.
    let response = daemon.request(
        "GET",
        "/metrics",
        &[(
            "Accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        )],
        b"",
    );
    assert_eq!(response.status, 200);
    let content_type = response
        .header("content-type")
        .unwrap_or_default()
        .to_string();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    assert!(response.text().trim_end().ends_with("# EOF"));

    // gzip when the scraper asks, as Prometheus does; the same exposition once decoded.
    let packed = daemon.request("GET", "/metrics", &[("Accept-Encoding", "gzip")], b"");
    assert_eq!(packed.status, 200);
    assert_eq!(packed.header("content-encoding"), Some("gzip"));
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(packed.body.as_slice()),
        &mut text,
    )
    .expect("a gzip body");
    let decoded = Scrape::parse(&text).expect("the decoded body is an exposition");
    assert!(
        decoded.value("mcp_server_up", &[("server", "everything")]) == Some(1.0),
        "{text}"
    );
    assert!(
        packed.body.len() * 4 < text.len(),
        "{} bytes",
        packed.body.len()
    );
    let plain = daemon.request("GET", "/metrics", &[], b"");
    assert_eq!(plain.header("content-encoding"), None);

    // /api/servers gives durations in seconds, as jq users expect.
    let (status, api) = daemon.get("/api/servers");
    assert_eq!(status, 200);
    let servers: serde_json::Value = serde_json::from_str(&api).expect("JSON");
    let http = servers
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == "everything-http"))
        .expect("everything-http in /api/servers");
    assert_eq!(http["interval"], 1.0, "{http}");
    let probe = &http["last_probe"];
    assert!(
        probe["duration"].as_f64().is_some_and(|d| d > 0.0),
        "{probe}"
    );
    assert!(probe["stages"][0][1].as_f64().is_some(), "{probe}");
    assert!(
        probe["http_phases"]["processing"]
            .as_f64()
            .is_some_and(|d| d > 0.0),
        "{probe}"
    );

    // Status page and health endpoint.
    let (status, page) = daemon.get("/");
    assert_eq!(status, 200);
    assert!(
        page.contains("everything-http") && page.contains("HEALTHY"),
        "{page}"
    );
    let (status, health) = daemon.get("/health");
    assert_eq!(status, 200);
    assert!(health.contains("\"status\":\"ok\""), "{health}");
    assert_eq!(daemon.get("/nope").0, 404);
}

#[test]
fn a_killed_stdio_child_reads_down_then_is_respawned() {
    if require(Tool::Node).is_none() {
        return;
    }
    let daemon = Daemon::start(&everything_stdio("everything", "check = \"liveness\""));
    wait_up(&daemon, "everything", 1.0);
    let children = daemon.child_pids();
    assert!(!children.is_empty(), "the daemon has no child process");
    for pid in &children {
        // SIGKILL the child's whole process group: the server crashed.
        kill_group(*pid, libc::SIGKILL);
    }
    let down = wait_up(&daemon, "everything", 0.0);
    let failures = down
        .value(
            "mcp_probe_failures_total",
            &[("server", "everything"), ("class", "down")],
        )
        .unwrap_or(0.0);
    assert!(failures >= 1.0, "{}", grep(&down, "mcp_probe_failures"));
    let (_, status) = daemon.get("/api/servers");
    assert!(
        status.contains("signal 9") || status.contains("closed"),
        "{status}"
    );
    let back = wait_up(&daemon, "everything", 1.0);
    assert!(
        back.value("mcp_sessions_started_total", &[("server", "everything")])
            .unwrap_or(0.0)
            >= 2.0
    );
    let new_children = daemon.child_pids();
    assert!(
        new_children.iter().all(|p| !children.contains(p)),
        "child was not respawned"
    );
    // The crash cost the session cache: the recent probes include misses.
    let rate = back
        .value("mcp_cache_hit_rate", &[("server", "everything")])
        .expect("mcp_cache_hit_rate");
    assert!(
        (0.0..1.0).contains(&rate),
        "{}",
        grep(&back, "mcp_cache_hit_rate")
    );
}

#[test]
fn a_stopped_http_server_reads_down_and_recovers_when_restarted() {
    if require(Tool::Node).is_none() {
        return;
    }
    let (server, port) = spawn_http_everything("streamableHttp");
    let daemon = Daemon::start(&http_server(
        "remote",
        "http",
        &format!("http://127.0.0.1:{port}/mcp"),
        "",
    ));
    wait_up(&daemon, "remote", 1.0);
    drop(server);
    wait_up(&daemon, "remote", 0.0);
    let _restarted = spawn_http_everything_on("streamableHttp", port);
    wait_up(&daemon, "remote", 1.0);
}

#[test]
fn a_hung_server_delays_neither_scrapes_nor_other_probes() {
    if !require_all(&[Tool::Node, Tool::Python]) {
        return;
    }
    let (_hang, port) = spawn_hang_server();
    let config = format!(
        "{}{}",
        everything_stdio("everything", "check = \"liveness\""),
        http_server(
            "hung",
            "http",
            &format!("http://127.0.0.1:{port}/mcp"),
            "timeout = \"30s\""
        )
    );
    let daemon = Daemon::start(&config);
    // A scrape served while the hung probe is in flight proves /metrics does not wait for probes.
    let during = eventually(WAIT, POLL, || {
        let scrape = daemon.scrape();
        let in_flight = scrape.value("mcp_concurrent_operations", &[("server", "hung")]);
        if in_flight == Some(1.0) && up(&scrape, "everything") == Some(1.0) {
            Ok(scrape)
        } else {
            Err(format!(
                "hung in flight {in_flight:?}, everything up {:?}",
                up(&scrape, "everything")
            ))
        }
    });
    // While the hung probe is still waiting (30 s deadline), the other server keeps its 1 s schedule.
    let start_probes = during
        .value("mcp_probes_total", &[("server", "everything")])
        .unwrap_or(0.0);
    let later = eventually(WAIT, POLL, || {
        let scrape = daemon.scrape();
        let probes = scrape
            .value("mcp_probes_total", &[("server", "everything")])
            .unwrap_or(0.0);
        if probes >= start_probes + 3.0 {
            Ok(scrape)
        } else {
            Err(format!(
                "everything probes {probes}, started at {start_probes}"
            ))
        }
    });
    assert_eq!(
        later.value("mcp_probes_total", &[("server", "hung")]),
        None,
        "the hung server's first probe should still be running"
    );
    assert_eq!(
        later.value("mcp_concurrent_operations", &[("server", "hung")]),
        Some(1.0)
    );
}

#[test]
fn a_missing_command_is_down_with_its_reason_while_others_are_served() {
    if require(Tool::Node).is_none() {
        return;
    }
    let config = format!(
        "{}{}",
        everything_stdio("everything", "check = \"liveness\""),
        r#"
[[servers]]
name = "ghost"
transport = "stdio"
command = "/nonexistent/mcp-server-ghost"
interval = "1s"
"#
    );
    let daemon = Daemon::start(&config);
    let scrape = eventually(WAIT, POLL, || {
        let scrape = daemon.scrape();
        if up(&scrape, "ghost") == Some(0.0) && up(&scrape, "everything") == Some(1.0) {
            Ok(scrape)
        } else {
            Err(format!(
                "ghost {:?} everything {:?}",
                up(&scrape, "ghost"),
                up(&scrape, "everything")
            ))
        }
    });
    assert!(
        scrape
            .value(
                "mcp_probe_failures_total",
                &[("server", "ghost"), ("class", "down")]
            )
            .unwrap_or(0.0)
            >= 1.0
    );
    assert_eq!(
        scrape.value("mcp_server_health_status", &[("server", "ghost")]),
        Some(0.0)
    );
    let (_, status) = daemon.get("/api/servers");
    assert!(status.contains("/nonexistent/mcp-server-ghost"), "{status}");
    assert!(status.to_lowercase().contains("no such file"), "{status}");
}

#[test]
fn a_server_exiting_at_once_with_a_message_is_misconfigured() {
    if require(Tool::Node).is_none() {
        return;
    }
    // server-postgres exits 1 with its usage on stderr when no database URL is given.
    let config = format!(
        r#"
[[servers]]
name = "postgres"
transport = "stdio"
command = "node"
args = ["{}"]
interval = "1s"
"#,
        npm_server_js("postgres").display()
    );
    let daemon = Daemon::start(&config);
    eventually(WAIT, POLL, || {
        let scrape = daemon.scrape();
        match scrape.value(
            "mcp_probe_failures_total",
            &[("server", "postgres"), ("class", "misconfigured")],
        ) {
            Some(v) if v >= 1.0 => Ok(()),
            _ => Err(format!(
                "no misconfigured failure yet: {}",
                daemon.get("/api/servers").1
            )),
        }
    });
    let (_, status) = daemon.get("/api/servers");
    assert!(status.contains("stderr says"), "{status}");
}

#[test]
fn sigterm_ends_sessions_and_leaves_no_orphan() {
    if require(Tool::Node).is_none() {
        return;
    }
    let config = format!(
        "{}{}",
        everything_stdio("one", "check = \"liveness\""),
        everything_stdio("two", "check = \"liveness\"")
    );
    let mut daemon = Daemon::start(&config);
    wait_up(&daemon, "one", 1.0);
    wait_up(&daemon, "two", 1.0);
    let tree = daemon.descendant_pids();
    assert!(
        tree.len() >= 2,
        "expected at least two server processes, got {tree:?}"
    );
    let status = daemon.stop();
    assert!(
        status.success(),
        "daemon exit status {status:?}\n{}",
        daemon.stderr()
    );
    let alive: Vec<u32> = tree.into_iter().filter(|p| pid_alive(*p)).collect();
    assert!(alive.is_empty(), "orphans left behind: {alive:?}");
}

#[test]
fn sighup_reload_drops_the_series_of_a_removed_server() {
    if require(Tool::Node).is_none() {
        return;
    }
    let both = format!(
        "{}{}",
        everything_stdio("kept", "check = \"liveness\""),
        everything_stdio("removed", "check = \"liveness\"")
    );
    let daemon = Daemon::start(&both);
    wait_up(&daemon, "kept", 1.0);
    wait_up(&daemon, "removed", 1.0);
    daemon.rewrite_config(&everything_stdio("kept", "check = \"liveness\""));
    daemon.signal(libc::SIGHUP);
    eventually(WAIT, POLL, || {
        let scrape = daemon.scrape();
        if scrape.text().contains("server=\"removed\"") {
            Err("series of the removed server still exported".to_string())
        } else if up(&scrape, "kept") != Some(1.0) {
            Err("kept server is not up".to_string())
        } else {
            Ok(())
        }
    });
}

#[test]
fn validate_names_what_is_wrong_and_exits_2() {
    let cases = [
        (
            "unknown_transport.toml",
            "unknown_transport.toml:3: `servers[0].transport`: unknown variant `grpc`, expected one of `stdio`, `http`, `sse`",
        ),
        (
            "missing_url.toml",
            "missing_url.toml:6: `servers[0].url`: missing for http server \"remote\"; expected e.g. \"http://127.0.0.1:3001/mcp\"",
        ),
        (
            "bad_duration.toml",
            "bad_duration.toml:2: `exporter.interval`: invalid duration \"fifteen seconds\"",
        ),
        (
            "duplicate_names.toml",
            "duplicate_names.toml:6: `servers[1].name`: duplicate server name \"a\"",
        ),
        (
            "duration_not_a_string.toml",
            "duration_not_a_string.toml:5: `servers[0].timeout`: expected a duration string such as \"10s\" or \"500ms\", found integer `10`",
        ),
    ];
    for (file, expected) in cases {
        let path = fixture(&format!("invalid/{file}"));
        let output = Command::new(env!("CARGO_BIN_EXE_mcp-exporter"))
            .arg("validate")
            .arg(&path)
            .output()
            .expect("run validate");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{file}: {stderr}");
        assert!(
            stderr.contains(expected),
            "{file}:\n  got: {stderr}\n want: {expected}"
        );
    }
    // serve refuses an invalid config with the same message and status.
    let output = Command::new(env!("CARGO_BIN_EXE_mcp-exporter"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(fixture("invalid/missing_url.toml"))
        .output()
        .expect("run serve");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("`servers[0].url`: missing"));
}

#[test]
fn the_example_config_validates() {
    let output = Command::new(env!("CARGO_BIN_EXE_mcp-exporter"))
        .arg("validate")
        .arg(repo_root().join("examples/mcp-exporter.toml"))
        .output()
        .expect("run validate");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("OK: listen 127.0.0.1:8931, 5 server(s)")
    );
}

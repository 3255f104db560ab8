//! The daemon's side of real traffic: `mcp-exporter serve` binds the traffic socket
//! (src/daemon/traffic.rs), `mcp-exporter wrap` runs server-everything for a line-level
//! JSON-RPC client, and `/metrics` shows exactly the requests made, under the configured
//! server's `server` label with `source="traffic"`. Then the daemon is killed while the client
//! works (the session goes on) and restarted (it counts what was made since).

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::daemon::Daemon;
use crate::common::paths::npm_server_js;
use crate::common::scrape::Scrape;
use crate::common::servers::everything_stdio_entry;
use crate::common::tools::{Tool, located, require};
use crate::common::wait::eventually;

/// Longest wait for an answer or a figure.
const WAIT: Duration = Duration::from_secs(30);
/// The configured server's name, which the wrapper's traffic must be filed under.
const SERVER: &str = "everything";

/// A private directory for the socket both daemons of a test use, and its path.
fn socket_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("mcp-traffic-daemon-")
        .tempdir()
        .expect("tempdir");
    let sock = dir.path().join("traffic.sock");
    (dir, sock)
}

/// server-everything over stdio as `[[servers]]` (probed once an hour: the test's figures are
/// the traffic's) plus `[traffic] path`.
fn config(sock: &Path) -> String {
    format!(
        "[traffic]\npath = \"{}\"\n{}",
        sock.display(),
        everything_stdio_entry(SERVER, "1h", "")
    )
}

/// The command line of the configured server, for the wrapper to run.
fn everything_command() -> Vec<OsString> {
    vec![
        located(Tool::Node).into_os_string(),
        npm_server_js("everything").into_os_string(),
        "stdio".into(),
    ]
}

fn start_daemon(sock: &Path) -> Daemon {
    let daemon = Daemon::start(&config(sock));
    eventually(WAIT, Duration::from_millis(100), || {
        let up = daemon.scrape().value("mcp_traffic_socket_up", &[]);
        if up == Some(1.0) {
            Ok(())
        } else {
            Err(format!("mcp_traffic_socket_up {up:?}"))
        }
    });
    daemon
}

/// A JSON-RPC client speaking line by line to `mcp-exporter wrap -- server-everything`.
struct Client {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<Value>,
    next_id: u64,
}

impl Client {
    /// Starts the wrapper (named `unjoined`, so a failed join shows as that label) and
    /// initializes the session.
    fn start(sock: &Path) -> Client {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mcp-exporter"))
            .arg("wrap")
            .arg("--exporter")
            .arg(sock)
            .args(["--name", "unjoined", "--report-interval", "100ms", "--"])
            .args(everything_command())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn mcp-exporter wrap");
        let stdin = child.stdin.take().expect("stdin");
        let mut stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            let mut pending = Vec::new();
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                pending.extend_from_slice(&buf[..n]);
                while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=end).collect();
                    if let Ok(value) = serde_json::from_slice::<Value>(&line)
                        && tx.send(value).is_err()
                    {
                        return;
                    }
                }
            }
        });
        let mut client = Client {
            child,
            stdin,
            lines,
            next_id: 0,
        };
        let init = client.request(
            "initialize",
            json!({
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "traffic-daemon-test", "version": "1"}
            }),
        );
        assert!(init.get("result").is_some(), "initialize: {init}");
        client.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        client
    }

    fn send(&mut self, message: &Value) {
        let mut line = serde_json::to_vec(message).expect("json");
        line.push(b'\n');
        self.stdin.write_all(&line).expect("write to the wrapper");
        self.stdin.flush().expect("flush");
    }

    /// Sends a request and returns its response (other messages are skipped).
    fn request(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let message = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no answer to {method} (id {id}) within {WAIT:?}"));
            if message.get("id") == Some(&json!(id)) && message.get("method").is_none() {
                return message;
            }
        }
    }

    /// Calls `tool`; returns the response.
    fn call(&mut self, tool: &str, arguments: Value) -> Value {
        self.request("tools/call", json!({"name": tool, "arguments": arguments}))
    }

    /// An echo that must come back whole: the session works.
    fn echo(&mut self, i: usize) {
        let message = format!("call {i}");
        let answer = self.call("echo", json!({ "message": message }));
        let text = answer["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or("");
        assert!(
            text.contains(&message) && answer["result"]["isError"] != json!(true),
            "echo {i}: {answer}"
        );
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The traffic value of `name` with `labels` for the configured server (0 when absent).
fn traffic(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut all = vec![("server", SERVER), ("source", "traffic")];
    all.extend_from_slice(labels);
    scrape.sum(name, &all)
}

#[test]
fn wrapped_requests_are_counted_per_method_and_tool_under_the_configured_server() {
    let Some(_) = require(Tool::Node) else { return };
    let (_dir, sock) = socket_dir();
    let daemon = start_daemon(&sock);
    let mut client = Client::start(&sock);
    let tools = client.request("tools/list", json!({}));
    assert!(tools["result"]["tools"].is_array(), "{tools}");
    for i in 0..3 {
        client.echo(i);
    }
    let sum = client.call("get-sum", json!({"a": 2, "b": 3}));
    assert_ne!(sum["result"]["isError"], json!(true), "{sum}");
    let bad = client.call("get-sum", json!({"a": "not a number"}));
    assert_eq!(bad["result"]["isError"], json!(true), "{bad}");
    let missing = client.request("resources/read", json!({"uri": "demo://no-such-resource"}));
    assert_eq!(missing["error"]["code"], json!(-32602), "{missing}");
    let ping = client.request("ping", json!({}));
    assert!(ping.get("result").is_some(), "{ping}");
    // initialize, tools/list, 5 tools/call, resources/read, ping.
    let made = 9.0;

    let scrape = eventually(WAIT, Duration::from_millis(100), || {
        let scrape = daemon.scrape();
        match traffic(&scrape, "mcp_requests_total", &[]) {
            n if n == made => Ok(scrape),
            n => Err(format!("{n} requests counted, {made} made")),
        }
    });
    let requests = |method: &str, outcome: &str| {
        traffic(
            &scrape,
            "mcp_requests_total",
            &[("method", method), ("outcome", outcome)],
        )
    };
    assert_eq!(requests("initialize", "ok"), 1.0);
    assert_eq!(requests("tools/list", "ok"), 1.0);
    assert_eq!(requests("tools/call", "ok"), 4.0);
    assert_eq!(requests("tools/call", "tool_error"), 1.0);
    assert_eq!(requests("tools/call", "error"), 0.0);
    assert_eq!(requests("resources/read", "error"), 1.0);
    assert_eq!(requests("ping", "ok"), 1.0);
    let calls = |tool: &str, outcome: &str| {
        traffic(
            &scrape,
            "mcp_tool_calls_total",
            &[("tool", tool), ("outcome", outcome)],
        )
    };
    assert_eq!(calls("echo", "ok"), 3.0);
    assert_eq!(calls("get-sum", "ok"), 1.0);
    assert_eq!(calls("get-sum", "tool_error"), 1.0);
    assert_eq!(
        traffic(
            &scrape,
            "mcp_tool_execution_duration_seconds_count",
            &[("tool", "echo")]
        ),
        3.0
    );
    assert_eq!(
        traffic(
            &scrape,
            "mcp_request_duration_seconds_count",
            &[("method", "tools/call")]
        ),
        5.0
    );
    assert_eq!(
        traffic(
            &scrape,
            "mcp_request_size_bytes_count",
            &[("method", "tools/call"), ("tool", "echo")]
        ),
        3.0
    );
    assert!(
        traffic(
            &scrape,
            "mcp_response_size_bytes_sum",
            &[("method", "tools/call"), ("tool", "echo")]
        ) > 0.0
    );
    assert_eq!(traffic(&scrape, "mcp_sessions_started_total", &[]), 1.0);
    // The semantic-convention histogram tells a tool error from a JSON-RPC error.
    let operations = |labels: &[(&str, &str)]| {
        let mut all = vec![("server", SERVER), ("network_transport", "pipe")];
        all.extend_from_slice(labels);
        scrape.sum("mcp_server_operation_duration_seconds_count", &all)
    };
    assert_eq!(
        operations(&[
            ("gen_ai_tool_name", "get-sum"),
            ("error_type", "tool_error")
        ]),
        1.0
    );
    assert_eq!(
        operations(&[
            ("mcp_method_name", "resources/read"),
            ("error_type", "-32602")
        ]),
        1.0
    );
    assert_eq!(operations(&[]), made);
    assert_eq!(
        scrape.value("mcp_traffic_wrappers_connected", &[("server", SERVER)]),
        Some(1.0)
    );
    // Nothing under the wrapper's own name: it was joined to the configured server.
    assert!(
        !scrape.text().contains("server=\"unjoined\""),
        "{}",
        scrape.text()
    );
}

#[test]
fn a_killed_daemon_leaves_the_session_alone_and_a_restarted_one_counts_what_followed() {
    let Some(_) = require(Tool::Node) else { return };
    let (_dir, sock) = socket_dir();
    let first = start_daemon(&sock);
    let mut client = Client::start(&sock);
    for i in 0..5 {
        client.echo(i);
    }
    let echo_ok = |daemon: &Daemon| {
        traffic(
            &daemon.scrape(),
            "mcp_tool_calls_total",
            &[("tool", "echo"), ("outcome", "ok")],
        )
    };
    eventually(WAIT, Duration::from_millis(100), || {
        let n = echo_ok(&first);
        if n == 5.0 {
            Ok(())
        } else {
            Err(format!("echo ok {n}"))
        }
    });
    first.signal(libc::SIGKILL);
    drop(first);

    // No daemon: the client's session goes on untouched.
    for i in 0..7 {
        client.echo(i);
    }
    let second = start_daemon(&sock);
    for i in 0..3 {
        client.echo(i);
    }
    eventually(WAIT, Duration::from_millis(100), || {
        let n = echo_ok(&second);
        if n == 10.0 {
            Ok(())
        } else {
            Err(format!("echo ok {n}, 7 + 3 made since the kill"))
        }
    });
    // Nothing more arrives: exactly what was made since the kill, nothing the first had.
    thread::sleep(Duration::from_millis(500));
    let scrape = second.scrape();
    assert_eq!(
        traffic(&scrape, "mcp_tool_calls_total", &[("tool", "echo")]),
        10.0
    );
    assert_eq!(
        traffic(&scrape, "mcp_requests_total", &[("method", "initialize")]),
        0.0
    );
}

#[test]
fn a_reload_joins_new_wrappers_to_the_reloaded_stdio_servers() {
    let Some(_) = require(Tool::Node) else { return };
    let (_dir, sock) = socket_dir();
    let without_servers = format!("[traffic]\npath = \"{}\"\n", sock.display());
    let daemon = Daemon::start(&without_servers);
    let counted = |label: &str| {
        daemon.scrape().sum(
            "mcp_requests_total",
            &[("server", label), ("source", "traffic")],
        )
    };
    let mut before = Client::start(&sock);
    before.echo(0);
    eventually(WAIT, Duration::from_millis(100), || {
        let n = counted("unjoined");
        if n == 2.0 {
            Ok(())
        } else {
            Err(format!("{n} requests under the wrapper's name"))
        }
    });

    daemon.rewrite_config(&config(&sock));
    daemon.signal(libc::SIGHUP);
    eventually(WAIT, Duration::from_millis(100), || {
        let scrape = daemon.scrape();
        if scrape
            .value("mcp_server_up", &[("server", SERVER)])
            .is_some()
        {
            Ok(())
        } else {
            Err("the reloaded server is not probed yet".to_string())
        }
    });
    let mut after = Client::start(&sock);
    after.echo(1);
    after.echo(2);
    eventually(WAIT, Duration::from_millis(100), || {
        let n = counted(SERVER);
        if n == 3.0 {
            Ok(())
        } else {
            Err(format!("{n} requests under {SERVER}"))
        }
    });
    // The wrapper connected before the reload keeps the label it was given.
    before.echo(3);
    eventually(WAIT, Duration::from_millis(100), || {
        let n = counted("unjoined");
        if n == 3.0 {
            Ok(())
        } else {
            Err(format!("{n} requests under the wrapper's name"))
        }
    });
    assert_eq!(counted(SERVER), 3.0);
}

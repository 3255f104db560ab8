//! The MCP peers the tests start over HTTP on 127.0.0.1: the npm "everything" reference server
//! (Streamable HTTP or legacy SSE), the Python SDK's dual-era server, and a server that never
//! answers. Each runs in its own process group and is killed when its guard drops.
//!
//! A test asks [`super::tools::require`] for [`Tool::Node`] or [`Tool::Python`] before it starts
//! one of these.

use std::process::Command;

use super::paths::{fixture, npm_server_js, servers_dir};
use super::processes::{
    ChildGuard, SERVER_START_TIMEOUT, spawn_guarded, spawn_listening, wait_for_port,
};
use super::tools::{Tool, located};

/// Starts the npm "everything" reference server over HTTP on 127.0.0.1 and a fresh port.
///
/// `mode` is `"streamableHttp"` (endpoint `/mcp`) or `"sse"` (endpoints `/sse` and `/message`).
/// Runs `node --require tests/fixtures/loopback.cjs <everything>/dist/index.js <mode>` with
/// `PORT` set; returns once the port accepts TCP (at most 20 s).
pub fn spawn_http_everything(mode: &str) -> (ChildGuard, u16) {
    spawn_listening(&format!("server-everything {mode}"), |port| {
        everything_http_command(mode, port)
    })
}

/// Like [`spawn_http_everything`] on a given port (e.g. to restart a server where it was).
pub fn spawn_http_everything_on(mode: &str, port: u16) -> ChildGuard {
    let mut guard = spawn_guarded(
        &format!("server-everything {mode}"),
        &mut everything_http_command(mode, port),
    );
    if let Err(err) = wait_for_port(&mut guard, port, SERVER_START_TIMEOUT) {
        panic!(
            "server-everything {mode} on port {port}: {err}\n{}",
            guard.output()
        );
    }
    guard
}

fn everything_http_command(mode: &str, port: u16) -> Command {
    assert!(
        mode == "streamableHttp" || mode == "sse",
        "spawn_http_everything: mode must be \"streamableHttp\" or \"sse\", got {mode:?}"
    );
    let mut cmd = Command::new(located(Tool::Node));
    cmd.arg("--require")
        .arg(fixture("loopback.cjs"))
        .arg(npm_server_js("everything"))
        .arg(mode)
        .env("PORT", port.to_string())
        .current_dir(servers_dir());
    cmd
}

/// Starts `tests/fixtures/hang_server.py`: accepts TCP connections on 127.0.0.1 and never
/// answers.
pub fn spawn_hang_server() -> (ChildGuard, u16) {
    let python = located(Tool::Python);
    let script = fixture("hang_server.py");
    spawn_listening("hang_server", |port| {
        let mut cmd = Command::new(&python);
        cmd.arg(&script).arg(port.to_string());
        cmd
    })
}

/// Starts `tests/fixtures/py_modern_server.py` (Python SDK, modern era) over HTTP on 127.0.0.1
/// and a fresh port; endpoint `/mcp`.
///
/// `mode` is `"http"` (stateful streamable HTTP), `"stateless"` or `"json"` (JSON responses
/// instead of SSE). Returns once the port accepts TCP (at most 20 s).
pub fn spawn_py_modern(mode: &str) -> (ChildGuard, u16) {
    assert!(
        matches!(mode, "http" | "stateless" | "json"),
        "spawn_py_modern: mode must be \"http\", \"stateless\" or \"json\", got {mode:?} \
         (for stdio, run the venv python with the fixture yourself)"
    );
    let python = located(Tool::Python);
    let script = fixture("py_modern_server.py");
    spawn_listening(&format!("py_modern_server {mode}"), |port| {
        let mut cmd = Command::new(&python);
        cmd.arg(&script)
            .arg(mode)
            .arg(port.to_string())
            .env("PYTHONUNBUFFERED", "1")
            .current_dir(servers_dir());
        cmd
    })
}

/// A `[[servers]]` entry for the npm "everything" server over stdio (`node .../index.js stdio`),
/// probed every `interval` with a 10 s timeout; `extra` is appended inside the table (e.g.
/// `check = "liveness"`).
pub fn everything_stdio_entry(name: &str, interval: &str, extra: &str) -> String {
    format!(
        r#"
[[servers]]
name = "{name}"
transport = "stdio"
command = "node"
args = ["{}", "stdio"]
interval = "{interval}"
timeout = "10s"
{extra}
"#,
        super::paths::npm_server_js("everything").display()
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::http::{HTTP_TIMEOUT, http_request_head, post_initialize};
    use super::super::net::port_accepts;
    use super::super::tools::require;
    use super::super::wait::eventually;
    use super::*;

    fn assert_port_closes(port: u16) {
        eventually(Duration::from_secs(5), Duration::from_millis(20), || {
            if port_accepts(port, Duration::from_millis(200)) {
                Err(format!("127.0.0.1:{port} still accepts connections"))
            } else {
                Ok(())
            }
        });
    }

    #[test]
    fn everything_streamable_http_answers_initialize() {
        if require(Tool::Node).is_none() {
            return;
        }
        let (guard, port) = spawn_http_everything("streamableHttp");
        let response = post_initialize(port, "/mcp")
            .unwrap_or_else(|e| panic!("POST /mcp: {e}\nserver output:\n{}", guard.output()));
        assert_eq!(response.status, 200, "{}", response.text());
        assert!(response.header("mcp-session-id").is_some());
        let body = response.text();
        assert!(body.contains("\"serverInfo\""), "{body}");
        drop(guard);
        assert_port_closes(port);
    }

    #[test]
    fn everything_sse_serves_an_event_stream() {
        if require(Tool::Node).is_none() {
            return;
        }
        let (guard, port) = spawn_http_everything("sse");
        let response = http_request_head(
            &format!("127.0.0.1:{port}"),
            "GET",
            "/sse",
            &[("Accept", "text/event-stream")],
            HTTP_TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("GET /sse: {e}\nserver output:\n{}", guard.output()));
        assert_eq!(response.status, 200);
        assert!(
            response
                .header("content-type")
                .is_some_and(|v| v.starts_with("text/event-stream")),
            "{:?}",
            response.headers
        );
    }

    fn check_py_modern(mode: &str, content_type: &str) {
        if require(Tool::Python).is_none() {
            return;
        }
        let (guard, port) = spawn_py_modern(mode);
        let response = post_initialize(port, "/mcp")
            .unwrap_or_else(|e| panic!("POST /mcp: {e}\nserver output:\n{}", guard.output()));
        assert_eq!(
            response.status,
            200,
            "{}\nserver output:\n{}",
            response.text(),
            guard.output()
        );
        assert!(
            response
                .header("content-type")
                .is_some_and(|v| v.starts_with(content_type)),
            "{mode}: {:?}",
            response.headers
        );
        let body = response.text();
        assert!(body.contains("py-probe-target"), "{body}");
        drop(guard);
        assert_port_closes(port);
    }

    #[test]
    fn py_modern_http_answers_initialize() {
        check_py_modern("http", "text/event-stream");
    }

    #[test]
    fn py_modern_stateless_answers_initialize() {
        check_py_modern("stateless", "text/event-stream");
    }

    #[test]
    fn py_modern_json_answers_initialize() {
        check_py_modern("json", "application/json");
    }
}

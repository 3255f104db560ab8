//! Integration tests of the MCP client (`mcp_exporter::mcp`) against real servers
//! (server-everything over stdio / Streamable HTTP / legacy SSE, the Python SDK dual-era server)
//! and deliberately broken fixtures.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use mcp_exporter::mcp::{
    Era, Heard, IDLE_CONNECTION_TIMEOUT, Limits, McpError, McpSession, RequestOutcome,
    TransportSpec, WireCounters,
};
use serde_json::json;
use tokio::time::Instant;

use crate::common::net::free_port;
use crate::common::paths::{fixture, npm_server_js};
use crate::common::process_table::{group_members, live_members};
use crate::common::processes::run_bounded;
use crate::common::tools::{Tool, require};
use crate::mcp_support::*;

const HANDSHAKE: Duration = Duration::from_secs(20);
const CALL: Duration = Duration::from_secs(10);

/// A Streamable HTTP server at `url`, no headers, default TLS.
fn http_spec(url: url::Url) -> TransportSpec {
    TransportSpec::Http {
        url,
        headers: vec![],
        tls: Default::default(),
    }
}

/// A legacy SSE server at `url`, no headers, default TLS.
fn sse_spec(url: url::Url) -> TransportSpec {
    TransportSpec::Sse {
        url,
        headers: vec![],
        tls: Default::default(),
    }
}

async fn open(spec: &TransportSpec) -> (McpSession, Arc<WireCounters>) {
    open_with(spec, Limits::default()).await
}

async fn open_with(spec: &TransportSpec, limits: Limits) -> (McpSession, Arc<WireCounters>) {
    let counters = Arc::new(WireCounters::default());
    let session = McpSession::open(spec, limits, counters.clone())
        .await
        .unwrap_or_else(|e| panic!("open {spec:?}: {e}"));
    (session, counters)
}

/// The legacy sequence every server-everything transport must pass.
async fn exercise_everything(session: &mut McpSession, versions: &[&str]) {
    let hs = session.handshake(None, HANDSHAKE).await.expect("handshake");
    assert_eq!(hs.era, Era::Legacy);
    assert!(versions.contains(&hs.protocol_version.as_str()), "{hs:?}");
    assert_eq!(hs.server_name, "mcp-servers/everything");
    assert!(hs.capabilities.get("tools").is_some(), "{hs:?}");
    session.ping(CALL).await.expect("ping");
    let tools = session.list_tools(CALL).await.expect("tools/list");
    assert!(tools.names.len() >= 10, "{tools:?}");
    assert!(tools.names.iter().any(|n| n == "echo"), "{tools:?}");
    assert_eq!((tools.invalid_items, tools.truncated), (0, false));
    let out = session
        .call_tool("echo", json!({"message": "probe"}), CALL)
        .await
        .expect("tools/call echo");
    assert_eq!((out.is_error, out.text.as_str()), (false, "Echo: probe"));
    let unknown = session
        .call_tool("definitely_not_a_tool", json!({}), CALL)
        .await
        .expect("unknown tool is a tool error for server-everything");
    assert!(unknown.is_error, "{unknown:?}");
    let records = session.take_records();
    assert!(
        records
            .iter()
            .any(|r| r.method == "ping" && r.outcome == RequestOutcome::Ok)
    );
    // Over stdio and Streamable HTTP the era probe asked server/discover first; this legacy
    // server refused it, which is recorded as unsupported, not as an error (SSE never asks).
    for discover in records.iter().filter(|r| r.method == "server/discover") {
        assert_eq!(discover.outcome, RequestOutcome::Unsupported, "{records:?}");
    }
    let call = records
        .iter()
        .find(|r| r.tool.as_deref() == Some("echo"))
        .expect("record of the echo call");
    assert!(call.outcome == RequestOutcome::Ok && call.method == "tools/call");
    assert!(
        records
            .iter()
            .any(|r| r.tool.as_deref() == Some("definitely_not_a_tool")
                && r.outcome == RequestOutcome::Error)
    );
    assert!(session.take_records().is_empty(), "records drain");
}

#[tokio::test]
async fn everything_over_stdio() {
    if require(Tool::Node).is_none() {
        return;
    }
    let spec = stdio(
        std::path::Path::new("node"),
        &[&npm_server_js("everything").display().to_string(), "stdio"],
    );
    let (mut session, counters) = open(&spec).await;
    let pid = session.pid().expect("child pid");
    exercise_everything(&mut session, &["2025-11-25"]).await;
    let hs = session.handshake_info().expect("handshake info");
    assert!(
        hs.notes
            .iter()
            .any(|n| n.contains("fell back to initialize")),
        "{hs:?}"
    );
    assert!(session.is_alive());
    assert!(counters.sent.load(Ordering::Relaxed) >= 7);
    assert!(counters.received.load(Ordering::Relaxed) >= 6);
    assert_eq!(counters.in_flight.load(Ordering::Relaxed), 0);
    assert!(
        session
            .take_notifications()
            .iter()
            .any(|n| n.method == "notifications/tools/list_changed")
    );
    let started = Instant::now();
    session.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(live_members(pid).is_empty(), "{:?}", group_members(pid));
}

#[tokio::test]
async fn everything_over_streamable_http() {
    if require(Tool::Node).is_none() {
        return;
    }
    let server = ServerProcess::everything("streamableHttp").await;
    let spec = http_spec(server.url("/mcp"));
    let (mut session, _) = open(&spec).await;
    exercise_everything(&mut session, &["2025-11-25"]).await;
    assert!(
        session
            .handshake_info()
            .and_then(|h| h.session_id.clone())
            .is_some()
    );
    assert!(session.is_alive());
    assert_eq!(session.pid(), None);
    assert_eq!(session.stderr_tail(100), "");
    session.shutdown().await;
}

#[tokio::test]
async fn everything_over_legacy_sse() {
    if require(Tool::Node).is_none() {
        return;
    }
    let server = ServerProcess::everything("sse").await;
    let spec = sse_spec(server.url("/sse"));
    let (mut session, _) = open(&spec).await;
    exercise_everything(&mut session, &["2025-11-25", "2024-11-05"]).await;
    assert!(session.is_alive());
    session.shutdown().await;
}

#[tokio::test]
async fn sse_stream_end_marks_session_dead() {
    if require(Tool::Node).is_none() {
        return;
    }
    let server = ServerProcess::everything("sse").await;
    let spec = sse_spec(server.url("/sse"));
    let (mut session, _) = open(&spec).await;
    session
        .handshake(Some(Era::Legacy), HANDSHAKE)
        .await
        .expect("handshake");
    drop(server);
    let err = session.ping(CALL).await.expect_err("server is gone");
    assert!(
        matches!(
            err,
            McpError::StreamClosed { .. } | McpError::Connect { .. }
        ),
        "{err}"
    );
    assert!(!session.is_alive());
}

#[tokio::test]
async fn lost_http_session_is_reinitialized_once() {
    if require(Tool::Node).is_none() {
        return;
    }
    let server = ServerProcess::everything("streamableHttp").await;
    let url = server.url("/mcp");
    let spec = http_spec(url.clone());
    let (mut session, _) = open(&spec).await;
    let first = session
        .handshake(Some(Era::Legacy), HANDSHAKE)
        .await
        .expect("handshake");
    let old_sid = first.session_id.clone().expect("session id");
    // End the session behind the client's back; server-everything then answers 400.
    let status = reqwest::Client::new()
        .delete(url)
        .header("mcp-session-id", &old_sid)
        .send()
        .await
        .expect("DELETE")
        .status();
    assert!(status.is_success(), "{status}");
    session.ping(CALL).await.expect("ping after re-initialize");
    let now = session.handshake_info().expect("handshake info");
    assert_ne!(now.session_id.as_deref(), Some(old_sid.as_str()));
    assert!(
        now.notes.iter().any(|n| n.contains("re-initialized")),
        "{now:?}"
    );
    session
        .list_tools(CALL)
        .await
        .expect("tools/list on the new session");
    // The re-established session is reported once, so the probe counts a new session.
    assert_eq!(session.take_reinitializations(), 1);
    assert_eq!(session.take_reinitializations(), 0);
    session.shutdown().await;
}

/// A connection idle for longer than `IDLE_CONNECTION_TIMEOUT` is not reused: the next request
/// opens (and times) a new one, as each probe of a server probed less often does
/// (docs/probing.md#connections). server-everything keeps its side open for 5 s (Node's
/// default), so only the client's policy explains the new connection.
#[tokio::test]
async fn http_connection_idle_past_the_timeout_is_opened_again() {
    if require(Tool::Node).is_none() {
        return;
    }
    let server = ServerProcess::everything("streamableHttp").await;
    let spec = http_spec(server.url("/mcp"));
    let (mut session, _) = open(&spec).await;
    session
        .handshake(Some(Era::Legacy), HANDSHAKE)
        .await
        .expect("handshake");
    let first = session.take_http_phases().expect("HTTP phases");
    assert!(first.connections_opened >= 1, "{first:?}");
    // Within the timeout (its drained responses back in the pool), the kept connection serves
    // the next request.
    tokio::time::sleep(IDLE_CONNECTION_TIMEOUT / 3).await;
    session.ping(CALL).await.expect("ping");
    let soon = session.take_http_phases().expect("HTTP phases");
    assert_eq!(soon.connections_opened, 0, "{soon:?}");
    assert_eq!(soon.connect, Duration::ZERO, "{soon:?}");
    // Idle past the timeout: a new connection, its set-up timed again.
    tokio::time::sleep(IDLE_CONNECTION_TIMEOUT + Duration::from_millis(500)).await;
    session.ping(CALL).await.expect("ping");
    let later = session.take_http_phases().expect("HTTP phases");
    assert_eq!(later.connections_opened, 1, "{later:?}");
    assert!(later.connect > Duration::ZERO, "{later:?}");
    session.shutdown().await;
}

async fn exercise_python_modern(session: &mut McpSession) {
    let hs = session.handshake(None, HANDSHAKE).await.expect("handshake");
    assert_eq!(hs.era, Era::Modern);
    assert_eq!(hs.era.to_string(), "modern");
    assert_eq!(hs.protocol_version, "2026-07-28");
    assert_eq!(hs.server_name, "py-probe-target");
    assert_eq!(hs.session_id, None);
    session.ping(CALL).await.expect("ping = server/discover");
    let tools = session.list_tools(CALL).await.expect("tools/list");
    for name in ["echo", "fail"] {
        assert!(tools.names.iter().any(|n| n == name), "{tools:?}");
    }
    let out = session
        .call_tool("echo", json!({"message": "hi"}), CALL)
        .await
        .expect("echo");
    assert_eq!((out.is_error, out.text.as_str()), (false, "Echo: hi"));
    let fail = session
        .call_tool("fail", json!({}), CALL)
        .await
        .expect("fail");
    assert!(fail.is_error, "{fail:?}");
    assert!(fail.text.contains("fail"), "{fail:?}");
    let unknown = session
        .call_tool("definitely_not_a_tool", json!({}), CALL)
        .await;
    assert!(
        matches!(&unknown, Ok(o) if o.is_error) || matches!(&unknown, Err(McpError::Rpc { .. })),
        "{unknown:?}"
    );
    let records = session.take_records();
    assert!(
        records
            .iter()
            .any(|r| r.method == "server/discover" && r.outcome == RequestOutcome::Ok)
    );
    assert!(
        records
            .iter()
            .any(|r| r.tool.as_deref() == Some("fail") && r.outcome == RequestOutcome::Error)
    );
}

#[tokio::test]
async fn python_modern_over_stdio() {
    let Some(python) = require(Tool::Python) else {
        return;
    };
    let spec = stdio(
        &python,
        &[&fixture("py_modern_server.py").display().to_string()],
    );
    let (mut session, _) = open(&spec).await;
    exercise_python_modern(&mut session).await;
    let pid = session.pid().expect("pid");
    session.shutdown().await;
    assert!(live_members(pid).is_empty());
}

#[tokio::test]
async fn python_modern_over_http() {
    if require(Tool::Python).is_none() {
        return;
    }
    let server = ServerProcess::python("http").await;
    let spec = http_spec(server.url("/mcp"));
    let (mut session, _) = open(&spec).await;
    exercise_python_modern(&mut session).await;
    session.shutdown().await;
}

#[tokio::test]
async fn python_json_responses_and_remembered_eras() {
    if require(Tool::Python).is_none() {
        return;
    }
    let server = ServerProcess::python("json").await;
    let spec = http_spec(server.url("/mcp"));
    let (mut session, _) = open(&spec).await;
    let hs = session
        .handshake(Some(Era::Modern), HANDSHAKE)
        .await
        .expect("modern");
    assert_eq!(hs.era, Era::Modern);
    session
        .list_tools(CALL)
        .await
        .expect("tools/list (JSON body)");
    session.shutdown().await;
    // The same dual-era server, forced to the legacy era.
    let (mut session, _) = open(&spec).await;
    let hs = session
        .handshake(Some(Era::Legacy), HANDSHAKE)
        .await
        .expect("legacy");
    assert_eq!(hs.era, Era::Legacy);
    assert!(hs.session_id.is_some(), "{hs:?}");
    session.ping(CALL).await.expect("legacy ping");
    let out = session
        .call_tool("echo", json!({"message": "legacy"}), CALL)
        .await
        .expect("echo");
    assert_eq!(out.text, "Echo: legacy");
    session.shutdown().await;
}

#[tokio::test]
async fn missing_command_is_a_spawn_error() {
    let spec = stdio(std::path::Path::new("/nonexistent/mcp-server-xyz"), &[]);
    let err = McpSession::open(&spec, Limits::default(), Arc::default())
        .await
        .expect_err("must not spawn");
    assert!(matches!(err, McpError::Spawn { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("cannot start `/nonexistent/mcp-server-xyz`"),
        "{err}"
    );
}

#[tokio::test]
async fn child_exiting_at_once_reports_stderr() {
    let Some(python) = require(Tool::Python) else {
        return;
    };
    let (mut session, _) = open(&broken(&python, "stderr_exit")).await;
    let err = session
        .handshake(None, HANDSHAKE)
        .await
        .expect_err("child exits");
    match &err {
        McpError::Exited {
            status,
            stderr_tail,
            before_handshake,
            ..
        } => {
            assert_eq!(*status, Some(1));
            assert!(*before_handshake);
            assert!(stderr_tail.contains("BROKEN_TOKEN environment variable is required"));
        }
        other => panic!("expected Exited, got {other}"),
    }
    assert!(!session.is_alive());
    assert!(session.stderr_tail(1000).contains("BROKEN_TOKEN"));
    session.shutdown().await;
}

#[tokio::test]
async fn silent_child_times_out_in_time() {
    let Some(python) = require(Tool::Python) else {
        return;
    };
    let (mut session, counters) = open(&broken(&python, "silent")).await;
    let timeout = Duration::from_millis(800);
    let started = Instant::now();
    let err = session
        .handshake(Some(Era::Legacy), timeout)
        .await
        .expect_err("no answer");
    let took = started.elapsed();
    assert!(
        matches!(&err, McpError::Timeout { method, heard: Heard::Nothing, .. } if method == "initialize"),
        "{err}"
    );
    assert!(err.to_string().contains("not a byte arrived"), "{err}");
    assert!(
        took >= timeout && took < timeout + Duration::from_millis(500),
        "{took:?}"
    );
    // Without a hint the dual-era probe spends discover_timeout, then initialize times out.
    let limits = Limits {
        discover_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let (mut second, _) = open_with(&broken(&python, "silent"), limits).await;
    let started = Instant::now();
    let err = second
        .handshake(None, timeout)
        .await
        .expect_err("no answer");
    assert!(matches!(err, McpError::Timeout { .. }), "{err}");
    assert!(started.elapsed() < timeout + Duration::from_millis(500));
    assert_eq!(counters.in_flight.load(Ordering::Relaxed), 0);
    session.shutdown().await;
    second.shutdown().await;
}

#[tokio::test]
async fn garbage_lines_are_counted_and_skipped() {
    let Some(python) = require(Tool::Python) else {
        return;
    };
    let (mut session, counters) = open(&broken(&python, "garbage")).await;
    let hs = session
        .handshake(Some(Era::Legacy), HANDSHAKE)
        .await
        .expect("handshake");
    assert_eq!(hs.server_name, "broken-garbage");
    session.ping(CALL).await.expect("ping");
    assert_eq!(counters.stdout_garbage_lines.load(Ordering::Relaxed), 4);
    session.shutdown().await;
}

#[tokio::test]
async fn server_requests_are_answered() {
    let Some(python) = require(Tool::Python) else {
        return;
    };
    let (mut session, counters) = open(&broken(&python, "server_requests")).await;
    session.handshake(None, HANDSHAKE).await.expect("handshake");
    let tools = session.list_tools(CALL).await.expect("tools/list");
    assert_eq!(tools.names, ["replies-ok"]);
    assert_eq!(counters.server_pings_answered.load(Ordering::Relaxed), 1);
    assert_eq!(counters.server_requests_refused.load(Ordering::Relaxed), 1);
    session.shutdown().await;
}

#[tokio::test]
async fn wrong_response_id_is_counted_and_skipped() {
    let Some(python) = require(Tool::Python) else {
        return;
    };
    let (mut session, counters) = open(&broken(&python, "wrong_id")).await;
    session
        .handshake(Some(Era::Legacy), HANDSHAKE)
        .await
        .expect("handshake");
    session.ping(CALL).await.expect("ping gets its own id");
    assert_eq!(counters.unknown_response_ids.load(Ordering::Relaxed), 1);
    session.shutdown().await;
}

#[tokio::test]
async fn oversize_line_is_a_protocol_error() {
    let Some(python) = require(Tool::Python) else {
        return;
    };
    let limits = Limits {
        max_message_bytes: 4096,
        ..Limits::default()
    };
    let (mut session, counters) = open_with(&broken(&python, "oversize"), limits).await;
    session
        .handshake(Some(Era::Legacy), HANDSHAKE)
        .await
        .expect("handshake");
    let err = session.ping(CALL).await.expect_err("oversize");
    assert!(
        matches!(&err, McpError::Protocol { detail } if detail.contains("4096")),
        "{err}"
    );
    assert_eq!(counters.oversize_messages.load(Ordering::Relaxed), 1);
    // The line was skipped safely: the session still works.
    session
        .list_tools(CALL)
        .await
        .expect("tools/list after oversize");
    session.shutdown().await;
}

#[tokio::test]
async fn unknown_protocol_version_is_rejected() {
    let Some(python) = require(Tool::Python) else {
        return;
    };
    let (mut session, _) = open(&broken(&python, "bad_version")).await;
    let err = session
        .handshake(None, HANDSHAKE)
        .await
        .expect_err("bad version");
    assert!(
        matches!(&err, McpError::UnknownProtocolVersion { version } if version == "1999-01-01"),
        "{err}"
    );
    session.shutdown().await;
}

#[tokio::test]
async fn shutdown_kills_a_stubborn_process_tree() {
    let Some(python) = require(Tool::Python) else {
        return;
    };
    let limits = Limits {
        shutdown_grace: Duration::from_millis(300),
        ..Limits::default()
    };
    let (mut session, _) = open_with(&broken(&python, "stubborn"), limits).await;
    session
        .handshake(Some(Era::Legacy), HANDSHAKE)
        .await
        .expect("handshake");
    let pid = session.pid().expect("pid");
    // The grandchild starts with the server; wait until it shows up in the group.
    let deadline = Instant::now() + Duration::from_secs(5);
    while live_members(pid).len() < 2 {
        assert!(Instant::now() < deadline, "grandchild did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let started = Instant::now();
    session.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(live_members(pid).is_empty(), "{:?}", group_members(pid));
}

#[tokio::test]
async fn http_401_carries_the_challenge() {
    let challenge = r#"Bearer error="invalid_token", resource_metadata="http://127.0.0.1:1/.well-known/oauth-protected-resource/mcp""#;
    let body = r#"{"error": "invalid_token"}"#;
    let port = canned_http_server(format!(
        "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: {challenge}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ))
    .await;
    let spec = TransportSpec::Http {
        url: url::Url::parse(&format!("http://127.0.0.1:{port}/mcp")).expect("url"),
        headers: vec![("Authorization".into(), "Bearer wrong".into())],
        tls: Default::default(),
    };
    let (mut session, _) = open(&spec).await;
    let err = session.handshake(None, CALL).await.expect_err("401");
    match &err {
        McpError::AuthRequired {
            status,
            www_authenticate,
        } => {
            assert_eq!(*status, 401);
            assert_eq!(www_authenticate.as_deref(), Some(challenge));
        }
        other => panic!("expected AuthRequired, got {other}"),
    }
}

#[tokio::test]
async fn refused_connection_is_a_connect_error() {
    let port = free_port();
    let spec = http_spec(url::Url::parse(&format!("http://127.0.0.1:{port}/mcp")).expect("url"));
    let (mut session, _) = open(&spec).await;
    let err = session
        .handshake(None, CALL)
        .await
        .expect_err("nothing listens");
    assert!(matches!(err, McpError::Connect { .. }), "{err}");
}

#[tokio::test]
async fn initialize_rejected_by_http_status_suggests_sse() {
    let body = "Cannot POST /sse";
    let port = canned_http_server(format!(
        "HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ))
    .await;
    let spec = http_spec(url::Url::parse(&format!("http://127.0.0.1:{port}/sse")).expect("url"));
    let (mut session, _) = open(&spec).await;
    let err = session.handshake(None, CALL).await.expect_err("404");
    assert!(
        matches!(&err, McpError::HttpStatus { status: 404, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("transport = \"sse\""), "{err}");
}

#[tokio::test]
async fn env_and_cwd_reach_the_child() {
    let Some(python) = require(Tool::Python) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(TransportSpec::Stdio {
        command, args, env, ..
    }) = Some(broken(&python, "normal"))
    else {
        unreachable!()
    };
    let with_env = TransportSpec::Stdio {
        command: command.clone(),
        args: args.clone(),
        env,
        cwd: Some(dir.path().to_path_buf()),
    };
    let (mut session, _) = open(&with_env).await;
    session
        .handshake(Some(Era::Legacy), HANDSHAKE)
        .await
        .expect("configured child works");
    session.shutdown().await;
    let without_env = TransportSpec::Stdio {
        command,
        args,
        env: Default::default(),
        cwd: None,
    };
    let (mut session, _) = open(&without_env).await;
    let err = session
        .handshake(Some(Era::Legacy), HANDSHAKE)
        .await
        .expect_err("misconfigured");
    assert!(
        matches!(&err, McpError::Exited { before_handshake: true, stderr_tail, .. } if stderr_tail.contains("BROKEN_TOKEN")),
        "{err}"
    );
}

#[tokio::test]
async fn timed_out_request_is_cancelled() {
    let Some(python) = require(Tool::Python) else {
        return;
    };
    let (mut session, counters) = open(&broken(&python, "ignore_ping")).await;
    session
        .handshake(Some(Era::Legacy), HANDSHAKE)
        .await
        .expect("handshake");
    let timeout = Duration::from_millis(500);
    let started = Instant::now();
    let err = session.ping(timeout).await.expect_err("ping is ignored");
    assert!(
        matches!(&err, McpError::Timeout { method, after, heard: Heard::Nothing } if method == "ping" && *after == timeout),
        "{err}"
    );
    assert!(started.elapsed() < timeout + Duration::from_millis(500));
    assert_eq!(counters.in_flight.load(Ordering::Relaxed), 0);
    // The fixture lists the request ids it saw in notifications/cancelled (initialize = 1, ping = 2).
    let tools = session.list_tools(CALL).await.expect("tools/list");
    assert_eq!(tools.names, ["cancelled-2"]);
    assert!(
        session
            .take_records()
            .iter()
            .any(|r| r.method == "ping" && r.outcome == RequestOutcome::Error)
    );
    session.shutdown().await;
}

fn initialize_result() -> String {
    json!({"protocolVersion": "2025-11-25", "capabilities": {}, "serverInfo": {"name": "scripted", "version": "1"}}).to_string()
}

fn json_rpc_result(req: &SeenRequest, result: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{},"result":{result}}}"#,
        id_of(req)
    )
}

#[tokio::test]
async fn session_lost_twice_is_session_lost() {
    let (port, seen) = scripted_http_server(|req| {
        Some(match req.method().as_str() {
            "initialize" => http_response(
                "200 OK",
                &[("content-type", "application/json"), ("mcp-session-id", "s-1")],
                &json_rpc_result(req, &initialize_result()),
            ),
            "notifications/initialized" => http_response("202 Accepted", &[], ""),
            "server/discover" => http_response("404 Not Found", &[], "no such method"),
            _ => http_response(
                "404 Not Found",
                &[("content-type", "application/json")],
                r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Session not found"}}"#,
            ),
        })
    })
    .await;
    let spec = http_spec(url::Url::parse(&format!("http://127.0.0.1:{port}/mcp")).expect("url"));
    let (mut session, _) = open(&spec).await;
    let hs = session.handshake(None, CALL).await.expect("handshake");
    assert_eq!(hs.session_id.as_deref(), Some("s-1"));
    let err = session.ping(CALL).await.expect_err("session stays lost");
    assert!(
        matches!(&err, McpError::SessionLost { detail } if detail.contains("404")),
        "{err}"
    );
    let methods: Vec<String> = seen
        .lock()
        .expect("lock")
        .iter()
        .map(SeenRequest::method)
        .collect();
    assert_eq!(
        methods,
        [
            "server/discover",
            "initialize",
            "notifications/initialized",
            "ping",
            "initialize",
            "notifications/initialized",
            "ping"
        ]
    );
    let requests = seen.lock().expect("lock").clone();
    // Modern headers on discover, session + version headers after initialize, never Origin.
    assert!(requests[0].head.contains("mcp-method: server/discover"));
    assert!(
        requests[0]
            .head
            .contains("mcp-protocol-version: 2026-07-28")
    );
    assert!(!requests[1].head.contains("mcp-session-id"));
    assert!(requests[3].head.contains("mcp-session-id: s-1"));
    assert!(
        requests[3]
            .head
            .contains("mcp-protocol-version: 2025-11-25")
    );
    assert!(requests.iter().all(|r| !r.head.contains("\norigin:")));
    assert!(
        requests[1]
            .head
            .contains("accept: application/json, text/event-stream")
    );
}

#[tokio::test]
async fn sse_response_with_priming_and_server_ping() {
    let (port, seen) = scripted_http_server(|req| {
        Some(match req.method().as_str() {
            "initialize" => http_response(
                "200 OK",
                &[("content-type", "application/json")],
                &json_rpc_result(req, &initialize_result()),
            ),
            "ping" => {
                let body = format!(
                    ": comment\r\nid: prime\r\ndata: \r\n\r\nevent: message\r\ndata: {}\r\n\r\nevent: message\r\ndata: {}\r\n\r\ndata: {}\r\n\r\n",
                    r#"{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"hi"}}"#,
                    r#"{"jsonrpc":"2.0","id":"srv-1","method":"ping"}"#,
                    json_rpc_result(req, "{}")
                );
                http_response("200 OK", &[("content-type", "text/event-stream")], &body)
            }
            _ => http_response("202 Accepted", &[], ""),
        })
    })
    .await;
    let spec = TransportSpec::Http {
        url: url::Url::parse(&format!("http://127.0.0.1:{port}/mcp")).expect("url"),
        headers: vec![("X-Probe".into(), "yes".into())],
        tls: Default::default(),
    };
    let (mut session, counters) = open(&spec).await;
    session
        .handshake(Some(Era::Legacy), CALL)
        .await
        .expect("handshake");
    session.ping(CALL).await.expect("ping over SSE");
    assert_eq!(counters.server_pings_answered.load(Ordering::Relaxed), 1);
    let notes = session.take_notifications();
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].method, "notifications/message");
    let requests = seen.lock().expect("lock").clone();
    assert!(requests.iter().all(|r| r.head.contains("x-probe: yes")));
    assert!(
        requests
            .iter()
            .any(|r| r.body.contains(r#""id":"srv-1""#) && r.body.contains(r#""result":{}"#)),
        "{requests:?}"
    );
}

#[tokio::test]
async fn hung_http_server_times_out() {
    let (port, _) = scripted_http_server(|_| None).await;
    let spec = http_spec(url::Url::parse(&format!("http://127.0.0.1:{port}/mcp")).expect("url"));
    let (mut session, _) = open(&spec).await;
    let timeout = Duration::from_millis(600);
    let started = Instant::now();
    let err = session
        .handshake(Some(Era::Legacy), timeout)
        .await
        .expect_err("hangs");
    assert!(
        matches!(&err, McpError::Timeout { method, .. } if method == "initialize"),
        "{err}"
    );
    assert!(started.elapsed() < timeout + Duration::from_millis(500));
    // The wait for headers that never came is the server's processing time; the connection
    // was opened (and timed) by this probe.
    let phases = session.take_http_phases().expect("HTTP phases");
    assert!(phases.processing >= timeout / 2, "{phases:?}");
    assert_eq!(phases.connections_opened, 1, "{phases:?}");
}

#[tokio::test]
async fn oversize_http_body_is_a_protocol_error() {
    let (port, _) = scripted_http_server(|req| {
        let pad = "x".repeat(20_000);
        Some(http_response(
            "200 OK",
            &[("content-type", "application/json")],
            &json_rpc_result(req, &format!(r#"{{"pad":"{pad}"}}"#)),
        ))
    })
    .await;
    let spec = http_spec(url::Url::parse(&format!("http://127.0.0.1:{port}/mcp")).expect("url"));
    let limits = Limits {
        max_message_bytes: 4096,
        ..Limits::default()
    };
    let (mut session, counters) = open_with(&spec, limits).await;
    let err = session
        .handshake(Some(Era::Legacy), CALL)
        .await
        .expect_err("oversize");
    assert!(
        matches!(&err, McpError::Protocol { detail } if detail.contains("4096")),
        "{err}"
    );
    assert_eq!(counters.oversize_messages.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn sse_endpoint_on_another_origin_is_refused() {
    let (port, seen) = scripted_http_server(|_| {
        Some(http_response(
            "200 OK",
            &[("content-type", "text/event-stream")],
            "event: endpoint\ndata: http://evil.example/message?sessionId=1\n\n",
        ))
    })
    .await;
    let spec = TransportSpec::Sse {
        url: url::Url::parse(&format!("http://127.0.0.1:{port}/sse")).expect("url"),
        headers: vec![("Authorization".into(), "Bearer secret".into())],
        tls: Default::default(),
    };
    let (mut session, _) = open(&spec).await;
    let err = session
        .handshake(None, CALL)
        .await
        .expect_err("foreign endpoint");
    assert!(
        matches!(&err, McpError::Protocol { detail } if detail.contains("another origin")),
        "{err}"
    );
    assert_eq!(seen.lock().expect("lock").len(), 1, "only the GET was sent");
}

#[tokio::test]
async fn slow_modern_server_is_recognised_after_a_discover_timeout() {
    let Some(python) = require(Tool::Python) else {
        return;
    };
    // A discover window far shorter than Python's start-up: discover times out, the server then
    // commits to the modern era and refuses initialize with -32022, and discover is retried.
    let limits = Limits {
        discover_timeout: Duration::from_millis(50),
        ..Limits::default()
    };
    let spec = stdio(
        &python,
        &[&fixture("py_modern_server.py").display().to_string()],
    );
    let (mut session, counters) = open_with(&spec, limits).await;
    let hs = session.handshake(None, HANDSHAKE).await.expect("handshake");
    assert_eq!(hs.era, Era::Modern, "{hs:?}");
    assert!(
        hs.notes
            .iter()
            .any(|n| n.contains("server/discover retried")),
        "{hs:?}"
    );
    // The late answer to the abandoned discover is expected, not a protocol violation (which
    // would raise a security event on the server's first probe).
    assert!(counters.late_responses.load(Ordering::Relaxed) >= 1);
    assert_eq!(counters.unknown_response_ids.load(Ordering::Relaxed), 0);
    session.list_tools(CALL).await.expect("tools/list");
    session.shutdown().await;
}

/// Set in the environment of the child run by
/// `without_node_and_python_the_tests_skip_locally_and_fail_when_required`, so that test does not
/// start itself again in the child.
const CHILD_RUN_VAR: &str = "MCP_EXPORTER_TEST_SKIP_RULE_CHILD";

/// What a child run of this module's tests printed, and how it ended.
struct ChildRun {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl ChildRun {
    /// Lines of stderr starting with `prefix`.
    fn stderr_lines(&self, prefix: &str) -> usize {
        self.stderr
            .lines()
            .filter(|l| l.starts_with(prefix))
            .count()
    }
}

/// Runs this module's tests again in a child process of this test binary with node and the venv
/// python out of reach: `PATH` is an empty directory (nothing these tests start comes from
/// `PATH` but node), `MCP_EXPORTER_TEST_PYTHON` names a file that does not exist, `CI` is unset,
/// and `MCP_EXPORTER_TEST_DEPS` is `deps`.
fn run_without_node_and_python(deps: Option<&str>) -> ChildRun {
    let empty = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("the path of this test binary");
    let mut cmd = std::process::Command::new(exe);
    cmd.args(["mcp_client::", "--nocapture"])
        .env(CHILD_RUN_VAR, "1")
        .env("PATH", empty.path())
        .env(
            crate::common::tools::PYTHON_OVERRIDE_VAR,
            empty.path().join("no-python"),
        )
        .env_remove("CI")
        .env_remove("MCP_EXPORTER_TEST_DEPS");
    if let Some(deps) = deps {
        cmd.env("MCP_EXPORTER_TEST_DEPS", deps);
    }
    let out = run_bounded(&mut cmd, Duration::from_secs(300))
        .unwrap_or_else(|e| panic!("the child test run: {e}"));
    ChildRun {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The one rule for missing tools (tests/integration/common/tools.rs), end to end: without node
/// and python, `MCP_EXPORTER_TEST_DEPS=require` fails every test that needs one, naming the
/// tool; without it those tests print a skip and pass. No test passes silently either way.
#[test]
fn without_node_and_python_the_tests_skip_locally_and_fail_when_required() {
    if std::env::var_os(CHILD_RUN_VAR).is_some() {
        return; // the child run: do not start another
    }
    let required = run_without_node_and_python(Some("require"));
    let report = |run: &ChildRun| format!("stdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
    assert_ne!(required.code, Some(0), "{}", report(&required));
    let failed = required
        .stdout
        .lines()
        .filter(|l| l.starts_with("test mcp_client::") && l.ends_with(" FAILED"))
        .count();
    let named = required.stderr.matches("required tool missing: ").count();
    assert!(failed > 0, "{}", report(&required));
    assert_eq!(
        named,
        failed,
        "every failure names its missing tool\n{}",
        report(&required)
    );
    for tool in ["node", "python"] {
        assert!(
            required
                .stderr
                .contains(&format!("required tool missing: {tool} (")),
            "{tool} is not named\n{}",
            report(&required)
        );
    }
    assert!(
        required.stderr.contains("scripts/install-deps.sh"),
        "{}",
        report(&required)
    );

    let local = run_without_node_and_python(None);
    assert_eq!(local.code, Some(0), "{}", report(&local));
    assert!(
        local.stderr_lines("skipped: node not found") > 0
            && local.stderr_lines("skipped: python not found") > 0,
        "{}",
        report(&local)
    );
    assert_eq!(
        local.stderr_lines("skipped: "),
        failed,
        "the tests that skip here are the ones that failed when tools were required\n{}",
        report(&local)
    );
}

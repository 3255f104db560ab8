//! A fleet of cheap MCP servers in one process, for scripts/bench-fleet.sh and the sharding
//! tests: N Streamable HTTP endpoints, half legacy era (`initialize`, `Mcp-Session-Id`,
//! `ping`), half modern era (stateless `server/discover`), each answering from memory.
//!
//! Usage:
//! - `fleet_target serve --servers N [--listeners L] [--ports-file FILE]`: binds L loopback
//!   listeners (default: one per server, so every server has its own host:port as in a real
//!   fleet and no HTTP connection pool is shared between two of them) and serves server `i`
//!   at `http://127.0.0.1:PORT[i % L]/legacy/i` (even `i`) or `/modern/i` (odd `i`). Writes
//!   one URL a line to FILE (or stdout) once every listener is bound; runs until SIGTERM/SIGINT
//!   and then prints one JSON line with the requests answered and its CPU seconds.
//! - `fleet_target floor --url URL --rate R --seconds S`: the minimal client a liveness probe
//!   is compared with: one release reqwest client on one kept connection that initializes once
//!   and then POSTs the same `ping` the exporter's liveness probe sends, R times a second for S
//!   seconds; prints one JSON line with the requests made, failures and CPU seconds.
//! - `fleet_target floor-stdio --command "PROGRAM ARGS..." --rate R --seconds S`: the same floor
//!   for a stdio server: spawns one child (the command split on whitespace), initializes it
//!   once and then writes the `ping` a stdio liveness probe sends, R times a second for S
//!   seconds, reading each answer; prints the same JSON line (its own CPU, not the child's).
//!
//! `serve` raises its soft open-file limit to the hard one first (a listener and an accepted
//! connection per server: 5,000 servers need about 10,000 descriptors) and says on stderr when
//! the hard limit is below what the fleet needs.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::signal::unix::{SignalKind, signal};

/// The newest legacy version; what a legacy endpoint negotiates.
const LEGACY_VERSION: &str = "2025-11-25";
/// The modern version a modern endpoint supports.
const MODERN_VERSION: &str = "2026-07-28";
/// JSON-RPC "method not found".
const METHOD_NOT_FOUND: i64 = -32601;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the soft limit now in force.
fn raise_open_files() -> Result<u64, String> {
    // SAFETY: getrlimit/setrlimit read and write the struct we pass and nothing else.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err(format!("getrlimit: {}", std::io::Error::last_os_error()));
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
                return Err(format!("setrlimit: {}", std::io::Error::last_os_error()));
            }
            limit.rlim_cur = limit.rlim_max;
        }
        Ok(limit.rlim_cur)
    }
}

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct we pass; RUSAGE_SELF has no other preconditions.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

#[derive(Default)]
struct Fleet {
    requests: AtomicU64,
    sessions: AtomicU64,
}

fn reply(id: &Value, result: Value) -> Response {
    json_response(json!({"jsonrpc": "2.0", "id": id, "result": result}), None)
}

fn error(id: &Value, code: i64, message: &str) -> Response {
    json_response(
        json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}),
        None,
    )
}

fn json_response(body: Value, session: Option<String>) -> Response {
    let mut response = (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response();
    if let Some(id) = session.and_then(|s| s.parse().ok()) {
        response.headers_mut().insert("mcp-session-id", id);
    }
    response
}

fn tools() -> Value {
    json!({"tools": [{"name": "echo", "description": "Echoes its message",
        "inputSchema": {"type": "object", "properties": {"message": {"type": "string"}}}}]})
}

fn call_result(params: Option<&Value>) -> Value {
    let message = params
        .and_then(|p| p.get("arguments"))
        .and_then(|a| a.get("message"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    json!({"content": [{"type": "text", "text": format!("Echo: {message}")}]})
}

async fn legacy(
    State(fleet): State<Arc<Fleet>>,
    Path(n): Path<u64>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    fleet.requests.fetch_add(1, Ordering::Relaxed);
    let Ok(msg) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let method = msg
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let Some(id) = msg.get("id") else {
        return StatusCode::ACCEPTED.into_response(); // a notification
    };
    let has_session = headers.contains_key("mcp-session-id");
    match method {
        "initialize" => {
            let session = fleet.sessions.fetch_add(1, Ordering::Relaxed);
            json_response(
                json!({"jsonrpc": "2.0", "id": id, "result": {
                    "protocolVersion": LEGACY_VERSION,
                    "capabilities": {"tools": {}},
                    "serverInfo": {"name": format!("fleet-legacy-{n}"), "version": "1.0.0"}}}),
                Some(format!("s{n}-{session}")),
            )
        }
        _ if !has_session => (StatusCode::BAD_REQUEST, "missing Mcp-Session-Id").into_response(),
        "ping" => reply(id, json!({})),
        "tools/list" => reply(id, tools()),
        "tools/call" => reply(id, call_result(msg.get("params"))),
        _ => error(id, METHOD_NOT_FOUND, "method not found"),
    }
}

async fn modern(State(fleet): State<Arc<Fleet>>, Path(n): Path<u64>, body: Bytes) -> Response {
    fleet.requests.fetch_add(1, Ordering::Relaxed);
    let Ok(msg) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let method = msg
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let Some(id) = msg.get("id") else {
        return StatusCode::ACCEPTED.into_response();
    };
    match method {
        "server/discover" => reply(
            id,
            json!({"supportedVersions": [MODERN_VERSION], "capabilities": {"tools": {}},
                "_meta": {"io.modelcontextprotocol/serverInfo":
                    {"name": format!("fleet-modern-{n}"), "version": "1.0.0"}}}),
        ),
        "ping" => reply(id, json!({})),
        "tools/list" => reply(id, tools()),
        "tools/call" => reply(id, call_result(msg.get("params"))),
        "initialize" => json_response(
            json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32022,
                "message": "unsupported protocol version",
                "data": {"supported": [MODERN_VERSION]}}}),
            None,
        ),
        _ => error(id, METHOD_NOT_FOUND, "method not found"),
    }
}

/// Ends an idle legacy session (`DELETE`).
async fn end_session() -> StatusCode {
    StatusCode::OK
}

fn flag(args: &HashMap<String, String>, name: &str) -> Option<String> {
    args.get(name).cloned()
}

fn parse_flags(rest: &[String]) -> Result<HashMap<String, String>, String> {
    let mut flags = HashMap::new();
    let mut it = rest.iter();
    while let Some(name) = it.next() {
        let key = name
            .strip_prefix("--")
            .ok_or_else(|| format!("unexpected argument {name:?}"))?;
        let value = it.next().ok_or_else(|| format!("--{key} needs a value"))?;
        flags.insert(key.to_string(), value.clone());
    }
    Ok(flags)
}

fn number<T: std::str::FromStr>(
    flags: &HashMap<String, String>,
    name: &str,
    default: Option<T>,
) -> Result<T, String> {
    match flag(flags, name) {
        Some(v) => v
            .parse()
            .map_err(|_| format!("--{name} {v:?} is not a number")),
        None => default.ok_or_else(|| format!("--{name} is required")),
    }
}

async fn serve(flags: HashMap<String, String>) -> Result<(), String> {
    let servers: usize = number(&flags, "servers", None)?;
    let listeners: usize = number(&flags, "listeners", Some(servers))?.clamp(1, servers.max(1));
    // Each listener and each kept connection to it is a descriptor; 64 for the rest.
    let needed = (listeners + servers + 64) as u64;
    let open_files = raise_open_files()?;
    if open_files < needed {
        eprintln!(
            "fleet_target: open-file limit {open_files} is below the {needed} that {servers} servers on {listeners} listeners need (raise the hard limit: ulimit -Hn)"
        );
    }
    let fleet = Arc::new(Fleet::default());
    let app = Router::new()
        .route("/legacy/{n}", post(legacy).delete(end_session))
        .route("/modern/{n}", post(modern).delete(end_session))
        .with_state(Arc::clone(&fleet));
    let mut ports = Vec::with_capacity(listeners);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    for _ in 0..listeners {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("bind listener {} of {listeners}: {e}", ports.len() + 1))?;
        ports.push(listener.local_addr().map_err(|e| e.to_string())?.port());
        let (app, mut stop) = (app.clone(), stop_rx.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop.changed().await;
                })
                .await;
        });
    }
    let urls: String = (0..servers)
        .map(|i| {
            let era = if i % 2 == 0 { "legacy" } else { "modern" };
            format!("http://127.0.0.1:{}/{era}/{i}\n", ports[i % listeners])
        })
        .collect();
    match flag(&flags, "ports-file") {
        Some(path) => {
            let partial = format!("{path}.partial");
            std::fs::write(&partial, urls).map_err(|e| format!("{path}: {e}"))?;
            std::fs::rename(&partial, &path).map_err(|e| format!("{path}: {e}"))?;
        }
        None => print!("{urls}"),
    }
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    let _ = stop_tx.send(true);
    println!(
        "{}",
        json!({"requests": fleet.requests.load(Ordering::Relaxed),
            "sessions": fleet.sessions.load(Ordering::Relaxed),
            "cpu_seconds": cpu_seconds()})
    );
    Ok(())
}

/// Sends one request (ids from 1) every `1 / rate` seconds for `seconds`, in sequence, and
/// prints as JSON how many were sent, how many failed and the CPU this process spent meanwhile.
async fn paced(rate: f64, seconds: f64, mut request: impl AsyncFnMut(u64) -> bool) {
    let period = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let until = tokio::time::Instant::now() + Duration::from_secs_f64(seconds);
    let cpu0 = cpu_seconds();
    let (mut sent, mut failed) = (0u64, 0u64);
    while tokio::time::Instant::now() < until {
        ticks.tick().await;
        sent += 1;
        failed += u64::from(!request(sent).await);
    }
    println!(
        "{}",
        json!({"requests": sent, "failed": failed, "cpu_seconds": cpu_seconds() - cpu0})
    );
}

async fn floor(flags: HashMap<String, String>) -> Result<(), String> {
    let url = flag(&flags, "url").ok_or("--url is required")?;
    let rate: f64 = number(&flags, "rate", None)?;
    let seconds: f64 = number(&flags, "seconds", None)?;
    // One connection, kept: at most one idle connection per host, requests in sequence.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .map_err(|e| e.to_string())?;
    let post = |body: Value, session: Option<&str>| {
        let mut req = client
            .post(&url)
            .header(header::ACCEPT, "application/json, text/event-stream")
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
        if let Some(s) = session {
            req = req
                .header("mcp-session-id", s)
                .header("mcp-protocol-version", LEGACY_VERSION);
        }
        req.send()
    };
    let init = post(
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": LEGACY_VERSION, "capabilities": {},
            "clientInfo": {"name": "fleet-floor", "version": "0"}}}),
        None,
    )
    .await
    .map_err(|e| format!("initialize: {e}"))?;
    let session = init
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .ok_or("initialize answered without Mcp-Session-Id")?;
    let _ = init.bytes().await;
    paced(rate, seconds, async |id| {
        let ping = json!({"jsonrpc": "2.0", "id": id, "method": "ping"});
        match post(ping, Some(&session)).await {
            Ok(resp) => resp.status().is_success() && resp.bytes().await.is_ok(),
            Err(_) => false,
        }
    })
    .await;
    Ok(())
}

/// One child speaking newline-delimited JSON-RPC on stdin/stdout.
struct StdioPeer {
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

impl StdioPeer {
    async fn send(&mut self, message: &Value) -> Result<(), String> {
        use tokio::io::AsyncWriteExt;
        let mut line = message.to_string();
        line.push('\n');
        self.stdin
            .write_all(line.as_bytes())
            .await
            .map_err(|e| format!("write to the child: {e}"))
    }

    /// Sends a request and reads lines until the answer with its id (skipping notifications).
    async fn request(
        &mut self,
        id: u64,
        method: &str,
        params: Option<Value>,
    ) -> Result<Value, String> {
        let mut message = json!({"jsonrpc": "2.0", "id": id, "method": method});
        if let Some(params) = params {
            message["params"] = params;
        }
        self.send(&message).await?;
        loop {
            let line = self
                .lines
                .next_line()
                .await
                .map_err(|e| format!("read from the child: {e}"))?
                .ok_or("the child closed its stdout")?;
            let Ok(answer) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if answer.get("id").and_then(Value::as_u64) == Some(id) {
                return Ok(answer);
            }
        }
    }
}

async fn floor_stdio(flags: HashMap<String, String>) -> Result<(), String> {
    let command = flag(&flags, "command").ok_or("--command is required")?;
    let rate: f64 = number(&flags, "rate", None)?;
    let seconds: f64 = number(&flags, "seconds", None)?;
    let mut words = command.split_whitespace();
    let program = words.next().ok_or("--command is empty")?;
    let mut child = tokio::process::Command::new(program)
        .args(words)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("spawn {program}: {e}"))?;
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return Err("the child has no stdin or stdout".into());
    };
    let mut peer = StdioPeer {
        stdin,
        lines: tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout)),
    };
    let init = peer
        .request(
            0,
            "initialize",
            Some(
                json!({"protocolVersion": LEGACY_VERSION, "capabilities": {},
                "clientInfo": {"name": "fleet-floor", "version": "0"}}),
            ),
        )
        .await?;
    if init.get("result").is_none() {
        return Err(format!("initialize failed: {init}"));
    }
    peer.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .await?;
    paced(rate, seconds, async |id| {
        matches!(peer.request(id, "ping", None).await, Ok(answer) if answer.get("result").is_some())
    })
    .await;
    let _ = child.kill().await;
    Ok(())
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.split_first() {
        Some((mode, rest)) => match (mode.as_str(), parse_flags(rest)) {
            (_, Err(e)) => Err(e),
            ("serve", Ok(flags)) => serve(flags).await,
            ("floor", Ok(flags)) => floor(flags).await,
            ("floor-stdio", Ok(flags)) => floor_stdio(flags).await,
            (other, _) => Err(format!(
                "unknown mode {other:?}; use serve, floor or floor-stdio"
            )),
        },
        None => Err("usage: fleet_target serve --servers N [--listeners L] [--ports-file FILE] | floor --url URL --rate R --seconds S | floor-stdio --command \"PROGRAM ARGS\" --rate R --seconds S".into()),
    };
    if let Err(e) = result {
        eprintln!("fleet_target: {e}");
        std::process::exit(2);
    }
}

//! Helpers for tests/mcp_client.rs: locating the real servers, starting HTTP servers on free
//! loopback ports, inspecting process groups in /proc, and tiny fake HTTP servers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use mcp_exporter::mcp::TransportSpec;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::time::{Instant, sleep};

/// The crate root (where `mcp-servers/` and `tests/fixtures/` live).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// server-everything's entry point.
pub fn everything_js() -> PathBuf {
    root().join("mcp-servers/node_modules/@modelcontextprotocol/server-everything/dist/index.js")
}

/// The venv Python that has the `mcp` SDK.
pub fn python() -> PathBuf {
    root().join("mcp-servers/.venv/bin/python")
}

/// A fixture script path.
pub fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures").join(name)
}

/// True when `path` exists. Missing peers fail loudly under `CI=true`, else the test is skipped.
pub fn available(path: &Path) -> bool {
    if path.exists() {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{} is missing; CI must install it", path.display());
    }
    eprintln!("skipping: {} is missing", path.display());
    false
}

/// A stdio transport spec.
pub fn stdio(command: &Path, args: &[&str]) -> TransportSpec {
    TransportSpec::Stdio {
        command: command.display().to_string(),
        args: args.iter().map(|a| a.to_string()).collect(),
        env: BTreeMap::new(),
        cwd: None,
    }
}

/// The broken stdio fixture in `mode` (with the `BROKEN_TOKEN` it requires).
pub fn broken(mode: &str) -> TransportSpec {
    let script = fixture("broken_stdio_server.py");
    match stdio(&python(), &[&script.display().to_string(), mode]) {
        TransportSpec::Stdio {
            command, args, cwd, ..
        } => TransportSpec::Stdio {
            command,
            args,
            env: BTreeMap::from([("BROKEN_TOKEN".to_string(), "t0ken".to_string())]),
            cwd,
        },
        other => other,
    }
}

/// A loopback port that was free a moment ago.
pub async fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

/// An HTTP server child in its own process group, killed (whole group) on drop.
pub struct ServerProcess {
    child: Child,
    /// Its loopback port.
    pub port: u16,
}

impl ServerProcess {
    /// Starts `program args` with `PORT=<free port>` and waits until the port accepts.
    pub async fn start(program: &Path, args: &[String], port: u16) -> ServerProcess {
        let child = Command::new(program)
            .args(args)
            .env("PORT", port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .expect("start test server");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(
                Instant::now() < deadline,
                "server on port {port} did not start"
            );
            sleep(Duration::from_millis(50)).await;
        }
        ServerProcess { child, port }
    }

    /// server-everything in `mode` (`streamableHttp` or `sse`), bound to 127.0.0.1.
    pub async fn everything(mode: &str) -> ServerProcess {
        let port = free_port().await;
        let args = vec![
            "--require".to_string(),
            fixture("loopback.cjs").display().to_string(),
            everything_js().display().to_string(),
            mode.to_string(),
        ];
        ServerProcess::start(Path::new("node"), &args, port).await
    }

    /// The Python dual-era server in `mode` (`http`, `stateless` or `json`).
    pub async fn python(mode: &str) -> ServerProcess {
        let port = free_port().await;
        let args = vec![
            fixture("py_modern_server.py").display().to_string(),
            mode.to_string(),
            port.to_string(),
        ];
        ServerProcess::start(&python(), &args, port).await
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> url::Url {
        url::Url::parse(&format!("http://127.0.0.1:{}{path}", self.port)).expect("url")
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id().and_then(|p| i32::try_from(p).ok()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// `(pid, state)` of every process in process group `pgid` (read from /proc).
pub fn group_members(pgid: u32) -> Vec<(u32, char)> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the parenthesised comm: state ppid pgrp ...
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.get(2).and_then(|g| g.parse::<u32>().ok()) == Some(pgid) {
            let state = fields.first().and_then(|s| s.chars().next()).unwrap_or('?');
            out.push((pid, state));
        }
    }
    out
}

/// Members of the group that are still running (zombies awaiting an absent reaper count as gone).
pub fn live_members(pgid: u32) -> Vec<u32> {
    group_members(pgid)
        .into_iter()
        .filter(|(_, state)| *state != 'Z' && *state != 'X')
        .map(|(pid, _)| pid)
        .collect()
}

/// A one-response-per-connection HTTP server answering every request with `response`.
pub async fn canned_http_server(response: String) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let response = response.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                let mut seen = Vec::new();
                // Read the request head (bounded); the body is ignored.
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") && seen.len() < 64 * 1024 {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = sock.write_all(response.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    port
}

/// One request seen by [`scripted_http_server`].
#[derive(Clone, Debug)]
pub struct SeenRequest {
    /// Request line and headers, lower-cased.
    pub head: String,
    /// The body.
    pub body: String,
}

impl SeenRequest {
    /// The JSON-RPC method of the body (empty for responses).
    pub fn method(&self) -> String {
        serde_json::from_str::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v.get("method").and_then(|m| m.as_str()).map(str::to_string))
            .unwrap_or_default()
    }
}

/// Requests seen so far by a scripted server.
pub type Seen = std::sync::Arc<std::sync::Mutex<Vec<SeenRequest>>>;

/// An HTTP/1.1 server whose answer to each request is computed by `script` (`None` = never
/// answer, hold the connection). Returns its port and the requests it saw.
pub async fn scripted_http_server<F>(script: F) -> (u16, Seen)
where
    F: Fn(&SeenRequest) -> Option<String> + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen: Seen = Default::default();
    let script = std::sync::Arc::new(script);
    let seen_out = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let script = script.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                loop {
                    let Some(req) = read_request(&mut sock).await else {
                        return;
                    };
                    seen.lock().expect("lock").push(req.clone());
                    match script(&req) {
                        Some(resp) => {
                            if sock.write_all(resp.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                        None => {
                            sleep(Duration::from_secs(60)).await;
                            return;
                        }
                    }
                }
            });
        }
    });
    (port, seen_out)
}

async fn read_request(sock: &mut TcpStream) -> Option<SeenRequest> {
    let mut data = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let head_end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if data.len() > 64 * 1024 {
            return None;
        }
        let n = sock.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&data[..head_end]).to_ascii_lowercase();
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0)
        .min(1024 * 1024);
    while data.len() < head_end + len {
        let n = sock.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
    }
    Some(SeenRequest {
        head,
        body: String::from_utf8_lossy(&data[head_end..head_end + len]).into_owned(),
    })
}

/// An HTTP response with a body.
pub fn http_response(status: &str, headers: &[(&str, &str)], body: &str) -> String {
    let mut out = format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\n", body.len());
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(body);
    out
}

/// The JSON-RPC id of a request body, as JSON text.
pub fn id_of(req: &SeenRequest) -> String {
    serde_json::from_str::<serde_json::Value>(&req.body)
        .ok()
        .and_then(|v| v.get("id").cloned())
        .map(|id| id.to_string())
        .unwrap_or_else(|| "null".into())
}

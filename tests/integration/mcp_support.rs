//! Helpers of the MCP client tests (`mcp_client`): transport specs for the real servers and
//! the broken fixture, the HTTP servers they run against, and fake HTTP servers scripted byte by
//! byte.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use mcp_exporter::mcp::TransportSpec;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::sleep;

use crate::common::paths::fixture;
use crate::common::processes::ChildGuard;
use crate::common::servers::{spawn_http_everything, spawn_py_modern};

/// A stdio transport spec.
pub fn stdio(command: &Path, args: &[&str]) -> TransportSpec {
    TransportSpec::Stdio {
        command: command.display().to_string(),
        args: args.iter().map(|a| a.to_string()).collect(),
        env: BTreeMap::new(),
        cwd: None,
    }
}

/// The broken stdio fixture in `mode`, run by `python` (with the `BROKEN_TOKEN` it requires).
pub fn broken(python: &Path, mode: &str) -> TransportSpec {
    let script = fixture("broken_stdio_server.py");
    match stdio(python, &[&script.display().to_string(), mode]) {
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

/// An HTTP MCP server child on a loopback port, killed (whole process group) on drop.
pub struct ServerProcess {
    _guard: ChildGuard,
    port: u16,
}

impl ServerProcess {
    /// server-everything in `mode` (`streamableHttp` or `sse`), bound to 127.0.0.1. The test
    /// has asked for `Tool::Node`.
    pub async fn everything(mode: &str) -> ServerProcess {
        let mode = mode.to_string();
        ServerProcess::start(move || spawn_http_everything(&mode)).await
    }

    /// The Python dual-era server in `mode` (`http`, `stateless` or `json`). The test has asked
    /// for `Tool::Python`.
    pub async fn python(mode: &str) -> ServerProcess {
        let mode = mode.to_string();
        ServerProcess::start(move || spawn_py_modern(&mode)).await
    }

    /// Runs a (blocking) spawn helper off the test's runtime thread.
    async fn start(spawn: impl FnOnce() -> (ChildGuard, u16) + Send + 'static) -> ServerProcess {
        let (guard, port) = match tokio::task::spawn_blocking(spawn).await {
            Ok(started) => started,
            // The helper's own message (the server's output) is the useful one.
            Err(e) => match e.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(e) => panic!("starting the server: {e}"),
            },
        };
        ServerProcess {
            _guard: guard,
            port,
        }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> url::Url {
        url::Url::parse(&format!("http://127.0.0.1:{}{path}", self.port)).expect("url")
    }
}

/// A one-response-per-connection HTTP server answering every request with `response`.
///
/// Raw on purpose, like [`scripted_http_server`]: the response bytes are exactly the test's, so
/// a test can send what a real server library would not (a bare 401 challenge, a 404 HTML page
/// at an MCP endpoint).
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
///
/// Raw sockets on purpose: the tests script byte-exact responses (SSE bodies with priming
/// events and server requests mixed in, oversize bodies, foreign endpoints) and connections
/// that are held open without an answer, which a server framework would not produce.
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

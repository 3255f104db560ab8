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

/// The broken stdio fixture in `mode`.
pub fn broken(mode: &str) -> TransportSpec {
    let script = fixture("broken_stdio_server.py");
    stdio(&python(), &[&script.display().to_string(), mode])
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

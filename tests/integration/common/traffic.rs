//! The traffic wrapper's test harness, shared by tests/integration/traffic_wrap.rs and
//! tests/integration/traffic_clients.rs: a receiver (src/traffic/receiver.rs) in the test
//! process, and the requests a recorded session holds, read independently of the wrapper's
//! parser, in the shape of what the receiver counted.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use mcp_exporter::traffic::{
    Peer, Receiver, ReceiverOptions, RequestStats, ServerTraffic, StdioServer, TrafficBook,
};
use serde_json::{Value, json};

/// How often the wrappers under test report (fast, so the tests are).
pub const REPORT_INTERVAL: &str = "100ms";

/// The `mcp-exporter` binary under test.
pub fn wrapper_bin() -> &'static str {
    env!("CARGO_BIN_EXE_mcp-exporter")
}

/// Longest wait for anything in these tests: a bound on failure only (every wait ends as soon
/// as its condition holds), generous because a loaded CI machine moves a 10 MB result through
/// two recorders, the wrapper and the SDK slowly.
pub const WAIT: Duration = Duration::from_secs(120);

/// Polls `check` until it gives a value; panics with the last reason after [`WAIT`].
pub fn wait_for<T>(what: &str, mut check: impl FnMut() -> Result<T, String>) -> T {
    let start = Instant::now();
    loop {
        match check() {
            Ok(value) => return value,
            Err(reason) if start.elapsed() > WAIT => panic!("{what}: {reason}"),
            Err(_) => thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// A temporary directory under /tmp (the test client offers file:///tmp as its root).
pub fn tempdir() -> tempfile::TempDir {
    // Under /tmp: the test client offers file:///tmp as its root (filesystem server).
    tempfile::Builder::new()
        .prefix("mcp-wrap-")
        .tempdir_in("/tmp")
        .expect("tempdir")
}

// ---------------------------------------------------------------------------------------------
// The receiver, in this process on its own thread and runtime
// ---------------------------------------------------------------------------------------------

/// A traffic receiver with a [`TrafficBook`]. Dropping it is a kill: its runtime goes away
/// with every connection, and the socket file stays behind, stale, as after `kill -9`.
pub struct TestReceiver {
    book: Arc<TrafficBook>,
    kill: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl TestReceiver {
    pub fn start(path: &Path, servers: Vec<StdioServer>) -> TestReceiver {
        let book = Arc::new(TrafficBook::default());
        let (ready_tx, ready_rx) = mpsc::channel();
        let (kill_tx, kill_rx) = tokio::sync::oneshot::channel::<()>();
        let consumer = book.clone();
        let path = path.to_path_buf();
        let thread = thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let receiver = Receiver::bind(ReceiverOptions::new(&path));
                let receiver = match receiver {
                    Ok(r) => r,
                    Err(err) => {
                        let _ = ready_tx.send(Err(err.to_string()));
                        return;
                    }
                };
                let (_stop_tx, stop_rx) = tokio::sync::watch::channel(false);
                let handle = receiver.spawn(consumer, stop_rx);
                handle.set_servers(servers);
                let _ = ready_tx.send(Ok(()));
                let _ = kill_rx.await;
            });
        });
        ready_rx
            .recv_timeout(WAIT)
            .expect("receiver thread answers")
            .expect("receiver binds");
        TestReceiver {
            book,
            kill: Some(kill_tx),
            thread: Some(thread),
        }
    }

    pub fn kill(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    pub fn server(&self, label: &str) -> Option<ServerTraffic> {
        self.book.server(label)
    }

    /// Waits until `label`'s traffic passes `check`.
    pub fn wait_until(
        &self,
        label: &str,
        mut check: impl FnMut(&ServerTraffic) -> Result<(), String>,
    ) -> ServerTraffic {
        wait_for(&format!("traffic of {label}"), || {
            let traffic = self
                .server(label)
                .ok_or_else(|| format!("no traffic for {label} yet"))?;
            check(&traffic)?;
            Ok(traffic)
        })
    }
}

impl Drop for TestReceiver {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---------------------------------------------------------------------------------------------
// What was on the wire, read back from the recordings
// ---------------------------------------------------------------------------------------------

/// How one request series ended, as read from the recordings.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcomes {
    pub started: u64,
    pub ok: u64,
    pub tool_errors: u64,
    pub errors: BTreeMap<String, u64>,
}

/// Who asked, the method and, for `tools/call`, the tool.
pub type SeriesKey = (Peer, String, Option<String>);

/// Requests, answers and notifications of a recorded session, read independently of the
/// wrapper's parser (whole `serde_json::Value`s).
#[derive(Debug, Default, PartialEq)]
pub struct Recorded {
    pub requests: BTreeMap<SeriesKey, Outcomes>,
    pub notifications: BTreeMap<(Peer, String), u64>,
    pub client_frames: u64,
    pub server_frames: u64,
    pub client_bytes: u64,
    pub server_bytes: u64,
}

impl Recorded {
    /// Adds the figures of another session (several sessions reporting to one receiver).
    pub fn add(&mut self, other: Recorded) {
        for (key, o) in other.requests {
            let mine = self.requests.entry(key).or_default();
            mine.started += o.started;
            mine.ok += o.ok;
            mine.tool_errors += o.tool_errors;
            for (code, n) in o.errors {
                *mine.errors.entry(code).or_default() += n;
            }
        }
        for (key, n) in other.notifications {
            *self.notifications.entry(key).or_default() += n;
        }
        self.client_frames += other.client_frames;
        self.server_frames += other.server_frames;
        self.client_bytes += other.client_bytes;
        self.server_bytes += other.server_bytes;
    }
}

/// The JSON-RPC frames of a recording (one per line, blank lines skipped).
pub fn lines(bytes: &[u8]) -> impl Iterator<Item = Value> + '_ {
    bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .map(|l| serde_json::from_slice(l).expect("the recording holds JSON lines"))
}

/// The requests and notifications each side sent, and how each request ended, in the
/// recordings of one session: what the client sent and what the server sent.
pub fn recorded(client_sent: &[u8], server_sent: &[u8]) -> Recorded {
    let mut out = Recorded {
        client_frames: lines(client_sent).count() as u64,
        server_frames: lines(server_sent).count() as u64,
        client_bytes: client_sent.len() as u64,
        server_bytes: server_sent.len() as u64,
        ..Recorded::default()
    };
    let sides = [(Peer::Client, client_sent), (Peer::Server, server_sent)];
    let mut asked: BTreeMap<(Peer, String), SeriesKey> = BTreeMap::new();
    for (sender, bytes) in sides {
        for msg in lines(bytes) {
            let Some(method) = msg.get("method").and_then(Value::as_str) else {
                continue;
            };
            match msg.get("id") {
                Some(id) => {
                    let tool = (method == "tools/call")
                        .then(|| msg["params"]["name"].as_str().unwrap_or("").to_string());
                    let key = (sender, method.to_string(), tool);
                    out.requests.entry(key.clone()).or_default().started += 1;
                    asked.insert((sender, id.to_string()), key);
                }
                None => {
                    *out.notifications
                        .entry((sender, method.to_string()))
                        .or_default() += 1
                }
            }
        }
    }
    for (sender, bytes) in sides {
        for msg in lines(bytes) {
            if msg.get("method").is_some() {
                continue;
            }
            let id = msg.get("id").map(Value::to_string).unwrap_or_default();
            let key = asked
                .get(&(sender.other(), id))
                .expect("every answer in the recording answers a recorded request");
            let outcome = out.requests.get_mut(key).expect("asked");
            if let Some(code) = msg.get("error").and_then(|e| e.get("code")) {
                *outcome.errors.entry(code.to_string()).or_default() += 1;
            } else if key.1 == "tools/call" && msg["result"]["isError"] == json!(true) {
                outcome.tool_errors += 1;
            } else {
                outcome.ok += 1;
            }
        }
    }
    out
}

/// What the receiver counted, in the same shape.
pub fn counted(traffic: &ServerTraffic) -> Recorded {
    let t = &traffic.totals;
    Recorded {
        requests: t
            .requests
            .iter()
            .map(|(k, s)| {
                let key = (k.origin, k.method.clone(), k.tool.clone());
                let outcomes = Outcomes {
                    started: s.started,
                    ok: s.ok,
                    tool_errors: s.tool_errors,
                    errors: s.errors.clone(),
                };
                (key, outcomes)
            })
            .collect(),
        notifications: t
            .notifications
            .iter()
            .map(|(k, n)| ((k.origin, k.method.clone()), *n))
            .collect(),
        client_frames: t.client_to_server.messages,
        server_frames: t.server_to_client.messages,
        client_bytes: t.client_to_server.bytes,
        server_bytes: t.server_to_client.bytes,
    }
}

/// The series of `origin`'s `method` (and `tool`); panics if the receiver has none.
pub fn series<'a>(
    traffic: &'a ServerTraffic,
    origin: Peer,
    method: &str,
    tool: Option<&str>,
) -> &'a RequestStats {
    traffic
        .totals
        .requests
        .iter()
        .find(|(k, _)| k.origin == origin && k.method == method && k.tool.as_deref() == tool)
        .map(|(_, s)| s)
        .unwrap_or_else(|| panic!("no series {origin:?} {method} {tool:?}"))
}

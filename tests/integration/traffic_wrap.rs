//! `mcp-exporter wrap` with real components: the official Python SDK client (mcp 2.3.0)
//! talking to the reference servers (everything, memory, filesystem) and a Python SDK server
//! through the wrapper, recorded on both sides of it byte for byte, and the daemon-side
//! receiver (src/traffic/receiver.rs) running in this process, killed and restarted.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use mcp_exporter::traffic::{Peer, ServerTraffic, StdioServer};
use serde_json::{Value, json};

use crate::common::paths::{fixture, npm_server_js};
use crate::common::process_table::child_pids_of;
use crate::common::processes::{kill_group, kill_pid};
use crate::common::tools::{Tool, located, require, require_all};
use crate::common::traffic::{
    REPORT_INTERVAL, TestReceiver, WAIT, counted, recorded, series, tempdir, wait_for, wrapper_bin,
};

/// The Python SDK venv's interpreter, or `None` (the test returns) when it or Node.js with the
/// npm servers is missing (see `common::tools`).
fn tools() -> Option<PathBuf> {
    require_all(&[Tool::Node, Tool::Python]).then(|| located(Tool::Python))
}

/// The Python SDK venv's interpreter (the test asked [`tools`] or `require` first).
fn python() -> PathBuf {
    located(Tool::Python)
}

// ---------------------------------------------------------------------------------------------
// The Python SDK client, with recorders on both sides of the wrapper
// ---------------------------------------------------------------------------------------------

/// tests/fixtures/traffic_client.py running `recorder(a) -> wrap -> recorder(b) -> server`.
struct SdkSession {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    dir: PathBuf,
}

impl SdkSession {
    /// Starts the client; `wrap_args` go between `wrap` and `--`.
    fn start(dir: &Path, wrap_args: &[&str], server: &[OsString], recorded: bool) -> SdkSession {
        let python = python();
        let recorder = fixture("stdio_recorder.py");
        let mut cmd = Command::new(&python);
        cmd.arg(fixture("traffic_client.py")).arg("--");
        if recorded {
            cmd.arg(&python).arg(&recorder).arg(dir.join("a")).arg("--");
        }
        cmd.arg(wrapper_bin()).arg("wrap").args(wrap_args);
        cmd.args(["--report-interval", REPORT_INTERVAL, "--"]);
        if recorded {
            cmd.arg(&python).arg(&recorder).arg(dir.join("b")).arg("--");
        }
        cmd.args(server)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0);
        let mut child = cmd.spawn().expect("spawn the Python SDK client");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut session = SdkSession {
            stdin: child.stdin.take(),
            child,
            lines,
            dir: dir.to_path_buf(),
        };
        let first = session.next_line();
        assert!(
            first.get("initialized").is_some(),
            "client did not initialize: {first}"
        );
        session
    }

    fn next_line(&mut self) -> Value {
        let line = self
            .lines
            .recv_timeout(WAIT)
            .unwrap_or_else(|_| panic!("the client answered nothing within {WAIT:?}"));
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("client said {line:?}: {e}"))
    }

    fn send(&mut self, command: Value) -> Value {
        let stdin = self.stdin.as_mut().expect("session open");
        writeln!(stdin, "{command}").expect("write to the client");
        stdin.flush().expect("flush");
        self.next_line()
    }

    fn call(&mut self, tool: &str, arguments: Value) -> Value {
        self.send(json!({"op": "call", "tool": tool, "arguments": arguments}))
    }

    /// Both recordings if they agree now: what the client sent is what the server got and
    /// the other way round.
    fn recordings(&self) -> Result<(Vec<u8>, Vec<u8>), String> {
        let read = |name: &str| std::fs::read(self.dir.join(name)).unwrap_or_default();
        let (a_in, b_in, a_out, b_out) = (read("a.in"), read("b.in"), read("a.out"), read("b.out"));
        if a_in != b_in {
            return Err(format!(
                "client sent {} bytes, server got {}",
                a_in.len(),
                b_in.len()
            ));
        }
        if a_out != b_out {
            return Err(format!(
                "server sent {} bytes, client got {}",
                b_out.len(),
                a_out.len()
            ));
        }
        Ok((a_in, a_out))
    }

    /// Waits until both recordings agree (they stop changing once the session is quiet).
    fn assert_recordings_equal(&self) -> (Vec<u8>, Vec<u8>) {
        wait_for("both sides of the wrapper recorded the same bytes", || {
            self.recordings()
        })
    }

    fn quit(mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = writeln!(stdin, "{}", json!({"op": "quit"}));
        }
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        panic!("the client did not end its session within {WAIT:?}");
    }
}

impl Drop for SdkSession {
    fn drop(&mut self) {
        // The SDK starts the server side in a session of its own: end those groups too.
        for pid in child_pids_of(self.child.id()) {
            kill_group(pid, libc::SIGKILL);
        }
        kill_group(self.child.id(), libc::SIGKILL);
        let _ = self.child.wait();
    }
}

/// Runs `script` through the wrapper against `server` and checks that both recordings are
/// equal and that the receiver counted exactly what they hold. Returns the client's answers.
fn check_session(
    label: &str,
    server: Vec<OsString>,
    script: &[Value],
) -> (Vec<Value>, ServerTraffic) {
    let dir = tempdir();
    let sock = dir.path().join("traffic.sock");
    // Join the wrapper to a "configured" server by the command line it runs (recorder b and
    // the server), so its traffic lands under that server's name, not its --name.
    let python = python();
    let mut joined_args = vec![
        fixture("stdio_recorder.py").to_string_lossy().into_owned(),
        dir.path().join("b").to_string_lossy().into_owned(),
        "--".to_string(),
    ];
    joined_args.extend(server.iter().map(|a| a.to_string_lossy().into_owned()));
    let receiver = TestReceiver::start(
        &sock,
        vec![StdioServer {
            name: label.to_string(),
            command: python.to_string_lossy().into_owned(),
            args: joined_args,
        }],
    );
    let sock_arg = sock.to_string_lossy().into_owned();
    let mut session = SdkSession::start(
        dir.path(),
        &["--exporter", &sock_arg, "--name", "unjoined"],
        &server,
        true,
    );
    let answers: Vec<Value> = script.iter().map(|c| session.send(c.clone())).collect();
    // Equal recordings, and the receiver counted exactly what they hold: checked together
    // until the session is quiet (a server may still be sending when the script ends).
    let traffic = wait_for("the receiver counted what the recordings hold", || {
        let (client_sent, server_sent) = session.recordings()?;
        let expected = recorded(&client_sent, &server_sent);
        let traffic = receiver
            .server(label)
            .ok_or_else(|| format!("no traffic for {label} yet"))?;
        let got = counted(&traffic);
        if got == expected {
            Ok(traffic)
        } else {
            Err(format!("counted {got:#?}\nrecorded {expected:#?}"))
        }
    });
    assert_eq!(traffic.totals.client_to_server.malformed, 0);
    assert_eq!(traffic.totals.server_to_client.unmatched_responses, 0);
    assert_eq!((traffic.wrappers, traffic.sessions_active), (1, 1));
    assert!(traffic.in_flight.is_empty(), "{:?}", traffic.in_flight);
    assert!(
        receiver.server("unjoined").is_none(),
        "the wrapper was joined by its command line"
    );
    session.quit();
    (answers, traffic)
}

fn node_server(name: &str, args: &[&str]) -> Vec<OsString> {
    let mut cmd = vec![OsString::from("node"), npm_server_js(name).into_os_string()];
    cmd.extend(args.iter().map(OsString::from));
    cmd
}

#[test]
fn server_everything_through_the_wrapper_is_unchanged_and_counted() {
    let Some(_) = tools() else { return };
    let script = [
        // server-everything asks for the client's roots 350 ms after initialization.
        json!({"op": "sleep", "seconds": 0.5}),
        json!({"op": "list"}),
        json!({"op": "call", "tool": "echo", "arguments": {"message": "one"}}),
        json!({"op": "call", "tool": "echo", "arguments": {"message": "two \u{e9}\u{1F600}"}}),
        json!({"op": "call", "tool": "get-sum", "arguments": {"a": 2, "b": 3}}),
        json!({"op": "call", "tool": "get-sum", "arguments": {"a": "not a number"}}),
        json!({"op": "call", "tool": "no-such-tool", "arguments": {}}),
        json!({"op": "read", "uri": "demo://no-such-resource"}),
        json!({"op": "call", "tool": "trigger-sampling-request", "arguments": {"prompt": "hi"}}),
        json!({"op": "ping"}),
    ];
    let (answers, traffic) =
        check_session("everything", node_server("everything", &["stdio"]), &script);
    assert_eq!(answers[5]["is_error"], json!(true), "{}", answers[5]);
    assert_eq!(answers[6]["is_error"], json!(true), "{}", answers[6]);
    assert_eq!(answers[7]["code"], json!(-32602), "{}", answers[7]);
    let echo = series(&traffic, Peer::Client, "tools/call", Some("echo"));
    assert_eq!((echo.started, echo.ok), (2, 2));
    assert_eq!(echo.duration.count(), 2);
    assert!(echo.request_bytes > 0 && echo.response_bytes > 0);
    let sum = series(&traffic, Peer::Client, "tools/call", Some("get-sum"));
    assert_eq!((sum.started, sum.ok, sum.tool_errors), (2, 1, 1));
    let read = series(&traffic, Peer::Client, "resources/read", None);
    assert_eq!(read.errors.get("-32602"), Some(&1));
    // The server asked the client too: roots at start, sampling for the tool.
    assert_eq!(
        series(&traffic, Peer::Server, "sampling/createMessage", None).ok,
        1
    );
    assert!(series(&traffic, Peer::Server, "roots/list", None).ok >= 1);
    assert_eq!(traffic.totals.sessions.started, 1);
    assert_eq!(
        traffic.protocols.keys().collect::<Vec<_>>(),
        vec![&("legacy".to_string(), "2025-11-25".to_string())]
    );
}

#[test]
fn server_memory_through_the_wrapper_is_unchanged_and_counted() {
    let Some(_) = tools() else { return };
    let memory_file = tempdir();
    let mut server = vec![
        OsString::from("env"),
        format!(
            "MEMORY_FILE_PATH={}",
            memory_file.path().join("memory.jsonl").display()
        )
        .into(),
    ];
    server.extend(node_server("memory", &[]));
    let script = [
        json!({"op": "list"}),
        json!({"op": "call", "tool": "create_entities", "arguments": {"entities": [{"name": "wrap", "entityType": "test", "observations": ["through the wrapper"]}]}}),
        json!({"op": "call", "tool": "read_graph", "arguments": {}}),
        json!({"op": "call", "tool": "create_entities", "arguments": {"entities": "not a list"}}),
        json!({"op": "call", "tool": "no-such-tool", "arguments": {}}),
        json!({"op": "read", "uri": "memory://nothing"}),
    ];
    let (answers, traffic) = check_session("memory", server, &script);
    assert_eq!(answers[3]["is_error"], json!(true), "{}", answers[3]);
    assert!(answers[5]["code"].is_i64(), "{}", answers[5]);
    let create = series(
        &traffic,
        Peer::Client,
        "tools/call",
        Some("create_entities"),
    );
    assert_eq!((create.started, create.ok, create.tool_errors), (2, 1, 1));
    assert_eq!(
        series(&traffic, Peer::Client, "resources/read", None).error_count(),
        1
    );
}

#[test]
fn server_filesystem_through_the_wrapper_is_unchanged_and_counted() {
    let Some(_) = tools() else { return };
    let root = tempdir();
    std::fs::write(root.path().join("hello.txt"), "hello through the wrapper\n").expect("write");
    let root_arg = root.path().to_string_lossy().into_owned();
    let script = [
        json!({"op": "list"}),
        json!({"op": "call", "tool": "list_allowed_directories", "arguments": {}}),
        json!({"op": "call", "tool": "list_directory", "arguments": {"path": root_arg}}),
        json!({"op": "call", "tool": "read_text_file", "arguments": {"path": root.path().join("hello.txt")}}),
        json!({"op": "call", "tool": "read_text_file", "arguments": {"path": "/etc/hostname"}}),
        json!({"op": "call", "tool": "no-such-tool", "arguments": {}}),
        json!({"op": "read", "uri": "file:///etc/hostname"}),
    ];
    let (answers, traffic) = check_session(
        "filesystem",
        node_server("filesystem", &[&root_arg]),
        &script,
    );
    assert_eq!(answers[3]["is_error"], json!(false), "{}", answers[3]);
    assert_eq!(answers[4]["is_error"], json!(true), "{}", answers[4]);
    assert_eq!(answers[6]["code"], json!(-32601), "{}", answers[6]);
    let read = series(&traffic, Peer::Client, "tools/call", Some("read_text_file"));
    assert_eq!((read.started, read.ok, read.tool_errors), (2, 1, 1));
    assert_eq!(
        series(&traffic, Peer::Client, "resources/read", None)
            .errors
            .get("-32601"),
        Some(&1)
    );
}

#[test]
fn a_10_mb_result_passes_intact_and_a_frame_over_16_mib_is_forwarded_uncounted() {
    let Some(python) = tools() else { return };
    let dir = tempdir();
    let sock = dir.path().join("traffic.sock");
    let receiver = TestReceiver::start(&sock, vec![]);
    let sock_arg = sock.to_string_lossy().into_owned();
    let server = vec![
        python.into_os_string(),
        fixture("traffic_server.py").into_os_string(),
    ];
    let mut session = SdkSession::start(
        dir.path(),
        &["--exporter", &sock_arg, "--name", "py"],
        &server,
        true,
    );
    let ten = session.call("big", json!({"size": 10_000_000}));
    assert_eq!(ten["text_bytes"], json!(10_000_000), "{ten}");
    let huge = session.call("big", json!({"size": 17 * 1024 * 1024}));
    assert_eq!(huge["text_bytes"], json!(17 * 1024 * 1024), "{huge}");
    let (_, server_sent) = session.assert_recordings_equal();
    let traffic = receiver.wait_until("py", |t| {
        let big = t
            .totals
            .requests
            .iter()
            .find(|(k, _)| k.tool.as_deref() == Some("big"));
        match big {
            Some((_, s)) if s.started == 2 && s.ok == 1 => Ok(()),
            other => Err(format!("big: {other:?}")),
        }
    });
    assert_eq!(traffic.totals.server_to_client.oversized, 1);
    assert_eq!(
        traffic.totals.server_to_client.bytes,
        server_sent.len() as u64
    );
    let big = series(&traffic, Peer::Client, "tools/call", Some("big"));
    assert!(big.response_bytes > 10_000_000, "{}", big.response_bytes);
    // The unread answer leaves its request in flight.
    assert_eq!(traffic.in_flight.values().sum::<u64>(), 1);
    session.quit();
}

#[test]
fn killing_the_receiver_leaves_the_session_alone_and_the_new_one_counts_what_followed() {
    let Some(python) = tools() else { return };
    let dir = tempdir();
    let sock = dir.path().join("traffic.sock");
    let first = TestReceiver::start(&sock, vec![]);
    let sock_arg = sock.to_string_lossy().into_owned();
    let server = vec![
        python.into_os_string(),
        fixture("traffic_server.py").into_os_string(),
    ];
    let mut session = SdkSession::start(
        dir.path(),
        &["--exporter", &sock_arg, "--name", "py"],
        &server,
        false,
    );
    let echo_ok = |answer: &Value, i: usize| {
        assert_eq!(answer["is_error"], json!(false), "{answer}");
        assert_eq!(
            answer["text_bytes"],
            json!(format!("call {i}").len()),
            "{answer}"
        );
    };
    for i in 0..5 {
        echo_ok(
            &session.call("echo", json!({"message": format!("call {i}")})),
            i,
        );
    }
    let echo_count = |t: &ServerTraffic| {
        t.totals
            .requests
            .iter()
            .find(|(k, _)| k.tool.as_deref() == Some("echo"))
            .map(|(_, s)| (s.started, s.ok))
    };
    first.wait_until("py", |t| match echo_count(t) {
        Some((5, 5)) => Ok(()),
        other => Err(format!("echo {other:?}")),
    });
    first.kill();
    assert!(sock.exists(), "a killed receiver leaves its socket file");

    // The daemon is gone: the client's work goes on untouched.
    for i in 0..7 {
        echo_ok(
            &session.call("echo", json!({"message": format!("call {i}")})),
            i,
        );
    }
    let second = TestReceiver::start(&sock, vec![]);
    for i in 0..3 {
        echo_ok(
            &session.call("echo", json!({"message": format!("call {i}")})),
            i,
        );
    }
    let traffic = second.wait_until("py", |t| match echo_count(t) {
        Some((10, 10)) => Ok(()),
        other => Err(format!("echo {other:?}")),
    });
    assert!(
        !traffic
            .totals
            .requests
            .keys()
            .any(|k| k.method == "initialize"),
        "what the first receiver had is not sent twice"
    );
    // Nothing more arrives: exactly the 7 + 3 calls made since the kill.
    thread::sleep(Duration::from_millis(500));
    assert_eq!(
        second.server("py").and_then(|t| echo_count(&t)),
        Some((10, 10))
    );
    session.quit();
}

// ---------------------------------------------------------------------------------------------
// The wrapper driven directly, with raw frames
// ---------------------------------------------------------------------------------------------

/// `mcp-exporter wrap` with its stdin and stdout held by the test.
struct RawWrapper {
    child: Child,
    stdin: Option<ChildStdin>,
    out: mpsc::Receiver<Vec<u8>>,
}

impl RawWrapper {
    fn start(sock: &Path, name: &str, server: &[OsString]) -> RawWrapper {
        RawWrapper::start_binary(Path::new(wrapper_bin()), sock, name, server)
    }

    /// `binary wrap ...`: the `mcp-exporter` under test, or a copy of it elsewhere.
    fn start_binary(binary: &Path, sock: &Path, name: &str, server: &[OsString]) -> RawWrapper {
        let mut child = Command::new(binary)
            .arg("wrap")
            .arg("--exporter")
            .arg(sock)
            .args(["--name", name, "--report-interval", REPORT_INTERVAL, "--"])
            .args(server)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the wrapper");
        let mut stdout = child.stdout.take().expect("stdout");
        let (tx, out) = mpsc::channel();
        thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match stdout.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx.send(buf[..n].to_vec()).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        RawWrapper {
            stdin: child.stdin.take(),
            child,
            out,
        }
    }

    fn write(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(bytes).expect("write to the wrapper");
        stdin.flush().expect("flush");
    }

    /// Reads until `want` bytes came (or fails after `within`).
    fn read_exactly(&mut self, want: usize, within: Duration) -> Vec<u8> {
        let deadline = Instant::now() + within;
        let mut got = Vec::new();
        while got.len() < want {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.out.recv_timeout(left) {
                Ok(chunk) => got.extend(chunk),
                Err(_) => panic!(
                    "got {} of {want} bytes within {within:?}: {:?}",
                    got.len(),
                    String::from_utf8_lossy(&got)
                ),
            }
        }
        got
    }

    fn read_line(&mut self) -> Value {
        let mut got = Vec::new();
        let deadline = Instant::now() + WAIT;
        while !got.ends_with(b"\n") {
            let left = deadline.saturating_duration_since(Instant::now());
            got.extend(self.out.recv_timeout(left).expect("a line from the server"));
        }
        serde_json::from_slice(&got).expect("a JSON line")
    }

    fn close_stdin(&mut self) {
        self.stdin.take();
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn signal(&self, signal: libc::c_int) {
        kill_pid(self.child.id(), signal);
    }

    fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the wrapper did not exit within {WAIT:?}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RawWrapper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sh(script: &str) -> Vec<OsString> {
    vec!["sh".into(), "-c".into(), script.into()]
}

fn absent_socket(dir: &Path) -> PathBuf {
    dir.join("nobody-listens.sock")
}

const INITIALIZE: &[u8] = br#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw-test","version":"1"}}}
"#;
const INITIALIZED: &[u8] = b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n";

#[test]
fn bytes_are_forwarded_as_they_arrive_not_per_line() {
    let dir = tempdir();
    let mut w = RawWrapper::start(&absent_socket(dir.path()), "cat", &["cat".into()]);
    // Half a frame, no newline: it must come back through `cat` before the rest is sent.
    let head: &[u8] = b"{\"jsonrpc\":\"2.0\",\"id\":1,";
    let tail: &[u8] = b"\"method\":\"ping\"}\n";
    w.write(head);
    assert_eq!(w.read_exactly(head.len(), Duration::from_secs(5)), head);
    w.write(tail);
    assert_eq!(w.read_exactly(tail.len(), Duration::from_secs(5)), tail);
    w.close_stdin();
    assert_eq!(
        w.wait().code(),
        Some(0),
        "stdin EOF closes cat's stdin; cat exits 0"
    );
}

#[test]
fn malformed_frames_are_counted_and_forwarded_untouched() {
    let dir = tempdir();
    let sock = dir.path().join("traffic.sock");
    let receiver = TestReceiver::start(&sock, vec![]);
    let mut w = RawWrapper::start(&sock, "cat", &["cat".into()]);
    let mut input = Vec::new();
    input.extend_from_slice(b"not json at all\n");
    input.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"ping\"}\n");
    input.extend_from_slice(b"{\"unterminated\": \n");
    input.extend_from_slice(&[0xff, 0xfe, 0x00, b'\n']);
    w.write(&input);
    assert_eq!(w.read_exactly(input.len(), Duration::from_secs(5)), input);
    let traffic = receiver.wait_until("cat", |t| {
        if t.totals.client_to_server.messages == 4 && t.totals.server_to_client.messages == 4 {
            Ok(())
        } else {
            Err(format!("{:?}", t.totals))
        }
    });
    // `cat` sends the ping back: to the accounting, the server asked the client.
    assert_eq!(traffic.totals.client_to_server.malformed, 3);
    assert_eq!(traffic.totals.server_to_client.malformed, 3);
    assert_eq!(series(&traffic, Peer::Client, "ping", None).started, 1);
    assert_eq!(series(&traffic, Peer::Server, "ping", None).started, 1);
    assert_eq!(traffic.totals.client_to_server.bytes, input.len() as u64);
    w.close_stdin();
    assert_eq!(w.wait().code(), Some(0));
}

#[test]
fn a_daemon_that_never_reads_does_not_slow_the_traffic() {
    let dir = tempdir();
    let sock = dir.path().join("stuck.sock");
    // Bound, never accepted, never read: connects succeed, writes eventually block.
    let _stuck = std::os::unix::net::UnixListener::bind(&sock).expect("bind");
    let mut w = RawWrapper::start(&sock, "cat", &["cat".into()]);
    let started = Instant::now();
    let mut expected = 0;
    for round in 0..20 {
        let mut batch = Vec::new();
        for i in 0..200 {
            batch.extend(
                format!(
                    "{{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"m{i}\"}}\n",
                    round * 200 + i
                )
                .bytes(),
            );
        }
        w.write(&batch);
        expected += batch.len();
        let back = w.read_exactly(batch.len(), Duration::from_secs(5));
        assert_eq!(back, batch);
        thread::sleep(Duration::from_millis(20));
    }
    assert!(expected > 100_000);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    w.close_stdin();
    let wait_started = Instant::now();
    assert_eq!(w.wait().code(), Some(0));
    assert!(
        wait_started.elapsed() < Duration::from_secs(3),
        "exit held by the stuck daemon"
    );
}

#[test]
fn exit_statuses_are_passed_on_like_a_shell() {
    let dir = tempdir();
    let sock = absent_socket(dir.path());
    let mut code = RawWrapper::start(&sock, "sh", &sh("exit 3"));
    assert_eq!(code.wait().code(), Some(3));
    let mut killed = RawWrapper::start(&sock, "sh", &sh("kill -9 $$"));
    assert_eq!(killed.wait().code(), Some(137));
    let mut missing = RawWrapper::start(&sock, "x", &["/nonexistent/mcp-server".into()]);
    assert_eq!(missing.wait().code(), Some(127));
}

#[test]
fn signals_are_forwarded_to_the_server() {
    let dir = tempdir();
    let sock = absent_socket(dir.path());
    for (signal, code) in [
        (libc::SIGINT, 10),
        (libc::SIGTERM, 11),
        (libc::SIGHUP, 12),
        (libc::SIGQUIT, 13),
    ] {
        let script = "trap 'exit 10' INT; trap 'exit 11' TERM; trap 'exit 12' HUP; trap 'exit 13' QUIT; \
                      echo ready; while :; do sleep 0.05; done";
        let mut w = RawWrapper::start(&sock, "sh", &sh(script));
        assert_eq!(w.read_exactly(6, WAIT), b"ready\n");
        w.signal(signal);
        let status = w.wait();
        assert_eq!(status.code(), Some(code), "signal {signal}: {status:?}");
        assert_eq!(status.signal(), None);
    }
}

#[test]
fn a_server_exiting_mid_call_gives_its_status_and_the_call_stays_unanswered() {
    let Some(python) = tools() else { return };
    let dir = tempdir();
    let sock = dir.path().join("traffic.sock");
    let receiver = TestReceiver::start(&sock, vec![]);
    let server = vec![
        python.into_os_string(),
        fixture("traffic_server.py").into_os_string(),
    ];
    let mut w = RawWrapper::start(&sock, "crashy", &server);
    w.write(INITIALIZE);
    assert!(w.read_line().get("result").is_some());
    w.write(INITIALIZED);
    w.write(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"crash","arguments":{"code":3}}}
"#);
    assert_eq!(w.wait().code(), Some(3));
    let traffic = receiver.wait_until("crashy", |t| {
        if t.exits.get(&3) == Some(&1) {
            Ok(())
        } else {
            Err(format!("exits {:?}", t.exits))
        }
    });
    let crash = series(&traffic, Peer::Client, "tools/call", Some("crash"));
    assert_eq!((crash.started, crash.unanswered, crash.ok), (1, 1, 0));
    assert_eq!(series(&traffic, Peer::Client, "initialize", None).ok, 1);
    assert_eq!(
        (
            traffic.totals.sessions.started,
            traffic.totals.sessions.ended
        ),
        (1, 1)
    );
}

#[test]
fn a_server_killed_with_sigkill_gives_137() {
    let Some(_) = require(Tool::Node) else { return };
    let dir = tempdir();
    let sock = dir.path().join("traffic.sock");
    let receiver = TestReceiver::start(&sock, vec![]);
    let memory_file = dir.path().join("memory.jsonl");
    let mut w = RawWrapper::start(
        &sock,
        "memory",
        &[
            "env".into(),
            format!("MEMORY_FILE_PATH={}", memory_file.display()).into(),
            "node".into(),
            npm_server_js("memory").into_os_string(),
        ],
    );
    w.write(INITIALIZE);
    assert!(w.read_line().get("result").is_some());
    let children = wait_for("the wrapped server's pid", || {
        match child_pids_of(w.pid()).as_slice() {
            [pid] => Ok(*pid),
            other => Err(format!("children {other:?}")),
        }
    });
    kill_pid(children, libc::SIGKILL);
    assert_eq!(w.wait().code(), Some(137));
    receiver.wait_until("memory", |t| {
        if t.exits.get(&137) == Some(&1) {
            Ok(())
        } else {
            Err(format!("exits {:?}", t.exits))
        }
    });
}

// ---------------------------------------------------------------------------------------------
// The wrapper's own executable (src/bin/mcp-exporter-wrap.rs)
// ---------------------------------------------------------------------------------------------

/// The executable a process runs, from /proc.
fn exe_of(pid: u32) -> PathBuf {
    std::fs::read_link(format!("/proc/{pid}/exe")).expect("read /proc/PID/exe")
}

/// A server that says `ready` once started, then echoes its stdin and exits 3 at EOF.
fn ready_then_cat() -> Vec<OsString> {
    sh("echo ready; cat; exit 3")
}

/// Passes a line through `w` (running [`ready_then_cat`]), closes its stdin and checks the
/// status.
fn echo_a_line_and_exit_3(w: &mut RawWrapper) {
    let line: &[u8] = b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\n";
    w.write(line);
    assert_eq!(w.read_exactly(line.len(), WAIT), line);
    w.close_stdin();
    assert_eq!(w.wait().code(), Some(3));
}

#[test]
fn wrap_runs_as_the_companion_beside_it_in_the_same_process() {
    let dir = tempdir();
    let sock = dir.path().join("traffic.sock");
    let receiver = TestReceiver::start(&sock, vec![]);
    let mut w = RawWrapper::start(&sock, "companion", &ready_then_cat());
    // The server is started by the wrapper, so by now the exec is done.
    assert_eq!(w.read_exactly(6, WAIT), b"ready\n");
    let companion = std::fs::canonicalize(env!("CARGO_BIN_EXE_mcp-exporter-wrap"))
        .expect("the companion is built beside mcp-exporter");
    assert_eq!(
        exe_of(w.pid()),
        companion,
        "mcp-exporter wrap replaced itself with mcp-exporter-wrap, keeping its pid"
    );
    // The client's child is still the server's parent: one process, no second wrapper.
    assert_eq!(
        child_pids_of(w.pid()).len(),
        1,
        "the server is the only child of the wrapper's pid"
    );
    echo_a_line_and_exit_3(&mut w);
    // Name and report interval reached the companion: its reports arrive under that name.
    receiver.wait_until("companion", |t| {
        if t.exits.get(&3) == Some(&1) && t.totals.client_to_server.messages == 1 {
            Ok(())
        } else {
            Err(format!("exits {:?}, totals {:?}", t.exits, t.totals))
        }
    });
}

#[test]
fn wrap_without_the_companion_wraps_in_its_own_process() {
    let dir = tempdir();
    let alone = dir.path().join("mcp-exporter");
    // A link where the filesystem allows (no copy of a large file), else a copy.
    if std::fs::hard_link(wrapper_bin(), &alone).is_err() {
        std::fs::copy(wrapper_bin(), &alone).expect("copy mcp-exporter");
    }
    let sock = dir.path().join("traffic.sock");
    let receiver = TestReceiver::start(&sock, vec![]);
    let mut w = RawWrapper::start_binary(&alone, &sock, "alone", &ready_then_cat());
    assert_eq!(w.read_exactly(6, WAIT), b"ready\n");
    assert_eq!(
        exe_of(w.pid()),
        alone,
        "with no mcp-exporter-wrap beside it, mcp-exporter wraps in its own process"
    );
    echo_a_line_and_exit_3(&mut w);
    receiver.wait_until("alone", |t| {
        if t.exits.get(&3) == Some(&1) && t.totals.client_to_server.messages == 1 {
            Ok(())
        } else {
            Err(format!("exits {:?}, totals {:?}", t.exits, t.totals))
        }
    });
}

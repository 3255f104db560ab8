//! Real MCP clients through `mcp-exporter wrap`: the MCP Inspector's command line client
//! (`--cli`, legacy and modern eras) and the official Python SDK's high-level client
//! (`mcp.client.Client`, mcp 2.3.0, `mode="legacy"` and `mode="auto"`), against server-everything,
//! server-memory, server-filesystem and a Python SDK server.
//!
//! Every session runs `client -> recorder a -> wrap -> recorder b -> server`
//! (tests/fixtures/stdio_recorder.py): what the client wrote is what the server read and what the
//! server wrote is what the client read, byte for byte. The receiver (in this process) must
//! count exactly the requests of the session, per method and per tool, with a JSON-RPC error
//! and an `isError` result in their buckets; the SDK client keeps its own transcript
//! (tests/fixtures/sdk_logged_client.py), which must hold the same messages as the recordings,
//! and the Inspector's own printed outcome of each request it was asked for must be the bucket
//! the receiver shows. A server that crashes mid-session gives the client the status it exited
//! with. Last, `import --wrap` output is handed to the Inspector as its configuration.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use mcp_exporter::traffic::{Peer, ServerTraffic};
use serde_json::{Value, json};

use crate::common::paths::{fixture, npm_server_js};
use crate::common::processes::{kill_group, kill_pid};
use crate::common::tools::{Tool, inspector_cli, located, require_all};
use crate::common::traffic::{
    REPORT_INTERVAL, Recorded, SeriesKey, TestReceiver, counted, lines, recorded, series, tempdir,
    wait_for, wrapper_bin,
};

/// Longest a whole client run may take (the Inspector waits for a server's exit a few
/// seconds, and the machine may be loaded).
const RUN_LIMIT: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------------------------
// One recorded session: `recorder a -> wrap -> recorder b -> server`
// ---------------------------------------------------------------------------------------------

/// The directory of one session's recordings (`a.*`: the client's side of the wrapper, `b.*`:
/// the server's).
struct Session {
    dir: PathBuf,
}

impl Session {
    fn new(parent: &Path, name: &str) -> Session {
        let dir = parent.join(name);
        std::fs::create_dir_all(&dir).expect("session dir");
        Session { dir }
    }

    /// The command line a client starts: the server behind the wrapper, recorded on both sides.
    fn command(&self, sock: &Path, name: &str, server: &[OsString]) -> Vec<OsString> {
        let python = located(Tool::Python).into_os_string();
        let recorder = fixture("stdio_recorder.py").into_os_string();
        let mut cmd: Vec<OsString> = vec![
            python.clone(),
            recorder.clone(),
            self.dir.join("a").into_os_string(),
            "--".into(),
            wrapper_bin().into(),
            "wrap".into(),
            "--exporter".into(),
            sock.as_os_str().to_owned(),
            "--name".into(),
            name.into(),
            "--report-interval".into(),
            REPORT_INTERVAL.into(),
            "--".into(),
            python,
            recorder,
            self.dir.join("b").into_os_string(),
            "--".into(),
        ];
        cmd.extend(server.iter().cloned());
        cmd
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.dir.join(name)).unwrap_or_default()
    }

    /// `(client sent, server sent)` once both sides of the wrapper hold the same bytes.
    fn equal_recordings(&self) -> (Vec<u8>, Vec<u8>) {
        wait_for("both sides of the wrapper recorded the same bytes", || {
            let (a_in, b_in, a_out, b_out) = (
                self.read("a.in"),
                self.read("b.in"),
                self.read("a.out"),
                self.read("b.out"),
            );
            if a_in != b_in {
                return Err(format!(
                    "client sent {} bytes, server read {}",
                    a_in.len(),
                    b_in.len()
                ));
            }
            if a_out != b_out {
                return Err(format!(
                    "server sent {} bytes, client read {}",
                    b_out.len(),
                    a_out.len()
                ));
            }
            Ok((a_in, a_out))
        })
    }

    /// The exit status recorder `side` saw of its child (`a`: the wrapper, `b`: the server).
    fn status(&self, side: &str) -> String {
        let file = format!("{side}.status");
        wait_for(&format!("{side}.status"), || {
            String::from_utf8(self.read(&file))
                .ok()
                .filter(|s| !s.is_empty())
                .ok_or_else(|| format!("no {file} yet"))
        })
    }

    fn server_pid(&self) -> u32 {
        wait_for("the server's pid", || {
            String::from_utf8_lossy(&self.read("b.pid"))
                .trim()
                .parse::<u32>()
                .map_err(|e| e.to_string())
        })
    }
}

/// Waits until the receiver counted, under `label`, exactly what `expected` holds.
fn assert_counted(receiver: &TestReceiver, label: &str, expected: &Recorded) -> ServerTraffic {
    wait_for("the receiver counted what the recordings hold", || {
        let traffic = receiver
            .server(label)
            .ok_or_else(|| format!("no traffic for {label} yet"))?;
        let got = counted(&traffic);
        if &got == expected {
            Ok(traffic)
        } else {
            Err(format!("counted {got:#?}\nrecorded {expected:#?}"))
        }
    })
}

/// A child process in its own group with its output collected; killed with its group when
/// dropped.
struct Run {
    child: Child,
    stdout: mpsc::Receiver<String>,
    stderr: Option<thread::JoinHandle<String>>,
}

impl Run {
    fn start(mut cmd: Command) -> Run {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = cmd.spawn().expect("spawn the client");
        let stdout = child.stdout.take().expect("stdout");
        let mut stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        Run {
            child,
            stdout: lines,
            stderr: Some(stderr),
        }
    }

    fn next_line(&mut self) -> String {
        self.stdout
            .recv_timeout(RUN_LIMIT)
            .unwrap_or_else(|_| panic!("the client printed nothing within {RUN_LIMIT:?}"))
    }

    /// Waits for the exit; returns the exit code, the rest of stdout and stderr.
    fn finish(mut self) -> (Option<i32>, Vec<String>, String) {
        let mut out = Vec::new();
        loop {
            match self.stdout.recv_timeout(RUN_LIMIT) {
                Ok(line) => out.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("the client did not finish within {RUN_LIMIT:?}: {out:?}")
                }
            }
        }
        let status = wait_for("the client exits", || {
            self.child
                .try_wait()
                .map_err(|e| e.to_string())?
                .ok_or_else(|| "running".to_string())
        });
        let stderr = self.stderr.take().and_then(|h| h.join().ok());
        (status.code(), out, stderr.unwrap_or_default())
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        kill_group(self.child.id(), libc::SIGKILL);
        let _ = self.child.wait();
    }
}

fn node_server(name: &str, args: &[&str]) -> Vec<OsString> {
    let mut cmd = vec![OsString::from("node"), npm_server_js(name).into_os_string()];
    cmd.extend(args.iter().map(OsString::from));
    cmd
}

fn memory_server(dir: &Path) -> Vec<OsString> {
    let mut cmd = vec![
        OsString::from("env"),
        format!("MEMORY_FILE_PATH={}", dir.join("memory.jsonl").display()).into(),
    ];
    cmd.extend(node_server("memory", &[]));
    cmd
}

fn py_server(script: &str) -> Vec<OsString> {
    vec![
        located(Tool::Python).into_os_string(),
        fixture(script).into_os_string(),
    ]
}

// ---------------------------------------------------------------------------------------------
// The MCP Inspector's command line client
// ---------------------------------------------------------------------------------------------

/// How a request the Inspector was asked for ended, by its own printed result.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Printed {
    Ok,
    ToolError,
    /// An error envelope (its message names the JSON-RPC code only sometimes; the recordings
    /// hold the code).
    Error,
}

/// One `--cli` run: the Inspector connects, makes the request `args` names, prints its
/// outcome (`--format json`) and exits.
struct InspectorRun {
    code: Option<i32>,
    printed: Value,
}

impl InspectorRun {
    /// The printed outcome: a result (with `isError` or not) or an error.
    fn outcome(&self) -> Printed {
        match self.printed.get("result") {
            Some(result) if result["isError"] == json!(true) => Printed::ToolError,
            Some(_) => Printed::Ok,
            None => Printed::Error,
        }
    }
}

/// Runs the Inspector CLI on `target` (a command line, or `--config FILE --server NAME` in
/// `args`), with `home` as its home (where it keeps its catalog and client settings).
fn inspector(home: &Path, args: &[&str], target: &[OsString]) -> InspectorRun {
    let mut cmd = Command::new(located(Tool::Inspector));
    cmd.arg(inspector_cli())
        // No connect timeout of its own: on a loaded machine a server behind two recorders
        // and the wrapper may take longer than its 15 s default; RUN_LIMIT bounds the run.
        .args([
            "--cli",
            "--format",
            "json",
            "--quiet",
            "--connect-timeout",
            "0",
        ])
        .args(args)
        .env("HOME", home)
        .env_remove("MCP_CATALOG_PATH")
        .env_remove("MCP_CLIENT_CONFIG_PATH");
    if !target.is_empty() {
        cmd.arg("--").args(target);
    }
    let (code, out, err) = Run::start(cmd).finish();
    // The result goes to stdout; an error envelope to stderr.
    let printed = out
        .iter()
        .chain(err.lines().map(str::to_string).collect::<Vec<_>>().iter())
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|v| v.get("result").is_some() || v.get("error").is_some())
        .unwrap_or_else(|| panic!("the Inspector printed no outcome: {out:?} {err}"));
    InspectorRun { code, printed }
}

/// How the requests of one series ended, by the Inspector's printed outcomes.
#[derive(Debug, Default, PartialEq, Eq)]
struct Tally {
    started: u64,
    ok: u64,
    tool_errors: u64,
    errors_total: u64,
}

/// One request for the Inspector: its arguments and the series it lands in.
struct Ask {
    args: Vec<String>,
    method: &'static str,
    tool: Option<&'static str>,
}

fn call(tool: &'static str, arguments: Value) -> Ask {
    Ask {
        args: vec![
            "--method".into(),
            "tools/call".into(),
            "--tool-name".into(),
            tool.into(),
            "--tool-args-json".into(),
            arguments.to_string(),
        ],
        method: "tools/call",
        tool: Some(tool),
    }
}

fn read(uri: &str) -> Ask {
    Ask {
        args: vec![
            "--method".into(),
            "resources/read".into(),
            "--uri".into(),
            uri.into(),
        ],
        method: "resources/read",
        tool: None,
    }
}

fn list_tools() -> Ask {
    Ask {
        args: vec!["--method".into(), "tools/list".into()],
        method: "tools/list",
        tool: None,
    }
}

/// Runs each of `asks` as one Inspector session through the wrapper against `server`
/// (`era`: the Inspector's `--protocol-era`), then checks every session's recordings, the
/// receiver's counts against them, and the Inspector's own outcomes against the buckets.
/// Returns the outcomes in order and what the receiver counted.
fn inspector_sessions(
    label: &str,
    era: &str,
    server: &[OsString],
    asks: &[Ask],
) -> (Vec<Printed>, ServerTraffic) {
    let dir = tempdir();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    let sock = dir.path().join("traffic.sock");
    let receiver = TestReceiver::start(&sock, vec![]);
    let mut expected = Recorded::default();
    let mut printed: BTreeMap<SeriesKey, Tally> = BTreeMap::new();
    let mut outcomes = Vec::new();
    for (i, ask) in asks.iter().enumerate() {
        let session = Session::new(dir.path(), &format!("s{i}"));
        let mut args: Vec<&str> = vec!["--protocol-era", era];
        args.extend(ask.args.iter().map(String::as_str));
        let run = inspector(&home, &args, &session.command(&sock, label, server));
        let outcome = run.outcome();
        let want_code = match &outcome {
            Printed::Ok => 0,
            Printed::ToolError => 5,
            Printed::Error => 1,
        };
        assert_eq!(run.code, Some(want_code), "{}", run.printed);
        let key = (
            Peer::Client,
            ask.method.to_string(),
            ask.tool.map(str::to_string),
        );
        let bucket = printed.entry(key).or_default();
        bucket.started += 1;
        match &outcome {
            Printed::Ok => bucket.ok += 1,
            Printed::ToolError => bucket.tool_errors += 1,
            Printed::Error => bucket.errors_total += 1,
        }
        outcomes.push(outcome);
        let (client_sent, server_sent) = session.equal_recordings();
        expected.add(recorded(&client_sent, &server_sent));
    }
    let traffic = assert_counted(&receiver, label, &expected);
    // What the Inspector printed for the requests it was asked for is what the receiver
    // counted for them (its own preparatory requests, such as tools/list before a call, are
    // in the recordings above).
    for (key, want) in printed {
        let stats = series(&traffic, key.0, &key.1, key.2.as_deref());
        let got = Tally {
            started: stats.started,
            ok: stats.ok,
            tool_errors: stats.tool_errors,
            errors_total: stats.errors.values().sum(),
        };
        if key.1 == "tools/list" {
            // Also asked before each call: the printed outcomes are a part of it.
            assert!(
                got.started >= want.started && got.ok >= want.ok,
                "{key:?}: {got:?} {want:?}"
            );
        } else {
            assert_eq!(got, want, "{key:?}");
        }
    }
    assert_eq!(traffic.totals.client_to_server.malformed, 0);
    assert_eq!(traffic.totals.server_to_client.malformed, 0);
    if era == "legacy" {
        // A session starts with an initialize request (docs/traffic.md).
        assert_eq!(traffic.totals.sessions.started, asks.len() as u64);
    }
    (outcomes, traffic)
}

fn inspector_tools() -> bool {
    require_all(&[Tool::Node, Tool::Python, Tool::Inspector])
}

#[test]
fn inspector_cli_against_server_everything_through_the_wrapper() {
    if !inspector_tools() {
        return;
    }
    let asks = [
        list_tools(),
        call("echo", json!({"message": "through the wrapper \u{e9}"})),
        call("get-sum", json!({"a": 2, "b": 3})),
        call("get-sum", json!({"a": "not a number"})),
        read("demo://no-such-resource"),
    ];
    let (outcomes, traffic) = inspector_sessions(
        "everything",
        "legacy",
        &node_server("everything", &["stdio"]),
        &asks,
    );
    assert_eq!(
        outcomes,
        [
            Printed::Ok,
            Printed::Ok,
            Printed::Ok,
            Printed::ToolError,
            Printed::Error
        ]
    );
    let sum = series(&traffic, Peer::Client, "tools/call", Some("get-sum"));
    assert_eq!((sum.started, sum.ok, sum.tool_errors), (2, 1, 1));
    let read = series(&traffic, Peer::Client, "resources/read", None);
    assert_eq!(read.errors.get("-32602"), Some(&1));
}

#[test]
fn inspector_cli_against_server_memory_through_the_wrapper() {
    if !inspector_tools() {
        return;
    }
    let data = tempdir();
    let asks = [
        call(
            "create_entities",
            json!({"entities": [{"name": "wrap", "entityType": "test", "observations": ["seen"]}]}),
        ),
        call("read_graph", json!({})),
        call("create_entities", json!({"entities": "not a list"})),
        read("memory://nothing"),
    ];
    let (outcomes, traffic) =
        inspector_sessions("memory", "legacy", &memory_server(data.path()), &asks);
    assert_eq!(
        outcomes[..3],
        [Printed::Ok, Printed::Ok, Printed::ToolError]
    );
    assert_eq!(outcomes[3], Printed::Error);
    let create = series(
        &traffic,
        Peer::Client,
        "tools/call",
        Some("create_entities"),
    );
    assert_eq!((create.started, create.ok, create.tool_errors), (2, 1, 1));
    assert!(
        std::fs::read_to_string(data.path().join("memory.jsonl"))
            .is_ok_and(|text| text.contains("\"wrap\"")),
        "the server behind the wrapper did the work"
    );
}

#[test]
fn inspector_cli_against_server_filesystem_through_the_wrapper() {
    if !inspector_tools() {
        return;
    }
    let root = tempdir();
    let file = root.path().join("hello.txt");
    std::fs::write(&file, "hello through the wrapper\n").expect("write");
    let root_arg = root.path().to_string_lossy().into_owned();
    let asks = [
        call("list_allowed_directories", json!({})),
        call("read_text_file", json!({"path": file})),
        call("read_text_file", json!({"path": "/etc/hostname"})),
        read("file:///etc/hostname"),
    ];
    let (outcomes, traffic) = inspector_sessions(
        "filesystem",
        "legacy",
        &node_server("filesystem", &[&root_arg]),
        &asks,
    );
    assert_eq!(
        outcomes,
        [Printed::Ok, Printed::Ok, Printed::ToolError, Printed::Error]
    );
    let read = series(&traffic, Peer::Client, "tools/call", Some("read_text_file"));
    assert_eq!((read.started, read.ok, read.tool_errors), (2, 1, 1));
    let resource = series(&traffic, Peer::Client, "resources/read", None);
    assert_eq!(resource.errors.get("-32601"), Some(&1));
}

#[test]
fn inspector_cli_in_the_modern_era_through_the_wrapper() {
    if !inspector_tools() {
        return;
    }
    let asks = [
        call("echo", json!({"message": "modern"})),
        call("fail", json!({})),
    ];
    let (outcomes, traffic) = inspector_sessions(
        "py-modern",
        "auto",
        &py_server("py_modern_server.py"),
        &asks,
    );
    assert_eq!(outcomes, [Printed::Ok, Printed::ToolError]);
    assert_eq!(
        series(&traffic, Peer::Client, "server/discover", None).ok,
        2
    );
    assert!(
        !traffic
            .totals
            .requests
            .keys()
            .any(|k| k.method == "initialize"),
        "the modern era has no initialize"
    );
}

// ---------------------------------------------------------------------------------------------
// The Python SDK's client, with its own transcript
// ---------------------------------------------------------------------------------------------

/// What one SDK client session printed and recorded.
struct SdkRun {
    session: Session,
    answers: Vec<Value>,
}

/// Starts tests/fixtures/sdk_logged_client.py in `mode` running `script` against `server`
/// through the wrapper; `during` gets the session and the first answers (for a test that acts
/// mid-session) before the rest is read.
fn sdk_session(
    parent: &Path,
    sock: &Path,
    label: &str,
    mode: &str,
    server: &[OsString],
    script: &[Value],
    during: impl FnOnce(&Session, &mut dyn FnMut() -> Value),
) -> SdkRun {
    let session = Session::new(parent, mode);
    let script_path = session.dir.join("script.json");
    std::fs::write(&script_path, Value::from(script.to_vec()).to_string()).expect("script");
    let mut cmd = Command::new(located(Tool::Python));
    cmd.arg(fixture("sdk_logged_client.py"))
        .arg(mode)
        .arg(&script_path)
        .arg(session.dir.join("client.jsonl"))
        .arg("--")
        .args(session.command(sock, label, server));
    let mut run = Run::start(cmd);
    let mut answers = Vec::new();
    let mut next = || -> Value {
        let line = run.next_line();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("client said {line:?}: {e}"))
    };
    during(&session, &mut next);
    let (_, rest, stderr) = run.finish();
    for line in rest {
        answers.push(
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("client said {line:?}: {e}")),
        );
    }
    assert_eq!(
        answers.last(),
        Some(&json!({"done": true})),
        "{answers:?}\n{stderr}"
    );
    SdkRun { session, answers }
}

/// The client's own transcript: (messages it sent, messages it received), as JSON lines.
fn transcript(session: &Session) -> (Vec<u8>, Vec<u8>) {
    let (mut sent, mut received) = (Vec::new(), Vec::new());
    for entry in lines(&session.read("client.jsonl")) {
        let (side, message) = match (entry.get("sent"), entry.get("received")) {
            (Some(m), None) => (&mut sent, m),
            (None, Some(m)) => (&mut received, m),
            _ => panic!("transcript line {entry}"),
        };
        side.extend(message.to_string().bytes());
        side.push(b'\n');
    }
    (sent, received)
}

/// Checks one SDK session: both sides of the wrapper equal, the client's transcript holds the
/// same messages, and returns what the recordings hold.
fn check_sdk_session(run: &SdkRun) -> Recorded {
    let (client_sent, server_sent) = run.session.equal_recordings();
    let (log_sent, log_received) = transcript(&run.session);
    let values = |bytes: &[u8]| lines(bytes).collect::<Vec<Value>>();
    assert_eq!(
        values(&log_sent),
        values(&client_sent),
        "the client's transcript of what it sent"
    );
    assert_eq!(
        values(&log_received),
        values(&server_sent),
        "the client's transcript of what it received"
    );
    let on_wire = recorded(&client_sent, &server_sent);
    let in_log = recorded(&log_sent, &log_received);
    assert_eq!(on_wire.requests, in_log.requests);
    assert_eq!(on_wire.notifications, in_log.notifications);
    on_wire
}

fn no_pause(_: &Session, _: &mut dyn FnMut() -> Value) {}

/// Runs `script` in both of the SDK's modes against `server`; each mode's counts land under
/// `<label>-<mode>` and must equal that session's record exactly.
fn sdk_both_modes(
    label: &str,
    server: &[OsString],
    script: &[Value],
) -> Vec<(Vec<Value>, ServerTraffic)> {
    let dir = tempdir();
    let sock = dir.path().join("traffic.sock");
    let receiver = TestReceiver::start(&sock, vec![]);
    ["legacy", "auto"]
        .into_iter()
        .map(|mode| {
            let name = format!("{label}-{mode}");
            let run = sdk_session(dir.path(), &sock, &name, mode, server, script, no_pause);
            let expected = check_sdk_session(&run);
            let traffic = assert_counted(&receiver, &name, &expected);
            assert!(traffic.in_flight.is_empty(), "{:?}", traffic.in_flight);
            (run.answers, traffic)
        })
        .collect()
}

fn sdk_tools() -> bool {
    require_all(&[Tool::Node, Tool::Python])
}

#[test]
fn python_sdk_client_in_both_modes_against_server_everything() {
    if !sdk_tools() {
        return;
    }
    let script = [
        // server-everything asks for the client's roots 350 ms after initialization.
        json!({"op": "sleep", "seconds": 0.5}),
        json!({"op": "list"}),
        json!({"op": "call", "tool": "echo", "arguments": {"message": "one"}}),
        json!({"op": "call", "tool": "get-sum", "arguments": {"a": 2, "b": 3}}),
        json!({"op": "call", "tool": "get-sum", "arguments": {"a": "not a number"}}),
        json!({"op": "read", "uri": "demo://no-such-resource"}),
        json!({"op": "call", "tool": "trigger-sampling-request", "arguments": {"prompt": "hi"}}),
    ];
    let sessions = sdk_both_modes(
        "everything",
        &node_server("everything", &["stdio"]),
        &script,
    );
    for (answers, traffic) in &sessions {
        assert_eq!(answers[0], json!({"connected": "2025-11-25"}));
        assert_eq!(answers[5]["is_error"], json!(true), "{}", answers[5]);
        assert_eq!(answers[6], json!({"ok": false, "code": -32602}));
        let sum = series(traffic, Peer::Client, "tools/call", Some("get-sum"));
        assert_eq!((sum.started, sum.ok, sum.tool_errors), (2, 1, 1));
        let read = series(traffic, Peer::Client, "resources/read", None);
        assert_eq!(read.errors.get("-32602"), Some(&1));
        assert_eq!(
            series(traffic, Peer::Server, "sampling/createMessage", None).ok,
            1
        );
    }
    // `auto` asked server/discover first; the legacy server refused it, then initialize.
    let (_, auto) = &sessions[1];
    let discover = series(auto, Peer::Client, "server/discover", None);
    assert_eq!(
        (discover.started, discover.errors.get("-32601")),
        (1, Some(&1))
    );
    assert_eq!(series(auto, Peer::Client, "initialize", None).ok, 1);
    let (_, legacy) = &sessions[0];
    assert!(
        !legacy
            .totals
            .requests
            .keys()
            .any(|k| k.method == "server/discover")
    );
}

#[test]
fn python_sdk_client_in_both_modes_against_server_memory_and_filesystem() {
    if !sdk_tools() {
        return;
    }
    let data = tempdir();
    let memory = [
        json!({"op": "call", "tool": "create_entities", "arguments": {"entities": [{"name": "sdk", "entityType": "test", "observations": []}]}}),
        json!({"op": "call", "tool": "create_entities", "arguments": {"entities": "not a list"}}),
        json!({"op": "read", "uri": "memory://nothing"}),
    ];
    for (answers, traffic) in sdk_both_modes("memory", &memory_server(data.path()), &memory) {
        assert_eq!(answers[2]["is_error"], json!(true), "{}", answers[2]);
        assert!(answers[3]["code"].is_i64(), "{}", answers[3]);
        let create = series(
            &traffic,
            Peer::Client,
            "tools/call",
            Some("create_entities"),
        );
        assert_eq!((create.started, create.ok, create.tool_errors), (2, 1, 1));
    }
    let root = tempdir();
    std::fs::write(root.path().join("f.txt"), "x").expect("write");
    let root_arg = root.path().to_string_lossy().into_owned();
    let filesystem = [
        json!({"op": "call", "tool": "read_text_file", "arguments": {"path": root.path().join("f.txt")}}),
        json!({"op": "call", "tool": "read_text_file", "arguments": {"path": "/etc/hostname"}}),
        json!({"op": "read", "uri": "file:///etc/hostname"}),
    ];
    let server = node_server("filesystem", &[&root_arg]);
    for (answers, traffic) in sdk_both_modes("filesystem", &server, &filesystem) {
        assert_eq!(answers[2]["is_error"], json!(true), "{}", answers[2]);
        assert_eq!(answers[3], json!({"ok": false, "code": -32601}));
        let read = series(&traffic, Peer::Client, "tools/call", Some("read_text_file"));
        assert_eq!((read.started, read.ok, read.tool_errors), (2, 1, 1));
    }
}

#[test]
fn python_sdk_client_in_the_modern_era_through_the_wrapper() {
    if !sdk_tools() {
        return;
    }
    let script = [
        json!({"op": "list"}),
        json!({"op": "call", "tool": "echo", "arguments": {"message": "modern"}}),
        json!({"op": "call", "tool": "fail", "arguments": {}}),
        json!({"op": "read", "uri": "nothing://here"}),
    ];
    let dir = tempdir();
    let sock = dir.path().join("traffic.sock");
    let receiver = TestReceiver::start(&sock, vec![]);
    let server = py_server("traffic_server.py");
    let run = sdk_session(dir.path(), &sock, "py", "auto", &server, &script, no_pause);
    assert_eq!(run.answers[0], json!({"connected": "2026-07-28"}));
    assert_eq!(
        run.answers[3]["is_error"],
        json!(true),
        "{}",
        run.answers[3]
    );
    assert!(run.answers[4]["code"].is_i64(), "{}", run.answers[4]);
    let expected = check_sdk_session(&run);
    let traffic = assert_counted(&receiver, "py", &expected);
    let fail = series(&traffic, Peer::Client, "tools/call", Some("fail"));
    assert_eq!((fail.started, fail.tool_errors), (1, 1));
    assert_eq!(
        series(&traffic, Peer::Client, "server/discover", None).ok,
        1
    );
}

// ---------------------------------------------------------------------------------------------
// A server crashing under a real client
// ---------------------------------------------------------------------------------------------

#[test]
fn a_server_crashing_mid_session_gives_the_client_its_exit_status() {
    if !sdk_tools() {
        return;
    }
    let dir = tempdir();
    let sock = dir.path().join("traffic.sock");
    let receiver = TestReceiver::start(&sock, vec![]);
    let server = py_server("traffic_server.py");

    // The server exits with 3 in the middle of a call.
    let script = [
        json!({"op": "call", "tool": "echo", "arguments": {"message": "before"}}),
        json!({"op": "call", "tool": "crash", "arguments": {"code": 3}}),
    ];
    let run = sdk_session(
        dir.path(),
        &sock,
        "crash",
        "legacy",
        &server,
        &script,
        no_pause,
    );
    assert_eq!(run.answers[2]["closed"], json!(true), "{:?}", run.answers);
    assert_eq!(run.session.status("b"), "3", "the server's status");
    assert_eq!(
        run.session.status("a"),
        "3",
        "the wrapper's status, as the client sees it"
    );
    let expected = check_sdk_session(&run);
    let traffic = assert_counted(&receiver, "crash", &expected);
    let crash = series(&traffic, Peer::Client, "tools/call", Some("crash"));
    assert_eq!((crash.started, crash.unanswered), (1, 1));
    receiver.wait_until("crash", |t| match t.exits.get(&3) {
        Some(1) => Ok(()),
        _ => Err(format!("exits {:?}", t.exits)),
    });

    // The server killed by SIGKILL while the client waits: 128 + 9, as a shell reports it.
    let cue = dir.path().join("killed");
    let script = [
        json!({"op": "call", "tool": "echo", "arguments": {"message": "before"}}),
        json!({"op": "wait_for_file", "path": cue}),
        json!({"op": "call", "tool": "echo", "arguments": {"message": "after"}}),
    ];
    let run = sdk_session(
        dir.path(),
        &sock,
        "killed",
        "auto",
        &server,
        &script,
        |session, next| {
            assert!(next().get("connected").is_some());
            assert_eq!(next()["is_error"], json!(false));
            kill_pid(session.server_pid(), libc::SIGKILL);
            assert_eq!(session.status("b"), "137");
            std::fs::write(&cue, "").expect("cue");
        },
    );
    assert_eq!(run.session.status("a"), "137", "the wrapper's status");
    assert_eq!(run.answers[1]["closed"], json!(true), "{:?}", run.answers);
    let expected = check_sdk_session(&run);
    assert_counted(&receiver, "killed", &expected);
    receiver.wait_until("killed", |t| match t.exits.get(&137) {
        Some(1) => Ok(()),
        _ => Err(format!("exits {:?}", t.exits)),
    });
}

// ---------------------------------------------------------------------------------------------
// `import --wrap`, run by a real client
// ---------------------------------------------------------------------------------------------

fn import_wrap(file: &Path) -> (Option<i32>, String, String) {
    let out = Command::new(wrapper_bin())
        .args(["import", "--wrap"])
        .arg(file)
        .args(["--binary", wrapper_bin()])
        .output()
        .expect("run import --wrap");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn import_wrap_output_runs_the_server_through_the_wrapper_for_the_inspector() {
    if !inspector_tools() {
        return;
    }
    let dir = tempdir();
    let sock = dir.path().join("traffic.sock");
    let receiver = TestReceiver::start(&sock, vec![]);
    let memory_js = npm_server_js("memory").to_string_lossy().into_owned();
    let memory_file = dir.path().join("memory.jsonl");
    let original = json!({
        "globalShortcut": "Alt+Space",
        "mcpServers": {
            "memory": {
                "command": "node",
                "args": [memory_js],
                "env": {
                    "MEMORY_FILE_PATH": memory_file,
                    "MCP_EXPORTER_TRAFFIC_SOCKET": sock,
                },
            },
            "remote": {"type": "http", "url": "http://127.0.0.1:9/mcp"},
        },
    });
    let file = dir.path().join("claude_desktop_config.json");
    std::fs::write(
        &file,
        serde_json::to_string_pretty(&original).expect("json"),
    )
    .expect("write");
    let (code, text, notes) = import_wrap(&file);
    assert_eq!(code, Some(0), "{notes}");
    let wrapped: Value = serde_json::from_str(&text).expect("the output is JSON");
    let mut want = original.clone();
    want["mcpServers"]["memory"]["command"] = json!(wrapper_bin());
    want["mcpServers"]["memory"]["args"] =
        json!(["wrap", "--name", "memory", "--", "node", memory_js]);
    assert_eq!(
        wrapped, want,
        "only command and args of the stdio entry change"
    );
    assert!(
        notes.contains("\"remote\" uses http; left as is"),
        "{notes}"
    );

    // Idempotent: the output imported again is the same text.
    let again = dir.path().join("again.json");
    std::fs::write(&again, &text).expect("write");
    let (code, text_again, notes) = import_wrap(&again);
    assert_eq!(code, Some(0));
    assert_eq!(text_again, text);
    assert!(notes.contains("\"memory\" is already wrapped"), "{notes}");

    // The Inspector reads the rewritten file as its configuration and starts the entry.
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    let config = again.to_string_lossy().into_owned();
    let run = inspector(
        &home,
        &[
            "--config",
            &config,
            "--server",
            "memory",
            "--protocol-era",
            "legacy",
            "--method",
            "tools/call",
            "--tool-name",
            "create_entities",
            "--tool-args-json",
            r#"{"entities":[{"name":"imported","entityType":"test","observations":[]}]}"#,
        ],
        &[],
    );
    assert_eq!(run.outcome(), Printed::Ok, "{}", run.printed);
    let traffic = receiver.wait_until("memory", |t| {
        match t
            .totals
            .requests
            .iter()
            .find(|(k, _)| k.tool.as_deref() == Some("create_entities"))
        {
            Some((_, s)) if s.ok == 1 => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    assert_eq!(series(&traffic, Peer::Client, "initialize", None).ok, 1);
    assert!(
        std::fs::read_to_string(&memory_file).is_ok_and(|t| t.contains("imported")),
        "the server got the entry's env through the wrapper"
    );
}

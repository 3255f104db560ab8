//! The HTTP proxy (src/proxy/) with real components: the official Python SDK client talking
//! through it to the npm "everything" server (Streamable HTTP and legacy SSE) and to a Python
//! SDK server in both protocol eras, and to upstreams of our own that stream slowly, fail or
//! hang. The proxy runs in this process and fills a `TrafficBook`, read after it stopped (its
//! last report), so the counts are compared with no waiting; `mcp-exporter proxy` and the
//! daemon's `[[proxies]]` are run as programs.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use mcp_exporter::proxy::upstream::Upstream;
use mcp_exporter::proxy::{ProxyConfig, ProxyHandle, TrafficSink};
use mcp_exporter::traffic::{
    Peer, Receiver, ReceiverOptions, RequestKey, RequestStats, ServerTraffic, TrafficBook,
};
use serde_json::{Value, json};

use crate::common::daemon::Daemon;
use crate::common::net::{free_port, port_accepts};
use crate::common::paths::fixture;
use crate::common::processes::{ChildGuard, kill_pid, run_bounded, spawn_listening, wait_timeout};
use crate::common::scrape::Scrape;
use crate::common::servers::spawn_http_everything;
use crate::common::tls::{TestPki, TlsFront};
use crate::common::tools::{Tool, located, require, require_all};
use crate::common::wait::eventually;

/// Longest a Python client run may take.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(90);

/// A proxy running in this process, its traffic in `book`.
struct Proxied {
    runtime: tokio::runtime::Runtime,
    book: Arc<TrafficBook>,
    handles: Vec<(String, ProxyHandle)>,
}

impl Proxied {
    fn new() -> Proxied {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        Proxied {
            runtime,
            book: Arc::new(TrafficBook::default()),
            handles: Vec::new(),
        }
    }

    /// Starts a proxy named `name` in front of `upstream`; returns its base URL.
    fn start(&mut self, name: &str, upstream: &str, timeout: Duration) -> String {
        let config = ProxyConfig {
            name: name.into(),
            listen: "127.0.0.1:0".parse().expect("addr"),
            upstream: Upstream::parse(upstream).expect("upstream"),
            timeout,
        };
        let sink = TrafficSink::book(self.book.clone(), name).expect("sink");
        let handle = self
            .runtime
            .block_on(mcp_exporter::proxy::start(&config, sink))
            .expect("proxy starts");
        let url = format!("http://{}", handle.local_addr());
        self.handles.push((name.into(), handle));
        url
    }

    /// Stops every proxy (their last reports reach the book) and returns the book.
    fn finish(mut self) -> BTreeMap<String, ServerTraffic> {
        for (_, handle) in self.handles.drain(..) {
            self.runtime.block_on(handle.stop());
        }
        self.book.snapshot()
    }
}

/// Runs tests/fixtures/proxy_client.py: one session at `url`, the `ops` in order.
fn client(url: &str, transport: &str, mode: &str, ops: &Value) -> Vec<Value> {
    let out = run_bounded(
        Command::new(located(Tool::Python))
            .arg(fixture("proxy_client.py"))
            .args([url, transport, mode, &ops.to_string()])
            .env("PYTHONWARNINGS", "ignore"),
        CLIENT_TIMEOUT,
    )
    .unwrap_or_else(|e| panic!("proxy_client.py {url}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        out.status.success() && lines.last() == Some(&json!({"done": true})),
        "proxy_client.py {url} {transport} {mode}: {}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    lines[..lines.len() - 1].to_vec()
}

fn stats<'a>(traffic: &'a ServerTraffic, method: &str, tool: Option<&str>) -> &'a RequestStats {
    let key = RequestKey {
        origin: Peer::Client,
        method: method.into(),
        tool: tool.map(str::to_string),
    };
    traffic.totals.requests.get(&key).unwrap_or_else(|| {
        panic!(
            "no {method} {tool:?} in {:#?}",
            traffic.totals.requests.keys()
        )
    })
}

/// (started, ok, tool errors, JSON-RPC errors, unanswered) of a series.
fn counts(traffic: &ServerTraffic, method: &str, tool: Option<&str>) -> (u64, u64, u64, u64, u64) {
    let s = stats(traffic, method, tool);
    (
        s.started,
        s.ok,
        s.tool_errors,
        s.error_count(),
        s.unanswered,
    )
}

fn call(tool: &str, arguments: Value) -> Value {
    json!({"op": "call", "tool": tool, "arguments": arguments})
}

/// The same session through Streamable HTTP and legacy SSE: list, three calls (one a tool
/// error), two pings.
fn everything_session(transport: &str, mode: &str, path: &str) {
    if !require_all(&[Tool::Node, Tool::Python]) {
        return;
    }
    let (_everything, port) = spawn_http_everything(mode);
    let mut proxied = Proxied::new();
    let url = proxied.start(
        "everything",
        &format!("http://127.0.0.1:{port}"),
        Duration::from_secs(30),
    );
    let ops = json!([
        {"op": "list"},
        call("echo", json!({"message": "one"})),
        call("echo", json!({"message": "two"})),
        call("get-sum", json!({"a": 2, "b": 3})),
        call("no-such-tool", json!({})),
        {"op": "ping"},
        {"op": "ping"},
    ]);
    let results = client(&format!("{url}{path}"), transport, "legacy", &ops);
    assert!(
        results.iter().all(|r| r["ok"] == json!(true)),
        "{results:#?}"
    );
    assert_eq!(results[4]["is_error"], json!(true), "{results:#?}");
    let book = proxied.finish();
    let traffic = &book["everything"];
    assert_eq!(traffic.network_transport, "tcp");
    assert_eq!(counts(traffic, "initialize", None), (1, 1, 0, 0, 0));
    assert_eq!(counts(traffic, "tools/list", None), (1, 1, 0, 0, 0));
    assert_eq!(counts(traffic, "tools/call", Some("echo")), (2, 2, 0, 0, 0));
    assert_eq!(
        counts(traffic, "tools/call", Some("get-sum")),
        (1, 1, 0, 0, 0)
    );
    assert_eq!(
        counts(traffic, "tools/call", Some("no-such-tool")),
        (1, 0, 1, 0, 0)
    );
    assert_eq!(counts(traffic, "ping", None), (2, 2, 0, 0, 0));
    let started: u64 = traffic.totals.requests.values().map(|s| s.started).sum();
    assert_eq!(started, 8, "nothing else: {:#?}", traffic.totals.requests);
    assert_eq!(
        stats(traffic, "tools/call", Some("echo")).duration.count(),
        2
    );
    assert_eq!(traffic.totals.sessions.started, 1);
    assert_eq!(traffic.totals.sessions.ended, 1);
    assert_eq!(traffic.totals.client_to_server.malformed, 0);
    assert_eq!(traffic.totals.server_to_client.unmatched_responses, 0);
    assert!(traffic.in_flight.is_empty());
}

#[test]
fn everything_over_streamable_http_is_passed_and_counted() {
    everything_session("http", "streamableHttp", "/mcp");
}

/// A call the client abandons: the Python SDK sends `notifications/cancelled` in a POST of its
/// own while the call's POST still waits for its answer (docs/traffic.md). The proxy counts the
/// call cancelled, not unanswered, and leaves nothing in flight.
#[test]
fn a_call_cancelled_in_a_later_post_is_counted_cancelled() {
    if !require_all(&[Tool::Node, Tool::Python]) {
        return;
    }
    let (_everything, port) = spawn_http_everything("streamableHttp");
    let mut proxied = Proxied::new();
    let url = proxied.start(
        "everything",
        &format!("http://127.0.0.1:{port}"),
        Duration::from_secs(30),
    );
    let tool = "trigger-long-running-operation";
    let ops = json!([
        {"op": "cancel", "tool": tool, "arguments": {"duration": 4, "steps": 4}, "after": 1},
        {"op": "ping"},
    ]);
    let results = client(&format!("{url}/mcp"), "http", "legacy", &ops);
    assert_eq!(results[0]["cancelled"], json!(true), "{results:#?}");
    assert_eq!(results[1]["ok"], json!(true), "{results:#?}");
    let book = proxied.finish();
    let traffic = &book["everything"];
    let call = stats(traffic, "tools/call", Some(tool));
    assert_eq!(
        (call.started, call.ok, call.cancelled, call.unanswered),
        (1, 0, 1, 0),
        "{call:#?}"
    );
    assert!(traffic.in_flight.is_empty(), "{:#?}", traffic.in_flight);
}

/// An answer delivered on a resumed stream: the client drops the call's POST stream after its
/// first progress notification and resumes with `GET`, `Mcp-Session-Id` and `Last-Event-ID`
/// until the answer arrives (server-everything replays what it stored, tests/fixtures/
/// proxy_client.py's `resume`). Through the daemon's proxy, on its /metrics: the call counted
/// once, ok, nothing in flight, and timed from its POST to its answer on the resumed stream,
/// so at least as long as the tool ran and no longer than the client waited.
#[test]
fn an_answer_on_a_resumed_stream_is_counted_once_with_the_tools_duration() {
    if !require_all(&[Tool::Node, Tool::Python]) {
        return;
    }
    let (_everything, port) = spawn_http_everything("streamableHttp");
    let listen = free_port();
    let mut daemon = Daemon::start(&format!(
        "[[proxies]]\nname = \"resumed\"\nlisten = \"127.0.0.1:{listen}\"\nupstream = \"http://127.0.0.1:{port}\"\n"
    ));
    eventually(Duration::from_secs(20), Duration::from_millis(50), || {
        port_accepts(listen, Duration::from_millis(200))
            .then_some(())
            .ok_or_else(|| format!("proxy not listening\n{}", daemon.stderr()))
    });
    let tool = "trigger-long-running-operation";
    let (seconds, steps) = (3.0_f64, 3);
    let ops = json!([{
        "op": "resume",
        "tool": tool,
        "arguments": {"duration": seconds, "steps": steps},
        "poll": 0.5,
    }]);
    let results = client(
        &format!("http://127.0.0.1:{listen}/mcp"),
        "http",
        "legacy",
        &ops,
    );
    let resumed = &results[0];
    assert_eq!(
        (&resumed["ok"], &resumed["is_error"], &resumed["progress"]),
        (&json!(true), &json!(false), &json!(steps)),
        "{resumed:#?}"
    );
    let dropped = resumed["dropped_after"].as_f64().expect("dropped_after");
    let waited = resumed["elapsed"].as_f64().expect("elapsed");
    assert!(dropped < seconds, "dropped after the answer? {resumed:#?}");

    let series = [
        ("server", "resumed"),
        ("source", "traffic"),
        ("method", "tools/call"),
    ];
    let outcomes = |scrape: &Scrape| -> BTreeMap<String, f64> {
        scrape
            .samples("mcp_requests_total")
            .into_iter()
            .filter(|(labels, value)| {
                *value > 0.0
                    && series
                        .iter()
                        .all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(labels, value)| (labels["outcome"].clone(), value))
            .collect()
    };
    // The call's first count (an answer, or an end without one) is what is judged.
    let scrape = eventually(Duration::from_secs(20), Duration::from_millis(100), || {
        let scrape = daemon.scrape();
        if outcomes(&scrape).is_empty() {
            Err("tools/call not counted yet".to_string())
        } else {
            Ok(scrape)
        }
    });
    assert_eq!(
        outcomes(&scrape),
        BTreeMap::from([("ok".to_string(), 1.0)]),
        "once, ok: not unanswered nor cancelled"
    );
    assert_eq!(
        scrape.sum("mcp_request_duration_seconds_count", &series),
        1.0
    );
    let in_flight = scrape.sum(
        "mcp_concurrent_operations",
        &[("server", "resumed"), ("source", "traffic")],
    );
    assert_eq!(in_flight, 0.0, "nothing left in flight");
    let duration = scrape.sum("mcp_request_duration_seconds_sum", &series);
    // The tool sleeps `seconds` in all (a timer may fire a millisecond early); the proxy
    // reads the POST before the upstream does and the answer before the client does.
    assert!(
        duration >= seconds * 0.99 && duration <= waited,
        "duration {duration:.3}s: the tool ran {seconds}s, the client waited {waited:.3}s and \
         dropped the POST stream after {dropped:.3}s"
    );
    assert!(daemon.stop().success(), "{}", daemon.stderr());
}

#[test]
fn everything_over_legacy_sse_is_passed_and_counted() {
    everything_session("sse", "sse", "/sse");
}

/// Starts tests/fixtures/proxy_server.py (`mode`: http, stateless, json or sse).
fn python_server(mode: &str) -> (ChildGuard, u16) {
    let python = located(Tool::Python);
    let script = fixture("proxy_server.py");
    let mode = mode.to_string();
    spawn_listening(&format!("proxy_server.py {mode}"), move |port| {
        let mut cmd = Command::new(&python);
        cmd.arg(&script).arg(&mode).arg(port.to_string());
        cmd
    })
}

#[test]
fn the_python_sdk_server_is_counted_in_both_eras() {
    if require(Tool::Python).is_none() {
        return;
    }
    let ops = json!([
        {"op": "list"},
        call("echo", json!({"message": "hi"})),
        call("fail", json!({})),
        call("echo", json!({"message": "again"})),
    ]);
    for (server_mode, client_mode) in [
        ("http", "legacy"),
        ("http", "2026-07-28"),
        ("stateless", "2026-07-28"),
    ] {
        let (_server, port) = python_server(server_mode);
        let mut proxied = Proxied::new();
        let url = proxied.start(
            "py",
            &format!("http://127.0.0.1:{port}"),
            Duration::from_secs(30),
        );
        let results = client(&format!("{url}/mcp"), "http", client_mode, &ops);
        let what = format!("{server_mode} server, {client_mode} client");
        assert!(
            results.iter().all(|r| r["ok"] == json!(true)),
            "{what}: {results:#?}"
        );
        assert_eq!(results[2]["is_error"], json!(true), "{what}");
        let book = proxied.finish();
        let traffic = &book["py"];
        assert_eq!(
            counts(traffic, "tools/list", None),
            (1, 1, 0, 0, 0),
            "{what}"
        );
        assert_eq!(
            counts(traffic, "tools/call", Some("echo")),
            (2, 2, 0, 0, 0),
            "{what}"
        );
        assert_eq!(
            counts(traffic, "tools/call", Some("fail")),
            (1, 0, 1, 0, 0),
            "{what}"
        );
        let handshakes = if client_mode == "legacy" { 1 } else { 0 };
        let initialize = traffic
            .totals
            .requests
            .keys()
            .filter(|k| k.method == "initialize")
            .count();
        assert_eq!(
            initialize, handshakes,
            "{what}: {:#?}",
            traffic.totals.requests
        );
        let unanswered: u64 = traffic.totals.requests.values().map(|s| s.unanswered).sum();
        assert_eq!(unanswered, 0, "{what}");
    }
}

#[test]
fn a_ten_megabyte_result_passes_intact() {
    if require(Tool::Python).is_none() {
        return;
    }
    let (_server, port) = python_server("http");
    let direct_url = format!("http://127.0.0.1:{port}/mcp");
    let ops = json!([call("blob", json!({"size": 10_000_000}))]);
    let direct = client(&direct_url, "http", "legacy", &ops);
    let mut proxied = Proxied::new();
    let url = proxied.start(
        "big",
        &format!("http://127.0.0.1:{port}"),
        Duration::from_secs(30),
    );
    let through = client(&format!("{url}/mcp"), "http", "legacy", &ops);
    assert_eq!(through[0]["text_bytes"], json!(10_000_000), "{through:#?}");
    assert_eq!(
        through[0]["sha256"], direct[0]["sha256"],
        "the same text as directly"
    );
    let book = proxied.finish();
    let blob = stats(&book["big"], "tools/call", Some("blob"));
    assert_eq!(
        (blob.started, blob.ok),
        (1, 1),
        "{blob:#?}\n{:#?}",
        book["big"].totals
    );
    assert!(blob.response_bytes > 10_000_000, "{}", blob.response_bytes);
    assert!(book["big"].totals.server_to_client.bytes > 10_000_000);
}

/// An upstream of our own: `/stream` answers a `tools/call` with four progress notifications
/// and then the result, 300 ms apart, logging each event as it is sent; `/overloaded` answers
/// 503; `/hang` never answers.
struct OwnUpstream {
    addr: SocketAddr,
    sent: Arc<Mutex<Vec<usize>>>,
}

const STREAM_EVENTS: usize = 5;

fn stream_event(i: usize) -> String {
    if i + 1 < STREAM_EVENTS {
        format!(
            "event: message\ndata: {{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{{\"progressToken\":1,\"progress\":{i}}}}}\n\n"
        )
    } else {
        "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"content\":[]}}\n\n"
            .to_string()
    }
}

fn own_upstream(runtime: &tokio::runtime::Runtime) -> OwnUpstream {
    let sent = Arc::new(Mutex::new(Vec::new()));
    let log = sent.clone();
    let stream = move || {
        let log = log.clone();
        async move {
            let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(1);
            tokio::spawn(async move {
                for i in 0..STREAM_EVENTS {
                    if i > 0 {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                    }
                    if tx.send(Ok(stream_event(i))).await.is_err() {
                        return;
                    }
                    log.lock().expect("log").push(i);
                }
            });
            let body = Body::from_stream(tokio_stream_from(rx));
            Response::builder()
                .header("content-type", "text/event-stream")
                .header("x-upstream", "ours")
                .body(body)
                .expect("response")
        }
    };
    let app = Router::new()
        .route("/stream", post(stream))
        .route(
            "/overloaded",
            post(|| async {
                Response::builder()
                    .status(StatusCode::SERVICE_UNAVAILABLE)
                    .header("retry-after", "7")
                    .body(Body::from("overloaded, come back later"))
                    .expect("response")
            }),
        )
        .route(
            "/hang",
            post(|| async {
                std::future::pending::<()>().await;
                "never"
            }),
        );
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    runtime.spawn(async move { axum::serve(listener, app).await });
    OwnUpstream { addr, sent }
}

/// An mpsc receiver as a stream (no tokio-stream dependency).
fn tokio_stream_from<T: Send + 'static>(
    rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send + 'static {
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}

const TOOL_CALL: &str =
    r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"slow","arguments":{}}}"#;

#[test]
fn an_event_stream_is_passed_on_event_by_event() {
    let mut proxied = Proxied::new();
    let upstream = own_upstream(&proxied.runtime);
    let url = proxied.start(
        "stream",
        &format!("http://{}", upstream.addr),
        Duration::from_secs(30),
    );
    let sent = upstream.sent.clone();
    let (received, sent_at_first) = proxied.runtime.block_on(async move {
        let client = reqwest::Client::new();
        let mut response = client
            .post(format!("{url}/stream"))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(TOOL_CALL)
            .send()
            .await
            .expect("POST through the proxy");
        assert_eq!(response.headers()["x-upstream"], "ours");
        let mut received = Vec::new();
        let mut sent_at_first = None;
        while let Some(chunk) = response.chunk().await.expect("chunk") {
            received.extend_from_slice(&chunk);
            if sent_at_first.is_none() && received.windows(2).any(|w| w == b"\n\n") {
                sent_at_first = Some(sent.lock().expect("log").clone());
            }
        }
        (received, sent_at_first)
    });
    let sent_at_first = sent_at_first.expect("an event arrived");
    assert!(
        !sent_at_first.contains(&(STREAM_EVENTS - 1)),
        "the first event reached the client only after the last was sent: {sent_at_first:?}"
    );
    let expected: String = (0..STREAM_EVENTS).map(stream_event).collect();
    assert_eq!(
        String::from_utf8_lossy(&received),
        expected,
        "every byte, in order"
    );
    let book = proxied.finish();
    let traffic = &book["stream"];
    assert_eq!(counts(traffic, "tools/call", Some("slow")), (1, 1, 0, 0, 0));
    let progress: u64 = traffic
        .totals
        .notifications
        .iter()
        .filter(|(k, _)| k.origin == Peer::Server && k.method == "notifications/progress")
        .map(|(_, n)| n)
        .sum();
    assert_eq!(progress, (STREAM_EVENTS - 1) as u64);
}

/// POSTs a JSON-RPC `ping` to each URL in turn; the status, `Retry-After` and body of each answer.
fn post_pings<const N: usize>(
    proxied: &Proxied,
    urls: [String; N],
) -> Vec<(u16, Option<String>, String)> {
    let ping = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    proxied.runtime.block_on(async move {
        let client = reqwest::Client::new();
        let mut answers = Vec::new();
        for url in urls {
            let response = client
                .post(&url)
                .header("content-type", "application/json")
                .body(ping)
                .send()
                .await
                .expect("the proxy answers");
            let status = response.status().as_u16();
            let retry = response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap_or("").to_string());
            answers.push((status, retry, response.text().await.expect("body")));
        }
        answers
    })
}

#[test]
fn upstream_failures_are_answered_as_a_client_would_get_them_and_counted() {
    let mut proxied = Proxied::new();
    let upstream = own_upstream(&proxied.runtime);
    let refused_port = free_port();
    let refused = proxied.start(
        "refused",
        &format!("http://127.0.0.1:{refused_port}"),
        Duration::from_secs(5),
    );
    let ours = proxied.start(
        "ours",
        &format!("http://{}", upstream.addr),
        Duration::from_millis(500),
    );
    let answers = post_pings(
        &proxied,
        [
            format!("{refused}/mcp"),
            format!("{ours}/overloaded"),
            format!("{ours}/hang"),
        ],
    );
    assert_eq!(answers[0].0, 502, "{answers:?}");
    assert!(
        answers[0].2.contains("cannot reach the upstream"),
        "{}",
        answers[0].2
    );
    assert!(
        answers[0].2.to_lowercase().contains("refused"),
        "{}",
        answers[0].2
    );
    assert_eq!(
        answers[1],
        (
            503,
            Some("7".to_string()),
            "overloaded, come back later".to_string()
        ),
        "passed through"
    );
    assert_eq!(answers[2].0, 504, "{answers:?}");
    assert!(
        answers[2].2.contains("sent no response within 500ms"),
        "{}",
        answers[2].2
    );
    let book = proxied.finish();
    let errors = |name: &str| stats(&book[name], "ping", None).errors.clone();
    assert_eq!(errors("refused"), BTreeMap::from([("502".to_string(), 1)]));
    assert_eq!(
        errors("ours"),
        BTreeMap::from([("503".to_string(), 1), ("504".to_string(), 1)])
    );
}

/// An `https://` upstream is verified as the probes verify a server: a certificate from the
/// system's trust (here `SSL_CERT_FILE`, which the platform verifier reads on Linux) passes, one
/// from an unknown CA is refused with `502` naming the certificate, and counted.
#[test]
fn an_https_upstream_is_verified_against_the_systems_trust() {
    let trusted_pki = TestPki::new(&["localhost"], Duration::from_secs(86_400));
    let unknown_pki = TestPki::new(&["localhost"], Duration::from_secs(86_400));
    // SAFETY: set before this test process starts any thread (nextest runs one test per
    // process), and read only by the verifiers built afterwards.
    unsafe { std::env::set_var("SSL_CERT_FILE", &trusted_pki.ca_file) };
    let mut proxied = Proxied::new();
    let upstream = own_upstream(&proxied.runtime);
    let trusted_front = TlsFront::start(&trusted_pki, upstream.addr.port());
    let unknown_front = TlsFront::start(&unknown_pki, upstream.addr.port());
    let trusted = proxied.start(
        "trusted",
        &format!("https://localhost:{}", trusted_front.port),
        Duration::from_secs(10),
    );
    let unknown = proxied.start(
        "unknown",
        &format!("https://localhost:{}", unknown_front.port),
        Duration::from_secs(10),
    );
    let answers = post_pings(
        &proxied,
        [
            format!("{trusted}/overloaded"),
            format!("{unknown}/overloaded"),
        ],
    );
    assert_eq!(
        answers[0],
        (
            503,
            Some("7".to_string()),
            "overloaded, come back later".to_string()
        ),
        "through TLS to the upstream and back"
    );
    assert_eq!(answers[1].0, 502, "{answers:?}");
    assert!(
        answers[1].2.contains("cannot reach the upstream")
            && answers[1].2.to_lowercase().contains("certificate"),
        "{}",
        answers[1].2
    );
    let book = proxied.finish();
    let errors = |name: &str| stats(&book[name], "ping", None).errors.clone();
    assert_eq!(errors("trusted"), BTreeMap::from([("503".to_string(), 1)]));
    assert_eq!(errors("unknown"), BTreeMap::from([("502".to_string(), 1)]));
}

#[test]
fn the_proxy_command_reports_to_a_daemon_socket() {
    if !require_all(&[Tool::Node, Tool::Python]) {
        return;
    }
    let (_everything, port) = spawn_http_everything("streamableHttp");
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("traffic.sock");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let book = Arc::new(TrafficBook::default());
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    let _receiver = runtime.block_on(async {
        Receiver::bind(ReceiverOptions::new(&socket))
            .expect("binds")
            .spawn(book.clone(), stop_rx)
    });
    let listen = free_port();
    let mut proxy = crate::common::processes::spawn_guarded(
        "mcp-exporter proxy",
        Command::new(env!("CARGO_BIN_EXE_mcp-exporter"))
            .args(["proxy", "--listen", &format!("127.0.0.1:{listen}")])
            .args([
                "--upstream",
                &format!("http://127.0.0.1:{port}"),
                "--name",
                "cli",
            ])
            .args(["--exporter", &socket.display().to_string()]),
    );
    eventually(Duration::from_secs(20), Duration::from_millis(50), || {
        port_accepts(listen, Duration::from_millis(200))
            .then_some(())
            .ok_or_else(|| format!("not listening yet\n{}", proxy.output()))
    });
    let results = client(
        &format!("http://127.0.0.1:{listen}/mcp"),
        "http",
        "legacy",
        &json!([call("echo", json!({"message": "x"})), {"op": "ping"}]),
    );
    assert!(
        results.iter().all(|r| r["ok"] == json!(true)),
        "{results:#?}"
    );
    kill_pid(proxy.pid(), libc::SIGTERM);
    let status = wait_timeout(proxy.child_mut(), Duration::from_secs(20)).expect("exits");
    assert!(status.success(), "{status}\n{}", proxy.output());
    let traffic = book.server("cli").expect("the proxy reported");
    assert_eq!(
        counts(&traffic, "tools/call", Some("echo")),
        (1, 1, 0, 0, 0)
    );
    assert_eq!(counts(&traffic, "ping", None), (1, 1, 0, 0, 0));
}

#[test]
fn the_daemon_runs_its_proxies_and_follows_reloads() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let upstream = own_upstream(&runtime);
    let listen = free_port();
    let entry = format!(
        "[[proxies]]\nname = \"ours\"\nlisten = \"127.0.0.1:{listen}\"\nupstream = \"http://{}\"\n",
        upstream.addr
    );
    let mut daemon = Daemon::start(&entry);
    eventually(Duration::from_secs(20), Duration::from_millis(50), || {
        port_accepts(listen, Duration::from_millis(200))
            .then_some(())
            .ok_or_else(|| format!("proxy not listening\n{}", daemon.stderr()))
    });
    let answer = reqwest::blocking::Client::new()
        .post(format!("http://127.0.0.1:{listen}/overloaded"))
        .body("{}")
        .send()
        .expect("through the daemon's proxy");
    assert_eq!(answer.status().as_u16(), 503);
    // A real exchange through the daemon's proxy lands on the daemon's /metrics, as traffic
    // over tcp, under the proxy's name.
    let streamed = reqwest::blocking::Client::new()
        .post(format!("http://127.0.0.1:{listen}/stream"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(TOOL_CALL)
        .send()
        .and_then(|r| r.text())
        .expect("a streamed tool call through the daemon's proxy");
    assert!(streamed.contains("\"id\":7"), "{streamed}");
    eventually(Duration::from_secs(20), Duration::from_millis(100), || {
        let scrape = daemon.scrape();
        let calls = scrape.sum(
            "mcp_requests_total",
            &[
                ("server", "ours"),
                ("source", "traffic"),
                ("method", "tools/call"),
                ("outcome", "ok"),
            ],
        );
        let tcp = scrape.sum(
            "mcp_server_operation_duration_seconds_count",
            &[("server", "ours"), ("network_transport", "tcp")],
        );
        if calls == 1.0 && tcp == 1.0 {
            Ok(())
        } else {
            Err(format!("tools/call counted {calls}, over tcp {tcp}"))
        }
    });
    daemon.rewrite_config("");
    daemon.signal(libc::SIGHUP);
    eventually(Duration::from_secs(20), Duration::from_millis(50), || {
        (!port_accepts(listen, Duration::from_millis(200)))
            .then_some(())
            .ok_or_else(|| format!("the removed proxy still listens\n{}", daemon.stderr()))
    });
    assert!(daemon.stop().success(), "{}", daemon.stderr());
}

/// Each scenario's checks (id, status) from a `conformance server -o DIR` run.
fn conformance_checks(dir: &Path) -> BTreeMap<String, Vec<(String, String)>> {
    let name = regex::Regex::new(r"^server-(.*)-\d{4}-\d{2}-\d{2}T[\d-]+Z$").expect("regex");
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).expect("output dir") {
        let entry = entry.expect("entry");
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(scenario) = name.captures(&file_name).map(|c| c[1].to_string()) else {
            continue;
        };
        let text = std::fs::read_to_string(entry.path().join("checks.json")).expect("checks.json");
        let checks: Vec<Value> = serde_json::from_str(&text).expect("checks");
        let mut results: Vec<(String, String)> = checks
            .iter()
            .map(|c| {
                (
                    c["id"].as_str().unwrap_or("").to_string(),
                    c["status"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        results.sort();
        out.insert(scenario, results);
    }
    out
}

/// Runs the pinned suite's server scenarios (`args` picks them) against `url`.
fn conformance_run(
    url: &str,
    args: &[&str],
    out: &Path,
) -> BTreeMap<String, Vec<(String, String)>> {
    let suite = crate::common::paths::servers_dir()
        .join("node_modules/@modelcontextprotocol/conformance/dist/index.js");
    let result = run_bounded(
        Command::new(located(Tool::Conformance))
            .arg(suite)
            .args(["server", "--url", url, "-o"])
            .arg(out)
            .args(args),
        Duration::from_secs(300),
    )
    .unwrap_or_else(|e| panic!("conformance server {url}: {e}"));
    let checks = conformance_checks(out);
    assert!(
        !checks.is_empty(),
        "conformance server {url} wrote no results: {}\n{}",
        String::from_utf8_lossy(&result.stdout),
        String::from_utf8_lossy(&result.stderr)
    );
    checks
}

/// The suite's verdicts (every check of every scenario, passed or failed) are the same on a
/// server directly and through the proxy: server-everything over Streamable HTTP, and the
/// Python SDK server with the default suite and the 2026-07-28 requirements (stateless
/// requests, `Mcp-Method`/`Mcp-Name` header validation, caching, DNS-rebinding protection).
#[test]
fn the_conformance_suite_judges_servers_the_same_through_the_proxy() {
    if !require_all(&[Tool::Node, Tool::Python, Tool::Conformance]) {
        return;
    }
    let started = std::time::Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let (_everything, everything_port) = spawn_http_everything("streamableHttp");
    let (_python, python_port) = {
        let python = located(Tool::Python);
        let script = fixture("py_modern_server.py");
        spawn_listening("py_modern_server http", move |port| {
            let mut cmd = Command::new(&python);
            cmd.arg(&script).arg("http").arg(port.to_string());
            cmd
        })
    };
    let mut proxied = Proxied::new();
    let runs: [(&str, u16, &[&str]); 3] = [
        ("everything", everything_port, &[]),
        ("python", python_port, &[]),
        (
            "python-2026-07-28",
            python_port,
            &["--requirements", "2026-07-28"],
        ),
    ];
    for (name, port, args) in runs {
        let proxy = proxied.start(
            name,
            &format!("http://127.0.0.1:{port}"),
            Duration::from_secs(30),
        );
        let direct = conformance_run(
            &format!("http://127.0.0.1:{port}/mcp"),
            args,
            &dir.path().join(format!("{name}-direct")),
        );
        let through = conformance_run(
            &format!("{proxy}/mcp"),
            args,
            &dir.path().join(format!("{name}-proxied")),
        );
        let differing: Vec<_> = direct
            .keys()
            .chain(through.keys())
            .filter(|scenario| direct.get(*scenario) != through.get(*scenario))
            .map(|scenario| (scenario, direct.get(scenario), through.get(scenario)))
            .collect();
        assert!(
            differing.is_empty(),
            "{name}: direct vs proxied differ: {differing:#?}"
        );
    }
    let book = proxied.finish();
    assert!(
        book["everything"]
            .totals
            .requests
            .values()
            .map(|s| s.started)
            .sum::<u64>()
            > 20
    );
    eprintln!(
        "conformance through the proxy: {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

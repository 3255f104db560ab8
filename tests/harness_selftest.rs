//! Tests of the shared harness in `tests/common`: the Prometheus text parser, the waiting and
//! process helpers, and the spawned reference MCP servers. None of them needs the daemon.

mod common;

use common::*;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;

const SAMPLE: &str = r#"# HELP mcp_up Whether the last probe succeeded.
# TYPE mcp_up gauge
mcp_up{server="everything",transport="stdio"} 1
mcp_up{server="py",transport="http"} 0
# HELP mcp_probes Probes run.
# TYPE mcp_probes counter
mcp_probes_total{server="everything",result="success"} 41 1700000000000
mcp_probes_total{server="everything",result="failure"} 1
mcp_probes_total{server="py",result="success",} 7
# TYPE mcp_probe_duration_seconds histogram
mcp_probe_duration_seconds_bucket{server="everything",le="0.1"} 3
mcp_probe_duration_seconds_bucket{server="everything",le="+Inf"} 4
mcp_probe_duration_seconds_sum{server="everything"} 0.25
mcp_probe_duration_seconds_count{server="everything"} 4
odd_labels{path="C:\\dir\\file",quote="say \"hi\"",nl="a\nb",brace="}{,="} 1.5e3
special{kind="nan"} NaN
special{kind="neg"} -Inf
special{kind="pos"} +Inf
no_labels 42
empty_labels{} -0.5

# EOF
"#;

fn sample() -> Scrape {
    Scrape::parse(SAMPLE).expect("sample text parses")
}

#[test]
fn parser_reads_values_with_label_subsets() {
    let s = sample();
    assert_eq!(s.value("mcp_up", &[("server", "everything")]), Some(1.0));
    assert_eq!(
        s.value("mcp_up", &[("server", "py"), ("transport", "http")]),
        Some(0.0)
    );
    assert_eq!(s.value("mcp_up", &[("server", "nope")]), None);
    assert_eq!(
        s.value("mcp_up", &[("server", "py"), ("transport", "stdio")]),
        None
    );
    assert_eq!(s.value("no_labels", &[]), Some(42.0));
    assert_eq!(s.value("empty_labels", &[]), Some(-0.5));
    assert_eq!(
        s.value("mcp_probes_total", &[("server", "py")]),
        Some(7.0),
        "trailing comma in labels"
    );
}

#[test]
fn parser_sums_and_lists_samples() {
    let s = sample();
    assert_eq!(s.sum("mcp_probes_total", &[("server", "everything")]), 42.0);
    assert_eq!(s.sum("mcp_probes_total", &[]), 49.0);
    assert_eq!(s.sum("missing_metric", &[]), 0.0);
    let ups = s.samples("mcp_up");
    assert_eq!(ups.len(), 2);
    assert_eq!(ups[0].0.get("transport").map(String::as_str), Some("stdio"));
    assert!(s.has("mcp_probe_duration_seconds_bucket"));
    assert!(!s.has("mcp_probe_duration_seconds"));
    assert!(s.names().contains("special"));
}

#[test]
fn parser_unescapes_label_values() {
    let s = sample();
    let (labels, value) = s.samples("odd_labels").remove(0);
    assert_eq!(labels["path"], r"C:\dir\file");
    assert_eq!(labels["quote"], r#"say "hi""#);
    assert_eq!(labels["nl"], "a\nb");
    assert_eq!(labels["brace"], "}{,=");
    assert_eq!(value, 1500.0);
}

#[test]
fn parser_handles_special_values_timestamps_and_metadata() {
    let s = sample();
    assert!(s.value("special", &[("kind", "nan")]).unwrap().is_nan());
    assert_eq!(
        s.value("special", &[("kind", "neg")]),
        Some(f64::NEG_INFINITY)
    );
    assert_eq!(s.value("special", &[("kind", "pos")]), Some(f64::INFINITY));
    assert_eq!(
        s.value(
            "mcp_probe_duration_seconds_bucket",
            &[("server", "everything"), ("le", "+Inf")]
        ),
        Some(4.0)
    );
    assert_eq!(
        s.value(
            "mcp_probes_total",
            &[("server", "everything"), ("result", "success")]
        ),
        Some(41.0),
        "timestamp is not the value"
    );
    assert_eq!(s.metric_type("mcp_probes"), Some("counter"));
    assert_eq!(
        s.metric_type("mcp_probe_duration_seconds"),
        Some("histogram")
    );
    assert_eq!(s.help("mcp_up"), Some("Whether the last probe succeeded."));
    assert_eq!(s.text(), SAMPLE);
}

#[test]
#[should_panic(expected = "ambiguous")]
fn parser_value_panics_when_ambiguous() {
    sample().value("mcp_up", &[]);
}

#[test]
fn parser_rejects_malformed_lines() {
    for bad in [
        "metric{a=\"b\" 1",
        "metric{a=b} 1",
        "metric{a=\"b\"}",
        "metric{a=\"b\"} notanumber",
        "metric{a=\"1\",a=\"2\"} 1",
        "1metric 1",
        "metric{a=\"unterminated} 1",
    ] {
        let err = Scrape::parse(bad).expect_err(bad);
        assert!(err.contains("line 1"), "{bad}: {err}");
    }
}

#[test]
fn listen_addr_is_found_in_log_lines() {
    assert_eq!(
        parse_listen_addr(
            "2026-01-01T00:00:00Z INFO mcp_exporter: listening on http://127.0.0.1:41234\n"
        ),
        Some("127.0.0.1:41234".to_string())
    );
    assert_eq!(
        parse_listen_addr(r#"{"msg":"listening on http://127.0.0.1:9/","level":"INFO"}"#),
        Some("127.0.0.1:9".to_string())
    );
    assert_eq!(parse_listen_addr("starting\n"), None);
}

#[test]
fn eventually_returns_the_first_ok() {
    let mut n = 0;
    let got = eventually(Duration::from_secs(5), Duration::from_millis(1), || {
        n += 1;
        if n < 3 {
            Err(format!("try {n}"))
        } else {
            Ok(n)
        }
    });
    assert_eq!(got, 3);
}

#[test]
#[should_panic(expected = "last error: still 7")]
fn eventually_panics_with_the_last_error() {
    eventually::<(), _>(Duration::from_millis(50), Duration::from_millis(5), || {
        Err("still 7".to_string())
    });
}

#[test]
fn free_port_is_bindable() {
    let port = free_port();
    assert_ne!(port, 0);
    let listener = TcpListener::bind(("127.0.0.1", port));
    assert!(
        listener.is_ok(),
        "port {port} from free_port() is not bindable"
    );
}

#[test]
fn require_tool_finds_tools_and_handles_missing_ones() {
    assert!(require_tool("sh").is_some());
    let missing = "mcp-exporter-no-such-tool";
    let result = std::panic::catch_unwind(|| require_tool(missing));
    if tools_required() {
        assert!(result.is_err(), "a missing tool must panic in CI");
    } else {
        assert_eq!(result.ok(), Some(None));
    }
}

#[test]
fn promtool_accepts_valid_and_rejects_invalid_metrics() {
    if require_tool("promtool").is_none() {
        return;
    }
    let valid = "# HELP mcp_up Whether the last probe succeeded.\n# TYPE mcp_up gauge\nmcp_up{server=\"a\"} 1\n";
    promtool_check_metrics(valid).expect("valid text passes promtool");
    let invalid = "# HELP requests Requests.\n# TYPE requests counter\nrequests 1\n";
    let err = promtool_check_metrics(invalid).expect_err("counter without _total is linted");
    assert!(err.contains("_total"), "{err}");
    let broken = "mcp_up{server=\"a\" 1\n";
    assert!(promtool_check_metrics(broken).is_err());
}

#[test]
fn child_guard_kills_the_whole_process_group() {
    let mut guard = spawn_guarded(
        "sh with a background sleep",
        Command::new("sh").args(["-c", "sleep 300 & wait"]),
    );
    let shell = guard.pid();
    let sleeper = eventually(Duration::from_secs(10), Duration::from_millis(10), || {
        child_pids_of(shell)
            .first()
            .copied()
            .ok_or_else(|| "sh has no child yet".to_string())
    });
    assert!(pid_alive(sleeper));
    assert!(guard.try_wait().is_none());
    drop(guard);
    assert!(!pid_alive(shell), "sh still alive after drop");
    eventually(Duration::from_secs(5), Duration::from_millis(10), || {
        // The orphaned sleep is reparented and reaped by init; it must not stay alive.
        if pid_alive(sleeper) {
            Err(format!("sleep {sleeper} still alive"))
        } else {
            Ok(())
        }
    });
}

fn assert_port_closes(port: u16) {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    eventually(Duration::from_secs(5), Duration::from_millis(20), || {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(_) => Err(format!("{addr} still accepts connections")),
            Err(_) => Ok(()),
        }
    });
}

#[test]
fn everything_streamable_http_answers_initialize() {
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

#[test]
fn postgres_starts_and_answers_queries() {
    let Some(pg) = spawn_postgres() else {
        return;
    };
    assert_eq!(pg.psql("select 40 + 2").as_deref(), Ok("42"));
    assert!(
        pg.url("postgres")
            .starts_with("postgres://postgres@127.0.0.1:")
    );
    let port = pg.port();
    drop(pg);
    assert_port_closes(port);
}

//! The bundled rules, dashboards and deployment files: promtool/amtool/systemd-analyze checks,
//! every PromQL expression parses and names only metrics a live daemon emits, the PrometheusRule
//! never drifts from the rules file, and the daemon serves (and `bundle` writes) the same bytes.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use crate::alerts_support::{
    self, Yaml, alert_rules, dashboards, expressions, panels, parse_yaml, recorded_names, rules,
    series_names,
};
use crate::common::daemon::{Daemon, daemon_bin};
use crate::common::oauth::{AuthorizationServer, ResourceServer, SCOPE};
use crate::common::paths::{npm_server_js, read_repo_file, repo_root};
use crate::common::postgres::{Postgres, spawn_postgres_with_checksums};
use crate::common::processes::{ChildGuard, run_bounded};
use crate::common::servers::spawn_http_everything;
use crate::common::tls::{TestPki, TlsFront};
use crate::common::tools::{Tool, require, require_all};
use crate::common::wait::eventually;

const TOOL_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs a tool to completion; panics with its output unless it exits 0. Returns stdout+stderr.
fn run_ok(cmd: &mut Command) -> String {
    let described = format!("{cmd:?}");
    let out = run_bounded(cmd, TOOL_TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{described} failed ({}):\n{text}",
        out.status
    );
    text
}

fn str_of<'a>(v: &'a Yaml, key: &str) -> &'a str {
    v.get(key).and_then(Yaml::as_str).unwrap_or_default()
}

/// The promtool unit test files, `alerts/tests/*.test.yml` (repository-relative), sorted.
fn rule_test_files() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(repo_root().join("alerts/tests"))
        .expect("alerts/tests")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".test.yml"))
        .map(|name| format!("alerts/tests/{name}"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 3,
        "expected mcp-exporter, escalation and maintenance tests: {files:?}"
    );
    files
}

#[test]
fn promtool_checks_and_unit_tests_the_rules() {
    let Some(promtool) = require(Tool::Promtool) else {
        return;
    };
    let out = run_ok(
        Command::new(&promtool)
            .args(["check", "rules", "alerts/mcp-exporter.rules.yml"])
            .current_dir(repo_root()),
    );
    assert!(out.contains("SUCCESS"), "{out}");
    for tests in rule_test_files() {
        let out = run_ok(
            Command::new(&promtool)
                .args(["test", "rules", &tests])
                .current_dir(repo_root()),
        );
        assert!(out.contains("SUCCESS"), "{tests}: {out}");
    }
}

/// Alerts about the exporter itself or about a dependency rather than one server: their texts
/// need not name one.
const EXPORTER_WIDE_ALERTS: [&str; 4] = [
    "MCPDependencyDataCorrupted",
    "MCPExporterAbsent",
    "MCPStoreBackupTooOld",
    "MCPStoreCorrupted",
];

#[test]
fn every_alert_has_unit_tests_firing_and_not_firing() {
    let files: Vec<Yaml> = rule_test_files().iter().map(|f| parse_yaml(f)).collect();
    let mut firing = BTreeSet::new();
    let mut silent = BTreeSet::new();
    for group in files
        .iter()
        .flat_map(|tests| tests["tests"].as_sequence().expect("tests is a list"))
    {
        for case in group
            .get("alert_rule_test")
            .and_then(Yaml::as_sequence)
            .into_iter()
            .flatten()
        {
            let name = str_of(case, "alertname").to_string();
            let expected = case["exp_alerts"].as_sequence().map_or(0, Vec::len);
            if expected == 0 {
                silent.insert(name);
            } else {
                firing.insert(name);
            }
        }
    }
    for rule in alert_rules(&rules()) {
        let name = str_of(rule, "alert");
        assert!(firing.contains(name), "no promtool test where {name} fires");
        assert!(
            silent.contains(name),
            "no promtool test where {name} stays silent"
        );
    }
}

#[test]
fn alerts_carry_severity_summary_description_and_a_runbook_with_steps_and_commands() {
    let rules = rules();
    let alerts = alert_rules(&rules);
    let names: BTreeSet<&str> = alerts.iter().map(|r| str_of(r, "alert")).collect();
    for required in [
        "MCPServerDown",
        "MCPSecurityIncident",
        "MCPSlowResponseTime",
        "MCPHighMemoryUsage",
        "MCPServerDegraded",
        "MCPDependencyDown",
        "MCPHighCPUUsage",
        "MCPFileDescriptorsNearLimit",
        "MCPServerCrashLooping",
        "MCPProbesNotRunning",
        "MCPExporterAbsent",
    ] {
        assert!(names.contains(required), "alert {required} is missing");
    }
    for rule in &alerts {
        let name = str_of(rule, "alert");
        let severity = str_of(&rule["labels"], "severity");
        assert!(
            severity == "critical" || severity == "warning",
            "{name}: severity {severity:?}"
        );
        let summary = str_of(&rule["annotations"], "summary");
        let description = str_of(&rule["annotations"], "description");
        assert!(!summary.is_empty() && !description.is_empty(), "{name}");
        if !EXPORTER_WIDE_ALERTS.contains(&name) {
            // Alerts on a dependency's own families name the dependency instead.
            let subject = if str_of(rule, "expr").contains("mcp_dependency_") {
                "$labels.dependency"
            } else {
                "$labels.server"
            };
            assert!(
                summary.contains(subject) && description.contains(subject),
                "{name}: summary and description must name {subject}"
            );
            assert!(
                description.contains("$value"),
                "{name}: description must name the value"
            );
        }
        let url = str_of(&rule["annotations"], "runbook_url");
        assert_eq!(url, format!("docs/runbooks/{name}.md"), "{name}");
        let runbook = read_repo_file(url);
        assert!(
            runbook.contains("## Response steps") && runbook.contains("```bash"),
            "{url} must carry response steps and commands"
        );
    }
    // The playbook's four, as it states them.
    let by_name = |n: &str| *alerts.iter().find(|r| str_of(r, "alert") == n).unwrap();
    // As the playbook states it, with the maintenance windows left out.
    assert_eq!(
        str_of(by_name("MCPServerDown"), "expr"),
        "mcp_server_up == 0 unless on(server) mcp_server_maintenance == 1"
    );
    for (name, severity) in [
        ("MCPServerDown", "critical"),
        ("MCPSecurityIncident", "critical"),
        ("MCPSlowResponseTime", "warning"),
        ("MCPHighMemoryUsage", "warning"),
    ] {
        assert_eq!(str_of(&by_name(name)["labels"], "severity"), severity);
    }
    assert!(str_of(by_name("MCPSecurityIncident"), "expr").contains("mcp_security_events_total"));
    let slow = str_of(by_name("MCPSlowResponseTime"), "expr");
    // Per method, or the whole probe where the fleet metrics profile has no per-method
    // histograms (docs/metrics.md#profiles); both above 5 s.
    assert!(
        slow.starts_with("(server_method:mcp_request_duration_seconds:p95_5m > 5 or (")
            && slow.contains("server:mcp_probe_duration_seconds:p95_5m")
            && slow.ends_with(") > 5 unless on(server) server_method:mcp_request_duration_seconds:p95_5m)) unless on(server) mcp_server_maintenance == 1"),
        "{slow}"
    );
    let recorded = all_recording_exprs(&rules);
    let p95 = slow
        .trim_start_matches('(')
        .split_whitespace()
        .next()
        .unwrap_or_default();
    assert!(
        recorded.iter().any(|(n, e)| n == p95
            && e.contains("histogram_quantile(0.95")
            && e.contains("mcp_request_duration_seconds_bucket")),
        "{p95} must be the p95 of mcp_request_duration_seconds"
    );
}

fn all_recording_exprs(rules: &Yaml) -> Vec<(String, String)> {
    alerts_support::all_rules(rules)
        .into_iter()
        .filter(|r| r.get("record").is_some())
        .map(|r| {
            (
                str_of(r, "record").to_string(),
                str_of(r, "expr").to_string(),
            )
        })
        .collect()
}

#[test]
fn every_promql_expression_of_rules_and_dashboards_parses() {
    let Some(promtool) = require(Tool::Promtool) else {
        return;
    };
    // promtool 2.42 has no parse-only command: wrap each expression as a recording rule and let
    // `promtool check rules` parse them all.
    let exprs = expressions();
    assert!(exprs.len() > 40, "only {} expressions found", exprs.len());
    let mut rules = serde_yaml_ng::Mapping::new();
    let list: Vec<Yaml> = exprs
        .iter()
        .enumerate()
        .map(|(i, (_, expr))| {
            let mut m = serde_yaml_ng::Mapping::new();
            m.insert("record".into(), format!("parse_check_{i}").into());
            m.insert("expr".into(), expr.clone().into());
            Yaml::Mapping(m)
        })
        .collect();
    let mut group = serde_yaml_ng::Mapping::new();
    group.insert("name".into(), "parse-check".into());
    group.insert("rules".into(), Yaml::Sequence(list));
    rules.insert("groups".into(), Yaml::Sequence(vec![Yaml::Mapping(group)]));
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("exprs.rules.yml");
    std::fs::write(&path, serde_yaml_ng::to_string(&rules).expect("yaml")).expect("write");
    let out = run_bounded(
        Command::new(&promtool).arg("check").arg("rules").arg(&path),
        TOOL_TIMEOUT,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    let listing: Vec<String> = exprs
        .iter()
        .enumerate()
        .map(|(i, (at, e))| format!("parse_check_{i}: {at}: {e}"))
        .collect();
    assert!(
        out.status.success(),
        "an expression does not parse:\n{text}\nexpressions:\n{}",
        listing.join("\n")
    );
}

#[test]
fn dashboards_have_variables_units_health_words_and_server_links() {
    for (file, dash) in dashboards() {
        assert!(
            dash["schemaVersion"].as_i64().unwrap_or(0) >= 39,
            "{file}: schemaVersion"
        );
        let vars = dash["templating"]["list"].as_array().expect("templating");
        assert!(
            vars.iter()
                .any(|v| v["type"] == "datasource" && v["query"] == "prometheus"),
            "{file}: no Prometheus datasource variable"
        );
        assert!(
            vars.iter()
                .any(|v| v["name"] == "server" && v["type"] == "query"),
            "{file}: no server variable"
        );
        let panels = panels(&dash);
        assert!(panels.len() >= 8, "{file}: only {} panels", panels.len());
        for p in &panels {
            let title = &p["title"];
            assert_eq!(p["datasource"]["uid"], "${datasource}", "{file}: {title}");
            let unit = p["fieldConfig"]["defaults"]["unit"].as_str().unwrap_or("");
            assert!(!unit.is_empty(), "{file}: panel {title} has no unit");
            for t in p["targets"].as_array().expect("targets") {
                assert_eq!(t["datasource"]["uid"], "${datasource}", "{file}: {title}");
            }
        }
        assert!(
            dash["links"].as_array().is_some_and(|l| l.len() == 3),
            "{file}: links to the three other dashboards"
        );
    }
    let (_, overview) = &dashboards()[0];
    assert_eq!(overview["title"], "MCP Overview");
    let text = overview.to_string();
    for word in ["HEALTHY", "DEGRADED", "UNHEALTHY", "UNKNOWN"] {
        assert!(text.contains(word), "overview maps no value to {word}");
    }
    let table = panels(overview)
        .into_iter()
        .find(|p| p["type"] == "table" && p["title"] == "Servers")
        .expect("overview has a Servers table");
    let links = table["fieldConfig"]["overrides"].to_string();
    assert!(
        links.contains("/d/mcp-performance?var-server=${__data.fields.server}")
            && links.contains("/d/system-resources?var-server=${__data.fields.server}"),
        "server rows link to their details: {links}"
    );
    let titles: Vec<String> = dashboards()
        .iter()
        .map(|(_, d)| d["title"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        titles,
        [
            "MCP Overview",
            "MCP Performance",
            "System Resources",
            "MCP Traffic"
        ]
    );
}

/// A tiny HTTP server: on `/mcp` an MCP endpoint that demands a token (401 with a
/// `WWW-Authenticate` challenge, a security event), elsewhere a rate-limited API (429 with
/// GitHub-style `Retry-After` and `X-RateLimit-Remaining: 0`). Lives until the test ends.
fn rate_limited_api() -> u16 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind rate-limited API");
    let port = listener.local_addr().expect("local addr").port();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 4096];
            let n = conn.read(&mut buf).unwrap_or(0);
            let reply: &[u8] = if buf[..n].starts_with(b"POST /mcp") {
                b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer error=\"invalid_token\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            } else {
                b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nX-RateLimit-Remaining: 0\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            };
            let _ = conn.write_all(reply);
        }
    });
    port
}

/// What [`live_daemon`] starts besides the daemon, kept alive with it.
struct LivePeers {
    _http: ChildGuard,
    _front: TlsFront,
    _pki: TestPki,
    _postgres: Postgres,
    _secrets: tempfile::TempDir,
    _oauth: (ResourceServer, AuthorizationServer),
}

/// A JWT whose `exp` is 30 days away (its signature is made up: the server does not check it).
fn bearer_jwt() -> String {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() + 30 * 86_400)
        .unwrap_or(0);
    format!(
        "{}.{}.c2lnbmF0dXJl",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256"}"#),
        URL_SAFE_NO_PAD.encode(format!(r#"{{"exp":{exp}}}"#))
    )
}

/// A daemon probing a real server (with a tool call), the same server over https behind a
/// private CA with a JWT bearer token, a server that cannot start, and servers with
/// dependencies (TCP, filesystem, a rate-limited HTTP API, an https API, a PostgreSQL with data
/// checksums), and an OAuth-protected server (tests/fixtures/oauth/), so every family that main
/// emits has series.
fn live_daemon() -> Option<(Daemon, LivePeers)> {
    // With data checksums, so mcp_dependency_postgres_checksum_failures has a series.
    let postgres = spawn_postgres_with_checksums()?;
    let secrets = tempfile::tempdir().expect("temp dir");
    let dsn_file = secrets.path().join("pg-dsn");
    std::fs::write(&dsn_file, postgres.url("postgres")).expect("write the DSN file");
    let (http, port) = spawn_http_everything("streamableHttp");
    let auth_server = AuthorizationServer::start("live", "live-secret", Duration::from_secs(300));
    let oauth_server = ResourceServer::start(&auth_server);
    let api_port = rate_limited_api();
    let pki = TestPki::new(&["127.0.0.1"], Duration::from_secs(20 * 86_400));
    let front = TlsFront::start(&pki, port);
    let tls_port = front.port;
    let ca = format!("{:?}", pki.ca_file.display().to_string());
    let config = format!(
        r#"
[[dependencies]]
name = "mcp-port"
kind = "tcp"
address = "127.0.0.1:{port}"
interval = "1s"

[[dependencies]]
name = "scratch"
kind = "filesystem"
path = "{{dir}}"
writable = true
interval = "1s"
critical = false

[[dependencies]]
name = "api"
kind = "http"
url = "http://127.0.0.1:{api_port}/"
interval = "1s"
critical = false

[[servers]]
name = "web"
transport = "http"
url = "http://127.0.0.1:{port}/mcp"
interval = "1s"
depends_on = ["mcp-port", "scratch", "api"]
call = {{ tool = "echo", arguments = {{ message = "probe" }}, expect_text = "Echo: probe" }}

[[servers]]
name = "stdio"
transport = "stdio"
command = "node"
args = ["{}", "stdio"]
interval = "1s"
# A lock that does not exist approves nothing: mcp_tools_unapproved has a series, health is kept.
tools_lock = "{{dir}}/absent.lock.json"
on_mismatch = "record"

[[servers]]
name = "missing"
transport = "stdio"
command = "/nonexistent/mcp-server"
interval = "1s"

[[servers]]
name = "locked"
transport = "http"
url = "http://127.0.0.1:{api_port}/mcp"
interval = "1s"
remediation = {{ command = ["true"], after = "1s", backoff = "1h" }}

[[servers]]
name = "tls"
transport = "http"
url = "https://127.0.0.1:{tls_port}/mcp"
interval = "1s"
headers = {{ Authorization = "Bearer ${{LIVE_BEARER}}" }}
tls = {{ ca_file = {ca} }}

[[dependencies]]
name = "pg"
kind = "postgres"
dsn_file = "{}"
interval = "1s"
critical = false

[[dependencies]]
name = "tls-api"
kind = "http"
url = "https://127.0.0.1:{tls_port}/mcp"
expect_status = "200-499"
interval = "1s"
critical = false
tls = {{ ca_file = {ca} }}

[[servers]]
name = "oauth"
transport = "http"
url = "{oauth_mcp}"
interval = "1s"
auth = {{ type = "oauth", client_id = "live", client_secret = "${{LIVE_OAUTH_SECRET}}", scopes = ["{SCOPE}"] }}
"#,
        npm_server_js("everything").display(),
        dsn_file.display(),
        oauth_mcp = oauth_server.mcp_url(),
    );
    let daemon = Daemon::start_with(
        &config,
        &[],
        &[
            ("LIVE_BEARER", &bearer_jwt()),
            ("LIVE_OAUTH_SECRET", "live-secret"),
        ],
    );
    Some((
        daemon,
        LivePeers {
            _http: http,
            _front: front,
            _pki: pki,
            _postgres: postgres,
            _secrets: secrets,
            _oauth: (oauth_server, auth_server),
        },
    ))
}

/// A real client's session through `mcp-exporter wrap` reporting to `daemon` (its traffic
/// socket is in its directory, see common/daemon.rs): initialize and a tool call, then the
/// session stays open until the guard drops, so the traffic families have series.
fn wrapped_client(daemon: &Daemon) -> ChildGuard {
    let requests = daemon.dir().join("client-requests.jsonl");
    std::fs::write(
        &requests,
        concat!(
            r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"alerts-test","version":"1"}}}"#,
            "\n",
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            "\n",
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi"}}}"#,
            "\n",
        ),
    )
    .expect("write the client's requests");
    crate::common::processes::spawn_guarded(
        "wrapped client",
        Command::new("sh")
            .arg("-c")
            .arg(r#"(cat "$0"; exec sleep 3600) | "$1" wrap --exporter "$2" --report-interval 100ms -- node "$3" stdio"#)
            .arg(&requests)
            .arg(daemon_bin())
            .arg(daemon.dir().join("traffic.sock"))
            .arg(npm_server_js("everything")),
    )
}

#[test]
fn every_metric_named_in_rules_and_dashboards_is_emitted_by_a_live_daemon() {
    if !require_all(&[Tool::Node, Tool::Authlib]) {
        return;
    }
    let Some((daemon, _peers)) = live_daemon() else {
        return;
    };
    let _client = wrapped_client(&daemon);
    let exposition = eventually(Duration::from_secs(60), Duration::from_millis(200), || {
        let scrape = daemon.scrape();
        let ready = scrape.value("mcp_server_up", &[("server", "web")]) == Some(1.0)
            && scrape.value("mcp_server_up", &[("server", "stdio")]) == Some(1.0)
            && scrape.has("mcp_probe_failures_total")
            && scrape.has("mcp_tool_execution_duration_seconds_bucket")
            && scrape.has("mcp_dependency_retry_after_seconds")
            && scrape.has("mcp_dependency_rate_limit_remaining")
            && scrape.has("mcp_server_dependency_status")
            && scrape.has("mcp_security_events_total")
            && scrape.has("mcp_remediation_total")
            && scrape.has("mcp_server_restarts_total")
            && scrape.has("mcp_server_cpu_usage_percent")
            && scrape.has("mcp_tls_cert_not_after_timestamp_seconds")
            && scrape.has("mcp_dependency_tls_cert_not_after_timestamp_seconds")
            && scrape.has("mcp_credential_expiry_timestamp_seconds")
            && scrape.has("mcp_auth_refresh_total")
            && scrape.has("mcp_response_size_bytes_bucket")
            && scrape.has("mcp_traffic_wrappers_connected")
            && scrape.has("mcp_dependency_postgres_checksum_failures");
        if ready {
            Ok(scrape.text().to_string())
        } else {
            Err(format!("not all series yet:\n{}", scrape.text()))
        }
    });
    let emitted = alerts_support::emitted_names(&exposition);
    let recorded = recorded_names(&rules());
    let mut problems = Vec::new();
    for (at, expr) in expressions() {
        for name in series_names(&expr) {
            if name.contains(':') {
                if !recorded.contains(&name) {
                    problems.push(format!("{at}: {name} is not a recording rule"));
                }
            } else if !emitted.contains(&name) {
                problems.push(format!("{at}: {name} is not emitted by the daemon"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{}\n\nemitted: {emitted:?}",
        problems.join("\n")
    );

    // The metric contract: every name is emitted with its type and at least one sample.
    const CONTRACT: [(&str, &str); 14] = [
        ("mcp_server_up", "gauge"),
        ("mcp_server_health_status", "gauge"),
        ("mcp_server_dependency_status", "gauge"),
        ("mcp_request_duration_seconds", "histogram"),
        ("mcp_tool_execution_duration_seconds", "histogram"),
        ("mcp_concurrent_operations", "gauge"),
        ("mcp_throughput_requests_per_second", "gauge"),
        ("mcp_server_cpu_usage_percent", "gauge"),
        ("mcp_server_memory_usage_bytes", "gauge"),
        ("mcp_server_file_descriptors", "gauge"),
        ("mcp_server_connections_active", "gauge"),
        ("mcp_messages_processed", "counter"),
        ("mcp_cache_hit_rate", "gauge"),
        ("mcp_resource_usage_score", "gauge"),
    ];
    for (name, kind) in CONTRACT {
        // The 0.0.4 text format names a counter's family with its `_total`.
        let family = if kind == "counter" {
            format!("{name}_total")
        } else {
            name.to_string()
        };
        assert!(
            exposition.contains(&format!("# TYPE {family} {kind}\n")),
            "{name} is not a {kind}"
        );
        let sample = match kind {
            "histogram" => format!("{name}_bucket{{"),
            "counter" => format!("{name}_total{{"),
            _ => format!("{name}{{"),
        };
        assert!(
            exposition.lines().any(|l| l.starts_with(&sample)),
            "no sample of {name}"
        );
    }

    // The same daemon serves the bundle, byte for byte the repository's files.
    let (status, body) = daemon.get("/alerts/mcp-exporter.rules.yml");
    assert_eq!(status, 200);
    assert_eq!(body, read_repo_file("alerts/mcp-exporter.rules.yml"));
    for name in [
        "mcp-overview",
        "mcp-performance",
        "system-resources",
        "mcp-traffic",
    ] {
        let (status, body) = daemon.get(&format!("/dashboards/{name}.json"));
        assert_eq!(status, 200, "{name}");
        assert_eq!(body, read_repo_file(&format!("dashboards/{name}.json")));
    }
    let (status, body) = daemon.get("/runbooks/MCPServerDown.md");
    assert_eq!(status, 200);
    assert_eq!(body, read_repo_file("docs/runbooks/MCPServerDown.md"));
    let (status, body) = daemon.get("/dashboards/nope.json");
    assert_eq!(status, 404);
    assert!(body.contains("mcp-overview.json"), "{body}");
}

#[test]
fn bundle_writes_the_files_and_the_prometheus_rule_matches_the_rules_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run_bounded(
        Command::new(daemon_bin()).arg("bundle").arg(dir.path()),
        TOOL_TIMEOUT,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.status.success(), "{out:?}");
    let written = |rel: &str| {
        std::fs::read_to_string(dir.path().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    };
    assert_eq!(
        written("alerts/mcp-exporter.rules.yml"),
        read_repo_file("alerts/mcp-exporter.rules.yml")
    );
    for name in [
        "mcp-overview",
        "mcp-performance",
        "system-resources",
        "mcp-traffic",
    ] {
        let rel = format!("dashboards/{name}.json");
        assert_eq!(written(&rel), read_repo_file(&rel));
    }
    assert_eq!(
        written("runbooks/MCPSlowResponseTime.md"),
        read_repo_file("docs/runbooks/MCPSlowResponseTime.md")
    );
    let generated = written("kubernetes/prometheusrule.yaml");
    assert!(
        generated == read_repo_file("deploy/kubernetes/prometheusrule.yaml"),
        "deploy/kubernetes/prometheusrule.yaml drifted from the rules file; regenerate it:\n  \
         cargo run -- bundle /tmp/b && cp /tmp/b/kubernetes/prometheusrule.yaml deploy/kubernetes/"
    );
    let configmap = written("kubernetes/grafana-dashboards.yaml");
    assert!(
        configmap == read_repo_file("deploy/kubernetes/grafana-dashboards.yaml"),
        "deploy/kubernetes/grafana-dashboards.yaml drifted from dashboards/; regenerate it:\n  \
         cargo run -- bundle /tmp/b && cp /tmp/b/kubernetes/grafana-dashboards.yaml deploy/kubernetes/"
    );
    let configmap = parse_yaml("deploy/kubernetes/grafana-dashboards.yaml");
    assert_eq!(configmap["metadata"]["labels"]["grafana_dashboard"], "1");
    for (file, dash) in dashboards() {
        let key = file.trim_start_matches("dashboards/");
        let carried: serde_json::Value = serde_json::from_str(
            configmap["data"][key]
                .as_str()
                .unwrap_or_else(|| panic!("no {key}")),
        )
        .expect("ConfigMap dashboard is JSON");
        assert_eq!(carried, dash, "{key}");
    }
    // Semantically too: its spec is the rules file.
    let manifest = parse_yaml("deploy/kubernetes/prometheusrule.yaml");
    assert_eq!(manifest["kind"], "PrometheusRule");
    assert_eq!(manifest["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(manifest["spec"], rules());
}

#[test]
fn prometheus_config_checks_with_the_bundled_rules() {
    let Some(promtool) = require(Tool::Promtool) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        repo_root().join("deploy/prometheus.yml"),
        dir.path().join("prometheus.yml"),
    )
    .expect("copy prometheus.yml");
    let out = run_bounded(
        Command::new(daemon_bin())
            .arg("bundle")
            .arg(dir.path().join("mcp")),
        TOOL_TIMEOUT,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.status.success(), "{out:?}");
    let text = run_ok(
        Command::new(&promtool)
            .args(["check", "config"])
            .arg(dir.path().join("prometheus.yml")),
    );
    assert!(text.contains("1 rule files found"), "{text}");
    // The compose stack's copy, the same way.
    std::fs::copy(
        repo_root().join("deploy/compose/prometheus.yml"),
        dir.path().join("prometheus.yml"),
    )
    .expect("copy compose prometheus.yml");
    run_ok(
        Command::new(&promtool)
            .args(["check", "config"])
            .arg(dir.path().join("prometheus.yml")),
    );
}

#[test]
fn alertmanager_config_checks_and_routes_by_severity() {
    let Some(amtool) = require(Tool::Amtool) else {
        return;
    };
    let config = repo_root().join("deploy/alertmanager.yml");
    let out = run_ok(Command::new(&amtool).arg("check-config").arg(&config));
    assert!(out.contains("SUCCESS"), "{out}");
    for (labels, receiver) in [
        (
            &["severity=critical", "alertname=MCPServerDown", "server=a"][..],
            "pager",
        ),
        (
            &[
                "severity=critical",
                "alertname=MCPSecurityIncident",
                "server=a",
            ][..],
            "pager",
        ),
        (
            &[
                "severity=warning",
                "alertname=MCPSlowResponseTime",
                "server=a",
            ][..],
            "slack-mcp-alerts",
        ),
    ] {
        let out = run_ok(
            Command::new(&amtool)
                .args(["config", "routes", "test"])
                .arg(format!("--config.file={}", config.display()))
                .args(labels),
        );
        // stdout (first) is the receiver; amtool may warn on stderr after it.
        assert_eq!(
            out.lines().next().unwrap_or_default().trim(),
            receiver,
            "{labels:?}: {out}"
        );
    }
    let am = parse_yaml("deploy/alertmanager.yml");
    let slack = am["receivers"]
        .as_sequence()
        .expect("receivers")
        .iter()
        .find(|r| r["name"] == "slack-mcp-alerts")
        .expect("slack receiver");
    assert_eq!(slack["slack_configs"][0]["channel"], "#mcp-alerts");
    let inhibit = &am["inhibit_rules"][0];
    assert_eq!(inhibit["source_matchers"][0], "alertname=\"MCPServerDown\"");
    assert_eq!(inhibit["equal"][0], "server");
}

/// The receiver each escalation tier pages (deploy/alertmanager.yml).
const TIER_RECEIVERS: [(&str, &str); 4] = [
    ("L1", "pager"),
    ("L2", "escalation-l2"),
    ("L3", "escalation-l3"),
    ("L4", "escalation-l4"),
];

/// The first line amtool prints for `config routes test` of `labels`: the receiver.
fn amtool_receiver(amtool: &std::path::Path, labels: &[String]) -> String {
    let config = repo_root().join("deploy/alertmanager.yml");
    let out = run_ok(
        Command::new(amtool)
            .args(["config", "routes", "test"])
            .arg(format!("--config.file={}", config.display()))
            .args(labels),
    );
    out.lines().next().unwrap_or_default().trim().to_string()
}

#[test]
fn every_escalation_tier_has_alerts_and_amtool_routes_them_to_its_receiver() {
    let Some(amtool) = require(Tool::Amtool) else {
        return;
    };
    let rules = rules();
    let mut tiers_seen = BTreeSet::new();
    for rule in alert_rules(&rules) {
        let labels = &rule["labels"];
        let Some(tier) = labels.get("escalation").and_then(Yaml::as_str) else {
            continue;
        };
        let name = str_of(rule, "alert");
        let (_, receiver) = TIER_RECEIVERS
            .iter()
            .find(|(t, _)| *t == tier)
            .unwrap_or_else(|| panic!("{name}: unknown escalation tier {tier:?}"));
        // Exactly the labels the alert carries, as Prometheus would send them.
        let mut args = vec![format!("alertname={name}"), "server=a".to_string()];
        for (key, value) in labels.as_mapping().expect("labels") {
            args.push(format!(
                "{}={}",
                key.as_str().unwrap_or_default(),
                value.as_str().unwrap_or_default()
            ));
        }
        assert_eq!(
            &amtool_receiver(&amtool, &args),
            receiver,
            "{name} ({tier}) must page {receiver}"
        );
        tiers_seen.insert(tier.to_string());
    }
    assert_eq!(
        tiers_seen,
        TIER_RECEIVERS.iter().map(|(t, _)| t.to_string()).collect(),
        "every tier has at least one alert"
    );
    // An alert without a tier still routes by severity.
    let plain = [
        "alertname=MCPServerDegraded",
        "severity=warning",
        "server=a",
    ]
    .map(String::from);
    assert_eq!(amtool_receiver(&amtool, &plain), "slack-mcp-alerts");
}

#[test]
fn a_higher_tier_inhibits_the_lower_ones_of_the_same_server() {
    let am = parse_yaml("deploy/alertmanager.yml");
    let inhibits = am["inhibit_rules"].as_sequence().expect("inhibit_rules");
    let targets_of = |source: &str| -> Vec<String> {
        inhibits
            .iter()
            .filter(|r| {
                r["source_matchers"]
                    .as_sequence()
                    .is_some_and(|m| m.iter().any(|m| m.as_str() == Some(source)))
            })
            .inspect(|r| assert_eq!(r["equal"][0], "server", "{r:?}"))
            .flat_map(|r| {
                r["target_matchers"]
                    .as_sequence()
                    .into_iter()
                    .flatten()
                    .filter_map(|m| m.as_str().map(String::from))
            })
            .collect()
    };
    assert!(targets_of("escalation=\"L2\"").contains(&"escalation=\"L1\"".to_string()));
    assert!(targets_of("escalation=\"L3\"").contains(&"escalation=~\"L1|L2\"".to_string()));
    assert!(targets_of("escalation=\"L4\"").contains(&"escalation=~\"L1|L2|L3\"".to_string()));
    // MCPServerDown never hides an escalated alert.
    assert!(targets_of("alertname=\"MCPServerDown\"").contains(&"escalation=\"\"".to_string()));
}

#[test]
fn systemd_unit_verifies() {
    let Some(analyze) = require(Tool::SystemdAnalyze) else {
        return;
    };
    // The unit names the installed binary; verify a copy naming the built one.
    let dir = tempfile::tempdir().expect("tempdir");
    let unit = read_repo_file("deploy/mcp-exporter.service")
        .replace("/usr/bin/mcp-exporter", &daemon_bin().display().to_string());
    let path = dir.path().join("mcp-exporter.service");
    std::fs::write(&path, unit).expect("write unit");
    let out = run_bounded(Command::new(analyze).arg("verify").arg(&path), TOOL_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && text.trim().is_empty(),
        "systemd-analyze verify: {text}"
    );
}

/// Every YAML document of a multi-document file.
fn documents(rel: &str) -> Vec<Yaml> {
    use serde::Deserialize;
    serde_yaml_ng::Deserializer::from_str(&read_repo_file(rel))
        .map(|doc| Yaml::deserialize(doc).unwrap_or_else(|e| panic!("{rel}: {e}")))
        .collect()
}

#[test]
fn kubernetes_manifests_fit_together() {
    let mut objects = documents("deploy/kubernetes/mcp-exporter.yaml");
    objects.extend(documents("deploy/kubernetes/servicemonitor.yaml"));
    objects.extend(documents("deploy/kubernetes/prometheusrule.yaml"));
    objects.extend(documents("deploy/kubernetes/grafana-dashboards.yaml"));
    let find = |kind: &str| {
        objects
            .iter()
            .find(|o| o["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind}"))
    };
    for o in &objects {
        assert!(
            o["apiVersion"].as_str().is_some() && o["metadata"]["name"].as_str().is_some(),
            "{o:?}"
        );
        assert_eq!(o["metadata"]["namespace"], "monitoring");
    }
    let deployment = find("Deployment");
    let service = find("Service");
    let monitor = find("ServiceMonitor");
    let pod = &deployment["spec"]["template"];
    assert_eq!(
        deployment["spec"]["selector"]["matchLabels"],
        pod["metadata"]["labels"]
    );
    assert_eq!(service["spec"]["selector"], pod["metadata"]["labels"]);
    assert_eq!(
        monitor["spec"]["selector"]["matchLabels"],
        service["metadata"]["labels"]
    );
    let container = &pod["spec"]["containers"][0];
    assert_eq!(container["ports"][0]["name"], "metrics");
    assert_eq!(service["spec"]["ports"][0]["name"], "metrics");
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "metrics");
    assert_eq!(pod["spec"]["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        container["securityContext"]["allowPrivilegeEscalation"],
        false
    );
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    // The config the ConfigMap carries is valid for the daemon.
    let config = objects
        .iter()
        .find(|o| o["metadata"]["name"] == "mcp-exporter-config")
        .expect("config ConfigMap")["data"]["mcp-exporter.toml"]
        .as_str()
        .expect("config in the ConfigMap")
        .to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("k8s.toml");
    std::fs::write(&path, config).expect("write");
    run_ok(Command::new(daemon_bin()).arg("validate").arg(&path));
}

#[test]
fn compose_stack_mounts_what_its_configs_name() {
    let compose = parse_yaml("deploy/compose/compose.yaml");
    let services = &compose["services"];
    for name in [
        "mcp-exporter",
        "prometheus",
        "alertmanager",
        "grafana",
        "jaeger",
    ] {
        assert!(services.get(name).is_some(), "compose has no {name}");
    }
    let volumes = |svc: &str| -> Vec<String> {
        services[svc]["volumes"]
            .as_sequence()
            .expect("volumes")
            .iter()
            .map(|v| v.as_str().unwrap_or_default().to_string())
            .collect()
    };
    // Grafana's provider path is where the bundled dashboards are mounted.
    let provider = parse_yaml("deploy/compose/grafana/provisioning/dashboards/mcp.yml");
    let path = provider["providers"][0]["options"]["path"]
        .as_str()
        .expect("provider path")
        .to_string();
    assert!(
        volumes("grafana")
            .iter()
            .any(|v| v == &format!("./bundle/dashboards:{path}:ro")),
        "{:?}",
        volumes("grafana")
    );
    assert!(volumes("prometheus").contains(&"./bundle:/etc/prometheus/mcp:ro".to_string()));
    assert!(
        volumes("alertmanager")
            .contains(&"../alertmanager.yml:/etc/alertmanager/alertmanager.yml:ro".to_string())
    );
    let dockerfile = read_repo_file("deploy/Dockerfile");
    assert!(
        dockerfile.matches("\nFROM ").count() + usize::from(dockerfile.starts_with("FROM ")) >= 2,
        "multi-stage"
    );
    assert!(dockerfile.contains("\nUSER 10001"), "runs as non-root");
}

#[test]
fn committed_dashboards_are_the_generator_output() {
    let Some(python) = require(Tool::Python3) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    run_ok(
        Command::new(python)
            .arg(repo_root().join("scripts/gen-dashboards.py"))
            .arg(dir.path()),
    );
    for name in [
        "mcp-overview",
        "mcp-performance",
        "system-resources",
        "mcp-traffic",
    ] {
        let generated = std::fs::read_to_string(dir.path().join(format!("{name}.json")))
            .expect("generated dashboard");
        assert!(
            generated == read_repo_file(&format!("dashboards/{name}.json")),
            "dashboards/{name}.json differs from scripts/gen-dashboards.py's output: run \
             python3 scripts/gen-dashboards.py and commit both"
        );
    }
}

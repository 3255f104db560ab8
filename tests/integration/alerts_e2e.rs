//! End to end with the real programs: Prometheus (Debian package) scrapes a live daemon and
//! evaluates the bundled rules; Alertmanager routes what fires to a webhook this test listens on.
//! Stopping a real MCP server while another one is down too delivers the L2 escalation
//! MCPMultipleServersDown (to its tier's route) and the real Alertmanager inhibits the server's
//! L1 MCPServerDown; starting it again delivers the resolved notification; a server made slow
//! delivers MCPSlowResponseTime (to the Slack route). The L1 route itself is exercised in
//! maintenance.rs.
//!
//! The rules and Alertmanager configuration are the test's own copies, generated from the
//! bundled/deployed files with shorter `for` durations, evaluation intervals and group timers,
//! and receivers pointed at the webhook. The bundled files are never edited.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::alerts_support::{self, Webhook, Yaml, parse_yaml};
use crate::common::daemon::Daemon;
use crate::common::http::http_request;
use crate::common::net::free_port;
use crate::common::paths::fixture;
use crate::common::processes::{ChildGuard, spawn_guarded};
use crate::common::servers::{spawn_http_everything, spawn_http_everything_on};
use crate::common::tools::{Tool, located, require_all};
use crate::common::wait::eventually;

/// An MCP endpoint that demands a token it never accepts: every request gets 401 with a
/// `WWW-Authenticate` challenge (each probe is an `auth_failure` security event). Lives until
/// the test ends.
fn unauthorized_mcp_server() -> u16 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the 401 server");
    let port = listener.local_addr().expect("local addr").port();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let _ = conn.write_all(
                b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer error=\"invalid_token\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    port
}

const WAIT: Duration = Duration::from_secs(90);
const POLL: Duration = Duration::from_millis(250);
/// Seconds the slow fixture's tool sleeps: its p95 lands in the (5, 10] s bucket.
const SLOW_SECONDS: &str = "6";

/// `for` durations at least this long are kept as they are in the test's copy: the escalation
/// tiers by outage length (30m, 2h, 4h) must not fire at once and replace the lower tiers.
const KEPT_FOR: [&str; 3] = ["30m", "2h", "4h"];

/// The bundled rules with every group evaluated each second and every `for` cut to 1 s, except
/// the [`KEPT_FOR`] ones.
fn fast_rules() -> String {
    let mut rules = alerts_support::rules();
    for group in rules["groups"].as_sequence_mut().expect("groups") {
        group["interval"] = Yaml::from("1s");
        for rule in group["rules"].as_sequence_mut().expect("rules") {
            let kept = rule
                .get("for")
                .and_then(Yaml::as_str)
                .is_some_and(|f| KEPT_FOR.contains(&f));
            if rule.get("for").is_some() && !kept {
                rule["for"] = Yaml::from("1s");
            }
        }
    }
    serde_yaml_ng::to_string(&rules).expect("serialize rules")
}

/// deploy/alertmanager.yml with its routing tree and inhibit rules kept, group timers cut to
/// 1 s, and each receiver replaced by a webhook to `http://127.0.0.1:<port>/<receiver name>`.
pub(crate) fn test_alertmanager_config(webhook_port: u16) -> String {
    let mut am = parse_yaml("deploy/alertmanager.yml");
    fn fast_route(route: &mut Yaml) {
        route["group_wait"] = Yaml::from("1s");
        route["group_interval"] = Yaml::from("1s");
        if let Some(children) = route.get_mut("routes").and_then(Yaml::as_sequence_mut) {
            for child in children {
                fast_route(child);
            }
        }
    }
    fast_route(&mut am["route"]);
    for receiver in am["receivers"].as_sequence_mut().expect("receivers") {
        let name = receiver["name"]
            .as_str()
            .expect("receiver name")
            .to_string();
        let mut webhook = serde_yaml_ng::Mapping::new();
        webhook.insert(
            "url".into(),
            format!("http://127.0.0.1:{webhook_port}/{name}").into(),
        );
        webhook.insert("send_resolved".into(), true.into());
        let mut replaced = serde_yaml_ng::Mapping::new();
        replaced.insert("name".into(), name.into());
        replaced.insert(
            "webhook_configs".into(),
            Yaml::Sequence(vec![Yaml::Mapping(webhook)]),
        );
        *receiver = Yaml::Mapping(replaced);
    }
    serde_yaml_ng::to_string(&am).expect("serialize alertmanager config")
}

fn wait_ready(name: &str, guard: &mut ChildGuard, addr: &str, path: &str) {
    eventually(WAIT, POLL, || {
        if let Some(status) = guard.try_wait() {
            return Err(format!("{name} exited ({status}):\n{}", guard.output()));
        }
        match http_request(addr, "GET", path, &[], b"", Duration::from_secs(2)) {
            Ok(r) if r.status == 200 => Ok(()),
            Ok(r) => Err(format!("{name} {path}: {}", r.status)),
            Err(e) => Err(format!("{name} {path}: {e}")),
        }
    });
}

pub(crate) fn start_alertmanager(
    bin: &Path,
    dir: &Path,
    webhook_port: u16,
) -> (ChildGuard, String) {
    let config = dir.join("alertmanager.yml");
    std::fs::write(&config, test_alertmanager_config(webhook_port)).expect("write am config");
    let addr = format!("127.0.0.1:{}", free_port());
    let mut guard = spawn_guarded(
        "alertmanager",
        Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.join("am-data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--cluster.listen-address="),
    );
    wait_ready("alertmanager", &mut guard, &addr, "/-/ready");
    (guard, addr)
}

fn start_prometheus(
    bin: &Path,
    dir: &Path,
    target: &str,
    alertmanager: &str,
) -> (ChildGuard, String) {
    std::fs::write(dir.join("mcp.rules.yml"), fast_rules()).expect("write rules copy");
    let config = format!(
        r#"global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: [mcp.rules.yml]
alerting:
  alertmanagers:
    - static_configs:
        - targets: ["{alertmanager}"]
scrape_configs:
  - job_name: mcp-exporter
    static_configs:
      - targets: ["{target}"]
"#
    );
    let config_path = dir.join("prometheus.yml");
    std::fs::write(&config_path, config).expect("write prometheus.yml");
    let addr = format!("127.0.0.1:{}", free_port());
    let mut guard = spawn_guarded(
        "prometheus",
        Command::new(bin)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--rules.alert.resend-delay=1s"),
    );
    wait_ready("prometheus", &mut guard, &addr, "/-/ready");
    (guard, addr)
}

#[test]
fn prometheus_and_alertmanager_deliver_server_down_resolved_and_slow() {
    if !require_all(&[
        Tool::Prometheus,
        Tool::Alertmanager,
        Tool::Node,
        Tool::Python,
    ]) {
        return;
    }
    let prometheus = located(Tool::Prometheus);
    let alertmanager = located(Tool::Alertmanager);
    let python = located(Tool::Python);

    let webhook = Webhook::start();
    let (web, web_port) = spawn_http_everything("streamableHttp");
    let locked_port = unauthorized_mcp_server();
    let config = format!(
        r#"
[[servers]]
name = "web"
transport = "http"
url = "http://127.0.0.1:{web_port}/mcp"
interval = "1s"
timeout = "3s"

[[servers]]
name = "slow"
transport = "stdio"
command = "{}"
args = ["{}", "{SLOW_SECONDS}"]
interval = "1s"
timeout = "20s"
call = {{ tool = "slow_echo", arguments = {{ message = "hi" }}, expect_text = "Echo: hi" }}

[[servers]]
name = "locked"
transport = "http"
url = "http://127.0.0.1:{locked_port}/mcp"
interval = "1s"
timeout = "3s"
"#,
        python.display(),
        fixture("slow_server.py").display()
    );
    let daemon = Daemon::start(&config);
    let dir = tempfile::tempdir().expect("tempdir");
    let (_am, am_addr) = start_alertmanager(&alertmanager, dir.path(), webhook.port);
    let (mut prom, prom_addr) = start_prometheus(&prometheus, dir.path(), daemon.addr(), &am_addr);

    // Prometheus sees the real server up before it is stopped.
    eventually(WAIT, POLL, || {
        let path = "/api/v1/query?query=mcp_server_up%7Bserver%3D%22web%22%7D";
        let r = http_request(&prom_addr, "GET", path, &[], b"", Duration::from_secs(5))
            .map_err(|e| e.to_string())?;
        let body = r.text();
        if body.contains(r#""value":["#) && body.contains(r#","1"]"#) {
            Ok(())
        } else {
            Err(format!(
                "prometheus: {body}; daemon: {}",
                daemon.get("/api/servers").1
            ))
        }
    });

    // Stop the real server. `locked` (below) is down all along, so two servers are down: the
    // L2 escalation MCPMultipleServersDown reaches its tier's route, and the real Alertmanager
    // inhibits web's L1 MCPServerDown with it (deploy/alertmanager.yml).
    drop(web);
    let down = eventually(WAIT, POLL, || {
        webhook
            .find("MCPMultipleServersDown", "firing", &[("server", "web")])
            .ok_or_else(|| format!("webhook got: {}", webhook.summary()))
    });
    assert_eq!(down.path, "/escalation-l2", "several servers down is L2");
    assert_eq!(down.labels["severity"], "critical");
    assert_eq!(down.labels["escalation"], "L2");
    assert_eq!(
        down.annotations["summary"],
        "MCP server web is down with others (L2)"
    );
    assert_eq!(
        down.annotations["runbook_url"],
        "docs/runbooks/MCPMultipleServersDown.md"
    );
    eventually(WAIT, POLL, || {
        let r = http_request(
            &am_addr,
            "GET",
            "/api/v2/alerts",
            &[],
            b"",
            Duration::from_secs(5),
        )
        .map_err(|e| e.to_string())?;
        let alerts: serde_json::Value =
            serde_json::from_str(&r.text()).map_err(|e| e.to_string())?;
        let l1 = alerts.as_array().and_then(|list| {
            list.iter().find(|a| {
                a["labels"]["alertname"] == "MCPServerDown" && a["labels"]["server"] == "web"
            })
        });
        match l1 {
            Some(a)
                if a["status"]["state"] == "suppressed"
                    && a["status"]["inhibitedBy"]
                        .as_array()
                        .is_some_and(|i| !i.is_empty()) =>
            {
                Ok(())
            }
            other => Err(format!("web's MCPServerDown in Alertmanager: {other:?}")),
        }
    });

    // Start it again where it was: the resolved notification follows.
    let _web_again = spawn_http_everything_on("streamableHttp", web_port);
    let resolved = eventually(WAIT, POLL, || {
        webhook
            .find("MCPMultipleServersDown", "resolved", &[("server", "web")])
            .ok_or_else(|| format!("webhook got: {}", webhook.summary()))
    });
    assert_eq!(resolved.path, "/escalation-l2");

    // The slow server's tools/call p95 is over 5 s: MCPSlowResponseTime reaches Slack's route.
    let slow = eventually(WAIT, POLL, || {
        webhook
            .find(
                "MCPSlowResponseTime",
                "firing",
                &[("server", "slow"), ("method", "tools/call")],
            )
            .ok_or_else(|| {
                let p95 = http_request(
                    &prom_addr,
                    "GET",
                    "/api/v1/query?query=server_method:mcp_request_duration_seconds:p95_5m",
                    &[],
                    b"",
                    Duration::from_secs(5),
                )
                .map(|r| r.text())
                .unwrap_or_default();
                format!("webhook got: {}; p95: {p95}", webhook.summary())
            })
    });
    assert_eq!(slow.path, "/slack-mcp-alerts", "warning goes to Slack");
    assert_eq!(slow.labels["severity"], "warning");
    assert!(
        webhook
            .find("MCPSlowResponseTime", "firing", &[("server", "web")])
            .is_none(),
        "the fast server is not slow: {}",
        webhook.summary()
    );
    // A server refusing the prober's credentials: MCPSecurityIncident (escalation L2) reaches
    // the L2 receiver, and its own MCPServerDown does not inhibit it (the deployed inhibit rule
    // spares it).
    let incident = eventually(WAIT, POLL, || {
        webhook
            .find(
                "MCPSecurityIncident",
                "firing",
                &[("server", "locked"), ("kind", "auth_failure")],
            )
            .ok_or_else(|| format!("webhook got: {}", webhook.summary()))
    });
    assert_eq!(
        incident.path, "/escalation-l2",
        "a security incident goes to L2 at once"
    );
    assert_eq!(
        incident.annotations["summary"],
        "Security events (auth_failure) on MCP server locked"
    );

    assert!(
        prom.try_wait().is_none(),
        "prometheus exited:\n{}",
        prom.output()
    );
    eprintln!("webhook received: {}", webhook.summary());

    // Every expression of the rules and dashboards evaluates on this real Prometheus over the
    // live data (Grafana's variables substituted); most return series already.
    let mut with_data = 0;
    let exprs = alerts_support::expressions();
    for (at, expr) in &exprs {
        let path = format!("/api/v1/query?query={}", query_escape(expr));
        let r = http_request(&prom_addr, "GET", &path, &[], b"", Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("{at}: {e}"));
        let body: serde_json::Value = serde_json::from_str(&r.text()).expect("query answer");
        assert_eq!(body["status"], "success", "{at}: {expr}: {body}");
        if body["data"]["result"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
        {
            with_data += 1;
        }
    }
    eprintln!("{with_data} of {} expressions return series", exprs.len());

    // The deployed inhibit rule, in the real Alertmanager: while MCPServerDown fires for a
    // server, its other alerts are inhibited, except MCPSecurityIncident; other servers' are not.
    let alert = |name: &str, server: &str, severity: &str| serde_json::json!({"labels": {"alertname": name, "server": server, "severity": severity}});
    let batch = serde_json::json!([
        alert("MCPServerDown", "inhibit-check", "critical"),
        alert("MCPServerDegraded", "inhibit-check", "warning"),
        alert("MCPSecurityIncident", "inhibit-check", "critical"),
        alert("MCPServerDegraded", "other-server", "warning"),
    ]);
    let r = http_request(
        &am_addr,
        "POST",
        "/api/v2/alerts",
        &[("content-type", "application/json")],
        batch.to_string().as_bytes(),
        Duration::from_secs(5),
    )
    .expect("post alerts to alertmanager");
    assert_eq!(r.status, 200, "{}", r.text());
    eventually(WAIT, POLL, || {
        let r = http_request(
            &am_addr,
            "GET",
            "/api/v2/alerts",
            &[],
            b"",
            Duration::from_secs(5),
        )
        .map_err(|e| e.to_string())?;
        let alerts: serde_json::Value =
            serde_json::from_str(&r.text()).map_err(|e| e.to_string())?;
        let state = |name: &str, server: &str| -> Option<(String, usize)> {
            alerts.as_array()?.iter().find_map(|a| {
                (a["labels"]["alertname"] == name && a["labels"]["server"] == server).then(|| {
                    (
                        a["status"]["state"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                        a["status"]["inhibitedBy"].as_array().map_or(0, Vec::len),
                    )
                })
            })
        };
        let degraded = state("MCPServerDegraded", "inhibit-check");
        let security = state("MCPSecurityIncident", "inhibit-check");
        let other = state("MCPServerDegraded", "other-server");
        let down = state("MCPServerDown", "inhibit-check");
        if degraded
            .as_ref()
            .is_some_and(|(s, n)| s == "suppressed" && *n == 1)
            && security.as_ref().is_some_and(|(s, _)| s == "active")
            && other.as_ref().is_some_and(|(s, _)| s == "active")
            && down.as_ref().is_some_and(|(s, _)| s == "active")
        {
            Ok(())
        } else {
            Err(format!(
                "down {down:?}, degraded {degraded:?}, security {security:?}, other {other:?}"
            ))
        }
    });
}

/// Percent-encodes a query parameter value.
fn query_escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

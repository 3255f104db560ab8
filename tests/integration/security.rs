//! Hostile servers, secrets that never leak, protected endpoints.

use std::process::Command;
use std::time::Duration;

use crate::common::daemon::{Daemon, daemon_bin};
use crate::common::http::http_request;
use crate::common::net::free_port;
use crate::common::paths::fixture;
use crate::common::processes::{ChildGuard, spawn_guarded, spawn_listening};
use crate::common::tools::{Tool, require};
use crate::common::wait::eventually;

/// RSS bound of the daemon while hostile servers run (one of them sends a 100 MB line).
const RSS_BOUND_BYTES: u64 = 200 * 1024 * 1024;
const SECRET: &str = "hostile-secret-9f8e7d6c5b4a";

fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

fn stdio_server(name: &str, mode: &str, python: &str) -> String {
    format!(
        "[[servers]]\nname = \"{name}\"\ntransport = \"stdio\"\ncommand = \"{python}\"\nargs = [\"{}\", \"{mode}\"]\ntimeout = \"4s\"\ninterval = \"1s\"\n{}\n",
        fixture("hostile_server.py").display(),
        if mode.starts_with("secret_") {
            "env = { HOSTILE_SECRET = \"${HOSTILE_SECRET}\" }"
        } else {
            ""
        }
    )
}

fn spawn_http_hostile(mode: &str, python: &str) -> (ChildGuard, u16) {
    spawn_listening(&format!("hostile http {mode}"), |port| {
        let mut cmd = Command::new(python);
        cmd.arg(fixture("hostile_server.py"))
            .arg("http")
            .arg(mode)
            .arg(port.to_string());
        cmd
    })
}

#[test]
fn hostile_servers_leave_the_daemon_and_other_servers_unharmed() {
    let Some(python) = require(Tool::Python3) else {
        return;
    };
    let python = python.display().to_string();
    let stdio_modes = [
        "silent",
        "garbage",
        "huge_line",
        "slow_bytes",
        "flood",
        "many_tools",
        "wrong_ids",
        "close_mid",
        "exit_at_once",
        "secret_stderr",
        "secret_exit",
        "env_names",
    ];
    let mut config = String::from("[exporter]\ninterval = \"1s\"\ntimeout = \"2s\"\n\n");
    // The well-behaved peer gets a generous deadline: CI machines are busy, and its schedule
    // (probe count), not its latency, is what is asserted.
    config.push_str(
        &stdio_server("good", "good", &python).replace("timeout = \"4s\"", "timeout = \"10s\""),
    );
    for mode in stdio_modes {
        let mut entry = stdio_server(mode, mode, &python);
        if mode == "huge_line" {
            // Streaming 16 MiB through a debug build on a busy CI core takes a while; the
            // precise reason (not a timeout) is what is asserted.
            entry = entry.replace("timeout = \"4s\"", "timeout = \"10s\"");
        }
        config.push_str(&entry);
    }
    let mut guards = Vec::new();
    for mode in ["endless_sse", "close_mid", "unauthorized"] {
        let (guard, port) = spawn_http_hostile(mode, &python);
        guards.push(guard);
        config.push_str(&format!(
            "[[servers]]\nname = \"http_{mode}\"\ntransport = \"http\"\nurl = \"http://127.0.0.1:{port}/mcp\"\ntimeout = \"2s\"\ninterval = \"1s\"\nheaders = {{ Authorization = \"Bearer ${{HOSTILE_SECRET}}\" }}\n\n"
        ));
    }
    let daemon = Daemon::start_with(
        &config,
        &[],
        &[("HOSTILE_SECRET", SECRET), ("DAEMON_ONLY_VAR", "x")],
    );

    // Other servers keep their schedule: the good server completes many probes while the
    // hostile ones misbehave (count-based).
    let mut max_rss = 0;
    eventually(Duration::from_secs(120), Duration::from_millis(250), || {
        max_rss = max_rss.max(rss_bytes(daemon.pid()));
        let s = daemon.scrape();
        let good = s
            .value("mcp_probes_total", &[("server", "good")])
            .unwrap_or(0.0);
        let good_failures: f64 = [
            "down",
            "auth_required",
            "misconfigured",
            "protocol_error",
            "check_failed",
        ]
        .iter()
        .filter_map(|class| {
            s.value(
                "mcp_probe_failures_total",
                &[("server", "good"), ("class", class)],
            )
        })
        .sum();
        let good_ok = good - good_failures;
        let hostile_probed = stdio_modes.iter().all(|m| {
            s.value("mcp_probes_total", &[("server", m)])
                .is_some_and(|v| v >= 2.0)
        });
        let event = |server: &str, kind: &str| {
            s.value(
                "mcp_security_events_total",
                &[("server", server), ("kind", kind)],
            )
            .unwrap_or(0.0)
        };
        let missing: Vec<&str> = [
            ("secret_stderr", "pattern_match"),
            ("wrong_ids", "protocol_violation"),
            ("garbage", "protocol_violation"),
            ("huge_line", "oversize_message"),
            ("flood", "unexpected_request"),
            ("http_unauthorized", "auth_failure"),
        ]
        .into_iter()
        .filter(|(server, kind)| event(server, kind) < 1.0)
        .map(|(server, _)| server)
        .collect();
        if good_ok >= 6.0 && hostile_probed && missing.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "good probes {good} ({good_ok} ok), hostile probed {hostile_probed}, events missing for {missing:?}"
            ))
        }
    });
    max_rss = max_rss.max(rss_bytes(daemon.pid()));
    eprintln!("daemon max RSS: {} MiB", max_rss / (1024 * 1024));
    assert!(
        max_rss < RSS_BOUND_BYTES,
        "daemon RSS {max_rss} above {RSS_BOUND_BYTES}"
    );

    let (status, body) = daemon.get("/metrics");
    assert_eq!(status, 200);
    let s = daemon.scrape();
    for mode in stdio_modes
        .iter()
        .filter(|m| !matches!(**m, "many_tools" | "flood" | "secret_stderr"))
    {
        assert_eq!(
            s.value("mcp_probe_success", &[("server", mode)]),
            Some(0.0),
            "{mode} must fail"
        );
    }
    // Cardinality: 10,000 tool names never become 10,000 series.
    let tool_series = body
        .lines()
        .filter(|l| l.contains("server=\"many_tools\""))
        .count();
    assert!(tool_series < 400, "{tool_series} series for many_tools");
    assert_eq!(
        s.value("mcp_server_tools", &[("server", "many_tools")]),
        Some(10000.0)
    );
    // Precise reasons.
    let (_, api) = daemon.get("/api/servers");
    let servers: serde_json::Value = serde_json::from_str(&api).expect("api json");
    let reason = |name: &str| {
        servers
            .as_array()
            .and_then(|a| a.iter().find(|s| s["name"] == name))
            .map(|s| s["last_failure"]["failure"]["reason"].to_string())
            .unwrap_or_default()
    };
    assert!(
        reason("huge_line").contains("exceeded"),
        "{}",
        reason("huge_line")
    );
    assert!(
        reason("exit_at_once").contains("cannot start"),
        "{}",
        reason("exit_at_once")
    );
    assert!(
        reason("http_unauthorized").contains("401"),
        "{}",
        reason("http_unauthorized")
    );
    assert!(
        reason("garbage").contains("non-JSON"),
        "{}",
        reason("garbage")
    );
    assert!(
        reason("wrong_ids").contains("matches no request"),
        "{}",
        reason("wrong_ids")
    );
    // Timeouts say what arrived meanwhile: silence, or bytes that never made a message.
    assert!(
        reason("silent").contains("not a byte arrived"),
        "{}",
        reason("silent")
    );
    for trickling in ["slow_bytes", "http_endless_sse"] {
        assert!(
            reason(trickling).contains(" arrived but no complete message"),
            "{trickling}: {}",
            reason(trickling)
        );
    }
    for name in [
        "silent",
        "slow_bytes",
        "garbage",
        "wrong_ids",
        "close_mid",
        "http_endless_sse",
        "http_close_mid",
    ] {
        eprintln!("reason {name}: {}", reason(name));
    }
    // Children get a cleared environment: the baseline and what their entry lists.
    let env = reason("env_names");
    assert!(
        env.contains("PATH") && !env.contains("DAEMON_ONLY_VAR") && !env.contains("RUST_LOG"),
        "{env}"
    );
    assert!(
        reason("secret_exit").contains("[REDACTED]"),
        "{}",
        reason("secret_exit")
    );

    // The secret appears in no output.
    let (_, page) = daemon.get("/");
    for (what, text) in [
        ("metrics", body.as_str()),
        ("api", api.as_str()),
        ("status page", page.as_str()),
        ("logs", daemon.stderr().as_str()),
    ] {
        assert!(!text.contains(SECRET), "secret leaked in {what}");
    }
    drop(guards);
}

fn bcrypt_hash(password: &str) -> String {
    bcrypt::hash(password, 4).expect("bcrypt")
}

struct Pki {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
    client_pem: String,
}

/// A throwaway CA with a server certificate (localhost, 127.0.0.1) and a client certificate.
fn make_pki(ca_name: &str) -> Pki {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, ca_name);
    let ca_key = rcgen::KeyPair::generate().expect("ca key");
    let ca = ca_params.self_signed(&ca_key).expect("ca cert");
    let issuer = rcgen::Issuer::new(ca_params, &ca_key);
    let params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("params");
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, &issuer).expect("cert");
    let mut client_params =
        rcgen::CertificateParams::new(vec!["prometheus".to_string()]).expect("client params");
    client_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let client_key = rcgen::KeyPair::generate().expect("client key");
    let client = client_params
        .signed_by(&client_key, &issuer)
        .expect("client cert");
    Pki {
        ca_pem: ca.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        client_pem: format!("{}{}", client.pem(), client_key.serialize_pem()),
    }
}

fn write_server_pki(dir: &std::path::Path, pki: &Pki) {
    std::fs::write(dir.join("ca.pem"), &pki.ca_pem).expect("ca");
    // Write to a temp name and rename, as certificate renewers do.
    std::fs::write(dir.join("key.pem.tmp"), &pki.key_pem).expect("key");
    std::fs::write(dir.join("cert.pem.tmp"), &pki.cert_pem).expect("cert");
    std::fs::rename(dir.join("key.pem.tmp"), dir.join("key.pem")).expect("rename key");
    std::fs::rename(dir.join("cert.pem.tmp"), dir.join("cert.pem")).expect("rename cert");
}

/// GET over HTTPS trusting only `ca_pem`, optionally with a client certificate.
fn https_get(url: &str, ca_pem: &str, client_pem: Option<&str>) -> Result<u16, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes()).map_err(|e| e.to_string())?;
        let mut builder = reqwest::Client::builder()
            .tls_certs_only([ca])
            .timeout(Duration::from_secs(5));
        if let Some(pem) = client_pem {
            builder = builder
                .identity(reqwest::Identity::from_pem(pem.as_bytes()).map_err(|e| e.to_string())?);
        }
        let client = builder.build().map_err(|e| e.to_string())?;
        let response = client.get(url).send().await.map_err(|e| format!("{e:?}"))?;
        Ok(response.status().as_u16())
    })
}

#[test]
fn mutual_tls_is_enforced_and_renewed_certificates_apply_without_restart() {
    let dir = tempfile::tempdir().expect("dir");
    let first = make_pki("first CA");
    write_server_pki(dir.path(), &first);
    let web = dir.path().join("web.yml");
    std::fs::write(
        &web,
        "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n",
    )
    .expect("web");
    let daemon = Daemon::start_with("", &["--web.config.file", &web.display().to_string()], &[]);
    let url = format!(
        "https://localhost:{}/metrics",
        daemon.addr().rsplit(':').next().unwrap_or("")
    );
    assert!(
        https_get(&url, &first.ca_pem, None).is_err(),
        "a client without a certificate must be refused"
    );
    assert_eq!(
        https_get(&url, &first.ca_pem, Some(&first.client_pem)),
        Ok(200)
    );

    // Renew: a new CA signs the server and client certificates; no restart, no signal.
    let second = make_pki("second CA");
    write_server_pki(dir.path(), &second);
    eventually(
        Duration::from_secs(30),
        Duration::from_millis(200),
        || match https_get(&url, &second.ca_pem, Some(&second.client_pem)) {
            Ok(200) => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
    assert!(
        https_get(&url, &second.ca_pem, Some(&first.client_pem)).is_err(),
        "the old client CA is no longer trusted"
    );
    assert!(
        daemon.stderr().contains("web config reloaded"),
        "{}",
        daemon.stderr()
    );
}

#[test]
fn basic_auth_without_tls_counts_refusals() {
    let dir = tempfile::tempdir().expect("dir");
    let web = dir.path().join("web.yml");
    std::fs::write(
        &web,
        format!("basic_auth_users:\n  prom: '{}'\n", bcrypt_hash("pa55word")),
    )
    .expect("write");
    let daemon = Daemon::start_with("", &["--web.config.file", &web.display().to_string()], &[]);
    let (status, _) = daemon.get("/metrics");
    assert_eq!(status, 401);
    let wrong = daemon.request(
        "GET",
        "/metrics",
        &[("Authorization", "Basic cHJvbTp3cm9uZw==")],
        b"",
    );
    assert_eq!(wrong.status, 401);
    let unknown = daemon.request(
        "GET",
        "/metrics",
        &[("Authorization", "Basic bm9ib2R5OnBhNTV3b3Jk")],
        b"",
    );
    assert_eq!(unknown.status, 401);
    // prom:pa55word
    let ok = daemon.request(
        "GET",
        "/metrics",
        &[("Authorization", "Basic cHJvbTpwYTU1d29yZA==")],
        b"",
    );
    assert_eq!(ok.status, 200);
    assert!(
        ok.text().contains("mcp_exporter_http_unauthorized_total 3"),
        "{}",
        ok.text()
    );
}

#[test]
fn an_invalid_web_config_stops_start_up_with_a_precise_error() {
    let dir = tempfile::tempdir().expect("dir");
    let web = dir.path().join("web.yml");
    std::fs::write(&web, "basic_auth_users:\n  prom: notahash\n").expect("write");
    let config = dir.path().join("c.toml");
    std::fs::write(&config, "").expect("write");
    let out = Command::new(daemon_bin())
        .args(["serve", "--config"])
        .arg(&config)
        .args(["--listen", "127.0.0.1:0", "--web.config.file"])
        .arg(&web)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`basic_auth_users.prom`") && err.contains("bcrypt"),
        "{err}"
    );
    let out = Command::new(daemon_bin())
        .arg("validate")
        .arg(&config)
        .arg("--web.config.file")
        .arg(&web)
        .output()
        .expect("run validate");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`basic_auth_users.prom`"), "{err}");
}

#[test]
fn prometheus_scrapes_over_tls_with_basic_auth() {
    let Some(prometheus) = require(Tool::Prometheus) else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let pki = make_pki("test CA");
    write_server_pki(dir.path(), &pki);
    let web = dir.path().join("web.yml");
    std::fs::write(
        &web,
        format!(
            "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\nbasic_auth_users:\n  prom: '{}'\n",
            bcrypt_hash("pa55word")
        ),
    )
    .expect("web");
    let daemon = Daemon::start_with("", &["--web.config.file", &web.display().to_string()], &[]);
    assert!(
        daemon.stderr().contains("listening on https://"),
        "{}",
        daemon.stderr()
    );

    let prom_port = free_port();
    let prom_yml = dir.path().join("prometheus.yml");
    std::fs::write(
        &prom_yml,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: mcp\n    scheme: https\n    tls_config:\n      ca_file: {ca}\n      server_name: localhost\n    basic_auth:\n      username: prom\n      password: pa55word\n    static_configs:\n      - targets: ['{addr}']\n  - job_name: noauth\n    scheme: https\n    tls_config:\n      ca_file: {ca}\n      server_name: localhost\n    static_configs:\n      - targets: ['{addr}']\n",
            ca = dir.path().join("ca.pem").display(),
            addr = daemon.addr()
        ),
    )
    .expect("prometheus.yml");
    let mut cmd = Command::new(prometheus);
    cmd.arg(format!("--config.file={}", prom_yml.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"));
    let _prom = spawn_guarded("prometheus", &mut cmd);
    let query = |q: &str| -> Result<String, String> {
        let path = format!("/api/v1/query?query={q}");
        http_request(
            &format!("127.0.0.1:{prom_port}"),
            "GET",
            &path,
            &[],
            b"",
            Duration::from_secs(5),
        )
        .map(|r| r.text())
        .map_err(|e| e.to_string())
    };
    eventually(Duration::from_secs(60), Duration::from_millis(500), || {
        let up = query("up")?;
        let v: serde_json::Value = serde_json::from_str(&up).map_err(|e| e.to_string())?;
        let results = v["data"]["result"].as_array().cloned().unwrap_or_default();
        let of = |job: &str| {
            results
                .iter()
                .find(|r| r["metric"]["job"] == job)
                .and_then(|r| r["value"][1].as_str().map(String::from))
        };
        match (of("mcp").as_deref(), of("noauth").as_deref()) {
            (Some("1"), Some("0")) => Ok(()),
            other => Err(format!("up: {other:?} ({up})")),
        }
    });
    let counted = query("mcp_exporter_http_unauthorized_total").unwrap_or_default();
    assert!(
        counted.contains("mcp_exporter_http_unauthorized_total"),
        "{counted}"
    );
}

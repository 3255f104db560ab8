//! Credential health end to end: an https MCP server (server-everything's Streamable HTTP behind
//! our TLS front) with a certificate from a private CA made by the test, its chain's expiry
//! scraped exactly and fed to real promtool to fire the alert; a JWT bearer token whose `exp` is
//! read back exactly, whose refusal after it worked is `credential_rejected`, and whose
//! signature appears in no endpoint, log line, history file or CLI output.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::common::daemon::{Daemon, daemon_bin};
use crate::common::paths::repo_root;
use crate::common::processes::run_bounded;
use crate::common::scrape::Scrape;
use crate::common::servers::spawn_http_everything;
use crate::common::tls::{TestPki, TlsFront};
use crate::common::tools::{Tool, require};
use crate::common::wait::eventually;

const WAIT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(200);
const CLI_TIMEOUT: Duration = Duration::from_secs(60);

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn toml_path(path: &Path) -> String {
    format!("{:?}", path.display().to_string())
}

/// Waits for a sample of `name` with `labels` and returns its value.
fn wait_value(daemon: &Daemon, name: &str, labels: &[(&str, &str)]) -> (f64, Scrape) {
    eventually(WAIT, POLL, || {
        let scrape = daemon.scrape();
        match scrape.value(name, labels) {
            Some(v) => Ok((v, scrape)),
            None => Err(format!(
                "no {name}{labels:?} yet; daemon stderr:\n{}",
                daemon.stderr()
            )),
        }
    })
}

/// A promtool test file that feeds `not_after` (as scraped at `now`) to the rules file and
/// expects MCPCertificateExpiringSoon to fire for `server` at `now`. promtool starts its clock
/// at the Unix epoch and evaluates every `evaluation_interval`, so the interval is `now` itself
/// (a multiple of the rule group's 30 s): two evaluations, at 0 (decades before expiry, silent)
/// and at `now`, with the scraped value as the input series' sample at both.
fn promtool_test_of(rules: &Path, server: &str, not_after: i64, now: i64) -> String {
    let days = format!("{:.1}", (not_after - now) as f64 / 86_400.0);
    format!(
        r#"rule_files:
  - {rules}
evaluation_interval: {now}s
tests:
  - interval: {now}s
    input_series:
      - series: 'mcp_tls_cert_not_after_timestamp_seconds{{server="{server}"}}'
        values: '{not_after} {not_after}'
    alert_rule_test:
      - eval_time: {now}s
        alertname: MCPCertificateExpiringSoon
        exp_alerts:
          - exp_labels:
              severity: warning
              server: {server}
            exp_annotations:
              summary: "The TLS certificate of MCP server {server} expires in {days} days"
              description: "The certificate chain MCP server {server} presents expires in {days} days (threshold 14; negative: already expired): renew it before clients refuse the connection."
              runbook_url: "docs/runbooks/MCPCertificateExpiringSoon.md"
"#,
        rules = toml_path(rules),
    )
}

#[test]
fn an_https_server_behind_a_private_ca_reports_its_chain_expiry_and_the_alert_fires_on_it() {
    if require(Tool::Node).is_none() {
        return;
    }
    let Some(promtool) = require(Tool::Promtool) else {
        return;
    };
    let (_everything, backend) = spawn_http_everything("streamableHttp");
    // The leaf names only mcp.test: reached at 127.0.0.1, it verifies only with
    // `tls.server_name`, and only against the test's CA (`tls.ca_file`).
    let pki = TestPki::new(&["mcp.test"], Duration::from_secs(3 * 86_400));
    let front = TlsFront::start(&pki, backend);
    let url = format!("https://127.0.0.1:{}/mcp", front.port);
    let ca = toml_path(&pki.ca_file);
    let config = format!(
        r#"
[[servers]]
name = "private-ca"
transport = "http"
url = "{url}"
interval = "1s"
tls = {{ ca_file = {ca}, server_name = "mcp.test" }}

[[servers]]
name = "system-roots"
transport = "http"
url = "{url}"
interval = "1s"

[[dependencies]]
name = "private-api"
kind = "http"
url = "{url}"
expect_status = "200-499"
interval = "1s"
critical = false
tls = {{ ca_file = {ca}, server_name = "mcp.test" }}
"#
    );
    let daemon = Daemon::start(&config);
    let (not_after, scrape) = wait_value(
        &daemon,
        "mcp_tls_cert_not_after_timestamp_seconds",
        &[("server", "private-ca")],
    );
    let scraped_at = unix_now();
    assert_eq!(
        not_after as i64, pki.leaf_not_after,
        "the chain's earliest not-after is the leaf's (the CA's is {})",
        pki.ca_not_after
    );
    assert_eq!(
        scrape.value("mcp_server_up", &[("server", "private-ca")]),
        Some(1.0),
        "{}",
        daemon.stderr()
    );
    assert_eq!(
        scrape.value(
            "mcp_tls_version_info",
            &[("server", "private-ca"), ("version", "TLS 1.3")]
        ),
        Some(1.0),
        "{}",
        scrape.text()
    );
    let (dependency_not_after, _) = wait_value(
        &daemon,
        "mcp_dependency_tls_cert_not_after_timestamp_seconds",
        &[("dependency", "private-api")],
    );
    assert_eq!(dependency_not_after as i64, pki.leaf_not_after);

    // Without the CA file, the same server does not verify: down, no certificate series.
    let scrape = eventually(WAIT, POLL, || {
        let scrape = daemon.scrape();
        if scrape.sum("mcp_probes_total", &[("server", "system-roots")]) >= 1.0 {
            Ok(scrape)
        } else {
            Err("system-roots not probed yet".to_string())
        }
    });
    assert_eq!(
        scrape.value("mcp_server_up", &[("server", "system-roots")]),
        Some(0.0)
    );
    assert_eq!(
        scrape.value(
            "mcp_tls_cert_not_after_timestamp_seconds",
            &[("server", "system-roots")]
        ),
        None,
        "an unverified chain is not reported"
    );
    let (_, servers) = daemon.get("/api/servers");
    assert!(
        servers.contains("certificate"),
        "the failure names the certificate: {servers}"
    );

    // The scraped value is promtool's input, evaluated at the time it was scraped.
    let now = scraped_at / 60 * 60;
    let dir = tempfile::tempdir().expect("temp dir");
    let test_file = dir.path().join("expiry.test.yml");
    let rules = repo_root().join("alerts/mcp-exporter.rules.yml");
    std::fs::write(
        &test_file,
        promtool_test_of(&rules, "private-ca", not_after as i64, now),
    )
    .expect("write the promtool test");
    let out = run_bounded(
        Command::new(&promtool)
            .args(["test", "rules"])
            .arg(&test_file),
        CLI_TIMEOUT,
    )
    .expect("promtool runs");
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The same file with a certificate 20 days away must fail: the test can tell.
    std::fs::write(
        &test_file,
        promtool_test_of(&rules, "private-ca", now + 20 * 86_400, now),
    )
    .expect("write the promtool test");
    let out = run_bounded(
        Command::new(&promtool)
            .args(["test", "rules"])
            .arg(&test_file),
        CLI_TIMEOUT,
    )
    .expect("promtool runs");
    assert!(
        !out.status.success(),
        "promtool expected no alert 20 days before expiry"
    );
}

/// A JWT with `exp` and a random signature: (token, signature).
fn jwt(exp: i64) -> (String, String) {
    let signature = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let token = format!(
        "{}.{}.{signature}",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(format!(r#"{{"sub":"prober","exp":{exp}}}"#)),
    );
    (token, signature)
}

fn cli(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(daemon_bin());
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    run_bounded(&mut cmd, CLI_TIMEOUT).unwrap_or_else(|e| panic!("mcp-exporter {args:?}: {e}"))
}

#[test]
fn a_jwt_bearer_expiry_is_read_back_its_refusal_is_credential_rejected_and_it_is_never_shown() {
    if require(Tool::Node).is_none() {
        return;
    }
    let (_everything, backend) = spawn_http_everything("streamableHttp");
    let pki = TestPki::new(&["127.0.0.1"], Duration::from_secs(20 * 86_400));
    let front = TlsFront::start(&pki, backend);
    let exp = unix_now() + 2 * 86_400;
    let (token, signature) = jwt(exp);
    front.require_token(Some(&token));
    let config = format!(
        r#"
[[servers]]
name = "jwt"
transport = "http"
url = "https://127.0.0.1:{port}/mcp"
interval = "1s"
headers = {{ Authorization = "Bearer ${{MCP_TEST_BEARER}}" }}
tls = {{ ca_file = {ca} }}
call = {{ tool = "echo", arguments = {{ message = "probe" }}, expect_text = "Echo: probe" }}
"#,
        port = front.port,
        ca = toml_path(&pki.ca_file),
    );
    let env = [("MCP_TEST_BEARER", token.as_str()), ("RUST_LOG", "debug")];
    let daemon = Daemon::start_with(&config, &[], &env);
    let (expiry, scrape) = wait_value(
        &daemon,
        "mcp_credential_expiry_timestamp_seconds",
        &[("server", "jwt"), ("kind", "bearer")],
    );
    assert_eq!(expiry as i64, exp, "the token's exp, exactly");
    eventually(WAIT, POLL, || {
        let scrape = daemon.scrape();
        match scrape.value("mcp_server_health_status", &[("server", "jwt")]) {
            Some(2.0) => Ok(()),
            other => Err(format!(
                "jwt not healthy yet ({other:?}): {}",
                scrape.text()
            )),
        }
    });
    assert!(scrape.has("mcp_tls_cert_not_after_timestamp_seconds"));

    // The server stops accepting the token it accepted: credential_rejected.
    front.require_token(Some("a-rotated-token"));
    eventually(WAIT, POLL, || {
        let scrape = daemon.scrape();
        let rejected = scrape.value(
            "mcp_server_health_reason",
            &[("server", "jwt"), ("reason", "credential_rejected")],
        );
        if rejected == Some(1.0) {
            Ok(())
        } else {
            Err(format!("no credential_rejected yet: {}", scrape.text()))
        }
    });
    let (_, servers) = daemon.get("/api/servers");
    assert!(servers.contains("credential_rejected"), "{servers}");

    // Everything the exporter shows or stores, searched for the token.
    let mut shown: Vec<(String, String)> = Vec::new();
    for path in [
        "/metrics",
        "/api/servers",
        "/api/dependencies",
        "/",
        "/health",
    ] {
        let (_, body) = daemon.get(path);
        shown.push((path.to_string(), body));
    }
    let config_path = daemon.config_path().display().to_string();
    let metrics_url = daemon.url("/metrics");
    let run = |args: &[&str]| {
        let out = cli(args, &env);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    // The store is written in batches: wait until the refusal is in the history and the logs.
    let history = eventually(WAIT, POLL, || {
        let text = run(&[
            "history",
            "--config",
            &config_path,
            "--server",
            "jwt",
            "--output",
            "json",
        ]);
        if text.contains("credential rejected") {
            Ok(text)
        } else {
            Err(format!("the history has no rejection yet: {text}"))
        }
    });
    shown.push(("mcp-exporter history".into(), history));
    let logs = eventually(WAIT, POLL, || {
        let text = run(&["logs", "--config", &config_path, "--output", "json"]);
        if text.contains("401") {
            Ok(text)
        } else {
            Err(format!("the logs have no 401 yet: {text}"))
        }
    });
    shown.push(("mcp-exporter logs".into(), logs));
    let check = run(&["check", "--config", &config_path]);
    assert!(check.contains("jwt"), "{check}");
    shown.push(("mcp-exporter check".into(), check));
    for (name, args) in [
        (
            "check json",
            vec!["check", "--config", &config_path, "--output", "json"],
        ),
        (
            "metrics",
            vec!["metrics", "--url", &metrics_url, "--output", "json"],
        ),
        ("metrics table", vec!["metrics", "--url", &metrics_url]),
        ("validate", vec!["validate", &config_path]),
    ] {
        shown.push((format!("mcp-exporter {name}"), run(&args)));
    }
    shown.push(("daemon stderr".into(), daemon.stderr()));
    shown.push(("daemon stdout".into(), daemon.stdout()));
    let mut store_files = 0;
    for entry in std::fs::read_dir(daemon.dir())
        .expect("daemon dir")
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("mcp-exporter.db") {
            store_files += 1;
            let bytes = std::fs::read(entry.path()).expect("read the store");
            shown.push((name, String::from_utf8_lossy(&bytes).into_owned()));
        }
    }
    assert!(store_files >= 1, "no history store in {:?}", daemon.dir());
    for (what, text) in &shown {
        assert!(
            !text.is_empty() || what == "daemon stdout",
            "{what} is empty"
        );
        assert!(
            !text.contains(&signature),
            "the JWT's signature appears in {what}"
        );
        assert!(!text.contains(&token), "the JWT appears in {what}");
    }
}

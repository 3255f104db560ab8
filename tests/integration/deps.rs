//! Dependency checks against real components: a throwaway PostgreSQL (healthy, stopped and
//! started again, wrong password, missing database, refused), a local HTTP server (200, 500,
//! slow, 429 with Retry-After), filesystems (missing, read-only, free-space threshold), and the
//! daemon monitoring the real `@modelcontextprotocol/server-postgres` with its database.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use mcp_exporter::config::SecretSource;
use mcp_exporter::deps::{
    DependencyBoard, DependencyCheck, DependencyConfig, DependencyFailure, DependencyRunner,
    DependencySpec, HttpClients, StatusRange, check_once,
};
use mcp_exporter::health::HealthStatus;
use mcp_exporter::metrics::Metrics;

use crate::common::daemon::{Daemon, daemon_bin};
use crate::common::net::free_port;
use crate::common::paths::{npm_server_js, repo_root};
use crate::common::postgres::spawn_postgres;
use crate::common::scrape::promtool_check_metrics;
use crate::common::tools::{Tool, missing_tools_fail, require};
use crate::common::wait::eventually;

const WAIT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(100);

fn dependency(name: &str, spec: DependencySpec, timeout: Duration) -> DependencyConfig {
    DependencyConfig {
        name: name.into(),
        spec,
        interval: Duration::from_millis(50),
        timeout,
        min_interval: None,
        critical: true,
        line: 1,
    }
}

fn client() -> HttpClients {
    HttpClients::default()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn reason(check: &DependencyCheck) -> String {
    check.reason.clone().unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL, checked directly
// ---------------------------------------------------------------------------------------------

/// A DSN (and optional password) written to files, as an operator would mount secrets.
fn pg_dependency(dir: &Path, dsn: &str, password: Option<&str>) -> DependencyConfig {
    let dsn_file = dir.join(format!("dsn-{}", rand_suffix()));
    std::fs::write(&dsn_file, dsn).expect("write dsn file");
    let password = password.map(|p| {
        let f = dir.join(format!("pw-{}", rand_suffix()));
        std::fs::write(&f, p).expect("write password file");
        SecretSource::File(f)
    });
    dependency(
        "pg",
        DependencySpec::Postgres {
            dsn: SecretSource::File(dsn_file),
            password,
            long_query_threshold: Duration::from_secs(300),
        },
        Duration::from_secs(5),
    )
}

fn rand_suffix() -> u64 {
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

#[test]
fn postgres_outcomes_are_told_apart() {
    let Some(pg) = spawn_postgres() else { return };
    let secrets = tempfile::tempdir().expect("tempdir");
    let rt = runtime();
    let http = client();
    let check = |config: &DependencyConfig| rt.block_on(check_once(config, &http));

    let ok = check(&pg_dependency(secrets.path(), &pg.url("postgres"), None));
    assert_eq!(ok.status, HealthStatus::Healthy, "{ok:?}");
    assert!(ok.details.contains_key("server_version"), "{ok:?}");
    assert!(ok.details.contains_key("connect_ms") && ok.details.contains_key("query_ms"));

    let missing = check(&pg_dependency(secrets.path(), &pg.url("no_such_db"), None));
    assert_eq!(
        missing.failure,
        Some(DependencyFailure::DatabaseMissing),
        "{missing:?}"
    );
    assert!(reason(&missing).contains("database missing"), "{missing:?}");

    let refused_dsn = format!("postgres://postgres@127.0.0.1:{}/postgres", free_port());
    let refused = check(&pg_dependency(secrets.path(), &refused_dsn, None));
    assert_eq!(
        refused.failure,
        Some(DependencyFailure::Refused),
        "{refused:?}"
    );
    assert!(
        reason(&refused).contains("connection refused"),
        "{refused:?}"
    );

    let tls_dsn = format!("{}?sslmode=require", pg.url("postgres"));
    let tls = check(&pg_dependency(secrets.path(), &tls_dsn, None));
    assert_eq!(tls.status, HealthStatus::Unhealthy, "{tls:?}");
    assert!(reason(&tls).contains("TLS"), "{tls:?}");

    pg.add_password_role("monitor", "right-password");
    let monitor_dsn = format!("postgres://monitor@127.0.0.1:{}/postgres", pg.port());
    let wrong = pg_dependency(secrets.path(), &monitor_dsn, Some("wrong-password"));
    let failed = eventually(WAIT, POLL, || {
        let c = check(&wrong);
        if c.failure == Some(DependencyFailure::AuthFailed) {
            Ok(c)
        } else {
            Err(format!("{c:?}"))
        }
    });
    assert_eq!(failed.status, HealthStatus::Unhealthy);
    assert!(
        reason(&failed).contains("authentication failed"),
        "{failed:?}"
    );
    assert!(!reason(&failed).contains("wrong-password"), "{failed:?}");
    let right = check(&pg_dependency(
        secrets.path(),
        &monitor_dsn,
        Some("right-password"),
    ));
    assert_eq!(right.status, HealthStatus::Healthy, "{right:?}");

    let unset = dependency(
        "pg",
        DependencySpec::Postgres {
            dsn: SecretSource::Env("MCP_EXPORTER_TEST_UNSET_DSN".into()),
            password: None,
            long_query_threshold: Duration::from_secs(300),
        },
        Duration::from_secs(2),
    );
    let unknown = check(&unset);
    assert_eq!(unknown.status, HealthStatus::Unknown, "{unknown:?}");
    assert!(
        reason(&unknown).contains("MCP_EXPORTER_TEST_UNSET_DSN"),
        "{unknown:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// HTTP against a local server
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Default)]
struct Hits(Arc<Mutex<HashMap<String, u64>>>);

impl Hits {
    fn get(&self, path: &str) -> u64 {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(path)
            .copied()
            .unwrap_or(0)
    }
}

async fn endpoint(
    State(hits): State<Hits>,
    UrlPath(path): UrlPath<String>,
) -> axum::response::Response {
    *hits
        .0
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(path.clone())
        .or_insert(0) += 1;
    let mut headers = HeaderMap::new();
    match path.as_str() {
        "ok" | "control" | "gentle" => (StatusCode::OK, "all good").into_response(),
        "fail" => (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
        "slow" => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            (StatusCode::OK, "late").into_response()
        }
        "limited" => {
            headers.insert("retry-after", "3600".parse().expect("header"));
            headers.insert("x-ratelimit-remaining", "0".parse().expect("header"));
            (StatusCode::TOO_MANY_REQUESTS, headers, "slow down").into_response()
        }
        "quota" => {
            headers.insert("x-ratelimit-remaining", "4999".parse().expect("header"));
            (StatusCode::OK, headers, "ok").into_response()
        }
        _ => (StatusCode::NOT_FOUND, "no").into_response(),
    }
}

/// Starts the test's HTTP server on 127.0.0.1 (kernel-chosen port) inside `rt`.
fn spawn_api(rt: &tokio::runtime::Runtime) -> (String, Hits) {
    let hits = Hits::default();
    let app = Router::new()
        .route("/{path}", get(endpoint))
        .with_state(hits.clone());
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    rt.spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), hits)
}

fn http_dep(name: &str, url: &str, timeout: Duration) -> DependencyConfig {
    dependency(
        name,
        DependencySpec::Http {
            method: "GET".into(),
            url: url::Url::parse(url).expect("url"),
            headers: vec![],
            expect_status: StatusRange {
                low: 200,
                high: 299,
            },
            body_contains: None,
            tls: Default::default(),
        },
        timeout,
    )
}

#[test]
fn http_statuses_timeouts_and_body() {
    let rt = runtime();
    let (base, _hits) = spawn_api(&rt);
    let http = client();
    let check = |config: &DependencyConfig| rt.block_on(check_once(config, &http));
    let t = Duration::from_secs(5);

    let ok = check(&http_dep("api", &format!("{base}/ok"), t));
    assert_eq!(ok.status, HealthStatus::Healthy, "{ok:?}");
    assert_eq!(ok.details.get("status").map(String::as_str), Some("200"));

    let fail = check(&http_dep("api", &format!("{base}/fail"), t));
    assert_eq!(fail.status, HealthStatus::Unhealthy, "{fail:?}");
    assert_eq!(fail.failure, Some(DependencyFailure::BadStatus));
    assert!(reason(&fail).contains("HTTP 500"), "{fail:?}");

    let slow = check(&http_dep(
        "api",
        &format!("{base}/slow"),
        Duration::from_millis(300),
    ));
    assert_eq!(slow.status, HealthStatus::Unhealthy, "{slow:?}");
    assert_eq!(slow.failure, Some(DependencyFailure::TimedOut));
    assert!(reason(&slow).contains("timed out"), "{slow:?}");

    let mut body = http_dep("api", &format!("{base}/ok"), t);
    if let DependencySpec::Http { body_contains, .. } = &mut body.spec {
        *body_contains = Some("not in there".into());
    }
    let mismatch = check(&body);
    assert_eq!(
        mismatch.failure,
        Some(DependencyFailure::BodyMismatch),
        "{mismatch:?}"
    );

    let quota = check(&http_dep("api", &format!("{base}/quota"), t));
    assert_eq!(quota.rate_limit.remaining, Some(4999), "{quota:?}");

    let refused = check(&http_dep(
        "api",
        &format!("http://127.0.0.1:{}/", free_port()),
        t,
    ));
    assert_eq!(
        refused.failure,
        Some(DependencyFailure::Refused),
        "{refused:?}"
    );
}

/// 429 with Retry-After, and a minimum interval: the runner sends one request to each while a
/// control dependency on the same interval is checked again and again. Request counts, no
/// clock.
#[test]
fn rate_limited_apis_are_not_hammered() {
    let rt = runtime();
    let (base, hits) = spawn_api(&rt);
    let metrics = Arc::new(Metrics::new());
    let board = DependencyBoard::default();
    let t = Duration::from_secs(5);
    let mut gentle = http_dep("gentle", &format!("{base}/gentle"), t);
    gentle.min_interval = Some(Duration::from_secs(3600));
    let deps = vec![
        http_dep("control", &format!("{base}/control"), t),
        http_dep("limited", &format!("{base}/limited"), t),
        gentle,
    ];
    let sinks = mcp_exporter::deps::sink::CheckSinks::new(vec![metrics.clone()]);
    let mut runner = DependencyRunner::new(board.clone(), sinks);
    rt.block_on(runner.apply(&deps));
    eventually(WAIT, POLL, || {
        let control = hits.get("control");
        if control >= 10 {
            Ok(())
        } else {
            Err(format!("control checked {control} times"))
        }
    });
    assert_eq!(
        hits.get("limited"),
        1,
        "the rate-limited API was asked again"
    );
    assert_eq!(hits.get("gentle"), 1, "min_interval was not honoured");
    {
        let board = board.read().expect("board");
        let limited = board["limited"].last.as_ref().expect("checked");
        assert_eq!(limited.status, HealthStatus::Degraded, "{limited:?}");
        assert_eq!(limited.failure, Some(DependencyFailure::RateLimited));
        assert!(reason(limited).contains("rate limited"), "{limited:?}");
        assert!(board["limited"].backoff_until_unix.is_some());
    }
    let text = metrics.encode_prometheus();
    for needle in [
        "mcp_dependency_retry_after_seconds{dependency=\"limited\"} 3600",
        "mcp_dependency_rate_limit_remaining{dependency=\"limited\"} 0",
        "mcp_dependency_status{dependency=\"limited\",kind=\"http\"} 1",
        "mcp_dependency_up{dependency=\"control\",kind=\"http\"} 1",
        "mcp_dependency_status{dependency=\"control\",kind=\"http\"} 2",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
    rt.block_on(runner.apply(&[]));
    let text = metrics.encode_prometheus();
    assert!(!text.contains("dependency=\"limited\""), "{text}");
    rt.block_on(runner.shutdown());
}

// ---------------------------------------------------------------------------------------------
// Filesystem
// ---------------------------------------------------------------------------------------------

fn fs_dep(path: &Path, writable: bool, min_free_bytes: Option<u64>) -> DependencyConfig {
    dependency(
        "logs",
        DependencySpec::Filesystem {
            path: path.to_path_buf(),
            writable,
            min_free_bytes,
            min_free_percent: None,
            min_free_inodes_percent: None,
        },
        Duration::from_secs(5),
    )
}

/// A directory nobody can write: as root (CI) a read-only tmpfs mounted over it (root bypasses
/// permission bits), otherwise mode 0555. Unmounted on drop.
struct ReadOnlyDir {
    dir: tempfile::TempDir,
    mounted: bool,
}

impl ReadOnlyDir {
    fn new() -> Option<ReadOnlyDir> {
        let dir = tempfile::tempdir().expect("tempdir");
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o555))
                .expect("chmod 555");
            return Some(ReadOnlyDir {
                dir,
                mounted: false,
            });
        }
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "ro,size=64k", "tmpfs"])
            .arg(dir.path())
            .status();
        match status {
            Ok(s) if s.success() => Some(ReadOnlyDir { dir, mounted: true }),
            other => {
                assert!(
                    !missing_tools_fail(),
                    "mount -t tmpfs -o ro failed as root: {other:?}"
                );
                eprintln!(
                    "skipped: the read-only checks: cannot mount a read-only tmpfs here ({other:?})"
                );
                None
            }
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

impl Drop for ReadOnlyDir {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg(self.dir.path()).status();
        } else {
            use std::os::unix::fs::PermissionsExt;
            let _ =
                std::fs::set_permissions(self.dir.path(), std::fs::Permissions::from_mode(0o755));
        }
    }
}

#[test]
fn filesystem_missing_unwritable_and_low_space() {
    let rt = runtime();
    let http = client();
    let check = |config: &DependencyConfig| rt.block_on(check_once(config, &http));
    let dir = tempfile::tempdir().expect("tempdir");

    let ok = check(&fs_dep(dir.path(), true, Some(1)));
    assert_eq!(ok.status, HealthStatus::Healthy, "{ok:?}");

    let missing = check(&fs_dep(&dir.path().join("mcp-servers"), false, None));
    assert_eq!(
        missing.failure,
        Some(DependencyFailure::Missing),
        "{missing:?}"
    );
    assert!(reason(&missing).contains("does not exist"), "{missing:?}");

    let total: u64 = ok.details["total_bytes"].parse().expect("total_bytes");
    let low = check(&fs_dep(dir.path(), false, Some(total + 1)));
    assert_eq!(low.status, HealthStatus::Degraded, "{low:?}");
    assert_eq!(low.failure, Some(DependencyFailure::LowSpace));
    assert!(reason(&low).contains("low free space"), "{low:?}");

    if let Some(ro) = ReadOnlyDir::new() {
        let readable = check(&fs_dep(&ro.path(), false, None));
        assert_eq!(readable.status, HealthStatus::Healthy, "{readable:?}");
        let unwritable = check(&fs_dep(&ro.path(), true, None));
        assert_eq!(
            unwritable.failure,
            Some(DependencyFailure::NotWritable),
            "{unwritable:?}"
        );
        assert!(
            reason(&unwritable).contains("not writable"),
            "{unwritable:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The daemon: server-postgres with its database; stop, start; criticality
// ---------------------------------------------------------------------------------------------

fn health_of(daemon: &Daemon, server: &str) -> Option<f64> {
    daemon
        .scrape()
        .value("mcp_server_health_status", &[("server", server)])
}

#[test]
fn server_postgres_is_monitored_with_its_database() {
    if require(Tool::Node).is_none() {
        return;
    }
    let Some(mut pg) = spawn_postgres() else {
        return;
    };
    let dsn = pg.url("postgres");
    let server_js = npm_server_js("postgres");
    let config = format!(
        r#"
[exporter]
interval = "1s"
timeout = "10s"
degraded_latency = "5s"

[[dependencies]]
name = "pg"
kind = "postgres"
dsn_env = "PG_DSN"
interval = "1s"
timeout = "2s"

[[dependencies]]
name = "pg-optional"
kind = "postgres"
dsn_env = "PG_DSN"
interval = "1s"
timeout = "2s"
critical = false

[[servers]]
name = "pg-mcp"
transport = "stdio"
command = "node"
args = ["{js}", "{dsn}"]
depends_on = ["pg"]
call = {{ tool = "query", arguments = {{ sql = "SELECT 1 AS one" }}, expect_text = "one" }}

[[servers]]
name = "pg-mcp-lists"
transport = "stdio"
command = "node"
args = ["{js}", "{dsn}"]
expected_tools = ["query"]
depends_on = ["pg-optional"]
# Probed once (at start): its health follows its dependency by re-assessment, not by probes.
interval = "1h"
"#,
        js = server_js.display()
    );
    let daemon = Daemon::start_with(&config, &[], &[("PG_DSN", &dsn)]);
    let both_healthy = || {
        let a = health_of(&daemon, "pg-mcp");
        let b = health_of(&daemon, "pg-mcp-lists");
        if a == Some(2.0) && b == Some(2.0) {
            Ok(())
        } else {
            Err(format!(
                "pg-mcp {a:?}, pg-mcp-lists {b:?}\n{}",
                daemon.stderr()
            ))
        }
    };
    eventually(WAIT, POLL, both_healthy);
    let scrape = daemon.scrape();
    assert_eq!(
        scrape.value(
            "mcp_dependency_up",
            &[("dependency", "pg"), ("kind", "postgres")]
        ),
        Some(1.0)
    );
    assert_eq!(
        scrape.value(
            "mcp_server_dependency_status",
            &[
                ("server", "pg-mcp"),
                ("dependency", "pg"),
                ("kind", "postgres")
            ]
        ),
        Some(2.0)
    );
    assert!(scrape.has("mcp_dependency_check_duration_seconds"));
    promtool_check_metrics(scrape.text()).expect("promtool accepts the exposition");

    pg.stop();
    eventually(WAIT, POLL, || {
        let s = daemon.scrape();
        let up = s.value(
            "mcp_dependency_up",
            &[("dependency", "pg"), ("kind", "postgres")],
        );
        let critical = s.value("mcp_server_health_status", &[("server", "pg-mcp")]);
        let optional = s.value("mcp_server_health_status", &[("server", "pg-mcp-lists")]);
        let promtool_text = s.text().to_string();
        let reason = s.value(
            "mcp_server_health_reason",
            &[("server", "pg-mcp"), ("reason", "critical_dependency_down")],
        );
        let optional_reason = s.value(
            "mcp_server_health_reason",
            &[("server", "pg-mcp-lists"), ("reason", "dependency_down")],
        );
        if up == Some(0.0)
            && critical == Some(0.0)
            && optional == Some(1.0)
            && reason == Some(1.0)
            && optional_reason == Some(1.0)
        {
            promtool_check_metrics(&promtool_text)
        } else {
            Err(format!(
                "up {up:?}, pg-mcp {critical:?} ({reason:?}), pg-mcp-lists {optional:?} ({optional_reason:?})"
            ))
        }
    });
    // A check may have caught the shutdown itself ("terminating connection"); later ones are
    // refused.
    eventually(WAIT, POLL, || {
        let (status, body) = daemon.get("/api/servers");
        let servers: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| format!("{status}: {e}: {body}"))?;
        let lists = servers
            .as_array()
            .and_then(|a| a.iter().find(|s| s["name"] == "pg-mcp-lists"))
            .ok_or_else(|| format!("pg-mcp-lists not in {body}"))?
            .clone();
        let dep_reason = lists["dependencies"][0]["reason"]
            .as_str()
            .unwrap_or_default();
        if lists["health"]["status"] == "DEGRADED"
            && lists["dependencies"][0]["name"] == "pg-optional"
            && dep_reason.contains("connection refused")
        {
            Ok(())
        } else {
            Err(lists.to_string())
        }
    });
    let (_, page) = daemon.get("/");
    assert!(page.contains("pg-optional (postgres): UNHEALTHY"), "{page}");
    // /api/dependencies: every dependency once, with its last check and its users.
    let (status, body) = daemon.get("/api/dependencies");
    assert_eq!(status, 200, "{body}");
    let deps: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let deps = deps.as_array().expect("an array");
    assert_eq!(deps.len(), 2, "{body}");
    let pg_view = deps.iter().find(|d| d["name"] == "pg").expect("pg");
    assert_eq!(pg_view["kind"], "postgres");
    assert_eq!(pg_view["critical"], true);
    assert_eq!(pg_view["status"], "UNHEALTHY");
    assert_eq!(pg_view["interval_seconds"], 1.0);
    assert_eq!(pg_view["used_by"], serde_json::json!(["pg-mcp"]));
    assert!(pg_view["checked_at_unix"].as_f64().is_some(), "{pg_view}");
    assert!(
        pg_view["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{pg_view}"
    );
    let optional_view = deps
        .iter()
        .find(|d| d["name"] == "pg-optional")
        .expect("optional");
    assert_eq!(optional_view["critical"], false);
    assert_eq!(
        optional_view["used_by"],
        serde_json::json!(["pg-mcp-lists"])
    );
    assert!(
        !body.contains(&dsn),
        "the DSN leaked into /api/dependencies"
    );

    pg.start();
    eventually(WAIT, POLL, both_healthy);
    let scrape = daemon.scrape();
    assert_eq!(
        scrape.value("mcp_probes_total", &[("server", "pg-mcp-lists")]),
        Some(1.0),
        "pg-mcp-lists followed its dependency without being probed again"
    );
    assert!(
        scrape.samples("mcp_server_health_reason").is_empty(),
        "reasons left after recovery: {:?}",
        scrape.samples("mcp_server_health_reason")
    );
}

// ---------------------------------------------------------------------------------------------
// The playbook example
// ---------------------------------------------------------------------------------------------

#[test]
fn the_playbook_example_validates() {
    let output = Command::new(env!("CARGO_BIN_EXE_mcp-exporter"))
        .arg("validate")
        .arg(repo_root().join("examples/playbook.toml"))
        .env_remove("PG_DSN")
        .output()
        .expect("run validate");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("OK: listen 127.0.0.1:8931, 8 server(s)"),
        "{stdout}"
    );
    for server in [
        "desktop-commander",
        "filesystem",
        "postgres",
        "github",
        "memory",
        "brave-search",
        "slack",
        "puppeteer",
    ] {
        assert!(
            stdout.contains(&format!("  {server} (stdio)")),
            "{server} missing:\n{stdout}"
        );
    }
    for dependency in [
        "pg (postgres",
        "github-api (http",
        "brave-api (http",
        "logs-dir (filesystem",
        "tmp (filesystem",
    ] {
        assert!(
            stdout.contains(&format!("dependency {dependency}")),
            "{dependency} missing:\n{stdout}"
        );
    }
    assert!(stdout.contains("`PG_DSN` is not set"), "{stdout}");
}

#[test]
fn a_dependency_rejecting_its_password_is_a_security_event_of_its_servers() {
    if require(Tool::Node).is_none() {
        return;
    }
    let Some(python3) = require(Tool::Python3) else {
        return;
    };
    let Some(pg) = spawn_postgres() else {
        return;
    };
    pg.add_password_role("prober", "right-password");
    let dsn = pg
        .url("postgres")
        .replace("postgres@", "prober:wrong-password@");
    let config = format!(
        r#"
[[dependencies]]
name = "pg"
kind = "postgres"
dsn_env = "PG_DSN"
interval = "1s"
timeout = "2s"

[[servers]]
name = "memory"
transport = "stdio"
command = "node"
args = ["{}"]
env = {{ MEMORY_FILE_PATH = "{{dir}}/memory.jsonl" }}
check = "liveness"
interval = "1s"
depends_on = ["pg"]
"#,
        npm_server_js("memory").display()
    );
    let daemon = Daemon::start_with(&config, &[], &[("PG_DSN", &dsn)]);
    eventually(WAIT, POLL, || {
        let scrape = daemon.scrape();
        match scrape.value(
            "mcp_security_events_total",
            &[("server", "memory"), ("kind", "dependency_auth_failure")],
        ) {
            Some(v) if v >= 1.0 => Ok(()),
            other => Err(format!("dependency_auth_failure events: {other:?}")),
        }
    });
    eventually(WAIT, POLL, || match health_of(&daemon, "memory") {
        Some(0.0) => Ok(()),
        other => Err(format!(
            "memory health {other:?}; a critical dependency is down"
        )),
    });
    let scrape = daemon.scrape();
    assert!(
        !scrape.text().contains("wrong-password"),
        "the password leaked into /metrics"
    );
    let (_, status) = daemon.get("/api/servers");
    assert!(status.contains("authentication failed"), "{status}");

    // The event is in the history store, found the way the playbook searches for it.
    let config_path = daemon.config_path().to_string_lossy().into_owned();
    let found = eventually(WAIT, POLL, || {
        let out = std::process::Command::new(daemon_bin())
            .args([
                "logs",
                "--config",
                &config_path,
                "--search",
                "security",
                "--level",
                "error",
            ])
            .args(["--server", "memory", "--output", "json"])
            .output()
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.contains("dependency_auth_failure") {
            Ok(text)
        } else {
            Err(format!(
                "no security event in the store yet: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    });
    assert!(
        !found.contains("wrong-password"),
        "the password leaked into the store: {found}"
    );
    // Every check of the dependency is kept in the store too.
    let db = daemon.dir().join("mcp-exporter.db");
    eventually(WAIT, POLL, || {
        let out = std::process::Command::new(&python3)
            .arg("-c")
            .arg("import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); print(c.execute(\"select count(*) from dependency_results where dependency='pg' and up=0 and error like '%authentication failed%'\").fetchone()[0])")
            .arg(&db)
            .output()
            .map_err(|e| e.to_string())?;
        let count: u64 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0);
        if count >= 1 {
            Ok(())
        } else {
            Err(format!(
                "dependency rows: {count} {}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    });
    assert!(
        !status.contains("wrong-password"),
        "the password leaked into /api/servers"
    );
}

/// PostgreSQL's own figures from a real server with connections the test holds: 4 idle, 1 idle
/// in a transaction, 1 running `pg_sleep` past a 1 s threshold. The figures go to the metrics
/// as `mcp_dependency_postgres_*`, and each check's time to the latency histogram.
#[test]
fn postgres_connections_by_state_and_long_queries_are_read() {
    use sqlx::Connection;
    use sqlx::postgres::PgConnection;

    let Some(pg) = spawn_postgres() else { return };
    let secrets = tempfile::tempdir().expect("tempdir");
    let rt = runtime();
    let http = client();
    let url = pg.url("postgres");
    let held = rt.block_on(async {
        let mut idle = Vec::new();
        for _ in 0..4 {
            idle.push(PgConnection::connect(&url).await.expect("connect"));
        }
        let mut in_tx = PgConnection::connect(&url).await.expect("connect");
        sqlx::query("BEGIN")
            .execute(&mut in_tx)
            .await
            .expect("begin");
        sqlx::query("SELECT 1")
            .execute(&mut in_tx)
            .await
            .expect("select");
        let mut sleeper = PgConnection::connect(&url).await.expect("connect");
        let sleeping = tokio::spawn(async move {
            let _ = sqlx::query("SELECT pg_sleep(120)")
                .execute(&mut sleeper)
                .await;
        });
        (idle, in_tx, sleeping)
    });
    let mut config = pg_dependency(secrets.path(), &url, None);
    if let DependencySpec::Postgres {
        long_query_threshold,
        ..
    } = &mut config.spec
    {
        *long_query_threshold = Duration::from_secs(1);
    }
    let metrics = Metrics::new();
    let stats = eventually(WAIT, POLL, || {
        let check = rt.block_on(check_once(&config, &http));
        metrics.deps.record_check("pg", "postgres", &check);
        let stats = check
            .postgres
            .clone()
            .ok_or(format!("no stats: {check:?}"))?;
        if stats.long_running_queries == 1 {
            Ok(stats)
        } else {
            Err(format!("pg_sleep not counted yet: {stats:?}"))
        }
    });
    let state = |name: &str| {
        stats
            .connections
            .iter()
            .find(|(s, _)| *s == name)
            .map(|(_, n)| *n)
    };
    // The checker's own connection is the other active one.
    assert_eq!(state("active"), Some(2), "{stats:?}");
    assert_eq!(state("idle"), Some(4), "{stats:?}");
    assert_eq!(state("idle_in_transaction"), Some(1), "{stats:?}");
    assert_eq!(state("unknown"), Some(0), "{stats:?}");
    let max: u64 = pg
        .psql("SHOW max_connections")
        .expect("psql")
        .parse()
        .expect("number");
    assert_eq!(stats.max_connections, max);
    // initdb ran without --data-checksums: the server reports no checksum figure.
    let checksums = pg
        .psql("SELECT sum(checksum_failures) FROM pg_stat_database")
        .expect("psql");
    assert_eq!(
        stats.checksum_failures,
        checksums.parse().ok(),
        "{checksums:?}"
    );

    let text = metrics.encode_prometheus();
    for needle in [
        "mcp_dependency_postgres_connections{dependency=\"pg\",state=\"idle\"} 4".to_string(),
        "mcp_dependency_postgres_connections{dependency=\"pg\",state=\"idle_in_transaction\"} 1"
            .to_string(),
        format!("mcp_dependency_postgres_max_connections{{dependency=\"pg\"}} {max}"),
        "mcp_dependency_postgres_long_running_queries{dependency=\"pg\"} 1".to_string(),
    ] {
        assert!(text.contains(&needle), "missing {needle} in\n{text}");
    }
    let checks = text
        .lines()
        .find_map(|l| {
            l.strip_prefix(
                "mcp_dependency_check_latency_seconds_count{dependency=\"pg\",kind=\"postgres\"} ",
            )
        })
        .and_then(|v| v.parse::<u64>().ok())
        .expect("latency histogram");
    assert!(checks >= 1, "{text}");

    // Released connections are no longer counted.
    let (idle, in_tx, sleeping) = held;
    sleeping.abort();
    rt.block_on(async {
        for conn in idle {
            let _ = conn.close().await;
        }
        let _ = in_tx.close().await;
    });
    let _ = pg.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%' AND pid <> pg_backend_pid()");
    eventually(WAIT, POLL, || {
        let check = rt.block_on(check_once(&config, &http));
        let stats = check
            .postgres
            .clone()
            .ok_or(format!("no stats: {check:?}"))?;
        let idle = stats.connections.iter().find(|(s, _)| *s == "idle");
        if idle == Some(&("idle", 0)) && stats.long_running_queries == 0 {
            Ok(())
        } else {
            Err(format!("still held: {stats:?}"))
        }
    });
}

/// A data page damaged on disk under a real PostgreSQL with data checksums: reading it fails,
/// the server counts the checksum failure, and the check reports the new count (the figure
/// MCPDependencyDataCorrupted fires on, alerts/tests/escalation.test.yml).
#[test]
fn a_damaged_data_page_is_read_as_a_checksum_failure() {
    let Some(mut pg) = crate::common::postgres::spawn_postgres_with_checksums() else {
        return;
    };
    let secrets = tempfile::tempdir().expect("temp dir");
    let config = pg_dependency(secrets.path(), &pg.url("postgres"), None);
    let http = client();
    let rt = runtime();
    let failures = |rt: &tokio::runtime::Runtime| {
        let check = rt.block_on(check_once(&config, &http));
        check
            .postgres
            .as_ref()
            .and_then(|stats| stats.checksum_failures)
            .ok_or(format!("no checksum figure: {check:?}"))
    };
    assert_eq!(eventually(WAIT, POLL, || failures(&rt)), 0);

    pg.psql(
        "CREATE TABLE victim AS SELECT g AS id, repeat('x', 200) AS pad FROM generate_series(1, 500) g",
    )
    .expect("create the table");
    let relation = pg
        .psql("SELECT pg_relation_filepath('victim')")
        .expect("the table's file");
    // A clean (fast) shutdown writes every page, so no WAL replay repairs the damage on start.
    pg.stop();
    let file = pg.data_dir().join(&relation);
    let mut bytes = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    assert!(
        bytes.len() >= 8192,
        "{} is {} bytes",
        file.display(),
        bytes.len()
    );
    // Inside the first page's tuple data (tuples fill a page from its end).
    for byte in &mut bytes[8000..8016] {
        *byte ^= 0xff;
    }
    std::fs::write(&file, &bytes).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    pg.start();

    let read = pg.psql("SELECT count(*) FROM victim");
    assert!(
        read.as_ref().is_err_and(|e| e.contains("invalid page")),
        "reading the damaged page should fail: {read:?}"
    );
    let counted = eventually(WAIT, POLL, || match failures(&rt)? {
        0 => Err("no checksum failure counted yet".to_string()),
        n => Ok(n),
    });
    let metrics = Metrics::new();
    let check = rt.block_on(check_once(&config, &http));
    metrics.deps.record_check("pg", "postgres", &check);
    let text = metrics.encode_prometheus();
    let needle =
        format!("mcp_dependency_postgres_checksum_failures{{dependency=\"pg\"}} {counted}");
    assert!(text.contains(&needle), "missing {needle} in\n{text}");
}

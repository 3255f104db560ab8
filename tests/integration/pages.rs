//! The exporter's pages as a browser renders them: `/` lists every server with its health and
//! links to its page; `/servers/<name>` of a failing server shows the failing step and the
//! reason; `/config` shows the running configuration. Loaded in headless Chromium (Debian's
//! `chromium`), asserted on the DOM it renders (`--dump-dom`); screenshots are kept under
//! `target/screenshots/` as test artifacts.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::daemon::Daemon;
use crate::common::net::free_port;
use crate::common::paths::repo_root;
use crate::common::processes::run_bounded;
use crate::common::servers::everything_stdio_entry;
use crate::common::tools::{Tool, require, require_all};
use crate::common::wait::eventually;

const WAIT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(250);
const BROWSER_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs headless Chromium on `url` with `args` (its own profile directory under `profile`).
fn chromium(bin: &Path, profile: &Path, url: &str, args: &[String]) -> String {
    let out = run_bounded(
        Command::new(bin)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--hide-scrollbars",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(args)
            .arg(url),
        BROWSER_TIMEOUT,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "chromium {url}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn dump_dom(bin: &Path, profile: &Path, url: &str) -> String {
    chromium(bin, profile, url, &["--dump-dom".to_string()])
}

/// Takes a screenshot of `url` into `target/screenshots/<name>.png` and returns its path.
fn screenshot(bin: &Path, profile: &Path, url: &str, name: &str) -> PathBuf {
    let dir = repo_root().join("target/screenshots");
    std::fs::create_dir_all(&dir).expect("create target/screenshots");
    let path = dir.join(format!("{name}.png"));
    let _ = std::fs::remove_file(&path);
    chromium(
        bin,
        profile,
        url,
        &[
            format!("--screenshot={}", path.display()),
            "--window-size=1400,1000".to_string(),
        ],
    );
    let png = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(png.starts_with(b"\x89PNG"), "{} is no PNG", path.display());
    path
}

#[test]
fn chromium_renders_every_server_and_a_failing_servers_failing_step() {
    if !require_all(&[Tool::Node]) {
        return;
    }
    let Some(browser) = require(Tool::Chromium) else {
        return;
    };
    let dead_port = free_port();
    let config = format!(
        r#"{}
[[servers]]
name = "broken"
transport = "http"
url = "http://127.0.0.1:{dead_port}/mcp"
interval = "2s"
timeout = "2s"

[modules.http_readiness]
transport = "http"
"#,
        everything_stdio_entry("everything", "5s", "")
    );
    let daemon = Daemon::start(&config);
    eventually(WAIT, POLL, || {
        let scrape = daemon.scrape();
        let ok = scrape.value("mcp_server_health_status", &[("server", "everything")]);
        let broken = scrape.value("mcp_probes_total", &[("server", "broken")]);
        match (ok, broken) {
            (Some(2.0), Some(n)) if n >= 2.0 => Ok(()),
            other => Err(format!("not probed yet: {other:?}")),
        }
    });
    let profile = tempfile::tempdir().expect("browser profile");

    let index = dump_dom(&browser, profile.path(), &daemon.url("/"));
    for (server, word) in [("everything", "HEALTHY"), ("broken", "UNHEALTHY")] {
        assert!(
            index.contains(&format!("<a href=\"/servers/{server}\">{server}</a>")),
            "/ lacks a link to {server}:\n{index}"
        );
        let row = index
            .split("<tr")
            .find(|row| row.contains(&format!(">{server}</a>")))
            .unwrap_or_else(|| panic!("/ has no row for {server}:\n{index}"));
        assert!(row.contains(word), "{server}'s row lacks {word}: {row}");
    }
    screenshot(&browser, profile.path(), &daemon.url("/"), "status-page");

    let page = dump_dom(&browser, profile.path(), &daemon.url("/servers/broken"));
    assert!(
        page.contains("<h1>broken</h1>") && page.contains("UNHEALTHY"),
        "{page}"
    );
    let failed = page
        .split("<li class=\"probe failed\">")
        .nth(1)
        .unwrap_or_else(|| panic!("no failed probe on the page:\n{page}"));
    assert!(
        failed.contains("FAILED: down at handshake: cannot connect"),
        "the failing step and reason are missing: {failed}"
    );
    assert!(
        failed.contains(&format!("127.0.0.1:{dead_port}")),
        "the reason names the address: {failed}"
    );
    assert!(
        page.contains("id=\"transitions\""),
        "history section: {page}"
    );
    screenshot(
        &browser,
        profile.path(),
        &daemon.url("/servers/broken"),
        "server-page-failing",
    );

    let healthy = dump_dom(&browser, profile.path(), &daemon.url("/servers/everything"));
    assert!(healthy.contains("<li class=\"probe ok\">"), "{healthy}");
    assert!(healthy.contains("stage list_tools:"), "{healthy}");
}

#[test]
fn config_shows_the_running_configuration_and_unknown_pages_say_what_exists() {
    let config = r#"
[[servers]]
name = "remote"
transport = "http"
url = "http://127.0.0.1:9/mcp"
interval = "1h"
headers = { Authorization = "Bearer ${PAGES_TEST_TOKEN}" }

[modules.http_readiness]
transport = "http"
"#;
    let secret = "pages-test-secret-7f3a";
    let daemon = Daemon::start_with(config, &[], &[("PAGES_TEST_TOKEN", secret)]);
    let (status, text) = daemon.get("/config");
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("remote (http): readiness every 1h"), "{text}");
    assert!(
        text.contains("module http_readiness: /probe over http"),
        "{text}"
    );
    assert!(!text.contains(secret), "{text}");

    let (status, text) = daemon.get("/servers/nope");
    assert_eq!(status, 404, "{text}");
    assert!(
        text.contains("no server named \"nope\"; configured servers: remote"),
        "{text}"
    );
}

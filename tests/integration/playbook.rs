//! examples/playbook.toml as shipped, run for real: its eight npm servers (pinned in
//! mcp-servers/package.json, bins from mcp-servers/node_modules/.bin), a real PostgreSQL for
//! PG_DSN, and loopback stand-ins answering 200 for the GitHub and Brave Search APIs.
//!
//! The example is read and edited with the `toml` crate; only what cannot work in a test is
//! changed: the listen address, the host paths (/var/lib/mcp-exporter, /var/log/mcp-servers,
//! /tmp -> a temp dir), the intervals (short, so the test is quick) and the two API URLs
//! (-> loopback). A guard checks that no string left in the edited config names a host other
//! than 127.0.0.1 or a path outside the temp dir. Secrets get stand-in values; nothing leaves
//! the machine: the servers that talk to an API do so only on a tool call, and the probes'
//! only tool call is postgres's `SELECT 1`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::common::daemon::{Daemon, daemon_bin};
use crate::common::paths::{repo_root, servers_dir};
use crate::common::postgres::{Postgres, spawn_postgres};
use crate::common::scrape::Scrape;
use crate::common::tools::{Tool, require, which};
use crate::common::wait::eventually;

/// The example under test.
const EXAMPLE: &str = "examples/playbook.toml";
/// The eight servers of the example.
const SERVERS: [&str; 8] = [
    "desktop-commander",
    "filesystem",
    "postgres",
    "github",
    "memory",
    "brave-search",
    "slack",
    "puppeteer",
];
/// Probe and dependency interval of the test (the example says 30s to 30m).
const INTERVAL: &str = "1s";
/// How long eight node servers may take to come up HEALTHY on a busy 2-core machine.
const ALL_HEALTHY_WITHIN: Duration = Duration::from_secs(120);
/// Probe attempts of the misconfigured server before its restart figures are judged.
const MIN_ATTEMPTS: f64 = 4.0;

// ---------------------------------------------------------------------------------------------
// Loopback stand-ins for the GitHub and Brave Search APIs
// ---------------------------------------------------------------------------------------------

/// An HTTP/1.1 server on 127.0.0.1 that answers every request `200 {}` and keeps the request
/// heads it saw. Stops (and joins its thread) on drop.
struct StandInApi {
    port: u16,
    heads: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl StandInApi {
    fn start() -> StandInApi {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a stand-in API");
        let port = listener.local_addr().expect("local_addr").port();
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let heads = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (heads, stop) = (Arc::clone(&heads), Arc::clone(&stop));
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            if let Some(head) = answer_200(stream) {
                                heads.lock().unwrap_or_else(|p| p.into_inner()).push(head);
                            }
                        }
                        Err(_) => thread::sleep(Duration::from_millis(10)),
                    }
                }
            })
        };
        StandInApi {
            port,
            heads,
            stop,
            thread: Some(thread),
        }
    }

    /// The request heads received so far.
    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Drop for StandInApi {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads one request head (bounded in size and time) and answers `200 {}`; returns the head.
fn answer_200(mut stream: TcpStream) -> Option<String> {
    stream.set_nonblocking(false).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let body: &[u8] = if head.starts_with("HEAD ") {
        b""
    } else {
        b"{}"
    };
    let _ = stream.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n",
    );
    let _ = stream.write_all(body);
    Some(head)
}

// ---------------------------------------------------------------------------------------------
// The example, edited for the test
// ---------------------------------------------------------------------------------------------

/// Where the example's host paths go in the test, and the stand-ins' ports.
struct Sandbox {
    dir: tempfile::TempDir,
    github: StandInApi,
    brave: StandInApi,
}

impl Sandbox {
    fn new() -> Sandbox {
        let dir = tempfile::Builder::new()
            .prefix("mcp-exporter-playbook-")
            .tempdir()
            .expect("create a temp dir");
        let sandbox = Sandbox {
            dir,
            github: StandInApi::start(),
            brave: StandInApi::start(),
        };
        for sub in ["var-lib-mcp-exporter", "var-log-mcp-servers", "tmp"] {
            std::fs::create_dir_all(sandbox.root().join(sub)).expect("create a sandbox dir");
        }
        sandbox
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The test's place for one of the example's host paths; panics on a path it does not
    /// know, so a new host path in the example is noticed here.
    fn relocate(&self, path: &str) -> String {
        let moved = [
            ("/var/lib/mcp-exporter", "var-lib-mcp-exporter"),
            ("/var/log/mcp-servers", "var-log-mcp-servers"),
            ("/tmp", "tmp"),
        ]
        .iter()
        .find_map(|(from, to)| {
            let rest = path.strip_prefix(from)?;
            (rest.is_empty() || rest.starts_with('/')).then(|| format!("{to}{rest}"))
        })
        .unwrap_or_else(|| panic!("{EXAMPLE} uses host path {path:?}: map it in this test"));
        self.root().join(moved).to_string_lossy().into_owned()
    }

    /// The loopback stand-in for an API URL of the example, keeping its path and query.
    fn loopback(&self, dependency: &str, url: &str) -> String {
        let port = match dependency {
            "github-api" => self.github.port,
            "brave-api" => self.brave.port,
            other => panic!("{EXAMPLE}: no stand-in for the API of dependency {other:?}"),
        };
        let mut url = url::Url::parse(url).unwrap_or_else(|e| panic!("{url:?}: {e}"));
        url.set_scheme("http").expect("https -> http");
        url.set_host(Some("127.0.0.1")).expect("loopback host");
        url.set_port(Some(port)).expect("stand-in port");
        url.to_string()
    }

    /// desktop-commander's HOME of the edited example.
    fn desktop_commander_home(&self) -> PathBuf {
        PathBuf::from(self.relocate("/var/lib/mcp-exporter/desktop-commander"))
    }

    /// The example, parsed, edited and serialized again.
    fn playbook(&self) -> String {
        let path = repo_root().join(EXAMPLE);
        let text = std::fs::read_to_string(&path).expect("read the example");
        let mut doc: toml::Table = text.parse().unwrap_or_else(|e| panic!("{EXAMPLE}: {e}"));

        let exporter = table(&mut doc, "exporter");
        set_string(exporter, "listen", "127.0.0.1:0");
        set_string(exporter, "interval", INTERVAL);

        for dependency in array_of_tables(&mut doc, "dependencies") {
            let name = string(dependency, "name");
            set_string(dependency, "interval", INTERVAL);
            if dependency.contains_key("min_interval") {
                set_string(dependency, "min_interval", INTERVAL);
            }
            match string(dependency, "kind").as_str() {
                "http" => {
                    let url = self.loopback(&name, &string(dependency, "url"));
                    set_string(dependency, "url", &url);
                }
                "filesystem" => {
                    let moved = self.relocate(&string(dependency, "path"));
                    set_string(dependency, "path", &moved);
                }
                _ => {}
            }
        }

        for server in array_of_tables(&mut doc, "servers") {
            if let Some(toml::Value::Array(args)) = server.get_mut("args") {
                for arg in args.iter_mut() {
                    if let Some(text) = arg.as_str().filter(|t| t.starts_with('/')) {
                        *arg = toml::Value::String(self.relocate(text));
                    }
                }
            }
            if string(server, "name") == "desktop-commander" {
                assert_stays_offline(server);
            }
            if let Some(toml::Value::Table(env)) = server.get_mut("env") {
                for (_, value) in env.iter_mut() {
                    if let Some(text) = value.as_str().filter(|t| t.starts_with('/')) {
                        *value = toml::Value::String(self.relocate(text));
                    }
                }
            }
        }

        let mut leaks = Vec::new();
        self.find_leaks(&toml::Value::Table(doc.clone()), &mut leaks);
        assert!(
            leaks.is_empty(),
            "the edited example still reaches outside the test: {leaks:?}"
        );
        toml::to_string(&doc).expect("serialize the edited example")
    }

    /// Strings that name a path outside the sandbox or a URL to anywhere but loopback (a local
    /// file URL is no traffic).
    fn find_leaks(&self, value: &toml::Value, leaks: &mut Vec<String>) {
        match value {
            toml::Value::String(text) => {
                let root = self.root().to_string_lossy();
                let outside = text.starts_with('/') && !text.starts_with(root.as_ref());
                let remote = text.contains("://")
                    && url::Url::parse(text).map_or(true, |u| {
                        u.scheme() != "file" && u.host_str() != Some("127.0.0.1")
                    });
                if outside || remote {
                    leaks.push(text.clone());
                }
            }
            toml::Value::Array(items) => items.iter().for_each(|v| self.find_leaks(v, leaks)),
            toml::Value::Table(table) => table.values().for_each(|v| self.find_leaks(v, leaks)),
            _ => {}
        }
    }

    /// desktop-commander looks for Chrome (for PDF export) when it starts and downloads it from
    /// the internet when it finds none in its puppeteer cache under $HOME or in /usr/bin. The
    /// probes never export a PDF, so a stand-in file where the cache keeps Chrome's executable
    /// is all it needs to stay off the network; it is never run.
    fn seed_desktop_commander_chrome(&self) {
        let chrome = self
            .desktop_commander_home()
            .join(".claude-server-commander/puppeteer-cache/chrome/linux-stand-in")
            .join("chrome-linux64/chrome");
        std::fs::create_dir_all(chrome.parent().expect("has a parent")).expect("create dirs");
        std::fs::write(&chrome, "stand-in; never run\n").expect("write the stand-in");
    }
}

/// desktop-commander calls home at start unless told not to (telemetry, and a feature-flag
/// download that no switch turns off, only DC_FLAG_URL redirects): the example must keep both
/// off the network.
fn assert_stays_offline(server: &toml::Table) {
    let env = match server.get("env") {
        Some(toml::Value::Table(env)) => env,
        other => panic!("{EXAMPLE}: desktop-commander has no env table: {other:?}"),
    };
    assert_eq!(
        env.get("DESKTOP_COMMANDER_DISABLE_TELEMETRY")
            .and_then(toml::Value::as_str),
        Some("1"),
        "{EXAMPLE}: desktop-commander's telemetry must be off"
    );
    let flags = env.get("DC_FLAG_URL").and_then(toml::Value::as_str);
    assert!(
        flags.is_some_and(|u| u.starts_with("file://")),
        "{EXAMPLE}: desktop-commander's DC_FLAG_URL must be a local file, not {flags:?}"
    );
}

fn table<'a>(doc: &'a mut toml::Table, key: &str) -> &'a mut toml::Table {
    match doc.get_mut(key) {
        Some(toml::Value::Table(t)) => t,
        other => panic!("{EXAMPLE}: [{key}] is not a table: {other:?}"),
    }
}

fn array_of_tables<'a>(
    doc: &'a mut toml::Table,
    key: &str,
) -> impl Iterator<Item = &'a mut toml::Table> {
    match doc.get_mut(key) {
        Some(toml::Value::Array(items)) => items.iter_mut().map(move |item| match item {
            toml::Value::Table(t) => t,
            other => panic!("{EXAMPLE}: [[{key}]] holds {other:?}"),
        }),
        other => panic!("{EXAMPLE}: [[{key}]] is missing: {other:?}"),
    }
}

fn string(table: &toml::Table, key: &str) -> String {
    match table.get(key) {
        Some(toml::Value::String(s)) => s.clone(),
        other => panic!("{EXAMPLE}: `{key}` is not a string: {other:?} in {table:?}"),
    }
}

/// Replaces an existing string value (a key the example does not have is a test bug).
fn set_string(table: &mut toml::Table, key: &str, value: &str) {
    assert!(
        matches!(table.get(key), Some(toml::Value::String(_))),
        "{EXAMPLE}: `{key}` is not a string in {table:?}"
    );
    table.insert(key.to_string(), toml::Value::String(value.to_string()));
}

// ---------------------------------------------------------------------------------------------
// Running it
// ---------------------------------------------------------------------------------------------

/// node and the pinned servers' bins; `None` (SKIP) without node outside CI.
fn node_bins() -> Option<PathBuf> {
    require(Tool::Node)?;
    let bins = servers_dir().join("node_modules/.bin");
    for bin in [
        "desktop-commander",
        "mcp-server-filesystem",
        "mcp-server-postgres",
        "mcp-server-github",
        "mcp-server-memory",
        "mcp-server-brave-search",
        "mcp-server-slack",
        "mcp-server-puppeteer",
    ] {
        assert!(
            bins.join(bin).is_file(),
            "{} is missing: run scripts/install-deps.sh to install the pinned MCP servers",
            bins.join(bin).display()
        );
    }
    Some(bins)
}

/// Starts the daemon on the edited example with stand-in secrets; `unset` names variables
/// removed from its environment (`env -u`, so none leaks in from the test's own).
fn start_daemon(sandbox: &Sandbox, pg: &Postgres, bins: &Path, unset: &[&str]) -> Daemon {
    let path = format!(
        "{}:{}",
        bins.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let dsn = pg.url("postgres");
    let secrets = [
        ("PG_DSN", dsn.as_str()),
        ("GITHUB_PERSONAL_ACCESS_TOKEN", "stand-in-github-token"),
        ("BRAVE_API_KEY", "stand-in-brave-key"),
        ("SLACK_BOT_TOKEN", "xoxb-stand-in"),
        ("SLACK_TEAM_ID", "T00STANDIN"),
    ];
    let mut env: Vec<(&str, &str)> = secrets
        .into_iter()
        .filter(|(name, _)| !unset.contains(name))
        .collect();
    env.push(("PATH", &path));
    let bin = daemon_bin();
    let bin = bin.to_string_lossy();
    let mut wrapper: Vec<&str> = Vec::new();
    for name in unset {
        wrapper.extend(["-u", name]);
    }
    wrapper.push(&bin);
    let env_program = which("env").expect("env (coreutils) on PATH");
    Daemon::start_program(&env_program, &wrapper, &sandbox.playbook(), &[], &env)
}

/// `/api/servers` as JSON.
fn api_servers(daemon: &Daemon) -> Vec<serde_json::Value> {
    let (status, body) = daemon.get("/api/servers");
    assert_eq!(status, 200, "/api/servers: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("/api/servers: {e}: {body}"))
}

/// `/api/dependencies` as JSON.
fn api_dependencies(daemon: &Daemon) -> Vec<serde_json::Value> {
    let (status, body) = daemon.get("/api/dependencies");
    assert_eq!(status, 200, "/api/dependencies: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("/api/dependencies: {e}: {body}"))
}

fn entry<'a>(
    entries: &'a [serde_json::Value],
    name: &str,
) -> Result<&'a serde_json::Value, String> {
    entries
        .iter()
        .find(|e| e["name"] == name)
        .ok_or_else(|| format!("{name} is not listed"))
}

/// `Ok` when `server` is HEALTHY on /metrics and on /api/servers.
fn healthy(server: &str, scrape: &Scrape, servers: &[serde_json::Value]) -> Result<(), String> {
    let gauge = scrape.value("mcp_server_health_status", &[("server", server)]);
    let row = entry(servers, server)?;
    if gauge != Some(2.0) || row["health"]["status"] != "HEALTHY" {
        return Err(format!(
            "{server}: mcp_server_health_status {gauge:?}, /api/servers {} {} (last probe: {})",
            row["health"]["status"], row["health"]["reasons"], row["last_probe"]["failure"]
        ));
    }
    Ok(())
}

/// Waits (bounded) until every server in `servers` is HEALTHY and postgres's `SELECT 1` canary
/// has run; returns the scrape that showed it.
fn wait_healthy(daemon: &Daemon, servers: &[&str]) -> Scrape {
    eventually(ALL_HEALTHY_WITHIN, Duration::from_millis(500), || {
        let scrape = daemon.scrape();
        let rows = api_servers(daemon);
        let not_yet: Vec<String> = servers
            .iter()
            .filter_map(|s| healthy(s, &scrape, &rows).err())
            .collect();
        if !not_yet.is_empty() {
            return Err(not_yet.join("\n"));
        }
        let canary = scrape.sum(
            "mcp_tool_execution_duration_seconds_count",
            &[("server", "postgres"), ("tool", "query")],
        );
        if canary < 1.0 {
            return Err(format!("postgres's SELECT 1 has not run yet ({canary})"));
        }
        Ok(scrape)
    })
}

/// The playbook's services, or `None` (SKIP) when node or PostgreSQL is missing outside CI.
fn services() -> Option<(Sandbox, Postgres, PathBuf)> {
    let bins = node_bins()?;
    let pg = spawn_postgres()?;
    let sandbox = Sandbox::new();
    sandbox.seed_desktop_commander_chrome();
    Some((sandbox, pg, bins))
}

#[test]
fn the_shipped_playbook_runs_all_eight_servers_healthy() {
    let Some((sandbox, pg, bins)) = services() else {
        return;
    };
    let daemon = start_daemon(&sandbox, &pg, &bins, &[]);
    // Restarts are not judged here: on a busy machine a cold desktop-commander can miss the
    // example's 10 s handshake timeout once, and its restart is the supervision working.
    wait_healthy(&daemon, &SERVERS);

    let dependencies = eventually(ALL_HEALTHY_WITHIN, Duration::from_millis(500), || {
        let deps = api_dependencies(&daemon);
        for name in ["pg", "github-api", "brave-api", "logs-dir", "tmp"] {
            let dep = entry(&deps, name)?;
            if dep["status"] != "HEALTHY" {
                return Err(format!("{name}: {} {}", dep["status"], dep["reason"]));
            }
        }
        Ok(deps)
    });
    assert_eq!(dependencies.len(), 5, "{dependencies:?}");
    // The API checks reached the stand-ins, with the secrets the example sends them.
    let github = sandbox.github.heads();
    assert!(
        github
            .iter()
            .any(|h| h.starts_with("HEAD / ") && h.contains("Bearer stand-in-github-token")),
        "{github:?}"
    );
    let brave = sandbox.brave.heads();
    assert!(
        brave
            .iter()
            .any(|h| h.starts_with("GET /res/v1/web/search?q=test&count=1 ")
                && h.to_ascii_lowercase()
                    .contains("x-subscription-token: stand-in-brave-key")),
        "{brave:?}"
    );
}

#[test]
fn without_brave_api_key_brave_search_is_misconfigured_not_crash_looping() {
    let Some((sandbox, pg, bins)) = services() else {
        return;
    };
    let daemon = start_daemon(&sandbox, &pg, &bins, &["BRAVE_API_KEY"]);
    let others: Vec<&str> = SERVERS
        .into_iter()
        .filter(|s| *s != "brave-search")
        .collect();
    wait_healthy(&daemon, &others);

    // Several probe attempts of brave-search, however long its first ones took.
    let scrape = eventually(ALL_HEALTHY_WITHIN, Duration::from_millis(500), || {
        let scrape = daemon.scrape();
        let attempts = scrape.sum("mcp_probes_total", &[("server", "brave-search")]);
        if attempts < MIN_ATTEMPTS {
            return Err(format!("{attempts} probe attempts of brave-search so far"));
        }
        Ok(scrape)
    });
    let brave = [("server", "brave-search")];
    assert_eq!(scrape.value("mcp_server_health_status", &brave), Some(0.0));
    assert_eq!(scrape.sum("mcp_server_restarts_total", &brave), 0.0);
    assert_eq!(scrape.value("mcp_server_crash_looping", &brave), Some(0.0));
    let attempts = scrape.sum("mcp_probes_total", &brave);
    assert_eq!(
        scrape.sum(
            "mcp_probe_failures_total",
            &[("server", "brave-search"), ("class", "misconfigured")]
        ),
        attempts,
        "every attempt is a misconfigured failure"
    );

    let rows = api_servers(&daemon);
    let row = entry(&rows, "brave-search").expect("listed");
    assert_eq!(row["health"]["status"], "UNHEALTHY", "{row}");
    let failure = &row["last_probe"]["failure"];
    assert_eq!(failure["class"], "misconfigured", "{row}");
    let reason = failure["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("`BRAVE_API_KEY`") && !reason.contains("crash-looping"),
        "{reason}"
    );
    let supervision = &row["process"]["supervision"];
    assert_eq!(supervision["restarts"], 0, "{row}");
    assert_eq!(supervision["crash_looping"], false, "{row}");
    assert_eq!(supervision["last_exit"], serde_json::Value::Null, "{row}");

    // The other seven are unchanged.
    let scrape = daemon.scrape();
    for server in &others {
        healthy(server, &scrape, &rows).unwrap_or_else(|e| panic!("{e}"));
    }

    // The Brave API check needs the same key: it cannot run, and sends nothing.
    let deps = api_dependencies(&daemon);
    let brave_api = entry(&deps, "brave-api").expect("listed");
    eprintln!(
        "without BRAVE_API_KEY: brave-search {}; brave-api {brave_api}",
        row["health"]
    );
    assert_eq!(brave_api["status"], "UNKNOWN", "{brave_api}");
    assert!(
        brave_api["reason"]
            .as_str()
            .is_some_and(|r| r.contains("`BRAVE_API_KEY`")),
        "{brave_api}"
    );
    assert_eq!(sandbox.brave.heads(), Vec::<String>::new());
}

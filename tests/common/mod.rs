//! Shared harness for the integration tests: paths to the pinned MCP servers, child processes
//! that are always reaped, the daemon under test, a Prometheus text-format parser, and
//! `eventually` for waiting on conditions.
//!
//! Every test file does `mod common;`. Each test binary uses only part of this module, so dead
//! code is allowed here.
//!
//! Conventions kept here: all traffic on 127.0.0.1, ports from the kernel (no fixed ports),
//! every wait bounded, and a tool CI installs is a hard failure in CI but a printed skip elsewhere.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long a spawned MCP server may take to accept TCP connections.
pub const SERVER_START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the daemon may take to print its listening address.
pub const DAEMON_START_TIMEOUT: Duration = Duration::from_secs(30);
/// Default deadline for one HTTP request made by the harness.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest HTTP response body the harness reads.
pub const HTTP_MAX_BODY: usize = 16 * 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Paths
// ---------------------------------------------------------------------------------------------

/// The repository root (the crate's manifest directory).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `mcp-servers/`: the pinned npm reference servers and the Python venv live here.
pub fn servers_dir() -> PathBuf {
    repo_root().join("mcp-servers")
}

/// Entry point of a pinned npm reference server, e.g. `"everything"` ->
/// `mcp-servers/node_modules/@modelcontextprotocol/server-everything/dist/index.js`.
///
/// Panics with a hint to run `scripts/install-deps.sh` when the package is not installed.
pub fn node_bin(pkg_short: &str) -> PathBuf {
    let path = servers_dir()
        .join("node_modules/@modelcontextprotocol")
        .join(format!("server-{pkg_short}"))
        .join("dist/index.js");
    assert!(
        path.is_file(),
        "{} is missing: run scripts/install-deps.sh to install the pinned MCP servers",
        path.display()
    );
    path
}

/// The Python interpreter of `mcp-servers/.venv`, which has the pinned MCP Python SDK.
///
/// Panics with a hint to run `scripts/install-deps.sh` when the venv does not exist.
pub fn python_bin() -> PathBuf {
    let path = servers_dir().join(".venv/bin/python");
    assert!(
        path.exists(),
        "{} is missing: run scripts/install-deps.sh to create the Python venv",
        path.display()
    );
    path
}

/// `tests/fixtures/<name>`; panics if it does not exist.
pub fn fixture(name: &str) -> PathBuf {
    let path = repo_root().join("tests/fixtures").join(name);
    assert!(path.exists(), "fixture {} does not exist", path.display());
    path
}

// ---------------------------------------------------------------------------------------------
// Tools and environment
// ---------------------------------------------------------------------------------------------

/// True when missing test tools must fail the test: `CI=true` (or `1`), or
/// `MCP_EXPORTER_TEST_DEPS=require`.
pub fn tools_required() -> bool {
    let ci = std::env::var("CI").unwrap_or_default();
    let deps = std::env::var("MCP_EXPORTER_TEST_DEPS").unwrap_or_default();
    ci.eq_ignore_ascii_case("true") || ci == "1" || deps == "require"
}

/// Finds `name` on `PATH`.
///
/// If it is missing: in CI (see [`tools_required`]) panics loudly, because CI installs every
/// tool the tests use; elsewhere prints `SKIP: <name> not installed` and returns `None`, and the
/// caller returns early.
pub fn require_tool(name: &str) -> Option<PathBuf> {
    if let Some(path) = which(name) {
        return Some(path);
    }
    if tools_required() {
        panic!(
            "\n\n*** REQUIRED TOOL MISSING: `{name}` is not on PATH ***\n\
             CI must install it (scripts/install-deps.sh); this test does not skip in CI.\n\n"
        );
    }
    eprintln!("SKIP: {name} not installed (run scripts/install-deps.sh as root to install it)");
    None
}

/// Looks `name` up on `PATH` like a shell would; `None` if not found.
pub fn which(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| {
            candidate
                .metadata()
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

/// A TCP port that was free on 127.0.0.1 a moment ago (bound to port 0, read, released).
///
/// Another process may take it before it is used; spawn helpers retry with a new port when the
/// child exits before it listens.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 for a free port");
    listener
        .local_addr()
        .expect("local_addr of a bound listener")
        .port()
}

// ---------------------------------------------------------------------------------------------
// Waiting
// ---------------------------------------------------------------------------------------------

/// Calls `check` every `poll_interval` until it returns `Ok`, and returns that value.
///
/// Panics after `timeout` with the last error `check` returned. Tests use this instead of
/// sleeping a fixed time.
pub fn eventually<T, F>(timeout: Duration, poll_interval: Duration, mut check: F) -> T
where
    F: FnMut() -> Result<T, String>,
{
    let start = Instant::now();
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let err = match check() {
            Ok(value) => return value,
            Err(err) => err,
        };
        if start.elapsed() >= timeout {
            panic!(
                "eventually: condition not met after {timeout:?} ({attempts} attempts); last error: {err}"
            );
        }
        thread::sleep(poll_interval.min(timeout.saturating_sub(start.elapsed())));
    }
}

// ---------------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------------

/// Output of a child process collected by reader threads, so the child never blocks on a full
/// pipe and a failing test can show what the child printed.
#[derive(Clone, Default)]
pub struct OutputBuffer(Arc<Mutex<String>>);

impl OutputBuffer {
    /// Starts a thread that appends every line from `reader` to the buffer until EOF.
    fn capture(&self, reader: impl Read + Send + 'static) {
        let buf = Arc::clone(&self.0);
        thread::spawn(move || {
            let mut reader = BufReader::new(reader);
            let mut line = Vec::new();
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let text = String::from_utf8_lossy(&line);
                        let mut guard = buf.lock().unwrap_or_else(|e| e.into_inner());
                        guard.push_str(&text);
                        if !text.ends_with('\n') {
                            guard.push('\n');
                        }
                    }
                }
            }
        });
    }

    /// Everything captured so far.
    pub fn text(&self) -> String {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A spawned child that is killed (SIGKILL to its whole process group) and reaped on drop.
///
/// Spawn the command with [`spawn_guarded`] so the child leads its own process group and its
/// descendants die with it.
pub struct ChildGuard {
    child: Child,
    name: String,
    output: OutputBuffer,
}

impl ChildGuard {
    /// Process id of the child (also its process group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the child printed on stdout and stderr so far (interleaved by line).
    pub fn output(&self) -> String {
        self.output.text()
    }

    /// `Some(status)` if the child has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Mutable access to the underlying child.
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        kill_group(self.child.id(), libc::SIGKILL);
        if wait_timeout(&mut self.child, Duration::from_secs(5)).is_none() {
            eprintln!(
                "warning: {} (pid {}) not reaped 5 s after SIGKILL",
                self.name,
                self.child.id()
            );
        }
    }
}

/// Spawns `cmd` in its own process group with stdout and stderr captured, and guards it.
/// `name` is used in messages.
pub fn spawn_guarded(name: &str, cmd: &mut Command) -> ChildGuard {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("failed to spawn {name} ({cmd:?}): {e}"));
    let output = OutputBuffer::default();
    if let Some(out) = child.stdout.take() {
        output.capture(out);
    }
    if let Some(err) = child.stderr.take() {
        output.capture(err);
    }
    ChildGuard {
        child,
        name: name.to_string(),
        output,
    }
}

/// Sends `signal` to the process group led by `pgid`; errors (already gone) are ignored.
pub fn kill_group(pgid: u32, signal: libc::c_int) {
    if let Ok(pgid) = libc::pid_t::try_from(pgid)
        && pgid > 0
    {
        // SAFETY: kill(2) with a negative pid signals a process group; no memory involved.
        unsafe {
            libc::kill(-pgid, signal);
        }
    }
}

/// Sends `signal` to the single process `pid`; errors (already gone) are ignored.
pub fn kill_pid(pid: u32, signal: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid)
        && pid > 0
    {
        // SAFETY: kill(2) on one process id; no memory involved.
        unsafe {
            libc::kill(pid, signal);
        }
    }
}

/// Waits up to `timeout` for `child` to exit; `None` if it is still running.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) => {}
            Err(_) => return None,
        }
        if start.elapsed() >= timeout {
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// True while a process with this pid exists and is not a zombie.
pub fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => parse_proc_stat(&stat).is_some_and(|(state, _)| state != 'Z'),
        Err(_) => false,
    }
}

/// Pids whose parent is `ppid`, read from `/proc/*/stat`, sorted.
pub fn child_pids_of(ppid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = entries
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| parse_proc_stat(&stat))
                .is_some_and(|(_, parent)| parent == ppid)
        })
        .collect();
    pids.sort_unstable();
    pids
}

/// (state, ppid) from the text of `/proc/<pid>/stat`. The command name may contain spaces and
/// parentheses, so fields are counted after the last `)`.
fn parse_proc_stat(stat: &str) -> Option<(char, u32)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Waits (bounded) until 127.0.0.1:`port` accepts TCP. Returns `Err` with the reason if the
/// child exits first or the deadline passes.
fn wait_for_port(guard: &mut ChildGuard, port: u16, timeout: Duration) -> Result<(), String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let start = Instant::now();
    loop {
        if let Some(status) = guard.try_wait() {
            return Err(format!("exited with {status} before listening on {addr}"));
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if start.elapsed() >= timeout {
            return Err(format!("did not accept TCP on {addr} within {timeout:?}"));
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Starts a server on a fresh port with `make_cmd(port)` and waits until it accepts TCP.
/// Retries with another port (3 tries) when the child exits early, which is what happens when
/// another process took the port between [`free_port`] and the child's bind.
fn spawn_listening(name: &str, make_cmd: impl Fn(u16) -> Command) -> (ChildGuard, u16) {
    let mut failures = Vec::new();
    for _ in 0..3 {
        let port = free_port();
        let mut guard = spawn_guarded(name, &mut make_cmd(port));
        match wait_for_port(&mut guard, port, SERVER_START_TIMEOUT) {
            Ok(()) => return (guard, port),
            Err(err) => {
                let exited = guard.try_wait().is_some();
                failures.push(format!("{err}; output:\n{}", guard.output()));
                if !exited {
                    break; // still running but not listening: another try would not help
                }
            }
        }
    }
    panic!("{name} failed to start:\n{}", failures.join("\n---\n"));
}

/// Starts the npm "everything" reference server over HTTP on 127.0.0.1 and a fresh port.
///
/// `mode` is `"streamableHttp"` (endpoint `/mcp`) or `"sse"` (endpoints `/sse` and `/message`).
/// Runs `node --require tests/fixtures/loopback.cjs <everything>/dist/index.js <mode>` with
/// `PORT` set, in its own process group; returns once the port accepts TCP (at most 20 s).
pub fn spawn_http_everything(mode: &str) -> (ChildGuard, u16) {
    spawn_listening(&format!("server-everything {mode}"), |port| {
        everything_http_command(mode, port)
    })
}

/// Like [`spawn_http_everything`] on a given port (e.g. to restart a server where it was).
pub fn spawn_http_everything_on(mode: &str, port: u16) -> ChildGuard {
    let mut guard = spawn_guarded(
        &format!("server-everything {mode}"),
        &mut everything_http_command(mode, port),
    );
    if let Err(err) = wait_for_port(&mut guard, port, SERVER_START_TIMEOUT) {
        panic!(
            "server-everything {mode} on port {port}: {err}\n{}",
            guard.output()
        );
    }
    guard
}

fn everything_http_command(mode: &str, port: u16) -> Command {
    assert!(
        mode == "streamableHttp" || mode == "sse",
        "spawn_http_everything: mode must be \"streamableHttp\" or \"sse\", got {mode:?}"
    );
    let node = which("node").expect("node is not on PATH; it is required for the MCP servers");
    let mut cmd = Command::new(&node);
    cmd.arg("--require")
        .arg(fixture("loopback.cjs"))
        .arg(node_bin("everything"))
        .arg(mode)
        .env("PORT", port.to_string())
        .current_dir(servers_dir());
    cmd
}

/// Starts `tests/fixtures/hang_server.py`: accepts TCP connections on 127.0.0.1 and never answers.
pub fn spawn_hang_server() -> (ChildGuard, u16) {
    let python = python_bin();
    let script = fixture("hang_server.py");
    spawn_listening("hang_server", |port| {
        let mut cmd = Command::new(&python);
        cmd.arg(&script).arg(port.to_string());
        cmd
    })
}

/// Starts `tests/fixtures/py_modern_server.py` (Python SDK, modern era) over HTTP on 127.0.0.1
/// and a fresh port; endpoint `/mcp`.
///
/// `mode` is `"http"` (stateful streamable HTTP), `"stateless"` or `"json"` (JSON responses
/// instead of SSE). Returns once the port accepts TCP (at most 20 s).
pub fn spawn_py_modern(mode: &str) -> (ChildGuard, u16) {
    assert!(
        matches!(mode, "http" | "stateless" | "json"),
        "spawn_py_modern: mode must be \"http\", \"stateless\" or \"json\", got {mode:?} \
         (for stdio, run python_bin() with the fixture yourself)"
    );
    let python = python_bin();
    let script = fixture("py_modern_server.py");
    spawn_listening(&format!("py_modern_server {mode}"), |port| {
        let mut cmd = Command::new(&python);
        cmd.arg(&script)
            .arg(mode)
            .arg(port.to_string())
            .env("PYTHONUNBUFFERED", "1")
            .current_dir(servers_dir());
        cmd
    })
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL (a throwaway server per test, for dependency checks and server-postgres)
// ---------------------------------------------------------------------------------------------

/// A PostgreSQL server of its own, on 127.0.0.1 and a fresh port, with trust authentication for
/// user `postgres`. Killed (process group) and its data directory removed on drop.
pub struct Postgres {
    guard: ChildGuard,
    port: u16,
    dir: tempfile::TempDir,
    postgres: PathBuf,
    data: PathBuf,
}

impl Postgres {
    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://postgres@127.0.0.1:<port>/<db>`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// The data directory (also the Unix socket directory).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What the server and initdb printed so far.
    pub fn output(&self) -> String {
        self.guard.output()
    }

    /// Process id of the postmaster's process group leader.
    pub fn pid(&self) -> u32 {
        self.guard.pid()
    }

    /// Runs SQL with `psql` (which CI installs) and returns its unaligned, tuples-only output.
    pub fn psql(&self, sql: &str) -> Result<String, String> {
        let psql = require_pg_tool("psql").ok_or("psql not installed")?;
        let output = run_bounded(
            Command::new(psql)
                .args([
                    "-X",
                    "-q",
                    "-A",
                    "-t",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-h",
                    "127.0.0.1",
                ])
                .args([
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "postgres",
                    "-d",
                    "postgres",
                ])
                .args(["-c", sql])
                .env("PGCONNECT_TIMEOUT", "5"),
            Duration::from_secs(30),
        )?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
        } else {
            Err(format!(
                "psql {sql:?}: {}\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }
}

/// Finds a PostgreSQL program: on `PATH`, else in the newest `/usr/lib/postgresql/*/bin`
/// (Debian keeps `initdb` and `postgres` there). Missing: panics in CI, else prints SKIP.
pub fn require_pg_tool(name: &str) -> Option<PathBuf> {
    if let Some(path) = which(name) {
        return Some(path);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin").join(name);
            bin.is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    require_tool(name)
}

/// Runs a command to completion within `timeout` (killed after), capturing its output.
pub fn run_bounded(cmd: &mut Command, timeout: Duration) -> Result<std::process::Output, String> {
    let description = format!("{cmd:?}");
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn {description}: {e}"))?;
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(result) => result.map_err(|e| format!("wait for {description}: {e}")),
        Err(_) => {
            kill_pid(pid, libc::SIGKILL);
            Err(format!("{description} did not finish within {timeout:?}"))
        }
    }
}

/// A command that runs `program` as the `postgres` user when the tests run as root (initdb and
/// postgres refuse to run as root), else as the current user.
fn pg_command(program: &Path) -> Command {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

/// Starts a throwaway PostgreSQL server (initdb in a temp dir, then `postgres` on 127.0.0.1 and
/// a fresh port, fsync off) and waits (bounded) until it accepts queries.
///
/// `None` (with a printed SKIP) when PostgreSQL is not installed outside CI; panics in CI.
pub fn spawn_postgres() -> Option<Postgres> {
    let initdb = require_pg_tool("initdb")?;
    let postgres = require_pg_tool("postgres")?;
    require_pg_tool("pg_isready")?;
    let dir = tempfile::Builder::new()
        .prefix("mcp-exporter-pg-")
        .tempdir()
        .expect("create a temp dir for PostgreSQL");
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let status = Command::new("chown")
            .arg("postgres:postgres")
            .arg(dir.path())
            .status()
            .expect("run chown");
        assert!(
            status.success(),
            "chown postgres {}: {status}",
            dir.path().display()
        );
    }
    let data = dir.path().join("data");
    let init = run_bounded(
        pg_command(&initdb)
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .current_dir(dir.path()),
        Duration::from_secs(60),
    )
    .unwrap_or_else(|e| panic!("initdb: {e}"));
    assert!(
        init.status.success(),
        "initdb failed: {}\n{}{}",
        init.status,
        String::from_utf8_lossy(&init.stdout),
        String::from_utf8_lossy(&init.stderr)
    );
    let (guard, port) = spawn_listening("postgres", |port| {
        pg_server_command(&postgres, &data, dir.path(), port)
    });
    let server = Postgres {
        guard,
        port,
        dir,
        postgres,
        data,
    };
    server.wait_ready();
    Some(server)
}

/// The `postgres` command line of [`spawn_postgres`] (also used by [`Postgres::start`]).
fn pg_server_command(postgres: &Path, data: &Path, dir: &Path, port: u16) -> Command {
    let mut cmd = pg_command(postgres);
    cmd.arg("-D")
        .arg(data)
        .arg("-k")
        .arg(dir)
        .args(["-p", &port.to_string()])
        .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
        .args(["-c", "full_page_writes=off", "-c", "synchronous_commit=off"])
        .current_dir(dir);
    cmd
}

// Stop/start and password authentication, for the dependency tests (issue 4).
impl Postgres {
    /// Waits (bounded) until the server accepts queries.
    fn wait_ready(&self) {
        let Some(pg_isready) = require_pg_tool("pg_isready") else {
            return;
        };
        let port = self.port;
        eventually(Duration::from_secs(20), Duration::from_millis(50), || {
            let out = run_bounded(
                Command::new(&pg_isready).args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &port.to_string(),
                    "-t",
                    "2",
                ]),
                Duration::from_secs(5),
            )?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "pg_isready: {}; server output:\n{}",
                    String::from_utf8_lossy(&out.stdout).trim(),
                    self.output()
                ))
            }
        });
    }

    /// Stops the server (fast shutdown, SIGINT) and waits until it has exited; the port is then
    /// closed (connections are refused). [`Postgres::start`] brings it back on the same port.
    pub fn stop(&mut self) {
        // The guard's child may be `runuser`; signal the postmaster itself (first line of
        // postmaster.pid): SIGINT is PostgreSQL's fast shutdown.
        let postmaster = std::fs::read_to_string(self.data.join("postmaster.pid"))
            .ok()
            .and_then(|text| text.lines().next()?.trim().parse::<u32>().ok());
        kill_pid(postmaster.unwrap_or(self.guard.pid()), libc::SIGINT);
        if wait_timeout(self.guard.child_mut(), Duration::from_secs(30)).is_none() {
            kill_group(self.guard.pid(), libc::SIGKILL);
            let _ = wait_timeout(self.guard.child_mut(), Duration::from_secs(5));
        }
    }

    /// Starts the server again on the same port and data directory after [`Postgres::stop`],
    /// and waits until it accepts queries.
    pub fn start(&mut self) {
        let mut guard = spawn_guarded(
            "postgres (restarted)",
            &mut pg_server_command(&self.postgres, &self.data, self.dir.path(), self.port),
        );
        if let Err(err) = wait_for_port(&mut guard, self.port, SERVER_START_TIMEOUT) {
            panic!(
                "postgres restart on port {}: {err}\n{}",
                self.port,
                guard.output()
            );
        }
        self.guard = guard;
        self.wait_ready();
    }

    /// Creates a login role with a password that must authenticate with scram-sha-256 over TCP
    /// (a `pg_hba.conf` line ahead of the trust lines, then a reload). Other users keep trust.
    pub fn add_password_role(&self, role: &str, password: &str) {
        self.psql(&format!("CREATE ROLE {role} LOGIN PASSWORD '{password}'"))
            .unwrap_or_else(|e| panic!("create role {role}: {e}"));
        let hba = self.data.join("pg_hba.conf");
        let old = std::fs::read_to_string(&hba).expect("read pg_hba.conf");
        // Rewriting in place keeps the file's owner (postgres) and mode.
        std::fs::write(
            &hba,
            format!("host all {role} 127.0.0.1/32 scram-sha-256\n{old}"),
        )
        .expect("write pg_hba.conf");
        let reloaded = self
            .psql("SELECT pg_reload_conf()")
            .unwrap_or_else(|e| panic!("reload: {e}"));
        assert_eq!(reloaded, "t", "pg_reload_conf");
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP (plain blocking HTTP/1.1 over std TcpStream; enough for loopback tests)
// ---------------------------------------------------------------------------------------------

/// A response read by [`http_request`].
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status code, e.g. 200.
    pub status: u16,
    /// Header names lowercased, in order.
    pub headers: Vec<(String, String)>,
    /// Body, with chunked transfer encoding removed.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// First header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Body as text (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends one HTTP/1.1 request with `Connection: close` to `addr` and reads the whole response
/// (content-length, chunked, or until EOF), within `timeout` and [`HTTP_MAX_BODY`].
///
/// `headers` are added as given; `Host`, `Connection` and `Content-Length` are set here.
pub fn http_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> Result<HttpResponse, String> {
    http_exchange(addr, method, path, headers, body, timeout, true)
}

/// Like [`http_request`] but returns after the response headers (empty body); for responses
/// that stream forever, such as an SSE endpoint.
pub fn http_request_head(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
) -> Result<HttpResponse, String> {
    http_exchange(addr, method, path, headers, b"", timeout, false)
}

fn http_exchange(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
    read_body: bool,
) -> Result<HttpResponse, String> {
    let deadline = Instant::now() + timeout;
    let sock: SocketAddr = addr
        .parse()
        .map_err(|e| format!("bad address {addr:?}: {e}"))?;
    let mut stream =
        TcpStream::connect_timeout(&sock, timeout).map_err(|e| format!("connect {addr}: {e}"))?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream
        .set_write_timeout(Some(timeout))
        .and_then(|()| stream.write_all(request.as_bytes()))
        .and_then(|()| stream.write_all(body))
        .map_err(|e| format!("write request to {addr}: {e}"))?;

    let mut reader = DeadlineReader {
        stream,
        deadline,
        buf: Vec::new(),
        pos: 0,
    };
    let head = reader.read_until_blank_line()?;
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line from {addr}: {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut response = HttpResponse {
        status,
        headers,
        body: Vec::new(),
    };
    if !read_body {
        return Ok(response);
    }
    let chunked = response
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let length = response
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok());
    response.body = if chunked {
        reader.read_chunked()?
    } else if let Some(len) = length {
        if len > HTTP_MAX_BODY {
            return Err(format!(
                "response body of {len} bytes exceeds {HTTP_MAX_BODY}"
            ));
        }
        reader.read_exact_n(len)?
    } else {
        reader.read_to_eof()?
    };
    Ok(response)
}

/// Buffered reads from a socket that fail once a deadline passes.
struct DeadlineReader {
    stream: TcpStream,
    deadline: Instant,
    buf: Vec<u8>,
    pos: usize,
}

impl DeadlineReader {
    /// Reads more bytes into the buffer; `Ok(false)` on EOF.
    fn fill(&mut self) -> Result<bool, String> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("HTTP response not complete before the deadline".into());
        }
        if self.buf.len() - self.pos > HTTP_MAX_BODY {
            return Err(format!("HTTP response exceeds {HTTP_MAX_BODY} bytes"));
        }
        self.stream
            .set_read_timeout(Some(left))
            .map_err(|e| format!("set_read_timeout: {e}"))?;
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => Ok(false),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(true)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                Err("HTTP response not complete before the deadline".into())
            }
            Err(e) => Err(format!("read HTTP response: {e}")),
        }
    }

    fn pending(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    fn read_until_blank_line(&mut self) -> Result<Vec<u8>, String> {
        loop {
            if let Some(i) = find(self.pending(), b"\r\n\r\n") {
                let head = self.pending()[..i].to_vec();
                self.pos += i + 4;
                return Ok(head);
            }
            if !self.fill()? {
                return Err("connection closed before the end of the HTTP headers".into());
            }
        }
    }

    fn read_line(&mut self) -> Result<String, String> {
        loop {
            if let Some(i) = find(self.pending(), b"\r\n") {
                let line = String::from_utf8_lossy(&self.pending()[..i]).into_owned();
                self.pos += i + 2;
                return Ok(line);
            }
            if !self.fill()? {
                return Err("connection closed in the middle of a chunked body".into());
            }
        }
    }

    fn read_exact_n(&mut self, n: usize) -> Result<Vec<u8>, String> {
        while self.pending().len() < n {
            if !self.fill()? {
                return Err(format!(
                    "connection closed after {} of {n} body bytes",
                    self.pending().len()
                ));
            }
        }
        let out = self.pending()[..n].to_vec();
        self.pos += n;
        Ok(out)
    }

    fn read_chunked(&mut self) -> Result<Vec<u8>, String> {
        let mut body = Vec::new();
        loop {
            let line = self.read_line()?;
            let size_text = line.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size_text, 16)
                .map_err(|e| format!("bad chunk size {line:?}: {e}"))?;
            if size == 0 {
                return Ok(body); // trailers, if any, are not needed
            }
            if body.len() + size > HTTP_MAX_BODY {
                return Err(format!("chunked body exceeds {HTTP_MAX_BODY} bytes"));
            }
            body.extend(self.read_exact_n(size)?);
            self.read_exact_n(2)?; // CRLF after the chunk
        }
    }

    fn read_to_eof(&mut self) -> Result<Vec<u8>, String> {
        while self.fill()? {}
        let out = self.pending().to_vec();
        self.pos = self.buf.len();
        Ok(out)
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A JSON-RPC `initialize` request body for the given protocol version.
pub fn initialize_request(protocol_version: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"initialize","params":{{"protocolVersion":"{protocol_version}","capabilities":{{}},"clientInfo":{{"name":"mcp-exporter-tests","version":"0"}}}}}}"#
    )
}

/// POSTs an MCP `initialize` to `http://127.0.0.1:<port><path>` as a streamable-HTTP client
/// would (accepting JSON and SSE) and returns the response.
pub fn post_initialize(port: u16, path: &str) -> Result<HttpResponse, String> {
    let body = initialize_request("2025-06-18");
    http_request(
        &format!("127.0.0.1:{port}"),
        "POST",
        path,
        &[
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
        ],
        body.as_bytes(),
        HTTP_TIMEOUT,
    )
}

// ---------------------------------------------------------------------------------------------
// The daemon under test
// ---------------------------------------------------------------------------------------------

/// Path of the `mcp-exporter` binary Cargo built for these tests.
///
/// Uses `option_env!` so test files that do not start the daemon still compile while the crate
/// has no binary target; panics at run time if there is none.
pub fn daemon_bin() -> PathBuf {
    match option_env!("CARGO_BIN_EXE_mcp-exporter") {
        Some(path) => PathBuf::from(path),
        None => panic!(
            "CARGO_BIN_EXE_mcp-exporter is not set: the crate has no `mcp-exporter` binary target"
        ),
    }
}

/// A running `mcp-exporter serve` on 127.0.0.1 and a kernel-chosen port, with its own temp
/// directory and config file. Dropping it sends SIGTERM, waits 5 s, then SIGKILLs its process
/// group.
pub struct Daemon {
    child: Option<Child>,
    pid: u32,
    addr: String,
    stderr: OutputBuffer,
    stdout: OutputBuffer,
    config_path: PathBuf,
    dir: tempfile::TempDir,
}

impl Daemon {
    /// Starts `mcp-exporter serve --config <dir>/config.toml --listen 127.0.0.1:0` with
    /// `config_toml` as the config. Every `{dir}` in the text is replaced by the daemon's temp
    /// directory (for data files, sockets, fixtures the config points at).
    pub fn start(config_toml: &str) -> Daemon {
        Daemon::start_with(config_toml, &[], &[])
    }

    /// Like [`Daemon::start`], with extra arguments after `serve ...` and extra environment.
    pub fn start_with(config_toml: &str, extra_args: &[&str], env: &[(&str, &str)]) -> Daemon {
        Daemon::start_program(&daemon_bin(), &[], config_toml, extra_args, env)
    }

    /// Like [`Daemon::start_with`] but runs `program program_args... serve ...` instead of the
    /// built binary; the harness self-test uses it with a stand-in daemon.
    pub fn start_program(
        program: &Path,
        program_args: &[&str],
        config_toml: &str,
        extra_args: &[&str],
        env: &[(&str, &str)],
    ) -> Daemon {
        let dir = tempfile::Builder::new()
            .prefix("mcp-exporter-test-")
            .tempdir()
            .expect("create a temp dir for the daemon");
        let config_text = config_toml.replace("{dir}", &dir.path().to_string_lossy());
        let config_path = dir.path().join("config.toml");
        std::fs::write(&config_path, &config_text)
            .unwrap_or_else(|e| panic!("write {}: {e}", config_path.display()));

        let mut cmd = Command::new(program);
        cmd.args(program_args)
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .args(extra_args)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", program.display()));
        let pid = child.id();
        let stderr = OutputBuffer::default();
        let stdout = OutputBuffer::default();
        if let Some(err) = child.stderr.take() {
            stderr.capture(err);
        }
        if let Some(out) = child.stdout.take() {
            stdout.capture(out);
        }
        let mut daemon = Daemon {
            child: Some(child),
            pid,
            addr: String::new(),
            stderr,
            stdout,
            config_path,
            dir,
        };
        daemon.addr = daemon.wait_for_listen_addr(DAEMON_START_TIMEOUT);
        daemon
    }

    /// Waits for the stderr line `listening on http://ADDR`; panics with the output if the
    /// daemon exits or the deadline passes.
    fn wait_for_listen_addr(&mut self, timeout: Duration) -> String {
        let start = Instant::now();
        loop {
            let text = self.stderr.text();
            if let Some(addr) =
                parse_listen_addr(&text).or_else(|| parse_listen_addr(&self.stdout.text()))
            {
                return addr;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "mcp-exporter exited with {status} before printing `listening on http://...`\n\
                     config:\n{}\nstderr:\n{}\nstdout:\n{}",
                    self.config_text(),
                    self.stderr(),
                    self.stdout()
                );
            }
            if start.elapsed() >= timeout {
                panic!(
                    "mcp-exporter printed no `listening on http://...` within {timeout:?}\n\
                     stderr:\n{}\nstdout:\n{}",
                    self.stderr(),
                    self.stdout()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The address the daemon listens on, e.g. `127.0.0.1:41234`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// `http://<addr><path>`; `path` starts with `/`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// GET `path`; returns (status, body). Panics if the request fails at the HTTP level.
    pub fn get(&self, path: &str) -> (u16, String) {
        let response = self.request("GET", path, &[], b"");
        (response.status, response.text())
    }

    /// Any request to the daemon; panics with the daemon's stderr if it fails at the HTTP level.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> HttpResponse {
        http_request(&self.addr, method, path, headers, body, HTTP_TIMEOUT).unwrap_or_else(|e| {
            panic!(
                "{method} {} failed: {e}\ndaemon stderr:\n{}",
                self.url(path),
                self.stderr()
            )
        })
    }

    /// GET `/metrics` and parse it; panics on a non-200 status or unparsable text.
    pub fn scrape(&self) -> Scrape {
        let (status, body) = self.get("/metrics");
        assert_eq!(status, 200, "GET /metrics returned {status}:\n{body}");
        Scrape::parse(&body).unwrap_or_else(|e| panic!("/metrics does not parse: {e}\n{body}"))
    }

    /// Everything the daemon wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.text()
    }

    /// Everything the daemon wrote to stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout.text()
    }

    /// Process id of the daemon (also its process group id).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Direct children of the daemon (e.g. stdio MCP servers it spawned), from `/proc`.
    pub fn child_pids(&self) -> Vec<u32> {
        child_pids_of(self.pid)
    }

    /// Every descendant of the daemon (children, grandchildren, ...), found through /proc.
    pub fn descendant_pids(&self) -> Vec<u32> {
        let mut found = Vec::new();
        let mut frontier = vec![self.pid];
        while let Some(pid) = frontier.pop() {
            for child in child_pids_of(pid) {
                if !found.contains(&child) {
                    found.push(child);
                    frontier.push(child);
                }
            }
        }
        found
    }

    /// Replaces the config file's content (every `{dir}` becomes the daemon's temp dir).
    pub fn rewrite_config(&self, config_toml: &str) {
        let text = config_toml.replace("{dir}", &self.dir.path().display().to_string());
        std::fs::write(&self.config_path, text)
            .unwrap_or_else(|e| panic!("rewrite {}: {e}", self.config_path.display()));
    }

    /// Sends `signal` (e.g. `libc::SIGHUP`) to the daemon process.
    pub fn signal(&self, signal: libc::c_int) {
        kill_pid(self.pid, signal);
    }

    /// The daemon's temp directory; removed when the `Daemon` is dropped.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Path of the config file the daemon was started with.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// Text of the config file (after `{dir}` substitution).
    pub fn config_text(&self) -> String {
        std::fs::read_to_string(&self.config_path).unwrap_or_default()
    }

    /// Sends SIGTERM to the daemon (not its group) and waits up to 10 s for it to exit.
    /// Panics, after killing the group, if it does not exit in time.
    pub fn stop(&mut self) -> ExitStatus {
        self.stop_within(Duration::from_secs(10))
    }

    /// Like [`Daemon::stop`] with a custom deadline.
    pub fn stop_within(&mut self, timeout: Duration) -> ExitStatus {
        let Some(mut child) = self.child.take() else {
            panic!("Daemon::stop called twice");
        };
        kill_pid(self.pid, libc::SIGTERM);
        match wait_timeout(&mut child, timeout) {
            Some(status) => status,
            None => {
                kill_group(self.pid, libc::SIGKILL);
                let _ = wait_timeout(&mut child, Duration::from_secs(5));
                panic!(
                    "mcp-exporter did not exit within {timeout:?} of SIGTERM\nstderr:\n{}",
                    self.stderr()
                );
            }
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_pid(self.pid, libc::SIGTERM);
            if wait_timeout(&mut child, Duration::from_secs(5)).is_none() {
                kill_group(self.pid, libc::SIGKILL);
                let _ = wait_timeout(&mut child, Duration::from_secs(5));
            }
        }
        // Whatever the daemon left in its group (a stdio server it failed to reap) goes too.
        kill_group(self.pid, libc::SIGKILL);
        if thread::panicking() {
            eprintln!(
                "--- mcp-exporter stderr (pid {}) ---\n{}",
                self.pid,
                self.stderr.text()
            );
        }
    }
}

/// Finds `listening on http://ADDR` in `text` and returns `ADDR`.
pub fn parse_listen_addr(text: &str) -> Option<String> {
    const MARK: &str = "listening on http";
    text.lines().find_map(|line| {
        let rest = &line[line.find(MARK)? + MARK.len()..];
        // Issue 7: `https://` when --web.config.file enables TLS.
        let rest = rest.strip_prefix('s').unwrap_or(rest).strip_prefix("://")?;
        let addr: String = rest
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '"' && *c != '/')
            .collect();
        (!addr.is_empty()).then_some(addr)
    })
}

// ---------------------------------------------------------------------------------------------
// Prometheus text format
// ---------------------------------------------------------------------------------------------

/// One sample line of a scrape.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name as written on the line (with `_total`, `_bucket`, ... suffixes).
    pub name: String,
    /// Label pairs, unescaped.
    pub labels: BTreeMap<String, String>,
    /// The value; `+Inf`, `-Inf` and `NaN` included.
    pub value: f64,
}

/// A parsed `/metrics` response (Prometheus text format 0.0.4 or OpenMetrics text).
#[derive(Debug, Clone)]
pub struct Scrape {
    text: String,
    samples: Vec<Sample>,
    types: BTreeMap<String, String>,
    helps: BTreeMap<String, String>,
}

impl Scrape {
    /// Parses exposition text; `Err` names the line that does not parse.
    pub fn parse(text: &str) -> Result<Scrape, String> {
        let mut samples = Vec::new();
        let mut types = BTreeMap::new();
        let mut helps = BTreeMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() {
                continue;
            }
            if let Some(comment) = line.strip_prefix('#') {
                let mut parts = comment.trim_start().splitn(3, ' ');
                match (parts.next(), parts.next(), parts.next()) {
                    (Some("TYPE"), Some(name), Some(kind)) => {
                        types.insert(name.to_string(), kind.trim().to_string());
                    }
                    (Some("HELP"), Some(name), help) => {
                        helps.insert(name.to_string(), help.unwrap_or_default().to_string());
                    }
                    _ => {}
                }
                continue;
            }
            let sample = parse_sample(line).map_err(|e| format!("line {}: {e}: {raw:?}", i + 1))?;
            samples.push(sample);
        }
        Ok(Scrape {
            text: text.to_string(),
            samples,
            types,
            helps,
        })
    }

    /// The raw text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// All samples in order.
    pub fn all(&self) -> &[Sample] {
        &self.samples
    }

    /// Value of the one sample named `name` whose labels include all of `labels` (others are
    /// ignored). `None` if no sample matches; panics if more than one does, since the test
    /// then asks an ambiguous question (add labels, or use [`Scrape::sum`]).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let matching: Vec<&Sample> = self.matching(name, labels).collect();
        match matching.as_slice() {
            [] => None,
            [one] => Some(one.value),
            many => panic!(
                "Scrape::value({name}, {labels:?}) is ambiguous: {} samples match: {:?}",
                many.len(),
                many.iter().map(|s| &s.labels).collect::<Vec<_>>()
            ),
        }
    }

    /// Sum of the values of all samples named `name` whose labels include `labels`
    /// (0 when none match).
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).map(|s| s.value).sum()
    }

    /// Every sample named `name`: (labels, value).
    pub fn samples(&self, name: &str) -> Vec<(BTreeMap<String, String>, f64)> {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .map(|s| (s.labels.clone(), s.value))
            .collect()
    }

    /// True if at least one sample is named `name`.
    pub fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|s| s.name == name)
    }

    /// Names of all samples.
    pub fn names(&self) -> BTreeSet<String> {
        self.samples.iter().map(|s| s.name.clone()).collect()
    }

    /// The `# TYPE` of a metric family (e.g. `"counter"`), by family name.
    pub fn metric_type(&self, family: &str) -> Option<&str> {
        self.types.get(family).map(String::as_str)
    }

    /// The `# HELP` text of a metric family, as written (escapes not undone).
    pub fn help(&self, family: &str) -> Option<&str> {
        self.helps.get(family).map(String::as_str)
    }

    fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).is_some_and(|have| have == v))
        })
    }
}

/// Parses `name{labels} value [timestamp]`.
fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .ok_or("no value after the metric name")?;
    let name = &line[..name_end];
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        || name.starts_with(|c: char| c.is_ascii_digit())
    {
        return Err(format!("bad metric name {name:?}"));
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(after_brace) = rest.strip_prefix('{') {
        rest = parse_labels(after_brace, &mut labels)?;
    }
    let mut fields = rest.split_whitespace();
    let value_text = fields.next().ok_or("missing value")?;
    let value = parse_value(value_text)?;
    if let Some(ts) = fields.next() {
        if ts == "#" {
            // OpenMetrics exemplar follows; not needed.
        } else {
            ts.parse::<f64>()
                .map_err(|_| format!("bad timestamp {ts:?}"))?;
        }
    }
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// Parses `k="v",k2="v2"}` (after the opening brace) into `labels`; returns the text after `}`.
fn parse_labels<'a>(
    mut s: &'a str,
    labels: &mut BTreeMap<String, String>,
) -> Result<&'a str, String> {
    loop {
        s = s.trim_start();
        if let Some(after) = s.strip_prefix('}') {
            return Ok(after);
        }
        let eq = s.find('=').ok_or("label without `=`")?;
        let key = s[..eq].trim();
        if key.is_empty()
            || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            || key.starts_with(|c: char| c.is_ascii_digit())
        {
            return Err(format!("bad label name {key:?}"));
        }
        s = s[eq + 1..].trim_start();
        s = s
            .strip_prefix('"')
            .ok_or_else(|| format!("label {key} value is not quoted"))?;
        let mut value = String::new();
        let mut chars = s.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err(format!("unterminated value of label {key}")),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, other)) => {
                        value.push('\\');
                        value.push(other);
                    }
                    None => return Err(format!("unterminated value of label {key}")),
                },
                Some((_, c)) => value.push(c),
            }
        };
        if labels.insert(key.to_string(), value).is_some() {
            return Err(format!("duplicate label {key}"));
        }
        s = s[end + 1..].trim_start();
        if let Some(after) = s.strip_prefix(',') {
            s = after;
        } else if !s.starts_with('}') {
            return Err(format!("expected `,` or `}}` after label {key}"));
        }
    }
}

/// Parses a sample value, including `+Inf`, `-Inf`, `Inf` and `NaN`.
fn parse_value(text: &str) -> Result<f64, String> {
    match text {
        "+Inf" | "Inf" | "+inf" | "inf" => Ok(f64::INFINITY),
        "-Inf" | "-inf" => Ok(f64::NEG_INFINITY),
        "NaN" | "nan" => Ok(f64::NAN),
        _ => text
            .parse::<f64>()
            .map_err(|_| format!("bad sample value {text:?}")),
    }
}

/// Runs `promtool check metrics` on `text` (stdin), bounded to 30 s.
///
/// `Err` carries promtool's complaints. If promtool is not installed: panics in CI; elsewhere
/// prints a SKIP line and returns `Ok(())` (see [`require_tool`]).
pub fn promtool_check_metrics(text: &str) -> Result<(), String> {
    let Some(promtool) = require_tool("promtool") else {
        return Ok(());
    };
    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn {}: {e}", promtool.display()))?;
    let pid = child.id();
    if let Some(mut stdin) = child.stdin.take() {
        let text = text.to_string();
        // A writer thread, so a promtool that stops reading cannot block the test.
        thread::spawn(move || {
            let _ = stdin.write_all(text.as_bytes());
        });
    }
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => return Err(format!("waiting for promtool: {e}")),
        Err(_) => {
            kill_pid(pid, libc::SIGKILL);
            return Err("promtool check metrics did not finish within 30 s".into());
        }
    };
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "promtool check metrics: {}\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

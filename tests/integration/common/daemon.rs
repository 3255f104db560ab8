//! The daemon under test: the built `mcp-exporter` binary run as `serve` on 127.0.0.1 and a
//! kernel-chosen port, with its own temp directory and config file, its output collected, its
//! `/metrics` scraped, and its process group killed on drop.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::http::{HTTP_TIMEOUT, HttpResponse, http_request};
use super::process_table::{child_pids_of, descendants_of};
use super::processes::{OutputBuffer, kill_group, kill_pid, wait_timeout};
use super::scrape::Scrape;

/// How long the daemon may take to print its listening address.
pub const DAEMON_START_TIMEOUT: Duration = Duration::from_secs(30);

/// Path of the `mcp-exporter` binary Cargo built for these tests.
pub fn daemon_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mcp-exporter"))
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
        // Each daemon's traffic socket in its own directory (docs/traffic.md), so daemons of
        // tests running at once never share /run/mcp-exporter or $XDG_RUNTIME_DIR.
        cmd.env(
            "MCP_EXPORTER_TRAFFIC_SOCKET",
            dir.path().join("traffic.sock"),
        );
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
        descendants_of(self.pid)
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
        // `https://` when --web.config.file enables TLS.
        let rest = rest.strip_prefix('s').unwrap_or(rest).strip_prefix("://")?;
        let addr: String = rest
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '"' && *c != '/')
            .collect();
        (!addr.is_empty()).then_some(addr)
    })
}

#[cfg(test)]
mod tests {
    //! The `Daemon` harness against a stand-in daemon (`tests/fixtures/fake_daemon.py`), so the
    //! harness is known to work independently of the real binary.

    use super::super::paths::fixture;
    use super::super::process_table::pid_alive;
    use super::super::scrape::promtool_check_metrics;
    use super::super::tools::{Tool, require};
    use super::super::wait::eventually;
    use super::*;

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

    /// The stand-in daemon; `None` (the test returns) when python3 is missing.
    fn start_fake(config: &str) -> Option<Daemon> {
        let python = require(Tool::Python3)?;
        let script = fixture("fake_daemon.py");
        let script = script.to_str().expect("fixture path is UTF-8");
        Some(Daemon::start_program(&python, &[script], config, &[], &[]))
    }

    #[test]
    fn daemon_harness_learns_the_address_and_scrapes() {
        let Some(daemon) = start_fake("# config for {dir}\n") else {
            return;
        };
        assert!(daemon.addr().starts_with("127.0.0.1:"), "{}", daemon.addr());
        assert_eq!(
            daemon.url("/metrics"),
            format!("http://{}/metrics", daemon.addr())
        );

        let expected_config = format!("# config for {}\n", daemon.dir().display());
        assert_eq!(daemon.config_text(), expected_config);

        let scrape = daemon.scrape();
        assert_eq!(scrape.value("fake_up", &[("server", "x")]), Some(1.0));
        assert_eq!(
            scrape.value("fake_config_bytes", &[]),
            Some(expected_config.len() as f64)
        );
        promtool_check_metrics(scrape.text()).expect("fake metrics pass promtool");

        eventually(Duration::from_secs(5), Duration::from_millis(20), || {
            let n = daemon
                .scrape()
                .value("fake_scrapes_total", &[])
                .unwrap_or(0.0);
            if n >= 3.0 {
                Ok(())
            } else {
                Err(format!("{n} scrapes"))
            }
        });

        assert_eq!(daemon.get("/health"), (200, "ok\n".to_string()));
        assert_eq!(daemon.get("/nope").0, 404);
        assert!(daemon.stderr().contains("listening on http://"));
    }

    #[test]
    fn daemon_harness_sees_children_and_stops_cleanly() {
        let Some(mut daemon) = start_fake("") else {
            return;
        };
        let children = eventually(Duration::from_secs(5), Duration::from_millis(10), || {
            let pids = daemon.child_pids();
            if pids.is_empty() {
                Err("no child yet".to_string())
            } else {
                Ok(pids)
            }
        });
        assert!(pid_alive(daemon.pid()));
        let status = daemon.stop();
        assert!(status.success(), "fake daemon exited with {status}");
        assert!(!pid_alive(daemon.pid()));
        for pid in children {
            assert!(!pid_alive(pid), "child {pid} outlived the daemon");
        }
    }

    #[test]
    fn daemon_drop_kills_the_process_group() {
        let Some(daemon) = start_fake("") else {
            return;
        };
        let pid = daemon.pid();
        let children = eventually(Duration::from_secs(5), Duration::from_millis(10), || {
            let pids = daemon.child_pids();
            if pids.is_empty() {
                Err("no child yet".to_string())
            } else {
                Ok(pids)
            }
        });
        drop(daemon);
        assert!(!pid_alive(pid));
        eventually(
            Duration::from_secs(5),
            Duration::from_millis(20),
            || match children.iter().find(|p| pid_alive(**p)) {
                Some(p) => Err(format!("child {p} still alive")),
                None => Ok(()),
            },
        );
    }
}

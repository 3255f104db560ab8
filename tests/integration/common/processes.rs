//! Child processes that are always reaped: spawned in their own process group with their output
//! collected, killed (the whole group) on drop, and commands run to completion within a deadline.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::net::{free_port, port_accepts};

/// How long a spawned server may take to accept TCP connections.
pub const SERVER_START_TIMEOUT: Duration = Duration::from_secs(20);

/// Output of a child process collected by reader threads, so the child never blocks on a full
/// pipe and a failing test can show what the child printed.
#[derive(Clone, Default)]
pub struct OutputBuffer(Arc<Mutex<String>>);

impl OutputBuffer {
    /// Starts a thread that appends every line from `reader` to the buffer until EOF.
    pub fn capture(&self, reader: impl Read + Send + 'static) {
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

/// Waits (bounded) until 127.0.0.1:`port` accepts TCP. Returns `Err` with the reason if the
/// child exits first or the deadline passes.
pub fn wait_for_port(guard: &mut ChildGuard, port: u16, timeout: Duration) -> Result<(), String> {
    let start = Instant::now();
    loop {
        if let Some(status) = guard.try_wait() {
            return Err(format!(
                "exited with {status} before listening on 127.0.0.1:{port}"
            ));
        }
        if port_accepts(port, Duration::from_millis(200)) {
            return Ok(());
        }
        if start.elapsed() >= timeout {
            return Err(format!(
                "did not accept TCP on 127.0.0.1:{port} within {timeout:?}"
            ));
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Starts a server on a fresh port with `make_cmd(port)` and waits until it accepts TCP.
/// Retries with another port (3 tries) when the child exits early, which is what happens when
/// another process took the port between [`free_port`] and the child's bind.
pub fn spawn_listening(name: &str, make_cmd: impl Fn(u16) -> Command) -> (ChildGuard, u16) {
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

/// Runs a command to completion within `timeout` (killed after), capturing its output.
pub fn run_bounded(cmd: &mut Command, timeout: Duration) -> Result<Output, String> {
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

#[cfg(test)]
mod tests {
    use super::super::process_table::{child_pids_of, pid_alive};
    use super::super::wait::eventually;
    use super::*;

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

    #[test]
    fn run_bounded_collects_output_and_kills_at_the_deadline() {
        let out = run_bounded(
            Command::new("sh").args(["-c", "echo out; echo err >&2"]),
            Duration::from_secs(10),
        )
        .expect("sh runs");
        assert!(out.status.success());
        assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
        let err = run_bounded(Command::new("sleep").arg("30"), Duration::from_millis(200))
            .expect_err("sleep outlives its deadline");
        assert!(err.contains("did not finish"), "{err}");
    }
}

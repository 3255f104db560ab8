//! Child-process transport: newline-delimited JSON-RPC on the child's stdin/stdout.
//!
//! The child runs in its own process group so shutdown can signal the whole tree
//! (e.g. `npx` -> `node`). Background tasks read stdout into bounded lines and keep a bounded
//! ring of stderr; every wait here has a deadline.

use std::collections::{BTreeMap, VecDeque};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, sleep_until, timeout, timeout_at};

use super::dispatch::{Inbox, Routed};
use super::error::{Heard, McpError};
use super::framing::{Frame, LineFramer};
use super::jsonrpc::RpcErrorObject;
use super::{Limits, WireCounters};

/// How long buffered stdout is still read after the child exited, and how long stderr is
/// drained after exit, before the exit is reported.
const AFTER_EXIT_DRAIN: Duration = Duration::from_millis(300);
/// Most stderr bytes quoted in an [`McpError::Exited`].
const EXIT_STDERR_BYTES: usize = 4096;
/// Size of one read from the child's pipes.
const READ_CHUNK: usize = 64 * 1024;
/// Most complete stderr lines kept between two `take_stderr_lines` calls (oldest dropped).
const MAX_PENDING_STDERR_LINES: usize = 256;
/// Longest stderr line kept; longer lines are cut (and marked with `…`).
const MAX_STDERR_LINE_BYTES: usize = 4096;

/// Splits stderr into complete lines for the history store, bounded in count and length.
#[derive(Debug, Default)]
struct StderrLines {
    partial: Vec<u8>,
    partial_cut: bool,
    lines: VecDeque<String>,
    dropped: u64,
}

impl StderrLines {
    fn push(&mut self, chunk: &[u8]) {
        for piece in chunk.split_inclusive(|b| *b == b'\n') {
            let complete = piece.last() == Some(&b'\n');
            let body = if complete {
                &piece[..piece.len() - 1]
            } else {
                piece
            };
            let room = MAX_STDERR_LINE_BYTES.saturating_sub(self.partial.len());
            if body.len() > room {
                self.partial_cut = true;
            }
            self.partial
                .extend_from_slice(&body[..body.len().min(room)]);
            if complete {
                self.finish_line();
            }
        }
    }

    fn finish_line(&mut self) {
        let mut line = String::from_utf8_lossy(&self.partial).into_owned();
        let trimmed = line.trim_end_matches('\r').len();
        line.truncate(trimmed);
        if self.partial_cut {
            line.push('…');
        }
        self.partial.clear();
        self.partial_cut = false;
        if line.trim().is_empty() {
            return;
        }
        if self.lines.len() >= MAX_PENDING_STDERR_LINES {
            self.lines.pop_front();
            self.dropped += 1;
        }
        self.lines.push_back(line);
    }

    fn take(&mut self) -> Vec<String> {
        self.lines.drain(..).collect()
    }
}

/// Bounded ring of the newest stderr bytes.
#[derive(Debug, Default)]
struct StderrRing {
    bytes: VecDeque<u8>,
    cap: usize,
    lines: StderrLines,
}

impl StderrRing {
    fn push(&mut self, chunk: &[u8]) {
        self.lines.push(chunk);
        let chunk = &chunk[chunk.len().saturating_sub(self.cap)..];
        let overflow = (self.bytes.len() + chunk.len()).saturating_sub(self.cap);
        self.bytes.drain(..overflow.min(self.bytes.len()));
        self.bytes.extend(chunk);
    }

    fn tail(&self, max_bytes: usize) -> String {
        let skip = self.bytes.len().saturating_sub(max_bytes);
        let tail: Vec<u8> = self.bytes.iter().skip(skip).copied().collect();
        String::from_utf8_lossy(&tail).into_owned()
    }
}

/// A running MCP server child process.
#[derive(Debug)]
pub struct StdioTransport {
    command: String,
    child: Child,
    pid: Option<u32>,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<Frame>,
    stdout_task: JoinHandle<()>,
    stderr_task: Option<JoinHandle<()>>,
    stderr: Arc<Mutex<StderrRing>>,
    exit: Option<ExitStatus>,
    stdout_eof: bool,
    shut_down: bool,
    counters: Arc<WireCounters>,
}

/// Variables passed from the daemon's environment to every child, so ordinary programs
/// (`npx`, `uvx`, `python3`) run: nothing else of the exporter's environment reaches a child.
pub const BASELINE_ENV: [&str; 6] = ["PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR"];

/// Sets the child's environment: cleared, then [`BASELINE_ENV`] from the daemon's own, then
/// exactly what the server entry lists (`env`), so the exporter's secrets never reach a child.
fn apply_env(cmd: &mut Command, env: &BTreeMap<String, String>) {
    cmd.env_clear();
    for name in BASELINE_ENV {
        if let Some(value) = std::env::var_os(name) {
            cmd.env(name, value);
        }
    }
    cmd.envs(env);
}

impl StdioTransport {
    /// Spawns the server in its own process group with all three stdio pipes.
    pub fn spawn(
        command: &str,
        args: &[String],
        env: &BTreeMap<String, String>,
        cwd: Option<&PathBuf>,
        limits: &Limits,
        counters: Arc<WireCounters>,
    ) -> Result<Self, McpError> {
        let mut cmd = Command::new(command);
        cmd.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        apply_env(&mut cmd, env);
        if let Some(dir) = cwd {
            cmd.current_dir(dir);
        }
        let mut child = cmd.spawn().map_err(|source| McpError::Spawn {
            command: command.to_string(),
            source,
        })?;
        let pid = child.id();
        let stdin = child.stdin.take();
        let (tx, lines) = mpsc::channel(16);
        let stdout_task = match child.stdout.take() {
            Some(out) => tokio::spawn(read_lines(
                out,
                limits.max_message_bytes,
                tx,
                Arc::clone(&counters),
            )),
            None => tokio::spawn(async {}),
        };
        let stderr = Arc::new(Mutex::new(StderrRing {
            bytes: VecDeque::new(),
            cap: limits.stderr_keep_bytes,
            lines: StderrLines::default(),
        }));
        let stderr_task = child
            .stderr
            .take()
            .map(|err| tokio::spawn(keep_stderr(err, stderr.clone(), Arc::clone(&counters))));
        Ok(StdioTransport {
            command: command.to_string(),
            child,
            pid,
            stdin,
            lines,
            stdout_task,
            stderr_task,
            stderr,
            exit: None,
            stdout_eof: false,
            shut_down: false,
            counters,
        })
    }

    /// The child's PID (also its process group id).
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// The newest `max_bytes` of stderr, lossy UTF-8.
    pub fn stderr_tail(&self, max_bytes: usize) -> String {
        match self.stderr.lock() {
            Ok(ring) => ring.tail(max_bytes),
            Err(poisoned) => poisoned.into_inner().tail(max_bytes),
        }
    }

    /// Complete stderr lines written since the last call, oldest first (at most 256 kept
    /// between calls, each cut at 4 KiB; a trailing partial line waits for its newline).
    pub fn take_stderr_lines(&self) -> Vec<String> {
        match self.stderr.lock() {
            Ok(mut ring) => ring.lines.take(),
            Err(poisoned) => poisoned.into_inner().lines.take(),
        }
    }

    /// False once the child exited or closed its stdout.
    pub fn is_alive(&mut self) -> bool {
        if self.exit.is_none()
            && let Ok(Some(status)) = self.child.try_wait()
        {
            self.exit = Some(status);
        }
        self.exit.is_none() && !self.stdout_eof
    }

    /// Writes one message as a line; fails with `Exited` when the child is gone.
    pub(crate) async fn send(
        &mut self,
        msg: &Value,
        deadline: Instant,
        before_handshake: bool,
    ) -> Result<(), McpError> {
        let mut line = serde_json::to_vec(msg)
            .map_err(|e| McpError::protocol(format!("cannot encode request: {e}")))?;
        line.push(b'\n');
        let Some(stdin) = self.stdin.as_mut() else {
            return Err(McpError::StreamClosed {
                detail: "stdin of the child is already closed".into(),
            });
        };
        let write = async {
            stdin.write_all(&line).await?;
            stdin.flush().await
        };
        match timeout_at(deadline, write).await {
            Ok(Ok(())) => {
                self.counters.sent.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Ok(Err(e)) => {
                // Broken pipe: the child is most likely gone; report how it ended.
                let _ = timeout(AFTER_EXIT_DRAIN, self.wait_exit()).await;
                if self.exit.is_some() {
                    Err(self.exited_error(before_handshake).await)
                } else {
                    Err(McpError::StreamClosed {
                        detail: format!("writing to the child's stdin failed: {e}"),
                    })
                }
            }
            Err(_) => Err(McpError::Timeout {
                method: "write to stdin".into(),
                after: Duration::ZERO,
                heard: Heard::Nothing,
            }),
        }
    }

    /// Writes a message without waiting longer than a short bound; errors are ignored.
    pub(crate) async fn send_best_effort(&mut self, msg: &Value) {
        let deadline = Instant::now() + Duration::from_millis(100);
        let _ = self.send(msg, deadline, false).await;
    }

    /// Sends a request and waits for the response with id `want` until `deadline`.
    /// `Ok(Err(..))` is a JSON-RPC error object for our request.
    pub(crate) async fn roundtrip(
        &mut self,
        msg: &Value,
        want: u64,
        deadline: Instant,
        inbox: &mut Inbox,
        before_handshake: bool,
    ) -> Result<Result<Value, RpcErrorObject>, McpError> {
        self.send(msg, deadline, before_handshake).await?;
        let odd_before = OddCounts::of(&self.counters);
        let mut wait_until = deadline;
        loop {
            let frame = tokio::select! {
                biased;
                frame = self.lines.recv() => frame,
                status = self.child.wait(), if self.exit.is_none() => {
                    if let Ok(status) = status {
                        self.exit = Some(status);
                    }
                    // Read what the child wrote before exiting, then report the exit.
                    wait_until = wait_until.min(Instant::now() + AFTER_EXIT_DRAIN);
                    continue;
                }
                _ = sleep_until(wait_until) => {
                    if self.exit.is_some() {
                        return Err(self.exited_error(before_handshake).await);
                    }
                    if let Some(err) = OddCounts::of(&self.counters).since(odd_before) {
                        return Err(err);
                    }
                    return Err(McpError::Timeout {
                        method: String::new(),
                        after: Duration::ZERO,
                        heard: Heard::Nothing,
                    });
                }
            };
            match frame {
                None => {
                    self.stdout_eof = true;
                    let _ = timeout(AFTER_EXIT_DRAIN, self.wait_exit()).await;
                    if self.exit.is_some() {
                        return Err(self.exited_error(before_handshake).await);
                    }
                    return Err(McpError::StreamClosed {
                        detail: "the child closed its stdout but is still running".into(),
                    });
                }
                Some(Frame::Oversize { limit }) => {
                    // Counted by read_lines when the line crossed the limit.
                    return Err(McpError::protocol(format!(
                        "a stdout line exceeded {limit} bytes (max_message_bytes); it was skipped"
                    )));
                }
                Some(Frame::Line(bytes)) => match inbox.route_bytes(&bytes, want) {
                    Err(_) => {
                        self.counters
                            .stdout_garbage_lines
                            .fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(line = %String::from_utf8_lossy(&bytes[..bytes.len().min(200)]), "non-JSON stdout line");
                    }
                    Ok(routed) => {
                        for r in routed {
                            match r {
                                Routed::Matched(outcome) => return Ok(outcome),
                                Routed::Reply(reply) => {
                                    self.send(&reply, deadline, before_handshake).await?
                                }
                                Routed::Skipped => {}
                            }
                        }
                    }
                },
            }
        }
    }

    async fn wait_exit(&mut self) {
        if self.exit.is_none()
            && let Ok(status) = self.child.wait().await
        {
            self.exit = Some(status);
        }
    }

    async fn exited_error(&mut self, before_handshake: bool) -> McpError {
        if let Some(task) = self.stderr_task.as_mut() {
            // A grandchild may hold stderr open: drain briefly, never wait on it unbounded.
            if timeout(AFTER_EXIT_DRAIN, task).await.is_ok() {
                self.stderr_task = None;
            }
        }
        let status = self.exit;
        McpError::Exited {
            status: status.and_then(|s| s.code()),
            signal: status.and_then(|s| s.signal()),
            stderr_tail: self.stderr_tail(EXIT_STDERR_BYTES),
            before_handshake,
        }
    }

    /// Ends the child: close stdin, wait `grace`, SIGTERM the group, wait `grace`, SIGKILL the
    /// group; then make sure no member of its process group survives. Bounded by about 4 x grace.
    pub async fn shutdown(mut self, grace: Duration) {
        self.shut_down = true;
        drop(self.stdin.take());
        let pgid = self
            .pid
            .and_then(|p| i32::try_from(p).ok())
            .map(Pid::from_raw);
        let mut escalated = false;
        if self.exit.is_none() && timeout(grace, self.wait_exit()).await.is_err() {
            escalated = true;
            if let Some(pg) = pgid {
                let _ = killpg(pg, Signal::SIGTERM);
            }
            if timeout(grace, self.wait_exit()).await.is_err() {
                if let Some(pg) = pgid {
                    let _ = killpg(pg, Signal::SIGKILL);
                }
                let _ = self.child.start_kill();
                let _ = timeout(grace, self.wait_exit()).await;
            }
        }
        if let Some(pg) = pgid {
            reap_group(pg, grace, escalated).await;
        }
        self.stdout_task.abort();
        if let Some(task) = self.stderr_task.take() {
            task.abort();
        }
        tracing::debug!(command = %self.command, exit = ?self.exit, "stdio server shut down");
    }
}

/// Counts of wrong messages, to tell "silent" from "answered wrongly" when a wait times out.
#[derive(Clone, Copy)]
struct OddCounts {
    garbage: u64,
    unknown_ids: u64,
}

impl OddCounts {
    fn of(c: &WireCounters) -> Self {
        OddCounts {
            garbage: c.stdout_garbage_lines.load(Ordering::Relaxed),
            unknown_ids: c.unknown_response_ids.load(Ordering::Relaxed),
        }
    }

    /// A protocol error naming what the server sent instead of the answer, if it sent anything.
    fn since(self, before: OddCounts) -> Option<McpError> {
        let garbage = self.garbage.saturating_sub(before.garbage);
        let ids = self.unknown_ids.saturating_sub(before.unknown_ids);
        (garbage + ids > 0).then(|| {
            McpError::protocol(format!(
                "no valid answer before the deadline; instead the server sent {garbage} non-JSON stdout line(s) and {ids} response(s) with an id that matches no request"
            ))
        })
    }
}

/// Signals members of the process group that outlived its leader: SIGTERM, then SIGKILL after
/// `grace` (at once when the leader itself needed signals); then waits (at most `grace`) until
/// the kernel reports the group empty.
async fn reap_group(pg: Pid, grace: Duration, escalated: bool) {
    if killpg(pg, None).is_err() {
        return;
    }
    if !escalated {
        let _ = killpg(pg, Signal::SIGTERM);
        if group_gone_within(pg, grace).await {
            return;
        }
    }
    let _ = killpg(pg, Signal::SIGKILL);
    group_gone_within(pg, grace).await;
}

/// Polls until no process is left in group `pg` (ESRCH), at most `limit`.
async fn group_gone_within(pg: Pid, limit: Duration) -> bool {
    let until = Instant::now() + limit;
    loop {
        if killpg(pg, None).is_err() {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        sleep(Duration::from_millis(10)).await;
    }
}

impl Drop for StdioTransport {
    fn drop(&mut self) {
        if !self.shut_down && self.exit.is_none() {
            // Last resort when the session is dropped without shutdown(): the leader is not reaped
            // yet, so its pid still names our process group.
            if let Some(pg) = self.pid.and_then(|p| i32::try_from(p).ok()) {
                let _ = killpg(Pid::from_raw(pg), Signal::SIGKILL);
            }
        }
        self.stdout_task.abort();
        if let Some(task) = self.stderr_task.take() {
            task.abort();
        }
    }
}

async fn read_lines(
    mut out: impl AsyncRead + Unpin,
    max_line: usize,
    tx: mpsc::Sender<Frame>,
    counters: Arc<WireCounters>,
) {
    let mut framer = LineFramer::new(max_line);
    let mut buf = vec![0u8; READ_CHUNK];
    let mut frames = Vec::new();
    loop {
        let n = out.read(&mut buf).await.unwrap_or(0);
        counters.count_bytes(n);
        if n == 0 {
            framer.finish(&mut frames);
        } else {
            framer.push(&buf[..n], &mut frames);
        }
        for f in frames.drain(..) {
            // Counted here, not where a probe reads it, so an oversize line is counted even
            // when the probe that would have read it already gave up.
            if matches!(f, Frame::Oversize { .. }) {
                counters.count_oversize();
            }
            if tx.send(f).await.is_err() {
                return;
            }
        }
        if n == 0 {
            return;
        }
    }
}

async fn keep_stderr(
    mut err: impl AsyncRead + Unpin,
    ring: Arc<Mutex<StderrRing>>,
    counters: Arc<WireCounters>,
) {
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        match err.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                counters.note_unscanned(&buf[..n], super::dispatch::UNSCANNED_CAP);
                match ring.lock() {
                    Ok(mut r) => r.push(&buf[..n]),
                    Err(poisoned) => poisoned.into_inner().push(&buf[..n]),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stderr_ring_keeps_newest_bytes() {
        let mut ring = StderrRing {
            bytes: VecDeque::new(),
            cap: 5,
            lines: StderrLines::default(),
        };
        ring.push(b"abc");
        ring.push(b"defg");
        assert_eq!(ring.tail(100), "cdefg");
        ring.push(b"0123456789");
        assert_eq!(ring.tail(100), "56789");
        assert_eq!(ring.tail(2), "89");
    }

    #[test]
    fn stderr_lines_are_split_bounded_and_drained() {
        let mut lines = StderrLines::default();
        lines.push(b"Starting default (STDIO) ser");
        assert!(
            lines.take().is_empty(),
            "a partial line waits for its newline"
        );
        lines.push(b"ver...\r\n\nsecond\nthi");
        assert_eq!(
            lines.take(),
            vec!["Starting default (STDIO) server...", "second"]
        );
        lines.push(b"rd\n");
        assert_eq!(lines.take(), vec!["third"]);
        assert!(lines.take().is_empty());

        let long = vec![b'x'; MAX_STDERR_LINE_BYTES + 10];
        lines.push(&long);
        lines.push(b"\n");
        let got = lines.take();
        assert_eq!(got.len(), 1);
        assert!(got[0].ends_with('…') && got[0].len() < MAX_STDERR_LINE_BYTES + 8);

        for i in 0..MAX_PENDING_STDERR_LINES + 5 {
            lines.push(format!("line {i}\n").as_bytes());
        }
        let got = lines.take();
        assert_eq!(got.len(), MAX_PENDING_STDERR_LINES);
        assert_eq!(got[0], "line 5");
        assert_eq!(lines.dropped, 5);
    }
}

//! The stdio passthrough of `mcp-exporter wrap`: runs the server and forwards every byte both
//! ways as it arrives, unchanged; reads a copy on the side; forwards signals; exits as the
//! server did.
//!
//! Each direction is one thread doing a blocking `read` then `write` of whatever arrived (no
//! line buffering), then handing the chunk to its [`Tap`]. The wrapper's stdin and stdout are
//! descriptors shared with the client (and sometimes with other processes), so they are never
//! made non-blocking for a reactor; plain blocking I/O on a thread per direction is also the
//! shortest path a byte can take. A current-thread tokio runtime drives the rest: waiting for
//! the child, forwarding signals, and the [`Reporter`]. The server's stderr is the wrapper's
//! own, inherited: its bytes reach the client without passing through the wrapper at all.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::oneshot;

use super::ledger::Ledger;
use super::reporter::{Reporter, ReporterOptions};
use super::tap::{SharedLedger, Tap, lock};
use super::totals::Peer;
use super::wire::Hello;

/// Bytes read at most per `read` call.
const CHUNK_BYTES: usize = 64 * 1024;
/// Stack of a pump thread (parsing is iterative up to serde_json's depth limit of 128).
const PUMP_STACK_BYTES: usize = 1024 * 1024;
/// How long the server's remaining output may take to drain after it exited (a grandchild
/// holding its stdout open would otherwise keep the wrapper alive).
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);
/// What to run and where to report.
#[derive(Debug, Clone)]
pub struct WrapOptions {
    /// The server's program.
    pub command: OsString,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// The name reported to the daemon; the program's file name when `None`.
    pub name: Option<String>,
    /// Where and how often to report.
    pub reporter: ReporterOptions,
}

/// Why the wrapper could not run the server.
#[derive(Debug, thiserror::Error)]
pub enum WrapError {
    /// The server could not be started.
    #[error("cannot start {command}: {source}")]
    Spawn {
        /// The program.
        command: String,
        /// Why.
        source: io::Error,
    },
    /// The wrapper's own stdin/stdout could not be taken over.
    #[error("cannot set up stdin/stdout: {0}")]
    Stdio(io::Error),
    /// A signal handler could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(io::Error),
    /// Waiting for the server failed.
    #[error("cannot wait for the server: {0}")]
    Wait(io::Error),
}

impl WrapError {
    /// The exit status a shell would give: 127 for a program not found, 126 for one that
    /// cannot be executed, 125 for a failure of the wrapper itself.
    pub fn exit_status(&self) -> u8 {
        match self {
            WrapError::Spawn { source, .. } if source.kind() == io::ErrorKind::NotFound => 127,
            WrapError::Spawn { source, .. } if source.kind() == io::ErrorKind::PermissionDenied => {
                126
            }
            _ => 125,
        }
    }
}

/// The name reported when `--name` is not given: the program's file name.
pub fn default_name(command: &OsString) -> String {
    Path::new(command)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| command.to_string_lossy().into_owned())
}

/// The status a shell reports for a finished process: its exit code, or 128 + the signal
/// that killed it.
pub fn shell_status(status: std::process::ExitStatus) -> i32 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => 1,
    }
}

/// Runs the server until it exits and returns the status to exit with. Must run on a tokio
/// runtime with I/O, time and signals enabled; takes over the process's stdin and stdout.
pub async fn wrap(options: WrapOptions) -> Result<i32, WrapError> {
    // Installed before the child exists, so no signal meant for it can be missed.
    let mut sigint = signal(SignalKind::interrupt()).map_err(WrapError::Signals)?;
    let mut sigterm = signal(SignalKind::terminate()).map_err(WrapError::Signals)?;
    let mut sighup = signal(SignalKind::hangup()).map_err(WrapError::Signals)?;
    let mut sigquit = signal(SignalKind::quit()).map_err(WrapError::Signals)?;
    let (client_in, client_out) = take_stdio().map_err(WrapError::Stdio)?;

    let mut child = tokio::process::Command::new(&options.command)
        .args(&options.args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(false)
        .spawn()
        .map_err(|source| WrapError::Spawn {
            command: options.command.to_string_lossy().into_owned(),
            source,
        })?;
    let server_in = child
        .stdin
        .take()
        .ok_or_else(|| WrapError::Stdio(io::Error::other("no pipe to the server's stdin")))?
        .into_owned_fd()
        .map_err(WrapError::Stdio)?;
    let server_out = child
        .stdout
        .take()
        .ok_or_else(|| WrapError::Stdio(io::Error::other("no pipe from the server's stdout")))?
        .into_owned_fd()
        .map_err(WrapError::Stdio)?;
    set_blocking(&server_in).map_err(WrapError::Stdio)?;
    set_blocking(&server_out).map_err(WrapError::Stdio)?;

    let ledger: SharedLedger = Arc::new(Mutex::new(Ledger::default()));
    let name = options
        .name
        .clone()
        .unwrap_or_else(|| default_name(&options.command));
    let args: Vec<String> = options
        .args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let hello = Hello::new(
        &name,
        &options.command.to_string_lossy(),
        &args,
        &instance_id(),
    );
    let reporter = Reporter::new(ledger.clone(), hello, options.reporter.clone());
    let wake = reporter.wake();
    let (finish_tx, finish_rx) = oneshot::channel();
    let reporting = tokio::spawn(reporter.run(finish_rx));

    // Client -> server. On stdin EOF the server's stdin is closed (dropped here): the MCP
    // stdio shutdown.
    let mut client_tap = Tap::new(Peer::Client, ledger.clone(), wake.clone());
    let client_ledger = ledger.clone();
    spawn_pump("mcp-wrap-stdin", move || {
        let end = pump(
            File::from(client_in),
            File::from(server_in),
            &mut client_tap,
        );
        client_tap.finish();
        if matches!(end, PumpEnd::Eof) {
            lock(&client_ledger).client_closed(Instant::now());
        }
    })?;

    // Server -> client. Our stdout closes when the server's does.
    let (drained_tx, drained_rx) = oneshot::channel::<()>();
    let mut server_tap = Tap::new(Peer::Server, ledger.clone(), wake);
    spawn_pump("mcp-wrap-stdout", move || {
        let _ = pump(
            File::from(server_out),
            File::from(client_out),
            &mut server_tap,
        );
        server_tap.finish();
        let _ = drained_tx.send(());
    })?;

    // SIGINT, SIGTERM, SIGHUP and SIGQUIT are passed on; the wrapper itself waits for the
    // server to act on them.
    let status = loop {
        tokio::select! {
            status = child.wait() => break status.map_err(WrapError::Wait)?,
            _ = sigint.recv() => forward(&child, Signal::SIGINT),
            _ = sigterm.recv() => forward(&child, Signal::SIGTERM),
            _ = sighup.recv() => forward(&child, Signal::SIGHUP),
            _ = sigquit.recv() => forward(&child, Signal::SIGQUIT),
        }
    };
    let status = shell_status(status);
    // Answers already in the pipe still count; then whatever is pending never will.
    let _ = tokio::time::timeout(DRAIN_AFTER_EXIT, drained_rx).await;
    lock(&ledger).server_exited(Instant::now());
    let _ = finish_tx.send(status);
    let _ = reporting.await;
    Ok(status)
}

/// Passes `signal` on to the child if it has not been reaped yet (a zombie ignores it; a
/// reaped pid is never signalled, so a reused pid is safe).
fn forward(child: &tokio::process::Child, signal: Signal) {
    if let Some(pid) = child.id()
        && let Ok(pid) = i32::try_from(pid)
    {
        let _ = kill(Pid::from_raw(pid), signal);
    }
}

fn spawn_pump(name: &str, work: impl FnOnce() + Send + 'static) -> Result<(), WrapError> {
    std::thread::Builder::new()
        .name(name.to_string())
        .stack_size(PUMP_STACK_BYTES)
        .spawn(work)
        .map(|_| ())
        .map_err(WrapError::Stdio)
}

/// How a pump stopped.
#[derive(Debug)]
enum PumpEnd {
    /// The source ended.
    Eof,
    /// The source failed.
    ReadFailed,
    /// The destination is gone (the reader closed it).
    WriteFailed,
}

/// Copies `from` to `to` chunk by chunk as it arrives, handing each forwarded chunk to `tap`.
fn pump(mut from: File, mut to: File, tap: &mut Tap) -> PumpEnd {
    let mut buf = vec![0u8; CHUNK_BYTES];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return PumpEnd::Eof,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // A descriptor handed to us in non-blocking mode: wait for data.
                if wait_for(from.as_raw_fd(), libc::POLLIN).is_err() {
                    return PumpEnd::ReadFailed;
                }
                continue;
            }
            Err(_) => return PumpEnd::ReadFailed,
        };
        // Stamped before forwarding: the answer to a request can only be read after this.
        let read_at = Instant::now();
        if write_all(&mut to, &buf[..n]).is_err() {
            return PumpEnd::WriteFailed;
        }
        tap.observe(&buf[..n], read_at);
    }
}

/// `write_all` that also copes with a non-blocking destination.
fn write_all(to: &mut File, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        match to.write(data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                wait_for(to.as_raw_fd(), libc::POLLOUT)?
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Blocks until `fd` is ready for `events` (or has hung up).
fn wait_for(fd: RawFd, events: libc::c_short) -> io::Result<()> {
    let mut pollfd = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd, count 1, no timeout.
        let rc = unsafe { libc::poll(&mut pollfd, 1, -1) };
        if rc >= 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Takes the process's stdin and stdout for the pumps (close-on-exec copies) and points
/// descriptors 0 and 1 at /dev/null, so that when a pump drops its copy the client really
/// sees the stream close, and nothing else in the process can write into the protocol.
fn take_stdio() -> io::Result<(OwnedFd, OwnedFd)> {
    let stdin = dup_cloexec(libc::STDIN_FILENO)?;
    let stdout = dup_cloexec(libc::STDOUT_FILENO)?;
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    for fd in [libc::STDIN_FILENO, libc::STDOUT_FILENO] {
        // SAFETY: both descriptors are valid; dup2 atomically replaces fd.
        if unsafe { libc::dup2(null.as_raw_fd(), fd) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok((stdin, stdout))
}

fn dup_cloexec(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC returns a new descriptor we own, or -1.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `new` is a freshly created descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// Clears O_NONBLOCK on a pipe the wrapper created (tokio makes child pipes non-blocking).
fn set_blocking(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: F_GETFL/F_SETFL on a valid descriptor.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        if flags < 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags & !libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Tells this run from another with the same pid: pid and start time.
fn instance_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{}-{nanos}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_name_is_the_program_file_name() {
        assert_eq!(default_name(&"/usr/bin/npx".into()), "npx");
        assert_eq!(default_name(&"node".into()), "node");
    }

    #[test]
    fn statuses_read_like_a_shell() {
        use std::process::ExitStatus;
        assert_eq!(shell_status(ExitStatus::from_raw(3 << 8)), 3);
        assert_eq!(shell_status(ExitStatus::from_raw(9)), 137);
        assert_eq!(shell_status(ExitStatus::from_raw(15)), 143);
    }

    #[test]
    fn spawn_failures_map_to_shell_statuses() {
        let missing = WrapError::Spawn {
            command: "x".into(),
            source: io::ErrorKind::NotFound.into(),
        };
        let denied = WrapError::Spawn {
            command: "x".into(),
            source: io::ErrorKind::PermissionDenied.into(),
        };
        assert_eq!(missing.exit_status(), 127);
        assert_eq!(denied.exit_status(), 126);
        assert_eq!(WrapError::Stdio(io::Error::other("x")).exit_status(), 125);
    }
}

//! The daemon's side of the traffic socket: binds it safely, accepts many wrappers at once
//! (up to a cap), reads their messages within the limits of [`super::wire`], joins each
//! wrapper to a configured stdio server and hands the updates to a [`TrafficConsumer`]. A
//! hostile or broken peer is disconnected with a logged reason; nothing it sends can stop the
//! receiver or grow its memory past the limits.
//!
//! ```no_run
//! # async fn example(servers: Vec<mcp_exporter::traffic::StdioServer>) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use mcp_exporter::traffic::{Receiver, ReceiverOptions, SocketEnv, TrafficBook};
//!
//! let path = SocketEnv::from_process(None).daemon_socket()?;
//! let book = Arc::new(TrafficBook::default());
//! let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
//! let handle = Receiver::bind(ReceiverOptions::new(path))?.spawn(book.clone(), stop_rx);
//! handle.set_servers(servers); // again on every configuration reload
//! // ... book.snapshot() at scrape time ...
//! let _ = stop_tx.send(true);
//! handle.join().await; // the socket file is removed
//! # Ok(()) }
//! ```

use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{Instant, sleep, timeout};

use crate::metric_registry::labels::sanitize_label_value;

use super::join::{Join, StdioServer, join};
use super::totals::{TrafficState, TrafficTotals};
use super::wire::{Hello, MAX_LINE_BYTES, WireError, WireMessage, decode};

/// Default mode of the socket file: only the daemon's user may connect.
pub const DEFAULT_SOCKET_MODE: u32 = 0o600;
/// Default cap on wrappers connected at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
/// Default time a new connection has to say hello.
pub const DEFAULT_HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// Default sustained message rate allowed per connection (a wrapper sends about one a second).
pub const DEFAULT_MAX_MESSAGES_PER_SECOND: u32 = 100;
/// How long stopping waits for connections to finish their current message.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// How the receiver listens and what it accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiverOptions {
    /// The socket file.
    pub path: PathBuf,
    /// Its mode (e.g. 0o600 for the daemon's user only, 0o660 for a group, 0o666 for all
    /// local users; see docs/traffic.md).
    pub socket_mode: u32,
    /// Wrappers connected at once; more are refused.
    pub max_connections: usize,
    /// Time a connection has to send its `hello`.
    pub hello_timeout: Duration,
    /// Sustained messages per second per connection (bursts of twice as many pass).
    pub max_messages_per_second: u32,
}

impl ReceiverOptions {
    /// The defaults for a socket at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        ReceiverOptions {
            path: path.into(),
            socket_mode: DEFAULT_SOCKET_MODE,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            hello_timeout: DEFAULT_HELLO_TIMEOUT,
            max_messages_per_second: DEFAULT_MAX_MESSAGES_PER_SECOND,
        }
    }
}

/// Why the socket could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ReceiverError {
    /// The path has no directory part.
    #[error("{0}: the traffic socket path needs a directory")]
    NoDirectory(PathBuf),
    /// Its directory could not be created or read.
    #[error("{path}: cannot create or read the traffic socket's directory: {source}")]
    Directory {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Its directory could let another user replace the socket.
    #[error("{path}: unsafe directory for the traffic socket: {reason}")]
    UnsafeDirectory {
        /// The directory.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Something that is not a socket is at the path; it is left alone.
    #[error("{0}: exists and is not a socket; remove it or choose another path")]
    NotASocket(PathBuf),
    /// A live receiver (another daemon) already listens there.
    #[error("{0}: another process is already listening on the traffic socket")]
    InUse(PathBuf),
    /// Binding, removing a stale socket or setting its mode failed.
    #[error("{path}: cannot set up the traffic socket: {source}")]
    Socket {
        /// The socket path.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

/// One connected wrapper, as the consumer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrapperInfo {
    /// Tells this connection from the others (unique for the receiver's life).
    pub connection: u64,
    /// The wrapper's name (`--name` or the program's file name), sanitized as a label.
    pub name: String,
    /// The configured stdio server whose command line it runs, if exactly one.
    pub server: Option<String>,
    /// The wrapped command.
    pub command: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// The wrapper's version.
    pub wrapper_version: String,
    /// The wrapper run (pid and start time), stable across its reconnections.
    pub instance: String,
    /// The peer's user id, from the socket's credentials.
    pub peer_uid: Option<u32>,
    /// The peer's process id, from the socket's credentials.
    pub peer_pid: Option<i32>,
}

impl WrapperInfo {
    /// The `server` label its traffic belongs to: the joined server, else its name.
    pub fn label(&self) -> &str {
        self.server.as_deref().unwrap_or(&self.name)
    }
}

/// Receives the wrappers' updates. Called from the connection tasks: must not block long.
pub trait TrafficConsumer: Send + Sync + 'static {
    /// A wrapper said hello; an `Err` refuses it (the reason is logged).
    fn connected(&self, wrapper: &WrapperInfo) -> Result<(), String>;
    /// A report: counters since the wrapper's previous report, gauges now. Labels are the
    /// peer's text, validated for size but not yet capped.
    fn report(&self, wrapper: &WrapperInfo, delta: &TrafficTotals, state: &TrafficState);
    /// The wrapper announced its exit status (its server's, or 128 + signal).
    fn exited(&self, wrapper: &WrapperInfo, status: i32);
    /// The connection ended; the wrapper's gauges no longer hold.
    fn disconnected(&self, wrapper: &WrapperInfo);
}

/// Counts of what the receiver did, for its own health.
#[derive(Debug, Default)]
pub struct ReceiverCounters {
    accepted: AtomicU64,
    refused: AtomicU64,
    protocol_errors: AtomicU64,
    reports: AtomicU64,
}

/// A copy of [`ReceiverCounters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReceiverStats {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections refused: over the cap, or refused by the consumer.
    pub refused: u64,
    /// Connections ended for breaking the protocol or its limits.
    pub protocol_errors: u64,
    /// Reports delivered to the consumer.
    pub reports: u64,
}

impl ReceiverCounters {
    /// The counts now.
    pub fn snapshot(&self) -> ReceiverStats {
        ReceiverStats {
            accepted: self.accepted.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            protocol_errors: self.protocol_errors.load(Ordering::Relaxed),
            reports: self.reports.load(Ordering::Relaxed),
        }
    }

    fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The configured stdio servers wrappers are joined to; replaced on reload.
type ServerList = Arc<RwLock<Arc<Vec<StdioServer>>>>;

/// A bound traffic socket, not yet accepting.
#[derive(Debug)]
pub struct Receiver {
    listener: UnixListener,
    options: ReceiverOptions,
    /// Device and inode of the socket file we created: only that file is removed at stop.
    identity: (u64, u64),
}

impl Receiver {
    /// Binds the socket: creates its directory (mode 0700) if missing, refuses a directory
    /// another user could write to, refuses a path that holds something other than a socket
    /// or a socket a live process listens on, removes a stale socket, binds and sets the
    /// mode. Must be called within a tokio runtime.
    pub fn bind(options: ReceiverOptions) -> Result<Receiver, ReceiverError> {
        let path = options.path.clone();
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .ok_or_else(|| ReceiverError::NoDirectory(path.clone()))?;
        prepare_directory(dir)?;
        remove_stale(&path)?;
        let socket_err = |source| ReceiverError::Socket {
            path: path.clone(),
            source,
        };
        let std_listener = std::os::unix::net::UnixListener::bind(&path).map_err(socket_err)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(options.socket_mode))
            .map_err(socket_err)?;
        std_listener.set_nonblocking(true).map_err(socket_err)?;
        let meta = std::fs::symlink_metadata(&path).map_err(socket_err)?;
        let listener = UnixListener::from_std(std_listener).map_err(socket_err)?;
        Ok(Receiver {
            listener,
            options,
            identity: (meta.dev(), meta.ino()),
        })
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.options.path
    }

    /// Accepts wrappers until `stop` changes (or its sender is dropped), delivering to
    /// `consumer`. The returned handle sets the servers to join and waits for the end.
    pub fn spawn(
        self,
        consumer: Arc<dyn TrafficConsumer>,
        stop: watch::Receiver<bool>,
    ) -> ReceiverHandle {
        let servers: ServerList = Arc::default();
        let counters = Arc::new(ReceiverCounters::default());
        let task = tokio::spawn(serve(
            self,
            consumer,
            servers.clone(),
            counters.clone(),
            stop,
        ));
        ReceiverHandle {
            servers,
            counters,
            task,
        }
    }
}

/// A running receiver.
#[derive(Debug)]
pub struct ReceiverHandle {
    servers: ServerList,
    counters: Arc<ReceiverCounters>,
    task: JoinHandle<()>,
}

impl ReceiverHandle {
    /// The configured stdio servers new wrappers are joined to (connected ones keep theirs).
    pub fn set_servers(&self, servers: Vec<StdioServer>) {
        let mut slot = self
            .servers
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *slot = Arc::new(servers);
    }

    /// What the receiver did so far.
    pub fn stats(&self) -> ReceiverStats {
        self.counters.snapshot()
    }

    /// The live counters behind [`ReceiverHandle::stats`], for reading at scrape time.
    pub fn counters(&self) -> Arc<ReceiverCounters> {
        Arc::clone(&self.counters)
    }

    /// Waits until the receiver has stopped (after `stop`) and removed its socket file.
    pub async fn join(self) {
        if let Err(err) = self.task.await {
            tracing::error!(error = %err, "traffic receiver task failed");
        }
    }
}

fn prepare_directory(dir: &Path) -> Result<(), ReceiverError> {
    let dir_err = |source| ReceiverError::Directory {
        path: dir.to_path_buf(),
        source,
    };
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(dir_err)?;
    }
    let meta = std::fs::metadata(dir).map_err(dir_err)?;
    check_directory(&meta).map_err(|reason| ReceiverError::UnsafeDirectory {
        path: dir.to_path_buf(),
        reason,
    })
}

/// A directory is safe for our socket when it is ours (or root's) and nobody else can
/// replace entries in it (not group/world-writable, unless sticky like /tmp).
fn check_directory(meta: &std::fs::Metadata) -> Result<(), String> {
    if !meta.is_dir() {
        return Err("not a directory".into());
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me && meta.uid() != 0 {
        return Err(format!(
            "owned by uid {}, not by us ({me}) or root",
            meta.uid()
        ));
    }
    let mode = meta.mode();
    if mode & 0o022 != 0 && mode & 0o1000 == 0 {
        return Err(format!(
            "mode {:o} lets other users replace the socket (use 0700 or 0755)",
            mode & 0o7777
        ));
    }
    Ok(())
}

/// Removes a socket nobody listens on; refuses anything else at the path.
fn remove_stale(path: &Path) -> Result<(), ReceiverError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(ReceiverError::Socket {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    if !meta.file_type().is_socket() {
        return Err(ReceiverError::NotASocket(path.to_path_buf()));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(ReceiverError::InUse(path.to_path_buf())),
        Err(err) if err.kind() == io::ErrorKind::ConnectionRefused => {
            tracing::info!(path = %path.display(), "removing the stale traffic socket");
            std::fs::remove_file(path).map_err(|source| ReceiverError::Socket {
                path: path.to_path_buf(),
                source,
            })
        }
        Err(source) => Err(ReceiverError::Socket {
            path: path.to_path_buf(),
            source,
        }),
    }
}

async fn serve(
    receiver: Receiver,
    consumer: Arc<dyn TrafficConsumer>,
    servers: ServerList,
    counters: Arc<ReceiverCounters>,
    mut stop: watch::Receiver<bool>,
) {
    let Receiver {
        listener,
        options,
        identity,
    } = receiver;
    let slots = Arc::new(Semaphore::new(options.max_connections));
    let mut connections = JoinSet::new();
    let mut next_connection = 0u64;
    tracing::info!(path = %options.path.display(), "traffic receiver listening");
    while !*stop.borrow() {
        tokio::select! {
            changed = stop.changed() => if changed.is_err() { break },
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let Ok(slot) = slots.clone().try_acquire_owned() else {
                        ReceiverCounters::add(&counters.refused);
                        tracing::warn!(max = options.max_connections, "traffic: refusing a wrapper: too many connected");
                        continue;
                    };
                    ReceiverCounters::add(&counters.accepted);
                    next_connection += 1;
                    let connection = Connection {
                        id: next_connection,
                        consumer: consumer.clone(),
                        servers: servers.clone(),
                        counters: counters.clone(),
                        options: options.clone(),
                    };
                    let stop = stop.clone();
                    connections.spawn(async move {
                        connection.run(stream, stop).await;
                        drop(slot);
                    });
                }
                Err(err) => {
                    // Out of descriptors or similar: do not spin.
                    tracing::warn!(error = %err, "traffic: accept failed");
                    sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    remove_own_socket(&options.path, identity);
    let drained = timeout(STOP_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        connections.shutdown().await;
    }
    tracing::info!(path = %options.path.display(), "traffic receiver stopped");
}

fn remove_own_socket(path: &Path, identity: (u64, u64)) {
    if let Ok(meta) = std::fs::symlink_metadata(path)
        && (meta.dev(), meta.ino()) == identity
        && let Err(err) = std::fs::remove_file(path)
    {
        tracing::warn!(path = %path.display(), error = %err, "cannot remove the traffic socket");
    }
}

/// One wrapper's connection.
struct Connection {
    id: u64,
    consumer: Arc<dyn TrafficConsumer>,
    servers: ServerList,
    counters: Arc<ReceiverCounters>,
    options: ReceiverOptions,
}

/// Why a connection ended early.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error("no hello within {0:?}")]
    HelloTimeout(Duration),
    #[error("the first message is not a hello")]
    NoHello,
    #[error("a second hello")]
    SecondHello,
    #[error("more than {0} messages per second")]
    TooFast(u32),
    #[error("{0}")]
    Wire(#[from] WireError),
    #[error("read failed: {0}")]
    Read(io::Error),
}

impl Connection {
    async fn run(self, stream: UnixStream, mut stop: watch::Receiver<bool>) {
        let cred = stream.peer_cred().ok();
        let peer_pid = cred.as_ref().and_then(|c| c.pid());
        let peer_uid = cred.as_ref().map(|c| c.uid());
        let mut reader = BufReader::with_capacity(64 * 1024, stream);
        let mut line = Vec::new();
        let info = match self.hello(&mut reader, &mut line, peer_uid, peer_pid).await {
            Ok(info) => info,
            Err(reason) => {
                self.refuse(None, peer_pid, &reason);
                return;
            }
        };
        if let Err(reason) = self.consumer.connected(&info) {
            ReceiverCounters::add(&self.counters.refused);
            tracing::warn!(wrapper = %info.name, peer_pid, %reason, "traffic: refusing a wrapper");
            return;
        }
        tracing::debug!(wrapper = %info.name, server = ?info.server, peer_pid, "traffic: wrapper connected");
        let mut budget = Budget::new(self.options.max_messages_per_second);
        let ended = loop {
            tokio::select! {
                _ = stop.changed() => break Ok(()),
                read = read_line(&mut reader, &mut line) => match read {
                    Ok(false) => break Ok(()),
                    Ok(true) => {
                        if !budget.take(Instant::now()) {
                            break Err(Refusal::TooFast(self.options.max_messages_per_second));
                        }
                        if let Err(reason) = self.deliver(&info, &line) {
                            break Err(reason);
                        }
                    }
                    Err(reason) => break Err(reason),
                },
            }
        };
        if let Err(reason) = ended {
            self.refuse(Some(&info.name), peer_pid, &reason);
        }
        self.consumer.disconnected(&info);
        tracing::debug!(wrapper = %info.name, "traffic: wrapper disconnected");
    }

    async fn hello(
        &self,
        reader: &mut BufReader<UnixStream>,
        line: &mut Vec<u8>,
        peer_uid: Option<u32>,
        peer_pid: Option<i32>,
    ) -> Result<WrapperInfo, Refusal> {
        let read = timeout(self.options.hello_timeout, read_line(reader, line))
            .await
            .map_err(|_| Refusal::HelloTimeout(self.options.hello_timeout))??;
        if !read {
            return Err(Refusal::NoHello);
        }
        let WireMessage::Hello(hello) = decode(line)? else {
            return Err(Refusal::NoHello);
        };
        hello.validate()?;
        Ok(self.info(hello, peer_uid, peer_pid))
    }

    fn info(&self, hello: Hello, peer_uid: Option<u32>, peer_pid: Option<i32>) -> WrapperInfo {
        let servers = self
            .servers
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        let server = match join(&hello.command, &hello.args, &servers) {
            Join::Server(name) => Some(name.to_string()),
            Join::Ambiguous(names) => {
                tracing::info!(wrapper = %hello.name, ?names, "traffic: several configured servers run this command line; not joining");
                None
            }
            Join::None => None,
        };
        WrapperInfo {
            connection: self.id,
            name: sanitize_label_value(&hello.name),
            server,
            command: hello.command,
            args: hello.args,
            wrapper_version: hello.wrapper_version,
            instance: hello.instance,
            peer_uid,
            peer_pid,
        }
    }

    fn deliver(&self, info: &WrapperInfo, line: &[u8]) -> Result<(), Refusal> {
        match decode(line)? {
            WireMessage::Report(report) => {
                let (delta, state) = report.into_update()?;
                self.consumer.report(info, &delta, &state);
                ReceiverCounters::add(&self.counters.reports);
            }
            WireMessage::Exit(exit) => self.consumer.exited(info, exit.status),
            WireMessage::Hello(_) => return Err(Refusal::SecondHello),
        }
        Ok(())
    }

    fn refuse(&self, wrapper: Option<&str>, peer_pid: Option<i32>, reason: &Refusal) {
        ReceiverCounters::add(&self.counters.protocol_errors);
        tracing::warn!(
            wrapper = wrapper.unwrap_or("(before hello)"),
            peer_pid,
            %reason,
            "traffic: disconnecting a wrapper"
        );
    }
}

/// Reads one line into `line` (newline excluded); `Ok(false)` at the end of the stream (a
/// last line without newline is a message cut short and is dropped).
async fn read_line(
    reader: &mut BufReader<UnixStream>,
    line: &mut Vec<u8>,
) -> Result<bool, Refusal> {
    line.clear();
    loop {
        let available = reader.fill_buf().await.map_err(Refusal::Read)?;
        if available.is_empty() {
            return Ok(false);
        }
        let (chunk, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..i], true),
            None => (available, false),
        };
        if line.len() + chunk.len() > MAX_LINE_BYTES {
            return Err(Refusal::Wire(WireError::TooLong));
        }
        line.extend_from_slice(chunk);
        let consumed = chunk.len() + usize::from(done);
        reader.consume(consumed);
        if done {
            return Ok(true);
        }
    }
}

/// A token bucket: `rate` messages a second, bursts of twice as many.
struct Budget {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl Budget {
    fn new(rate: u32) -> Self {
        let rate = f64::from(rate.max(1));
        Budget {
            rate,
            tokens: 2.0 * rate,
            last: Instant::now(),
        }
    }

    fn take(&mut self, now: Instant) -> bool {
        let refill = now.saturating_duration_since(self.last).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(2.0 * self.rate);
        self.last = now;
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;
    use crate::traffic::book::TrafficBook;
    use crate::traffic::wire::{Report, encode};

    struct Running {
        _dir: tempfile::TempDir,
        path: PathBuf,
        book: Arc<TrafficBook>,
        handle: ReceiverHandle,
        stop: watch::Sender<bool>,
    }

    fn start(tune: impl FnOnce(&mut ReceiverOptions)) -> Running {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub").join("traffic.sock");
        let mut options = ReceiverOptions::new(&path);
        tune(&mut options);
        let book = Arc::new(TrafficBook::default());
        let (stop, stop_rx) = watch::channel(false);
        let handle = Receiver::bind(options)
            .expect("binds")
            .spawn(book.clone(), stop_rx);
        Running {
            _dir: dir,
            path,
            book,
            handle,
            stop,
        }
    }

    async fn connect(path: &Path) -> UnixStream {
        UnixStream::connect(path).await.expect("connects")
    }

    fn hello_line(name: &str) -> Vec<u8> {
        encode(&WireMessage::Hello(Hello::new(name, "node", &[], "1-1")))
    }

    /// Waits until the peer has been disconnected (reads EOF or an error).
    async fn disconnected(stream: &mut UnixStream) {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 16];
        let read = timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("disconnected in time");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }

    async fn eventually(mut check: impl FnMut() -> bool) {
        for _ in 0..500 {
            if check() {
                return;
            }
            sleep(Duration::from_millis(10)).await;
        }
        panic!("condition not met in 5 s");
    }

    #[tokio::test]
    async fn the_socket_gets_its_mode_and_a_private_directory_and_goes_at_stop() {
        let r = start(|_| {});
        let dir_mode = std::fs::metadata(r.path.parent().expect("dir"))
            .expect("dir")
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        let sock_mode = std::fs::symlink_metadata(&r.path).expect("sock").mode();
        assert_eq!(sock_mode & 0o777, DEFAULT_SOCKET_MODE);
        r.stop.send(true).expect("stop");
        r.handle.join().await;
        assert!(!r.path.exists(), "the socket file is removed");
    }

    #[tokio::test]
    async fn a_stale_socket_is_replaced_and_a_live_or_foreign_file_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("traffic.sock");
        drop(std::os::unix::net::UnixListener::bind(&path).expect("stale"));
        let live = Receiver::bind(ReceiverOptions::new(&path)).expect("replaces the stale one");
        assert!(matches!(
            Receiver::bind(ReceiverOptions::new(&path)),
            Err(ReceiverError::InUse(_))
        ));
        drop(live);
        let file = dir.path().join("plain");
        std::fs::write(&file, "keep me").expect("write");
        assert!(matches!(
            Receiver::bind(ReceiverOptions::new(&file)),
            Err(ReceiverError::NotASocket(_))
        ));
        assert_eq!(std::fs::read_to_string(&file).expect("kept"), "keep me");
    }

    #[tokio::test]
    async fn hostile_peers_are_disconnected_and_a_good_one_still_reports() {
        let r = start(|o| o.hello_timeout = Duration::from_millis(200));
        // Garbage instead of hello.
        let mut garbage = connect(&r.path).await;
        garbage.write_all(b"GET / HTTP/1.1\n").await.expect("write");
        disconnected(&mut garbage).await;
        // A line longer than the limit, never ending.
        let mut flood = connect(&r.path).await;
        flood.write_all(&hello_line("flood")).await.expect("hello");
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..(MAX_LINE_BYTES / chunk.len() + 2) {
            if flood.write_all(&chunk).await.is_err() {
                break;
            }
        }
        disconnected(&mut flood).await;
        // Silence.
        let mut silent = connect(&r.path).await;
        disconnected(&mut silent).await;
        // A future protocol.
        let mut future = connect(&r.path).await;
        let line = String::from_utf8(hello_line("future")).expect("utf8");
        future
            .write_all(line.replace("\"protocol\":1", "\"protocol\":9").as_bytes())
            .await
            .expect("write");
        disconnected(&mut future).await;

        let mut good = connect(&r.path).await;
        good.write_all(&hello_line("good")).await.expect("hello");
        let mut totals = TrafficTotals::default();
        totals.client_to_server.messages = 2;
        let report = encode(&WireMessage::Report(Report::new(
            &totals,
            &TrafficState::default(),
        )));
        good.write_all(&report).await.expect("report");
        eventually(|| {
            r.book
                .server("good")
                .is_some_and(|s| s.totals.client_to_server.messages == 2)
        })
        .await;
        assert_eq!(r.handle.stats().protocol_errors, 4);
    }

    #[tokio::test]
    async fn a_line_cut_short_by_the_end_of_the_stream_is_dropped() {
        let r = start(|_| {});
        let mut peer = connect(&r.path).await;
        peer.write_all(&hello_line("cut")).await.expect("hello");
        let mut totals = TrafficTotals::default();
        totals.client_to_server.messages = 5;
        let report = encode(&WireMessage::Report(Report::new(
            &totals,
            &TrafficState::default(),
        )));
        peer.write_all(&report).await.expect("report");
        peer.write_all(&report[..report.len() - 1])
            .await
            .expect("cut");
        drop(peer);
        eventually(|| r.book.server("cut").is_some_and(|s| s.wrappers == 0)).await;
        assert_eq!(
            r.book
                .server("cut")
                .expect("cut")
                .totals
                .client_to_server
                .messages,
            5
        );
    }

    #[tokio::test]
    async fn connections_past_the_cap_are_refused() {
        let r = start(|o| o.max_connections = 1);
        let mut first = connect(&r.path).await;
        first.write_all(&hello_line("first")).await.expect("hello");
        eventually(|| r.book.server("first").is_some_and(|s| s.wrappers == 1)).await;
        let mut second = connect(&r.path).await;
        disconnected(&mut second).await;
        assert_eq!(r.handle.stats().refused, 1);
    }

    #[tokio::test]
    async fn a_peer_sending_too_fast_is_disconnected() {
        let r = start(|o| o.max_messages_per_second = 5);
        let mut peer = connect(&r.path).await;
        peer.write_all(&hello_line("fast")).await.expect("hello");
        let report = encode(&WireMessage::Report(Report::default()));
        for _ in 0..50 {
            if peer.write_all(&report).await.is_err() {
                break;
            }
        }
        disconnected(&mut peer).await;
        assert_eq!(r.handle.stats().protocol_errors, 1);
    }

    #[tokio::test]
    async fn wrappers_are_joined_to_configured_servers() {
        let r = start(|_| {});
        r.handle.set_servers(vec![StdioServer {
            name: "configured".into(),
            command: "node".into(),
            args: vec![],
        }]);
        let mut peer = connect(&r.path).await;
        peer.write_all(&hello_line("whatever"))
            .await
            .expect("hello");
        eventually(|| r.book.server("configured").is_some_and(|s| s.wrappers == 1)).await;
    }

    #[test]
    fn the_budget_allows_bursts_then_the_rate() {
        let mut budget = Budget::new(10);
        let t0 = budget.last;
        assert!((0..20).all(|_| budget.take(t0)));
        assert!(!budget.take(t0));
        assert!(budget.take(t0 + Duration::from_millis(100)));
        assert!(!budget.take(t0 + Duration::from_millis(100)));
    }

    #[test]
    fn directories_others_can_write_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("d");
        std::fs::create_dir(&path).expect("mkdir");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let meta = std::fs::metadata(&path).expect("stat");
        assert!(check_directory(&meta).is_err());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
        let meta = std::fs::metadata(&path).expect("stat");
        assert_eq!(check_directory(&meta), Ok(()));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let meta = std::fs::metadata(&path).expect("stat");
        assert_eq!(check_directory(&meta), Ok(()));
    }
}

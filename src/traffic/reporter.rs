//! Sends what the wrapper observed to the daemon, without ever holding up the client's
//! traffic: the taps only add to the ledger; this task takes the counters as a delta every
//! interval and writes one report line with a deadline. While the daemon is absent, slow or
//! restarting, deltas are merged into one unsent delta (bounded by the label caps, so nothing
//! is dropped and memory does not grow) and the connection is retried with backoff. A report
//! that could not be written whole is sent again on the next connection; one the daemon had
//! read is never sent twice.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use tokio::sync::{Notify, oneshot};
use tokio::time::{Instant, sleep, timeout};

use super::tap::{SharedLedger, lock};
use super::totals::{TrafficState, TrafficTotals};
use super::wire::{Exit, Hello, Report, WireMessage, encode};

/// Default time between reports.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);

/// Timing of the reporter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReporterOptions {
    /// Sockets tried in order on each connection attempt (see
    /// [`super::socket_path::SocketEnv::wrapper_candidates`]).
    pub candidates: Vec<PathBuf>,
    /// Time between reports; zero sends one after every frame (costly: for measurement).
    pub interval: Duration,
    /// Longest wait for a connection.
    pub connect_timeout: Duration,
    /// Longest wait for one line to be written.
    pub write_timeout: Duration,
    /// First wait after a failed attempt; doubled after each failure.
    pub backoff_min: Duration,
    /// Longest wait between attempts.
    pub backoff_max: Duration,
    /// Longest time the last report may take when the wrapper exits.
    pub final_deadline: Duration,
}

impl ReporterOptions {
    /// Defaults for these candidate sockets.
    pub fn new(candidates: Vec<PathBuf>) -> Self {
        ReporterOptions {
            candidates,
            interval: DEFAULT_INTERVAL,
            connect_timeout: Duration::from_millis(250),
            write_timeout: Duration::from_millis(500),
            backoff_min: Duration::from_millis(250),
            backoff_max: Duration::from_secs(5),
            final_deadline: Duration::from_secs(1),
        }
    }
}

/// The reporting task of one wrapper.
#[derive(Debug)]
pub struct Reporter {
    ledger: SharedLedger,
    hello: Hello,
    options: ReporterOptions,
    wake: Option<Arc<Notify>>,
    link: Link,
    unsent: TrafficTotals,
}

/// The connection to the daemon and when to try again.
#[derive(Debug)]
struct Link {
    stream: Option<UnixStream>,
    /// The state the daemon has from us on this connection.
    state_sent: Option<TrafficState>,
    next_attempt: Instant,
    backoff: Duration,
}

impl Reporter {
    /// A reporter of `ledger`'s counters introduced by `hello`.
    pub fn new(ledger: SharedLedger, hello: Hello, options: ReporterOptions) -> Self {
        let wake = options.interval.is_zero().then(|| Arc::new(Notify::new()));
        Reporter {
            ledger,
            hello,
            link: Link {
                stream: None,
                state_sent: None,
                next_attempt: Instant::now(),
                backoff: options.backoff_min,
            },
            options,
            wake,
            unsent: TrafficTotals::default(),
        }
    }

    /// What the taps notify after each frame when reports go out per frame.
    pub fn wake(&self) -> Option<Arc<Notify>> {
        self.wake.clone()
    }

    /// Reports until `finish` gives the wrapper's exit status, then makes a last report and
    /// an `exit` message within the final deadline.
    pub async fn run(mut self, mut finish: oneshot::Receiver<i32>) {
        loop {
            let tick = async {
                match &self.wake {
                    Some(wake) => {
                        tokio::select! {
                            _ = wake.notified() => {}
                            _ = sleep(self.options.backoff_min) => {}
                        }
                    }
                    None => sleep(self.options.interval).await,
                }
            };
            tokio::select! {
                status = &mut finish => {
                    let status = status.unwrap_or(0);
                    let deadline = self.options.final_deadline;
                    let _ = timeout(deadline, self.last_report(status)).await;
                    return;
                }
                _ = tick => self.report(false).await,
            }
        }
    }

    async fn last_report(&mut self, status: i32) {
        self.report(true).await;
        let line = encode(&WireMessage::Exit(Exit { status }));
        self.send(&line).await;
    }

    /// Takes the delta and sends it with the state, connecting first if due (`now`: even if
    /// the backoff has not run out).
    async fn report(&mut self, now: bool) {
        let (delta, state) = {
            let mut ledger = lock(&self.ledger);
            (ledger.take_delta(), ledger.state())
        };
        self.unsent.merge(&delta);
        if self.link.stream.is_none() {
            if !now && Instant::now() < self.link.next_attempt {
                return;
            }
            self.connect().await;
        }
        if self.unsent.is_empty() && self.link.state_sent.as_ref() == Some(&state) {
            return;
        }
        let line = encode(&WireMessage::Report(Report::new(&self.unsent, &state)));
        if self.send(&line).await {
            self.unsent = TrafficTotals::default();
            self.link.state_sent = Some(state);
        }
    }

    /// Writes one line within the write deadline; on failure drops the connection (a line
    /// cut short is discarded by the daemon) and schedules the next attempt.
    async fn send(&mut self, line: &[u8]) -> bool {
        let Some(stream) = self.link.stream.as_mut() else {
            return false;
        };
        match timeout(self.options.write_timeout, stream.write_all(line)).await {
            Ok(Ok(())) => true,
            Ok(Err(err)) => {
                tracing::debug!(error = %err, "traffic report not sent; reconnecting");
                self.failed();
                false
            }
            Err(_) => {
                tracing::debug!("traffic report not written within the deadline; reconnecting");
                self.failed();
                false
            }
        }
    }

    async fn connect(&mut self) {
        for path in self.options.candidates.clone() {
            let stream = match timeout(self.options.connect_timeout, UnixStream::connect(&path))
                .await
            {
                Ok(Ok(stream)) => stream,
                Ok(Err(err)) => {
                    tracing::trace!(path = %path.display(), error = %err, "no traffic receiver");
                    continue;
                }
                Err(_) => continue,
            };
            tracing::debug!(path = %path.display(), "connected to the traffic receiver");
            self.link.stream = Some(stream);
            self.link.state_sent = None;
            let hello = encode(&WireMessage::Hello(self.hello.clone()));
            if self.send(&hello).await {
                self.link.backoff = self.options.backoff_min;
                return;
            }
        }
        self.failed();
    }

    fn failed(&mut self) {
        self.link.stream = None;
        self.link.state_sent = None;
        self.link.next_attempt = Instant::now() + self.link.backoff;
        self.link.backoff = (self.link.backoff * 2).min(self.options.backoff_max);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tokio::io::{AsyncBufReadExt, BufReader};
    use tokio::net::UnixListener;

    use super::*;
    use crate::traffic::ledger::Ledger;
    use crate::traffic::totals::Peer;
    use crate::traffic::wire::decode;

    fn hello() -> Hello {
        Hello::new("t", "cmd", &[], "1-1")
    }

    fn fast(path: PathBuf) -> ReporterOptions {
        ReporterOptions {
            interval: Duration::from_millis(20),
            backoff_min: Duration::from_millis(20),
            backoff_max: Duration::from_millis(40),
            ..ReporterOptions::new(vec![path])
        }
    }

    async fn next_message(lines: &mut tokio::io::Lines<BufReader<UnixStream>>) -> WireMessage {
        let line = timeout(Duration::from_secs(5), lines.next_line())
            .await
            .expect("a line in time")
            .expect("reads")
            .expect("not closed");
        decode(line.as_bytes()).expect("decodes")
    }

    #[tokio::test]
    async fn counters_made_while_the_daemon_was_away_arrive_when_it_comes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.sock");
        let ledger: SharedLedger = Arc::new(Mutex::new(Ledger::default()));
        let reporter = Reporter::new(ledger.clone(), hello(), fast(path.clone()));
        let (finish_tx, finish_rx) = oneshot::channel();
        let task = tokio::spawn(reporter.run(finish_rx));

        // No daemon yet: bytes pile up in the ledger and the unsent delta.
        lock(&ledger).record_bytes(Peer::Client, 10);
        sleep(Duration::from_millis(100)).await;
        lock(&ledger).record_bytes(Peer::Client, 5);

        let listener = UnixListener::bind(&path).expect("bind");
        let (stream, _) = timeout(Duration::from_secs(5), listener.accept())
            .await
            .expect("the reporter reconnects")
            .expect("accept");
        let mut lines = BufReader::new(stream).lines();
        assert!(matches!(
            next_message(&mut lines).await,
            WireMessage::Hello(_)
        ));
        let WireMessage::Report(report) = next_message(&mut lines).await else {
            panic!("expected a report")
        };
        let (totals, _) = report.into_update().expect("valid");
        assert_eq!(totals.client_to_server.bytes, 15);

        finish_tx.send(7).expect("reporter alive");
        let mut exit = None;
        while exit.is_none() {
            if let WireMessage::Exit(e) = next_message(&mut lines).await {
                exit = Some(e.status);
            }
        }
        assert_eq!(exit, Some(7));
        task.await.expect("reporter ends");
    }

    #[tokio::test]
    async fn a_daemon_that_never_reads_does_not_hold_the_reporter() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.sock");
        let _listener = UnixListener::bind(&path).expect("bind");
        let ledger: SharedLedger = Arc::new(Mutex::new(Ledger::default()));
        let mut options = fast(path);
        options.write_timeout = Duration::from_millis(50);
        let reporter = Reporter::new(ledger.clone(), hello(), options);
        let (finish_tx, finish_rx) = oneshot::channel();
        let task = tokio::spawn(reporter.run(finish_rx));
        // Never accepted, never read: the socket buffer fills, writes time out.
        for _ in 0..50 {
            for i in 0..200 {
                let frame = format!("{{\"jsonrpc\":\"2.0\",\"id\":{i},\"method\":\"m{i}\"}}");
                let parsed = crate::traffic::parse::parse_frame(frame.as_bytes());
                lock(&ledger).record_frame(
                    Peer::Client,
                    parsed,
                    frame.len(),
                    std::time::Instant::now(),
                );
            }
            sleep(Duration::from_millis(5)).await;
        }
        let started = Instant::now();
        finish_tx.send(0).expect("reporter alive");
        timeout(Duration::from_secs(3), task)
            .await
            .expect("the last report is bounded by the final deadline")
            .expect("reporter ends");
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}

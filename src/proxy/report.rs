//! `mcp-exporter proxy` run on its own reports to a running daemon the way a stdio wrapper
//! does: over the traffic socket, in the wrapper protocol (src/traffic/wire.rs), one delta per
//! interval. A daemon that is absent or slow costs the traffic nothing: deltas are merged
//! until one can be written (each write has a deadline), connections are retried with backoff.

use std::path::PathBuf;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use tokio::time::{Instant, timeout};

use crate::traffic::totals::{TrafficState, TrafficTotals};
use crate::traffic::wire::{Exit, Hello, Report, WireMessage, encode};

/// Longest wait for a connection or a write.
const DEADLINE: Duration = Duration::from_millis(500);
/// Longest wait between connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Reports one proxy's deltas over the traffic socket.
#[derive(Debug)]
pub struct SocketReporter {
    candidates: Vec<PathBuf>,
    hello: Hello,
    stream: Option<UnixStream>,
    unsent: TrafficTotals,
    next_attempt: Instant,
    backoff: Duration,
}

impl SocketReporter {
    /// A reporter for the proxy `name` of `upstream`, trying `candidates` in order.
    pub fn new(candidates: Vec<PathBuf>, name: &str, upstream: &str) -> Self {
        let instance = format!(
            "{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        );
        SocketReporter {
            candidates,
            hello: Hello::new(name, upstream, &[], &instance),
            stream: None,
            unsent: TrafficTotals::default(),
            next_attempt: Instant::now(),
            backoff: Duration::from_millis(250),
        }
    }

    /// Adds `delta` to what is unsent and tries to send it with `state`.
    pub async fn report(&mut self, delta: &TrafficTotals, state: &TrafficState) {
        self.unsent.merge(delta);
        if !self.connected().await {
            return;
        }
        let line = encode(&WireMessage::Report(Report::new(&self.unsent, state)));
        if self.write(&line).await {
            self.unsent = TrafficTotals::default();
        }
    }

    /// Says the proxy is leaving (after its last report).
    pub async fn exit(&mut self) {
        if self.stream.is_some() {
            let line = encode(&WireMessage::Exit(Exit { status: 0 }));
            self.write(&line).await;
        }
        self.stream = None;
    }

    async fn connected(&mut self) -> bool {
        if self.stream.is_some() {
            return true;
        }
        if Instant::now() < self.next_attempt {
            return false;
        }
        for path in self.candidates.clone() {
            if let Ok(Ok(stream)) = timeout(DEADLINE, UnixStream::connect(&path)).await {
                self.stream = Some(stream);
                let hello = encode(&WireMessage::Hello(self.hello.clone()));
                if self.write(&hello).await {
                    self.backoff = Duration::from_millis(250);
                    return true;
                }
            }
        }
        self.next_attempt = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        false
    }

    /// Writes one line within the deadline; on failure the connection is dropped.
    async fn write(&mut self, line: &[u8]) -> bool {
        let Some(stream) = self.stream.as_mut() else {
            return false;
        };
        match timeout(DEADLINE, stream.write_all(line)).await {
            Ok(Ok(())) => true,
            _ => {
                self.stream = None;
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::sync::watch;

    use super::*;
    use crate::traffic::book::TrafficBook;
    use crate::traffic::receiver::{Receiver, ReceiverOptions};

    #[tokio::test]
    async fn deltas_wait_for_a_daemon_and_then_reach_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("traffic.sock");
        let mut reporter = SocketReporter::new(vec![path.clone()], "web", "http://127.0.0.1:1");
        let mut delta = TrafficTotals::default();
        delta.client_to_server.messages = 3;
        reporter.report(&delta, &TrafficState::default()).await;
        let book = Arc::new(TrafficBook::default());
        let (_stop, stop_rx) = watch::channel(false);
        let _handle = Receiver::bind(ReceiverOptions::new(&path))
            .expect("binds")
            .spawn(book.clone(), stop_rx);
        reporter.next_attempt = Instant::now();
        reporter.report(&delta, &TrafficState::default()).await;
        for _ in 0..500 {
            if book
                .server("web")
                .is_some_and(|s| s.totals.client_to_server.messages == 6)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the merged delta did not arrive");
    }
}

//! The side reader of one direction: fed each chunk right after it was forwarded, it splits
//! frames and reads them as they pass ([`super::scan`]), outside the ledger's lock, and records
//! them. It never touches the
//! forwarded bytes and never blocks on the reporter.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::Notify;

use super::frame::{FrameEvent, FrameSplitter};
use super::ledger::Ledger;
use super::scan::Scanned;
use super::totals::Peer;

/// The ledger shared by the two taps and the reporter.
pub type SharedLedger = Arc<Mutex<Ledger>>;

/// Locks the ledger; a panic elsewhere while it was held does not stop the accounting.
pub fn lock(ledger: &SharedLedger) -> MutexGuard<'_, Ledger> {
    ledger
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Reads the frames one side sends.
#[derive(Debug)]
pub struct Tap {
    sender: Peer,
    splitter: FrameSplitter,
    ledger: SharedLedger,
    /// Woken after every frame when reports go out per frame (a zero report interval).
    wake: Option<Arc<Notify>>,
}

impl Tap {
    /// A tap for the frames `sender` sends.
    pub fn new(sender: Peer, ledger: SharedLedger, wake: Option<Arc<Notify>>) -> Self {
        Tap {
            sender,
            splitter: FrameSplitter::default(),
            ledger,
            wake,
        }
    }

    /// Accounts for a chunk that was just forwarded; `read_at` is when it was read (before
    /// it was forwarded), the time its frames are stamped with.
    pub fn observe(&mut self, chunk: &[u8], read_at: Instant) {
        let at = read_at;
        let (sender, ledger, wake) = (self.sender, &self.ledger, &self.wake);
        lock(ledger).record_bytes(sender, chunk.len());
        self.splitter
            .push(chunk, |event| record(ledger, wake, sender, event, at));
    }

    /// The stream ended: accounts for a last frame without newline.
    pub fn finish(&mut self) {
        let at = Instant::now();
        let (sender, ledger, wake) = (self.sender, &self.ledger, &self.wake);
        self.splitter
            .finish(|event| record(ledger, wake, sender, event, at));
    }
}

fn record(
    ledger: &SharedLedger,
    wake: &Option<Arc<Notify>>,
    sender: Peer,
    event: FrameEvent<'_>,
    at: Instant,
) {
    match event {
        FrameEvent::Frame(Scanned::Read { size, parsed }) => {
            lock(ledger).record_frame(sender, parsed, size, at);
        }
        FrameEvent::Frame(Scanned::Blank) => return,
        FrameEvent::Frame(Scanned::Unparsed { .. }) | FrameEvent::Oversized(_) => {
            lock(ledger).record_oversized(sender)
        }
    }
    if let Some(wake) = wake {
        wake.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traffic::totals::RequestKey;

    #[test]
    fn chunks_from_both_sides_meet_in_one_ledger() {
        let ledger: SharedLedger = Arc::new(Mutex::new(Ledger::default()));
        let mut client = Tap::new(Peer::Client, ledger.clone(), None);
        let mut server = Tap::new(Peer::Server, ledger.clone(), None);
        let now = Instant::now();
        client.observe(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"met", now);
        client.observe(b"hod\":\"ping\"}\n", now);
        server.observe(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n", now);
        let totals = lock(&ledger).take_delta();
        let key = RequestKey {
            origin: Peer::Client,
            method: "ping".into(),
            tool: None,
        };
        assert_eq!(totals.requests[&key].ok, 1);
        assert_eq!(totals.client_to_server.bytes, 41);
        assert_eq!(totals.client_to_server.messages, 1);
    }

    #[test]
    fn a_frame_cut_by_the_end_of_the_stream_is_still_read() {
        let ledger: SharedLedger = Arc::new(Mutex::new(Ledger::default()));
        let wake = Arc::new(Notify::new());
        let mut client = Tap::new(Peer::Client, ledger.clone(), Some(wake));
        client.observe(
            b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}",
            Instant::now(),
        );
        assert_eq!(lock(&ledger).take_delta().client_to_server.messages, 0);
        client.finish();
        let totals = lock(&ledger).take_delta();
        assert_eq!(totals.client_to_server.messages, 1);
        assert_eq!(totals.notifications.len(), 1);
    }
}

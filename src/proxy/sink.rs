//! Where a proxy's counters go: straight into the daemon's traffic figures ([`LocalTraffic`]) (a `[[proxies]]`
//! entry), or to a running daemon over the traffic socket (`mcp-exporter proxy`, see
//! [`super::report`]).

use std::sync::Arc;

use crate::traffic::book::LocalTraffic;
use crate::traffic::receiver::WrapperInfo;
use crate::traffic::totals::{TrafficState, TrafficTotals};

use super::report::SocketReporter;

/// The `network_transport` of proxied traffic.
pub const TRANSPORT_TCP: &str = "tcp";

/// A destination of a proxy's deltas.
#[derive(Debug)]
pub enum TrafficSink {
    /// The daemon's book, under the proxy's name.
    Book {
        /// The book.
        book: Arc<dyn LocalTraffic>,
        /// The proxy's identity in it.
        source: WrapperInfo,
    },
    /// A daemon's traffic socket.
    Socket(Box<SocketReporter>),
    /// Nowhere (no daemon to report to was asked for).
    Discard,
}

impl TrafficSink {
    /// Files the proxy `name`'s traffic in `book` (as `tcp`).
    pub fn book(book: Arc<dyn LocalTraffic>, name: &str) -> Result<TrafficSink, String> {
        let source = book.attach_local(name, TRANSPORT_TCP)?;
        Ok(TrafficSink::Book { book, source })
    }

    /// Adds a delta and replaces the gauges.
    pub async fn report(&mut self, delta: &TrafficTotals, state: &TrafficState) {
        match self {
            TrafficSink::Book { book, source } => book.report(source, delta, state),
            TrafficSink::Socket(reporter) => reporter.report(delta, state).await,
            TrafficSink::Discard => {}
        }
    }

    /// The proxy stopped: its gauges no longer hold.
    pub async fn detach(&mut self) {
        match self {
            TrafficSink::Book { book, source } => book.disconnected(source),
            TrafficSink::Socket(reporter) => reporter.exit().await,
            TrafficSink::Discard => {}
        }
    }
}

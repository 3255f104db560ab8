//! What the TLS of a response showed: its chain's expiry (looked up in the client's
//! [`ChainBook`] by the leaf reqwest reports) and the negotiated TLS version.

use std::sync::{Arc, Mutex};

use reqwest::tls::{TlsInfo, Version};
use serde::Serialize;

use super::chain::ChainBook;

/// The TLS of one connection, as a probe or a dependency check reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TlsObservation {
    /// The earliest not-after of the presented chain, Unix seconds.
    pub cert_not_after: i64,
    /// The leaf certificate's not-after, Unix seconds.
    pub leaf_not_after: i64,
    /// Certificates the server presented.
    pub certificates: usize,
    /// The negotiated version: `TLS 1.3`, `TLS 1.2`, … (`unknown` when not reported).
    pub version: &'static str,
}

/// The label value of a TLS version (the wording of blackbox_exporter's `probe_tls_version_info`).
pub fn version_name(version: Option<Version>) -> &'static str {
    match version {
        Some(v) if v == Version::TLS_1_3 => "TLS 1.3",
        Some(v) if v == Version::TLS_1_2 => "TLS 1.2",
        Some(v) if v == Version::TLS_1_1 => "TLS 1.1",
        Some(v) if v == Version::TLS_1_0 => "TLS 1.0",
        _ => "unknown",
    }
}

/// The observation of `response`: `None` for plain HTTP, or when its chain was not verified by
/// a verifier writing to `book`.
pub fn observe(response: &reqwest::Response, book: &ChainBook) -> Option<TlsObservation> {
    let info = response.extensions().get::<TlsInfo>()?;
    let facts = book.facts_for(info.peer_certificate()?)?;
    Some(TlsObservation {
        cert_not_after: facts.earliest_not_after,
        leaf_not_after: facts.leaf_not_after,
        certificates: facts.certificates,
        version: version_name(info.version()),
    })
}

/// The TLS seen by one HTTP transport: its client's book and the newest observation since the
/// last [`TlsWatch::take`].
#[derive(Debug, Default)]
pub struct TlsWatch {
    book: Arc<ChainBook>,
    last: Mutex<Option<TlsObservation>>,
}

impl TlsWatch {
    /// A watch reading `book`, the one the transport's (possibly shared) client records into.
    pub fn with_book(book: Arc<ChainBook>) -> Self {
        TlsWatch {
            book,
            last: Mutex::default(),
        }
    }

    /// The book the transport's TLS configuration must record into.
    pub fn book(&self) -> &Arc<ChainBook> {
        &self.book
    }

    /// Notes the TLS of a response (nothing for plain HTTP).
    pub fn note(&self, response: &reqwest::Response) {
        if let Some(seen) = observe(response, &self.book) {
            *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(seen);
        }
    }

    /// The newest observation since the last call (drains).
    pub fn take(&self) -> Option<TlsObservation> {
        self.last.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_read_like_blackbox_exporter() {
        assert_eq!(version_name(Some(Version::TLS_1_3)), "TLS 1.3");
        assert_eq!(version_name(Some(Version::TLS_1_2)), "TLS 1.2");
        assert_eq!(version_name(None), "unknown");
    }
}

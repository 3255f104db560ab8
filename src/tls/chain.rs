//! The certificate chain a server presented: a verifier wrapper that notes every chain it
//! accepted, and the dates read from it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

/// Chains remembered per book; a book serves one client, which talks to few servers.
const BOOK_CAPACITY: usize = 64;

/// What the chain of one handshake says about expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainFacts {
    /// The earliest not-after of every certificate presented (leaf and intermediates), Unix
    /// seconds: when the chain stops verifying.
    pub earliest_not_after: i64,
    /// The leaf's own not-after, Unix seconds.
    pub leaf_not_after: i64,
    /// Certificates the server presented.
    pub certificates: usize,
}

/// Reads the dates of a presented chain; `None` when the leaf is not an X.509 certificate
/// (intermediates that cannot be read are left out).
pub fn chain_facts(
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
) -> Option<ChainFacts> {
    let not_after = |der: &CertificateDer<'_>| {
        x509_parser::parse_x509_certificate(der.as_ref())
            .ok()
            .map(|(_, cert)| cert.validity().not_after.timestamp())
    };
    let leaf_not_after = not_after(end_entity)?;
    let earliest_not_after = intermediates
        .iter()
        .filter_map(not_after)
        .fold(leaf_not_after, i64::min);
    Some(ChainFacts {
        earliest_not_after,
        leaf_not_after,
        certificates: 1 + intermediates.len(),
    })
}

/// The chains the verifiers of one client accepted, keyed by their leaf certificate (what a
/// response's `TlsInfo` names), newest last, at most `BOOK_CAPACITY`.
#[derive(Debug, Default)]
pub struct ChainBook {
    chains: Mutex<VecDeque<(Vec<u8>, ChainFacts)>>,
}

impl ChainBook {
    /// Notes the chain of `leaf` (replacing an older note of the same leaf).
    pub fn record(&self, leaf: &[u8], facts: ChainFacts) {
        let mut chains = self.chains.lock().unwrap_or_else(|p| p.into_inner());
        chains.retain(|(der, _)| der != leaf);
        if chains.len() >= BOOK_CAPACITY {
            chains.pop_front();
        }
        chains.push_back((leaf.to_vec(), facts));
    }

    /// The chain whose leaf is `leaf`, when a handshake of this book's client accepted it.
    pub fn facts_for(&self, leaf: &[u8]) -> Option<ChainFacts> {
        let chains = self.chains.lock().unwrap_or_else(|p| p.into_inner());
        chains
            .iter()
            .rev()
            .find(|(der, _)| der == leaf)
            .map(|(_, facts)| *facts)
    }
}

/// A server certificate verifier that delegates every decision to `inner` and notes each chain
/// it accepted in a [`ChainBook`]. With a configured `server_name`, the chain is verified for
/// that name instead of the URL's host.
#[derive(Debug)]
pub struct RecordingVerifier {
    inner: Arc<dyn ServerCertVerifier>,
    server_name: Option<ServerName<'static>>,
    book: Arc<ChainBook>,
}

impl RecordingVerifier {
    /// Wraps `inner`; accepted chains go to `book`.
    pub fn new(
        inner: Arc<dyn ServerCertVerifier>,
        server_name: Option<ServerName<'static>>,
        book: Arc<ChainBook>,
    ) -> Self {
        RecordingVerifier {
            inner,
            server_name,
            book,
        }
    }
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let name = self.server_name.as_ref().unwrap_or(server_name);
        let verified =
            self.inner
                .verify_server_cert(end_entity, intermediates, name, ocsp_response, now)?;
        // Only a chain that verified is noted: an untrusted chain's dates say nothing about
        // the server's own certificate.
        if let Some(facts) = chain_facts(end_entity, intermediates) {
            self.book.record(end_entity.as_ref(), facts);
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn requires_raw_public_keys(&self) -> bool {
        self.inner.requires_raw_public_keys()
    }

    fn root_hint_subjects(&self) -> Option<&[rustls::DistinguishedName]> {
        self.inner.root_hint_subjects()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Certificate parameters valid until 2030-01-01 plus `days`.
    fn params(name: &str, days: u64) -> rcgen::CertificateParams {
        let mut params = rcgen::CertificateParams::new(vec![name.to_string()]).expect("params");
        params.not_after =
            rcgen::date_time_ymd(2030, 1, 1) + std::time::Duration::from_secs(days * 86_400);
        params
    }

    #[test]
    fn the_earliest_not_after_of_the_chain_wins() {
        let mut ca_params = params("ca.test", 10);
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_key = rcgen::KeyPair::generate().expect("key");
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("ca");
        let leaf_key = rcgen::KeyPair::generate().expect("key");
        let leaf = params("leaf.test", 20)
            .signed_by(&leaf_key, &ca)
            .expect("leaf");
        let facts = chain_facts(leaf.der(), std::slice::from_ref(ca.der())).expect("facts");
        let base = 1_893_456_000; // 2030-01-01T00:00:00Z
        assert_eq!(facts.leaf_not_after, base + 20 * 86_400);
        assert_eq!(facts.earliest_not_after, base + 10 * 86_400);
        assert_eq!(facts.certificates, 2);
        let alone = chain_facts(leaf.der(), &[]).expect("facts");
        assert_eq!(alone.earliest_not_after, base + 20 * 86_400);
        assert!(chain_facts(&CertificateDer::from(vec![1, 2, 3]), &[]).is_none());
    }

    #[test]
    fn the_book_finds_a_chain_by_its_leaf_and_stays_bounded() {
        let book = ChainBook::default();
        let facts = |n: i64| ChainFacts {
            earliest_not_after: n,
            leaf_not_after: n,
            certificates: 1,
        };
        book.record(b"a", facts(1));
        book.record(b"b", facts(2));
        book.record(b"a", facts(3));
        assert_eq!(book.facts_for(b"a"), Some(facts(3)));
        assert_eq!(book.facts_for(b"b"), Some(facts(2)));
        assert_eq!(book.facts_for(b"c"), None);
        for n in 0..(BOOK_CAPACITY as i64 + 5) {
            book.record(&n.to_le_bytes(), facts(n));
        }
        assert_eq!(book.facts_for(b"a"), None);
        assert_eq!(
            book.chains.lock().expect("lock").len(),
            BOOK_CAPACITY,
            "the book is bounded"
        );
    }
}

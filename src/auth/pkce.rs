//! Proof Key for Code Exchange (RFC 7636) with the `S256` method, the only one the prober uses
//! (the MCP authorization spec requires it; `plain` is never sent).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// The challenge method sent (`code_challenge_method`).
pub const METHOD: &str = "S256";

/// A code verifier and its challenge.
#[derive(Clone, PartialEq, Eq)]
pub struct Pkce {
    /// The `code_verifier` of the token request: 43 characters of the unreserved set.
    pub verifier: String,
    /// The `code_challenge` of the authorization request: BASE64URL(SHA256(verifier)).
    pub challenge: String,
}

/// The verifier is a secret until the code is exchanged.
impl std::fmt::Debug for Pkce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkce")
            .field("challenge", &self.challenge)
            .finish_non_exhaustive()
    }
}

impl Pkce {
    /// A fresh verifier of 32 random bytes (RFC 7636 section 4.1 recommends 32 octets,
    /// base64url encoded) and its challenge.
    pub fn generate() -> Self {
        let bytes: [u8; 32] = rand::random();
        Self::from_verifier(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The challenge of `verifier` (RFC 7636 section 4.2, `S256`).
    pub fn from_verifier(verifier: String) -> Self {
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        Pkce {
            verifier,
            challenge,
        }
    }
}

/// Whether an authorization server whose metadata states `supported`
/// (`code_challenge_methods_supported`) can be used: absent means unknown (RFC 8414 has no
/// default; the MCP spec tells clients to refuse only when the list is there without `S256`).
pub fn server_accepts_s256(supported: Option<&[String]>) -> bool {
    supported.is_none_or(|methods| methods.iter().any(|m| m == METHOD))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_7636_appendix_b_vector() {
        let pkce = Pkce::from_verifier("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".into());
        assert_eq!(
            pkce.challenge,
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn generated_verifiers_are_43_unreserved_characters_and_differ() {
        let a = Pkce::generate();
        let b = Pkce::generate();
        assert_eq!(a.verifier.len(), 43);
        assert!(
            a.verifier
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._~".contains(c)),
            "{}",
            a.verifier
        );
        assert_ne!(a.verifier, b.verifier);
        assert_eq!(
            Pkce::from_verifier(a.verifier.clone()).challenge,
            a.challenge
        );
        assert!(!format!("{a:?}").contains(&a.verifier));
    }

    #[test]
    fn servers_listing_methods_without_s256_are_refused() {
        assert!(server_accepts_s256(None));
        assert!(server_accepts_s256(Some(&["plain".into(), "S256".into()])));
        assert!(!server_accepts_s256(Some(&["plain".into()])));
        assert!(!server_accepts_s256(Some(&[])));
    }
}

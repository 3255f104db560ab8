//! DPoP (RFC 9449): sender-constrained access tokens. A server's [`Dpop`] holds an ES256 key
//! pair generated when the daemon first needs it (kept in memory for the daemon's life: the
//! authorization server binds a token to whichever key proves possession at the token request,
//! so no key needs registering, and a restarted daemon simply obtains new tokens with a new key;
//! only the tokens `mcp-exporter login` stores are written with their key, in the login file,
//! src/auth/refresh_store.rs, since the daemon can use them only with it), signs one proof JWT per HTTP request, and remembers the nonces
//! servers hand out (`DPoP-Nonce`), per origin. docs/auth.md#dpop explains when it is used.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::SystemTime;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use sha2::{Digest, Sha256};
use url::Url;

/// The request header carrying a proof, and the response header carrying a nonce.
pub const DPOP_HEADER: &str = "dpop";
/// The response header of a server-provided nonce (RFC 9449 sections 8 and 9).
pub const NONCE_HEADER: &str = "dpop-nonce";
/// The error code of a server that wants a (new) nonce in the proof.
pub const USE_NONCE_ERROR: &str = "use_dpop_nonce";
/// The one algorithm the prober signs proofs with.
pub const ALGORITHM: &str = "ES256";

/// Why no proof could be made.
#[derive(Debug, thiserror::Error)]
pub enum DpopError {
    /// The system's random source or the signature failed.
    #[error("cannot sign a DPoP proof: {0}")]
    Signing(&'static str),
}

/// One server's DPoP key and the nonces its servers (authorization and resource) handed out.
pub struct Dpop {
    key: EcdsaKeyPair,
    /// The key pair as PKCS#8, what a login file keeps.
    pkcs8: Vec<u8>,
    rng: SystemRandom,
    /// The public key as a JWK (`kty`, `crv`, `x`, `y`), the proofs' `jwk` header.
    jwk: serde_json::Value,
    /// Nonces by origin (`scheme://host:port`), last one received wins.
    nonces: Mutex<HashMap<String, String>>,
}

/// The private key never reaches a log line.
impl std::fmt::Debug for Dpop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dpop")
            .field("jkt", &self.thumbprint())
            .finish_non_exhaustive()
    }
}

impl Dpop {
    /// A new key pair (P-256, from the system's random source).
    pub fn generate() -> Result<Dpop, DpopError> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| DpopError::Signing("no key pair could be generated"))?;
        Dpop::from_pkcs8(pkcs8.as_ref())
    }

    /// The key pair of [`Dpop::pkcs8`] (a login file's key).
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Dpop, DpopError> {
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng)
            .map_err(|_| DpopError::Signing("the key pair is not a P-256 PKCS#8 key"))?;
        // An uncompressed SEC1 point: 0x04, then x and y (32 bytes each).
        let point = key.public_key().as_ref();
        if point.len() != 65 {
            return Err(DpopError::Signing("unexpected public key encoding"));
        }
        let jwk = serde_json::json!({
            "kty": "EC",
            "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        });
        Ok(Dpop {
            key,
            pkcs8: pkcs8.to_vec(),
            rng,
            jwk,
            nonces: Mutex::new(HashMap::new()),
        })
    }

    /// The key pair as PKCS#8 (secret: only a login file, mode 0600, keeps it).
    pub fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The public key's JWK thumbprint (RFC 7638, SHA-256), what a bound token's `cnf.jkt`
    /// names.
    pub fn thumbprint(&self) -> String {
        // The required members in lexicographic order, no whitespace (RFC 7638 section 3).
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            self.jwk["x"].as_str().unwrap_or_default(),
            self.jwk["y"].as_str().unwrap_or_default()
        );
        URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
    }

    /// A proof for one request: `method` and `url` (its query and fragment left out), the
    /// `ath` of `access_token` when one is presented, and the nonce last received from the
    /// URL's origin, if any.
    pub fn proof(
        &self,
        method: &str,
        url: &Url,
        access_token: Option<&str>,
    ) -> Result<String, DpopError> {
        let nonce = self.nonce_for(url);
        self.sign(
            method,
            url,
            access_token,
            nonce.as_deref(),
            SystemTime::now(),
        )
    }

    fn sign(
        &self,
        method: &str,
        url: &Url,
        access_token: Option<&str>,
        nonce: Option<&str>,
        now: SystemTime,
    ) -> Result<String, DpopError> {
        let mut jti = [0u8; 16];
        self.rng
            .fill(&mut jti)
            .map_err(|_| DpopError::Signing("no random jti"))?;
        let iat = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let header = serde_json::json!({ "typ": "dpop+jwt", "alg": ALGORITHM, "jwk": self.jwk });
        let mut claims = serde_json::json!({
            "jti": URL_SAFE_NO_PAD.encode(jti),
            "htm": method,
            "htu": target_uri(url),
            "iat": iat,
        });
        if let Some(token) = access_token {
            claims["ath"] = URL_SAFE_NO_PAD
                .encode(Sha256::digest(token.as_bytes()))
                .into();
        }
        if let Some(nonce) = nonce {
            claims["nonce"] = nonce.into();
        }
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self
            .key
            .sign(&self.rng, signing_input.as_bytes())
            .map_err(|_| DpopError::Signing("the signature failed"))?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        ))
    }

    /// Remembers the nonce a response from `url`'s origin carried (`DPoP-Nonce`). Returns
    /// whether it differs from the one held (a retry with it can succeed).
    pub fn note_nonce(&self, url: &Url, headers: &reqwest::header::HeaderMap) -> bool {
        let Some(nonce) = headers
            .get(NONCE_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|n| !n.is_empty())
        else {
            return false;
        };
        let mut nonces = self.nonces.lock().unwrap_or_else(|p| p.into_inner());
        let origin = url.origin().ascii_serialization();
        let changed = nonces.get(&origin).map(String::as_str) != Some(nonce);
        nonces.insert(origin, nonce.to_string());
        changed
    }

    fn nonce_for(&self, url: &Url) -> Option<String> {
        self.nonces
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&url.origin().ascii_serialization())
            .cloned()
    }
}

/// The `htu` of a request: its URL without query and fragment (RFC 9449 section 4.2).
pub fn target_uri(url: &Url) -> String {
    let mut htu = url.clone();
    htu.set_query(None);
    htu.set_fragment(None);
    htu.to_string()
}

/// Whether an authorization server's metadata offers DPoP with the algorithm the prober signs
/// (`dpop_signing_alg_values_supported` lists ES256).
pub fn offered(signing_algs: Option<&[String]>) -> bool {
    signing_algs.is_some_and(|algs| algs.iter().any(|a| a == ALGORITHM))
}

/// Whether a token response's `token_type` binds the token to the proof key (`DPoP`, in any
/// case); `Bearer` and anything else stay bearer tokens.
pub fn is_bound(token_type: &str) -> bool {
    token_type.eq_ignore_ascii_case("dpop")
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};

    #[test]
    fn a_kept_key_is_the_same_key() {
        let dpop = Dpop::generate().unwrap();
        let again = Dpop::from_pkcs8(dpop.pkcs8()).unwrap();
        assert_eq!(again.thumbprint(), dpop.thumbprint());
        assert!(Dpop::from_pkcs8(b"not a key").is_err());
    }

    /// Splits and verifies a proof with the public key its own `jwk` header carries, as a
    /// server does: the header and the claims when the signature holds.
    fn verified(proof: &str) -> (serde_json::Value, serde_json::Value) {
        let parts: Vec<&str> = proof.split('.').collect();
        assert_eq!(parts.len(), 3, "a compact JWS");
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        let x = URL_SAFE_NO_PAD
            .decode(header["jwk"]["x"].as_str().unwrap())
            .unwrap();
        let y = URL_SAFE_NO_PAD
            .decode(header["jwk"]["y"].as_str().unwrap())
            .unwrap();
        let mut point = vec![4u8];
        point.extend(x);
        point.extend(y);
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
            .expect("the proof's signature verifies with its jwk");
        (header, claims)
    }

    #[test]
    fn a_proof_verifies_and_states_method_target_and_time() {
        let dpop = Dpop::generate().unwrap();
        let url = Url::parse("https://as.example:8443/token?x=1#frag").unwrap();
        let before = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let (header, claims) = verified(&dpop.proof("POST", &url, None).unwrap());
        assert_eq!(header["typ"], "dpop+jwt");
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["jwk"]["kty"], "EC");
        assert_eq!(header["jwk"]["crv"], "P-256");
        assert!(header["jwk"].get("d").is_none(), "no private key member");
        assert_eq!(claims["htm"], "POST");
        assert_eq!(claims["htu"], "https://as.example:8443/token");
        let iat = claims["iat"].as_u64().unwrap();
        assert!(iat >= before && iat <= before + 5, "iat {iat}");
        assert!(claims.get("ath").is_none() && claims.get("nonce").is_none());
    }

    #[test]
    fn each_proof_has_its_own_jti() {
        let dpop = Dpop::generate().unwrap();
        let url = Url::parse("http://127.0.0.1:1/mcp").unwrap();
        let (_, a) = verified(&dpop.proof("POST", &url, None).unwrap());
        let (_, b) = verified(&dpop.proof("POST", &url, None).unwrap());
        assert!(a["jti"].as_str().is_some_and(|j| j.len() >= 16));
        assert_ne!(a["jti"], b["jti"]);
    }

    #[test]
    fn a_resource_proof_carries_the_hash_of_the_token() {
        let dpop = Dpop::generate().unwrap();
        let url = Url::parse("http://127.0.0.1:1/mcp").unwrap();
        let (_, claims) = verified(&dpop.proof("GET", &url, Some("tok-123")).unwrap());
        let expected = URL_SAFE_NO_PAD.encode(Sha256::digest(b"tok-123"));
        assert_eq!(claims["ath"], expected);
        assert_eq!(claims["htm"], "GET");
    }

    #[test]
    fn nonces_are_kept_per_origin_and_sent_back() {
        let dpop = Dpop::generate().unwrap();
        let rs = Url::parse("http://127.0.0.1:9000/mcp").unwrap();
        let other_path = Url::parse("http://127.0.0.1:9000/other").unwrap();
        let other_origin = Url::parse("http://127.0.0.1:9001/token").unwrap();
        let mut headers = reqwest::header::HeaderMap::new();
        assert!(!dpop.note_nonce(&rs, &headers), "no nonce header");
        headers.insert(NONCE_HEADER, "n-1".parse().unwrap());
        assert!(dpop.note_nonce(&rs, &headers));
        assert!(!dpop.note_nonce(&rs, &headers), "the same nonce again");
        let (_, claims) = verified(&dpop.proof("POST", &other_path, None).unwrap());
        assert_eq!(claims["nonce"], "n-1");
        let (_, claims) = verified(&dpop.proof("POST", &other_origin, None).unwrap());
        assert!(claims.get("nonce").is_none(), "another origin's nonce");
    }

    /// The thumbprint hashes the required members, sorted, without whitespace (RFC 7638).
    #[test]
    fn the_thumbprint_is_the_hash_of_the_canonical_jwk() {
        let dpop = Dpop::generate().unwrap();
        let canonical = serde_json::to_string(&serde_json::json!({
            "crv": "P-256", "kty": "EC", "x": dpop.jwk["x"], "y": dpop.jwk["y"],
        }))
        .unwrap();
        assert_eq!(
            dpop.thumbprint(),
            URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
        );
    }

    #[test]
    fn metadata_and_token_type_decide() {
        assert!(offered(Some(&["RS256".into(), "ES256".into()])));
        assert!(!offered(Some(&["RS256".into()])));
        assert!(!offered(None));
        assert!(is_bound("DPoP") && is_bound("dpop"));
        assert!(!is_bound("Bearer"));
    }
}

//! The signed JWT of `private_key_jwt` client authentication (RFC 7523 section 2.2): `iss` and
//! `sub` the client id, `aud` the authorization server's issuer, a unique `jti`, signed ES256
//! with a PKCS#8 P-256 key.

use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};

/// How long an assertion is valid.
const LIFETIME: Duration = Duration::from_secs(300);

/// Why no assertion could be signed.
#[derive(Debug, thiserror::Error)]
pub enum AssertionError {
    /// The key file is not a PEM `PRIVATE KEY` (PKCS#8) block.
    #[error("the private key is not a PEM PKCS#8 \"PRIVATE KEY\" block")]
    NotPem,
    /// The key is not an EC P-256 key ring accepts.
    #[error("the private key is not a PKCS#8 EC P-256 key (ES256): {0}")]
    NotP256(String),
    /// Signing failed.
    #[error("signing the client assertion failed")]
    Signing,
}

/// A compact JWS asserting `client_id` to the authorization server `audience`, issued at `now`.
pub fn sign(
    pem: &str,
    client_id: &str,
    audience: &str,
    now: SystemTime,
) -> Result<String, AssertionError> {
    let der = pem_body(pem)?;
    let rng = SystemRandom::new();
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng)
        .map_err(|e| AssertionError::NotP256(e.to_string()))?;
    let iat = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut jti = [0u8; 16];
    rng.fill(&mut jti).map_err(|_| AssertionError::Signing)?;
    let header = serde_json::json!({ "alg": "ES256", "typ": "JWT" });
    let claims = serde_json::json!({
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "iat": iat,
        "exp": iat + LIFETIME.as_secs(),
        "jti": URL_SAFE_NO_PAD.encode(jti),
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = key
        .sign(&rng, signing_input.as_bytes())
        .map_err(|_| AssertionError::Signing)?;
    Ok(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature.as_ref())
    ))
}

/// The DER bytes of the PEM `PRIVATE KEY` block.
fn pem_body(pem: &str) -> Result<Vec<u8>, AssertionError> {
    let begin = "-----BEGIN PRIVATE KEY-----";
    let end = "-----END PRIVATE KEY-----";
    let start = pem.find(begin).ok_or(AssertionError::NotPem)? + begin.len();
    let stop = pem[start..].find(end).ok_or(AssertionError::NotPem)? + start;
    let body: String = pem[start..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    STANDARD.decode(body).map_err(|_| AssertionError::NotPem)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{ECDSA_P256_SHA256_FIXED, KeyPair, UnparsedPublicKey};

    fn generated_pem() -> (String, Vec<u8>) {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            STANDARD.encode(pkcs8.as_ref())
        );
        (pem, key.public_key().as_ref().to_vec())
    }

    #[test]
    fn assertion_verifies_and_names_the_client_and_issuer() {
        let (pem, public) = generated_pem();
        let jwt = sign(&pem, "probe", "https://as", SystemTime::now()).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["iss"], "probe");
        assert_eq!(claims["sub"], "probe");
        assert_eq!(claims["aud"], "https://as");
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, public)
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
            .expect("signature verifies");
    }

    #[test]
    fn rejects_what_is_not_a_p256_pkcs8_key() {
        assert!(matches!(
            sign("nothing", "c", "a", SystemTime::now()),
            Err(AssertionError::NotPem)
        ));
        let garbage = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----";
        assert!(matches!(
            sign(garbage, "c", "a", SystemTime::now()),
            Err(AssertionError::NotP256(_))
        ));
    }
}

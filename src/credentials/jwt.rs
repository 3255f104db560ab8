//! Reading the `exp` claim of a bearer token that is a JSON Web Token (RFC 7519), without
//! verifying it: the prober is not the token's audience, it only wants to warn before the token
//! expires. Nothing of the token is kept or printed.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Longest token looked at; real JWTs are a few kilobytes.
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The token of an `Authorization: Bearer <token>` value (scheme matched without case).
pub fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Decodes one base64url segment (padding tolerated) into a JSON object.
fn json_segment(segment: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(segment.trim_end_matches('=')).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        serde_json::Value::Object(map) => Some(map),
        _ => None,
    }
}

/// The `exp` claim (Unix seconds) of a compact JWS token whose header names an `alg`; `None`
/// for anything else (an opaque token, an encrypted JWT, a token without `exp`).
pub fn expiry(token: &str) -> Option<i64> {
    if token.len() > MAX_TOKEN_BYTES {
        return None;
    }
    let mut parts = token.split('.');
    let (header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    json_segment(header)?.get("alg")?.as_str()?;
    let exp = json_segment(payload)?.get("exp")?.clone();
    match exp {
        serde_json::Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite())
                .map(|f| f.floor() as i64)
        }),
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A token with the given header and claims and a made-up signature.
    pub(crate) fn token(header: &str, claims: &str) -> String {
        format!(
            "{}.{}.c2lnbmF0dXJl",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        )
    }

    #[test]
    fn exp_is_read_from_a_jws_and_nothing_else() {
        let h = r#"{"alg":"RS256","typ":"JWT"}"#;
        assert_eq!(
            expiry(&token(h, r#"{"exp":1767225600}"#)),
            Some(1_767_225_600)
        );
        assert_eq!(
            expiry(&token(h, r#"{"exp":1767225600.9}"#)),
            Some(1_767_225_600)
        );
        assert_eq!(expiry(&token(h, r#"{"sub":"x"}"#)), None, "no exp");
        assert_eq!(
            expiry(&token(h, r#"{"exp":"soon"}"#)),
            None,
            "exp not a number"
        );
        assert_eq!(
            expiry(&token(r#"{"typ":"JWT"}"#, r#"{"exp":1}"#)),
            None,
            "no alg"
        );
        assert_eq!(expiry("opaque-token"), None);
        assert_eq!(expiry("a.b.c.d.e"), None, "JWE has five parts");
        assert_eq!(expiry("!!.??.x"), None);
        let padded = format!(
            "{}=",
            token(h, r#"{"exp":5}"#).split('.').next().expect("h")
        );
        assert!(json_segment(&padded).is_some(), "padding tolerated");
    }

    #[test]
    fn the_bearer_scheme_is_matched_without_case() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer   abc "), Some("abc"));
        assert_eq!(bearer_token("Basic dXNlcjpwYXNz"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearer"), None);
    }
}

//! OAuth on the HTTP transports (docs/auth.md): every request carries the token the server's
//! [`Authorizer`] holds (a DPoP-bound one with a fresh proof, src/auth/dpop.rs), and a 401 (or
//! a 403 `insufficient_scope`) is answered once per refusal by obtaining a new token and
//! sending the request again, at most [`MAX_AUTH_RETRIES`] times; a 401 asking for a new DPoP
//! nonce is sent again once with it.

use std::future::Future;

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue, WWW_AUTHENTICATE};
use tokio::time::Instant;

use super::error::McpError;
use super::http_io::drain_in_background;
use crate::auth::challenge::Challenge;
use crate::auth::dpop::{DPOP_HEADER, USE_NONCE_ERROR};
use crate::auth::{AuthFailure, Authorizer, MAX_AUTH_RETRIES};

/// `headers` with the `Authorization` for the token `auth` holds (unchanged without one):
/// `Bearer`, or for a DPoP-bound token `DPoP` with a `DPoP` proof of this `method` and `url`.
pub(crate) fn with_authorization(
    headers: &HeaderMap,
    auth: Option<&Authorizer>,
    method: &reqwest::Method,
    url: &url::Url,
) -> HeaderMap {
    let mut out = headers.clone();
    let Some((authorization, proof)) = auth.and_then(|a| a.authorization(method.as_str(), url))
    else {
        return out;
    };
    if let Ok(mut value) = HeaderValue::try_from(authorization) {
        value.set_sensitive(true);
        out.insert(AUTHORIZATION, value);
    }
    if let Some(proof) = proof
        && let Ok(value) = HeaderValue::try_from(proof)
    {
        out.insert(DPOP_HEADER, value);
    }
    out
}

/// True when a 401 asks for a DPoP nonce (`error="use_dpop_nonce"`, RFC 9449 section 9).
fn nonce_wanted(resp: &reqwest::Response) -> bool {
    resp.status().as_u16() == 401
        && Challenge::parse(
            resp.headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok()),
        )
        .error
        .as_deref()
            == Some(USE_NONCE_ERROR)
}

/// The server's challenge when `resp` asks for a (better) token: a 401, or a 403 with
/// `error="insufficient_scope"`.
fn token_wanted(resp: &reqwest::Response) -> Option<(u16, Challenge)> {
    let status = resp.status().as_u16();
    let challenge = Challenge::parse(
        resp.headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok()),
    );
    (status == 401 || (status == 403 && challenge.insufficient_scope()))
        .then_some((status, challenge))
}

/// Sends a request with `send` (which builds it afresh each time, with
/// [`with_authorization`]'s headers). Without `auth` this is `send` once. With it: a token due
/// for renewal is renewed first; a `DPoP-Nonce` answered is remembered, and a 401 asking for a
/// nonce not held before is sent again once with it; a refusal is answered with a new token
/// and a retry; a 401 to a token just issued, or refusals beyond the retry limit, end in
/// `credential_rejected`.
pub(crate) async fn send_authorized<F, Fut>(
    auth: Option<&Authorizer>,
    client: &reqwest::Client,
    url: &url::Url,
    deadline: Instant,
    send: F,
) -> Result<reqwest::Response, McpError>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<reqwest::Response, McpError>>,
{
    let Some(auth) = auth else {
        return send().await;
    };
    auth.prepare(client, deadline).await;
    let mut resp = send().await?;
    let mut retries = 0;
    let mut nonce_retried = false;
    loop {
        let fresh_nonce = auth.note_nonce(url, resp.headers());
        if fresh_nonce && !nonce_retried && nonce_wanted(&resp) {
            nonce_retried = true;
            drain_in_background(resp);
            resp = send().await?;
            continue;
        }
        let Some((status, challenge)) = token_wanted(&resp) else {
            break;
        };
        if status == 401 && retries > 0 {
            return Err(McpError::Authorization {
                failure: AuthFailure::CredentialRejected,
                detail:
                    "the server refused (HTTP 401) the token its authorization server just issued"
                        .into(),
            });
        }
        if retries == MAX_AUTH_RETRIES {
            return Err(McpError::Authorization {
                failure: AuthFailure::CredentialRejected,
                detail: format!(
                    "the server still answers HTTP {status} insufficient_scope after {retries} new tokens{}",
                    challenge
                        .scope
                        .as_deref()
                        .map(|s| format!(" (it asks for scope {s:?})"))
                        .unwrap_or_default()
                ),
            });
        }
        drain_in_background(resp);
        auth.answer(client, url, &challenge, deadline)
            .await
            .map_err(|e| McpError::Authorization {
                failure: e.failure,
                detail: e.detail,
            })?;
        retries += 1;
        nonce_retried = false;
        resp = send().await?;
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    /// POSTs to `url` as a transport does: with the token (and proof) `auth` holds, through
    /// [`send_authorized`] (discovery and a new token on a 401), within 20 s.
    async fn post_authorized(
        auth: &Authorizer,
        url: &url::Url,
    ) -> Result<reqwest::Response, McpError> {
        let client = reqwest::Client::new();
        let post = || async {
            client
                .post(url.clone())
                .headers(with_authorization(
                    &HeaderMap::new(),
                    Some(auth),
                    &reqwest::Method::POST,
                    url,
                ))
                .send()
                .await
                .map_err(|e| McpError::protocol(e.to_string()))
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        send_authorized(Some(auth), &client, url, deadline, post).await
    }

    use super::super::test_server::{json_response, scripted_server};
    use super::*;
    use crate::auth::config::OauthConfig;
    use crate::auth::{MetadataDocument, RefreshOutcome, ResolvedClient};

    fn status(line: &str, extra: &str) -> String {
        format!("HTTP/1.1 {line}\r\n{extra}content-length: 0\r\nconnection: close\r\n\r\n")
    }

    fn authorizer() -> Authorizer {
        authorizer_with_dpop(None)
    }

    fn authorizer_with_dpop(dpop: Option<bool>) -> Authorizer {
        let auth = Authorizer::new(
            OauthConfig {
                client_id: Some("probe".into()),
                client_secret: Some("${S}".into()),
                scopes: vec!["mcp:read".into()],
                token_endpoint_auth_method: None,
                private_key_file: None,
                authorization_server: None,
                resource_metadata: None,
                resource: None,
                assertion: None,
                dpop,
                identity_provider: None,
                client_metadata_url: None,
                login: None,
            },
            Duration::from_secs(60),
        );
        auth.set_client(ResolvedClient {
            client_id: Some("probe".into()),
            client_secret: Some("s3cret".into()),
            private_key_pem: None,
            assertion: None,
            subject_token: None,
            idp_client_secret: None,
        });
        auth
    }

    /// A 401, no metadata anywhere (the 2025-03-26 fallback: the origin's /token), a token,
    /// then the request again with it; a second request reuses the token.
    #[tokio::test]
    async fn a_401_is_answered_with_a_token_and_the_request_sent_again() {
        let (url, seen) = scripted_server(vec![
            status(
                "401 Unauthorized",
                "www-authenticate: Bearer error=\"invalid_token\"\r\n",
            ),
            status("404 Not Found", ""),
            status("404 Not Found", ""),
            status("404 Not Found", ""),
            status("404 Not Found", ""),
            json_response(&serde_json::json!({
                "access_token": "tok-1", "token_type": "Bearer", "expires_in": 3600
            })),
            status("200 OK", ""),
            status("200 OK", ""),
        ])
        .await;
        let auth = authorizer();
        for _ in 0..2 {
            let resp = post_authorized(&auth, &url).await.expect("authorized");
            assert_eq!(resp.status().as_u16(), 200);
        }
        let seen = seen.lock().expect("seen");
        assert_eq!(seen.len(), 8);
        assert_eq!(seen[0].header("authorization"), None);
        // The token request: client_secret_basic (no metadata says otherwise).
        assert_eq!(seen[5].method, "POST");
        assert!(
            seen[5]
                .header("authorization")
                .is_some_and(|v| v.starts_with("Basic ")),
            "token request authenticates the client"
        );
        assert_eq!(seen[6].header("authorization"), Some("Bearer tok-1"));
        assert_eq!(seen[7].header("authorization"), Some("Bearer tok-1"));
        let report = auth.take_report();
        assert_eq!(report.token_requests, vec![RefreshOutcome::Ok]);
        assert!(
            report
                .metadata
                .contains(&(MetadataDocument::ProtectedResource, true))
        );
        assert!(report.access_expires_at.is_some());
        assert!(!report.spent.is_zero());
    }

    /// A token the server refuses right after it was issued is `credential_rejected`.
    #[tokio::test]
    async fn a_fresh_token_refused_is_credential_rejected() {
        let unauthorized = status(
            "401 Unauthorized",
            "www-authenticate: Bearer error=\"invalid_token\"\r\n",
        );
        let (url, _seen) = scripted_server(vec![
            unauthorized.clone(),
            status("404 Not Found", ""),
            status("404 Not Found", ""),
            status("404 Not Found", ""),
            status("404 Not Found", ""),
            json_response(&serde_json::json!({"access_token": "tok", "token_type": "Bearer"})),
            unauthorized,
        ])
        .await;
        let auth = authorizer();
        let err = post_authorized(&auth, &url).await.expect_err("refused");
        assert!(
            matches!(
                err,
                McpError::Authorization {
                    failure: AuthFailure::CredentialRejected,
                    ..
                }
            ),
            "{err}"
        );
    }

    /// An unreachable token endpoint is `auth_server_down`, counted as `unreachable`.
    #[tokio::test]
    async fn a_token_endpoint_answering_5xx_is_auth_server_down() {
        let (url, _seen) = scripted_server(vec![
            status("401 Unauthorized", "www-authenticate: Bearer\r\n"),
            status("404 Not Found", ""),
            status("404 Not Found", ""),
            status("404 Not Found", ""),
            status("404 Not Found", ""),
            status("503 Service Unavailable", ""),
        ])
        .await;
        let auth = authorizer();
        let err = post_authorized(&auth, &url).await.expect_err("down");
        assert!(
            matches!(
                err,
                McpError::Authorization {
                    failure: AuthFailure::AuthServerDown,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(
            auth.take_report().token_requests,
            vec![RefreshOutcome::Unreachable]
        );
    }

    /// The claims of a proof JWT (its signature is checked in src/auth/dpop.rs's tests).
    fn proof_claims(proof: Option<&str>) -> serde_json::Value {
        use base64::Engine;
        let proof = proof.expect("a DPoP header");
        let payload = proof.split('.').nth(1).expect("a JWS");
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("base64url");
        serde_json::from_slice(&bytes).expect("JSON claims")
    }

    /// With `dpop = true`: the token request carries a proof and is sent again with the nonce
    /// the token endpoint asks for; the DPoP token goes out as `Authorization: DPoP` with a
    /// proof hashing it, and the server's nonce challenge is answered once, with its nonce.
    #[tokio::test]
    async fn dpop_proofs_follow_the_nonces_of_the_token_endpoint_and_the_server() {
        let nonce_needed = |extra: &str, body: &str| {
            format!(
                "HTTP/1.1 {extra}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )
        };
        let (url, seen) = scripted_server(vec![
            status(
                "401 Unauthorized",
                "www-authenticate: Bearer error=\"invalid_token\"\r\n",
            ),
            status("404 Not Found", ""),
            status("404 Not Found", ""),
            status("404 Not Found", ""),
            status("404 Not Found", ""),
            nonce_needed(
                "400 Bad Request\r\ndpop-nonce: as-n",
                r#"{"error":"use_dpop_nonce"}"#,
            ),
            json_response(&serde_json::json!({
                "access_token": "tok-d", "token_type": "DPoP", "expires_in": 3600
            })),
            status(
                "401 Unauthorized",
                "www-authenticate: DPoP error=\"use_dpop_nonce\"\r\ndpop-nonce: rs-n\r\n",
            ),
            status("200 OK", ""),
        ])
        .await;
        let auth = authorizer_with_dpop(Some(true));
        let resp = post_authorized(&auth, &url).await.expect("authorized");
        assert_eq!(resp.status().as_u16(), 200);
        let seen = seen.lock().expect("seen");
        assert_eq!(seen.len(), 9);
        let token_endpoint = url.join("/token").expect("url").to_string();
        let first = proof_claims(seen[5].header("dpop"));
        assert_eq!(first["htm"], "POST");
        assert_eq!(first["htu"], token_endpoint);
        assert!(first.get("nonce").is_none() && first.get("ath").is_none());
        let again = proof_claims(seen[6].header("dpop"));
        assert_eq!(again["nonce"], "as-n");
        assert_ne!(again["jti"], first["jti"]);
        assert_eq!(seen[7].header("authorization"), Some("DPoP tok-d"));
        let resource = proof_claims(seen[7].header("dpop"));
        assert_eq!(resource["htu"], url.to_string());
        assert_eq!(
            resource["ath"], "GPENd8lZmF0Vx2MOxqQXN_Y1dnMdJ1NjyzFr7_jJV4Q",
            "base64url SHA-256 of tok-d"
        );
        let retried = proof_claims(seen[8].header("dpop"));
        assert_eq!(seen[8].header("authorization"), Some("DPoP tok-d"));
        assert_eq!(retried["nonce"], "rs-n");
        assert_ne!(retried["jti"], resource["jti"]);
        assert_eq!(auth.take_report().token_requests, vec![RefreshOutcome::Ok]);
    }
}

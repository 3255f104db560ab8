//! OAuth on the HTTP transports (docs/auth.md): every request carries the token the server's
//! [`Authorizer`] holds, and a 401 (or a 403 `insufficient_scope`) is answered once per
//! refusal by obtaining a new token and sending the request again, at most
//! [`MAX_AUTH_RETRIES`] times.

use std::future::Future;

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue, WWW_AUTHENTICATE};
use tokio::time::Instant;

use super::error::McpError;
use super::http_io::drain_in_background;
use crate::auth::challenge::Challenge;
use crate::auth::{AuthFailure, Authorizer, MAX_AUTH_RETRIES};

/// `headers` with `Authorization: Bearer` for the token `auth` holds (unchanged without one).
pub(crate) fn with_bearer(headers: &HeaderMap, auth: Option<&Authorizer>) -> HeaderMap {
    let mut out = headers.clone();
    if let Some(token) = auth.and_then(Authorizer::bearer)
        && let Ok(mut value) = HeaderValue::try_from(format!("Bearer {token}"))
    {
        value.set_sensitive(true);
        out.insert(AUTHORIZATION, value);
    }
    out
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

/// Sends a request with `send` (which builds it afresh each time, with [`with_bearer`]'s
/// headers). Without `auth` this is `send` once. With it: a token due for renewal is renewed
/// first, and a refusal is answered with a new token and a retry; a 401 to a token just
/// issued, or refusals beyond the retry limit, end in `credential_rejected`.
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
    while let Some((status, challenge)) = token_wanted(&resp) {
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
        resp = send().await?;
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::test_server::{json_response, scripted_server};
    use super::*;
    use crate::auth::config::OauthConfig;
    use crate::auth::{MetadataDocument, RefreshOutcome, ResolvedClient};

    fn status(line: &str, extra: &str) -> String {
        format!("HTTP/1.1 {line}\r\n{extra}content-length: 0\r\nconnection: close\r\n\r\n")
    }

    fn authorizer() -> Authorizer {
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
        let client = reqwest::Client::new();
        let auth = authorizer();
        let deadline = Instant::now() + Duration::from_secs(20);
        let post = || async {
            client
                .post(url.clone())
                .headers(with_bearer(&HeaderMap::new(), Some(&auth)))
                .send()
                .await
                .map_err(|e| McpError::protocol(e.to_string()))
        };
        for _ in 0..2 {
            let resp = send_authorized(Some(&auth), &client, &url, deadline, post)
                .await
                .expect("authorized");
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
        let client = reqwest::Client::new();
        let auth = authorizer();
        let deadline = Instant::now() + Duration::from_secs(20);
        let post = || async {
            client
                .post(url.clone())
                .headers(with_bearer(&HeaderMap::new(), Some(&auth)))
                .send()
                .await
                .map_err(|e| McpError::protocol(e.to_string()))
        };
        let err = send_authorized(Some(&auth), &client, &url, deadline, post)
            .await
            .expect_err("refused");
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
        let client = reqwest::Client::new();
        let auth = authorizer();
        let deadline = Instant::now() + Duration::from_secs(20);
        let post = || async {
            client
                .post(url.clone())
                .send()
                .await
                .map_err(|e| McpError::protocol(e.to_string()))
        };
        let err = send_authorized(Some(&auth), &client, &url, deadline, post)
            .await
            .expect_err("down");
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
}

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

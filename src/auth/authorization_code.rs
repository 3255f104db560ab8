//! The authorization-code grant of `mcp-exporter login` (docs/auth.md#login): the authorization
//! URL (PKCE `S256`, `state`, RFC 8707 `resource`, the scope), the loopback redirect listener
//! (RFC 8252: `http://127.0.0.1:PORT/callback`, an ephemeral port) and the checks of the
//! redirect: `error`, `state`, and `iss` (RFC 9207).

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::{Instant, timeout_at};
use url::Url;

use super::pkce::{self, Pkce};

/// The path of the loopback redirect URI.
pub const CALLBACK_PATH: &str = "/callback";
/// Largest redirect request read.
const MAX_REQUEST_BYTES: usize = 16 * 1024;

/// One authorization request: what goes in the URL, and what the redirect must match.
#[derive(Debug, Clone)]
pub struct AuthorizationRequest {
    /// The authorization endpoint.
    pub endpoint: Url,
    /// The client id.
    pub client_id: String,
    /// The loopback redirect URI.
    pub redirect_uri: String,
    /// Scopes, space separated; `None` leaves `scope` out.
    pub scope: Option<String>,
    /// The RFC 8707 resource.
    pub resource: String,
    /// The random `state` the redirect must carry back.
    pub state: String,
    /// The PKCE pair.
    pub pkce: Pkce,
}

impl AuthorizationRequest {
    /// A request with a fresh `state` and PKCE pair.
    pub fn new(
        endpoint: Url,
        client_id: String,
        redirect_uri: String,
        scope: Option<String>,
        resource: String,
    ) -> Self {
        let state: [u8; 24] = rand::random();
        AuthorizationRequest {
            endpoint,
            client_id,
            redirect_uri,
            scope,
            resource,
            state: URL_SAFE_NO_PAD.encode(state),
            pkce: Pkce::generate(),
        }
    }

    /// The URL the person opens.
    pub fn url(&self) -> Url {
        let mut url = self.endpoint.clone();
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("response_type", "code")
                .append_pair("client_id", &self.client_id)
                .append_pair("redirect_uri", &self.redirect_uri)
                .append_pair("state", &self.state)
                .append_pair("code_challenge", &self.pkce.challenge)
                .append_pair("code_challenge_method", pkce::METHOD)
                .append_pair("resource", &self.resource);
            if let Some(scope) = &self.scope {
                query.append_pair("scope", scope);
            }
        }
        url
    }
}

/// Why the redirect did not give a code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedirectError {
    /// The authorization server answered with an error (the person declined, or it refused).
    #[error("the authorization server answered {error}{}", description.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Refused {
        /// `error`.
        error: String,
        /// `error_description`.
        description: Option<String>,
    },
    /// `state` missing or not the one sent: the redirect is not the answer to this request.
    #[error("the redirect's state does not match the request's; refusing it")]
    StateMismatch,
    /// RFC 9207: the server says it sends `iss`, and the redirect has none.
    #[error(
        "the authorization server {issuer} says its redirects carry iss, and this one has none; refusing it"
    )]
    IssMissing {
        /// The issuer expected.
        issuer: String,
    },
    /// RFC 9207: `iss` is not the issuer the request was sent to (a mix-up attack, or a server
    /// that moved), compared character for character.
    #[error(
        "the redirect's iss {got:?} is not the issuer {issuer:?} the request went to; refusing it"
    )]
    IssMismatch {
        /// The issuer expected.
        issuer: String,
        /// The `iss` received.
        got: String,
    },
    /// No `code`.
    #[error("the redirect carries no code")]
    NoCode,
}

/// The code of a redirect's query `params`, after the checks: `error` first (with its
/// description), then `state`, then `iss` against `issuer` (required when
/// `iss_supported`, compared exactly whenever present), then the code.
pub fn code_of(
    params: &[(String, String)],
    state: &str,
    issuer: &str,
    iss_supported: bool,
) -> Result<String, RedirectError> {
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if let Some(error) = get("error") {
        return Err(RedirectError::Refused {
            error: error.to_string(),
            description: get("error_description").map(str::to_string),
        });
    }
    if get("state") != Some(state) {
        return Err(RedirectError::StateMismatch);
    }
    match get("iss") {
        None if iss_supported => {
            return Err(RedirectError::IssMissing {
                issuer: issuer.to_string(),
            });
        }
        Some(got) if got != issuer => {
            return Err(RedirectError::IssMismatch {
                issuer: issuer.to_string(),
                got: got.to_string(),
            });
        }
        _ => {}
    }
    get("code")
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .ok_or(RedirectError::NoCode)
}

/// The loopback listener the authorization server redirects the browser to.
#[derive(Debug)]
pub struct Loopback {
    listener: TcpListener,
    redirect_uri: String,
}

/// Why waiting for the redirect failed.
#[derive(Debug, thiserror::Error)]
pub enum LoopbackError {
    /// The listener could not be opened or accept.
    #[error("loopback redirect listener: {0}")]
    Io(#[from] std::io::Error),
    /// Nobody came back in time.
    #[error("no redirect reached {redirect_uri} within {}s: the login was not completed in the browser", waited.as_secs())]
    Timeout {
        /// The redirect URI.
        redirect_uri: String,
        /// How long it waited.
        waited: Duration,
    },
}

impl Loopback {
    /// Listens on 127.0.0.1: on `port` when given and free (a registration naming that
    /// redirect can be reused), else on an ephemeral port.
    pub async fn bind(port: Option<u16>) -> Result<Self, LoopbackError> {
        let listener = match port {
            Some(port) => match TcpListener::bind(("127.0.0.1", port)).await {
                Ok(listener) => listener,
                Err(_) => TcpListener::bind(("127.0.0.1", 0)).await?,
            },
            None => TcpListener::bind(("127.0.0.1", 0)).await?,
        };
        let port = listener.local_addr()?.port();
        Ok(Loopback {
            listener,
            redirect_uri: format!("http://127.0.0.1:{port}{CALLBACK_PATH}"),
        })
    }

    /// The redirect URI (`http://127.0.0.1:PORT/callback`).
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// Waits until `until` for a `GET /callback?...` and returns its query parameters; other
    /// requests (a browser's `/favicon.ico`) get a 404 and the wait goes on. The browser is
    /// told to close the page.
    pub async fn wait(&self, until: Instant) -> Result<Vec<(String, String)>, LoopbackError> {
        let started = Instant::now();
        loop {
            let accepted = timeout_at(until, self.listener.accept()).await;
            let Ok(accepted) = accepted else {
                return Err(LoopbackError::Timeout {
                    redirect_uri: self.redirect_uri.clone(),
                    waited: started.elapsed(),
                });
            };
            let (mut stream, _) = accepted?;
            let Ok(Ok(target)) = timeout_at(until, read_target(&mut stream)).await else {
                continue;
            };
            let Some(params) = callback_params(&target) else {
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                    )
                    .await;
                continue;
            };
            let body = "mcp-exporter: the authorization server answered; you can close this page and return to the terminal.\n";
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(answer.as_bytes()).await;
            let _ = stream.shutdown().await;
            return Ok(params);
        }
    }
}

/// The request target of the first line of an HTTP request (`GET /callback?x HTTP/1.1`).
async fn read_target(stream: &mut tokio::net::TcpStream) -> std::io::Result<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 2048];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < MAX_REQUEST_BYTES {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&buf);
    let line = text.lines().next().unwrap_or_default();
    let mut words = line.split_whitespace();
    match (words.next(), words.next()) {
        (Some("GET"), Some(target)) => Ok(target.to_string()),
        _ => Err(std::io::Error::other("not a GET request")),
    }
}

/// The query parameters of a request target on the callback path.
fn callback_params(target: &str) -> Option<Vec<(String, String)>> {
    let url = Url::parse(&format!("http://127.0.0.1{target}")).ok()?;
    (url.path() == CALLBACK_PATH).then(|| url.query_pairs().into_owned().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const AS: &str = "https://as.example";

    #[test]
    fn the_url_carries_pkce_state_resource_and_scope() {
        let req = AuthorizationRequest::new(
            Url::parse("https://as.example/authorize?tenant=1").unwrap(),
            "client".into(),
            "http://127.0.0.1:5555/callback".into(),
            Some("mcp:read offline_access".into()),
            "https://api.example/mcp".into(),
        );
        let url = req.url();
        let q: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(get("tenant").as_deref(), Some("1"));
        assert_eq!(get("response_type").as_deref(), Some("code"));
        assert_eq!(get("code_challenge_method").as_deref(), Some("S256"));
        assert_eq!(get("code_challenge"), Some(req.pkce.challenge.clone()));
        assert_eq!(get("state"), Some(req.state.clone()));
        assert_eq!(get("resource").as_deref(), Some("https://api.example/mcp"));
        assert_eq!(get("scope").as_deref(), Some("mcp:read offline_access"));
        assert_eq!(
            get("redirect_uri").as_deref(),
            Some("http://127.0.0.1:5555/callback")
        );
        assert!(!url.as_str().contains(&req.pkce.verifier));
    }

    #[test]
    fn error_redirects_are_reported_with_their_description() {
        let err = code_of(
            &params(&[
                ("error", "access_denied"),
                ("error_description", "the person said no"),
                ("state", "s"),
            ]),
            "s",
            AS,
            false,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the authorization server answered access_denied: the person said no"
        );
    }

    #[test]
    fn state_must_match() {
        assert_eq!(
            code_of(
                &params(&[("code", "c"), ("state", "other")]),
                "s",
                AS,
                false
            ),
            Err(RedirectError::StateMismatch)
        );
        assert_eq!(
            code_of(&params(&[("code", "c")]), "s", AS, false),
            Err(RedirectError::StateMismatch)
        );
        assert_eq!(
            code_of(&params(&[("code", "c"), ("state", "s")]), "s", AS, false).as_deref(),
            Ok("c")
        );
    }

    #[test]
    fn iss_is_required_when_advertised_and_compared_exactly_when_present() {
        let with = |iss: &str| params(&[("code", "c"), ("state", "s"), ("iss", iss)]);
        let without = params(&[("code", "c"), ("state", "s")]);
        assert_eq!(code_of(&with(AS), "s", AS, true).as_deref(), Ok("c"));
        assert!(matches!(
            code_of(&without, "s", AS, true),
            Err(RedirectError::IssMissing { .. })
        ));
        assert_eq!(code_of(&without, "s", AS, false).as_deref(), Ok("c"));
        // Present though not advertised: still compared.
        assert!(matches!(
            code_of(&with("https://evil.example"), "s", AS, false),
            Err(RedirectError::IssMismatch { .. })
        ));
        // No normalisation: a trailing slash, another case or an explicit port is another issuer.
        for variant in [
            "https://as.example/",
            "HTTPS://as.example",
            "https://as.example:443",
        ] {
            assert!(
                matches!(
                    code_of(&with(variant), "s", AS, true),
                    Err(RedirectError::IssMismatch { .. })
                ),
                "{variant}"
            );
        }
    }

    #[tokio::test]
    async fn the_listener_returns_the_callback_query_and_ignores_other_paths() {
        let loopback = Loopback::bind(None).await.unwrap();
        let uri = loopback.redirect_uri().to_string();
        assert!(
            uri.starts_with("http://127.0.0.1:") && uri.ends_with("/callback"),
            "{uri}"
        );
        let base = uri.trim_end_matches(CALLBACK_PATH).to_string();
        let client = tokio::spawn(async move {
            let http = reqwest::Client::new();
            let other = http
                .get(format!("{base}/favicon.ico"))
                .send()
                .await
                .unwrap();
            assert_eq!(other.status(), 404);
            let page = http
                .get(format!("{base}/callback?code=abc&state=xyz%20z"))
                .send()
                .await
                .unwrap();
            assert_eq!(page.status(), 200);
        });
        let got = loopback
            .wait(Instant::now() + Duration::from_secs(30))
            .await
            .unwrap();
        client.await.unwrap();
        assert_eq!(got, params(&[("code", "abc"), ("state", "xyz z")]));
    }

    #[tokio::test]
    async fn nobody_coming_back_is_a_timeout() {
        let loopback = Loopback::bind(None).await.unwrap();
        let err = loopback
            .wait(Instant::now() + Duration::from_millis(50))
            .await
            .unwrap_err();
        assert!(matches!(err, LoopbackError::Timeout { .. }), "{err}");
        assert!(err.to_string().contains("not completed"), "{err}");
    }
}

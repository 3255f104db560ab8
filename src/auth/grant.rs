//! Token requests: the client-credentials grant and the refresh-token grant, made with the
//! `oauth2` crate, and the JWT-bearer grant it lacks (hand-written, [`post_form`], which the
//! token exchange of src/auth/token_exchange.rs shares), each with a DPoP proof when the token
//! is to be bound (src/auth/dpop.rs), over the daemon's shared HTTP client (so TLS settings and loopback servers
//! work as for the probe itself), with the RFC 8707 `resource` and client authentication by
//! `client_secret_basic`, `client_secret_post`, `none` or `private_key_jwt`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{
    AuthType, ClientId, ClientSecret, HttpRequest, HttpResponse, RefreshToken, RequestTokenError,
    Scope, TokenResponse, TokenUrl,
};
use tokio::time::{Instant, timeout_at};
use url::Url;

use super::cache::CachedToken;
use super::config::TokenAuthMethod;
use super::dpop::{self, Dpop};
use super::jwt_assertion;
use super::metadata::error_chain;

/// Longest one token request may take, within the probe's deadline.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest token response read.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// The client, as the token endpoint authenticates it.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientAuth {
    /// The client id.
    pub client_id: String,
    /// The resolved secret (`basic` and `post`).
    pub client_secret: Option<String>,
    /// The method used.
    pub method: TokenAuthMethod,
    /// The PEM key of `private_key_jwt`.
    pub private_key_pem: Option<String>,
}

/// Secrets never reach a log line.
impl std::fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientAuth")
            .field("client_id", &self.client_id)
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

/// What one token request asks for.
#[derive(Debug, Clone)]
pub struct TokenRequest<'a> {
    /// The token endpoint.
    pub endpoint: &'a Url,
    /// The authorization server's issuer (the audience of a `private_key_jwt` assertion).
    pub issuer: &'a str,
    /// Scopes, space separated; `None` leaves `scope` out.
    pub scope: Option<&'a str>,
    /// The RFC 8707 resource indicator.
    pub resource: &'a str,
    /// The DPoP key proving possession at the token endpoint (src/auth/dpop.rs); `None` asks
    /// for a bearer token.
    pub dpop: Option<&'a Arc<Dpop>>,
}

/// Why a token request failed, in the three ways an operator acts on.
#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    /// The token endpoint refused the client or the grant (`invalid_client`, `invalid_grant`,
    /// `unauthorized_client`, ...): the credentials need a person.
    #[error("token endpoint refused the request: {error}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Rejected {
        /// The OAuth error code.
        error: String,
        /// Its `error_description`.
        description: Option<String>,
    },
    /// The token endpoint did not answer, or answered 5xx.
    #[error("token endpoint unreachable: {0}")]
    Unreachable(String),
    /// Anything else: an answer that is not a token response, a key that cannot sign.
    #[error("token request failed: {0}")]
    Failed(String),
}

impl GrantError {
    /// The OAuth error code of a refusal.
    pub fn code(&self) -> Option<&str> {
        match self {
            GrantError::Rejected { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// The HTTP failure handed back through `oauth2` (a transport failure or a 5xx answer).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct HttpFailure(String);

/// Asks for a token with the client-credentials grant.
pub async fn client_credentials(
    http: &reqwest::Client,
    client: &ClientAuth,
    req: &TokenRequest<'_>,
    deadline: Instant,
) -> Result<CachedToken, GrantError> {
    let oauth = oauth_client(client, req.endpoint);
    let mut request = oauth
        .exchange_client_credentials()
        .add_extra_param("resource", req.resource);
    if let Some(scope) = req.scope {
        request = request.add_scopes(scope.split_whitespace().map(|s| Scope::new(s.into())));
    }
    for (name, value) in assertion_params(client, req)? {
        request = request.add_extra_param(name, value);
    }
    let until = deadline.min(Instant::now() + REQUEST_TIMEOUT);
    let sender = |request: HttpRequest| send(http.clone(), request, until, req.dpop.cloned());
    let answer = request.request_async(&sender).await;
    into_token(answer, req.scope, None, req.dpop.is_some())
}

/// Renews a token with its refresh token.
pub async fn refresh(
    http: &reqwest::Client,
    client: &ClientAuth,
    req: &TokenRequest<'_>,
    refresh_token: &str,
    deadline: Instant,
) -> Result<CachedToken, GrantError> {
    let oauth = oauth_client(client, req.endpoint);
    let token = RefreshToken::new(refresh_token.to_string());
    let mut request = oauth
        .exchange_refresh_token(&token)
        .add_extra_param("resource", req.resource);
    if let Some(scope) = req.scope {
        request = request.add_scopes(scope.split_whitespace().map(|s| Scope::new(s.into())));
    }
    for (name, value) in assertion_params(client, req)? {
        request = request.add_extra_param(name, value);
    }
    let until = deadline.min(Instant::now() + REQUEST_TIMEOUT);
    let sender = |request: HttpRequest| send(http.clone(), request, until, req.dpop.cloned());
    let answer = request.request_async(&sender).await;
    // RFC 6749 section 6: a refresh answer without a refresh token keeps the old one.
    into_token(answer, req.scope, Some(refresh_token), req.dpop.is_some())
}

/// Exchanges an authorization code (`mcp-exporter login`, src/auth/authorization_code.rs) with
/// its PKCE `verifier` and the `redirect_uri` it was sent to.
pub async fn authorization_code(
    http: &reqwest::Client,
    client: &ClientAuth,
    req: &TokenRequest<'_>,
    code: &str,
    verifier: &str,
    redirect_uri: &str,
    deadline: Instant,
) -> Result<CachedToken, GrantError> {
    let oauth = oauth_client(client, req.endpoint);
    let redirect = oauth2::RedirectUrl::new(redirect_uri.to_string())
        .map_err(|e| GrantError::Failed(format!("redirect URI {redirect_uri:?}: {e}")))?;
    let mut request = oauth
        .exchange_code(oauth2::AuthorizationCode::new(code.to_string()))
        .set_pkce_verifier(oauth2::PkceCodeVerifier::new(verifier.to_string()))
        .set_redirect_uri(std::borrow::Cow::Owned(redirect))
        .add_extra_param("resource", req.resource);
    for (name, value) in assertion_params(client, req)? {
        request = request.add_extra_param(name, value);
    }
    let until = deadline.min(Instant::now() + REQUEST_TIMEOUT);
    let sender = |request: HttpRequest| send(http.clone(), request, until, req.dpop.cloned());
    let answer = request.request_async(&sender).await;
    into_token(answer, req.scope, None, req.dpop.is_some())
}

/// The RFC 7523 grant type of [`jwt_bearer`].
const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// A token response (RFC 6749 section 5.1), as far as the prober reads it.
#[derive(serde::Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: Option<u64>,
    refresh_token: Option<String>,
    scope: Option<String>,
    token_type: Option<String>,
}

/// An error response (RFC 6749 section 5.2).
#[derive(serde::Deserialize)]
struct ErrorAnswer {
    error: String,
    error_description: Option<String>,
}

/// Asks for a token with the JWT-bearer grant (RFC 7523 section 2.1): `assertion` is a JWT the
/// authorization server trusts (a workload identity token, or the identity assertion grant of
/// src/auth/token_exchange.rs). The `oauth2` crate has no such grant, so the form is written
/// here; the client authenticates as for the other grants (`none`: its id in the body).
pub async fn jwt_bearer(
    http: &reqwest::Client,
    client: &ClientAuth,
    req: &TokenRequest<'_>,
    assertion: &str,
    deadline: Instant,
) -> Result<CachedToken, GrantError> {
    let mut form: Vec<(&str, String)> = vec![
        ("grant_type", JWT_BEARER_GRANT.to_string()),
        ("assertion", assertion.to_string()),
        ("resource", req.resource.to_string()),
    ];
    if let Some(scope) = req.scope {
        form.push(("scope", scope.to_string()));
    }
    form.extend(assertion_params(client, req)?);
    let body = post_form(
        http,
        req.endpoint,
        Some(client),
        form,
        req.dpop.cloned(),
        deadline,
    )
    .await?;
    let obtained_at = SystemTime::now();
    let token: TokenAnswer = serde_json::from_slice(&body)
        .map_err(|e| GrantError::Failed(format!("the answer is not a token response: {e}")))?;
    Ok(CachedToken {
        access: token.access_token,
        refresh: token.refresh_token,
        scope: token.scope.or_else(|| req.scope.map(str::to_string)),
        obtained_at,
        expires_at: token
            .expires_in
            .map(|s| obtained_at + Duration::from_secs(s)),
        dpop_bound: req.dpop.is_some() && token.token_type.as_deref().is_some_and(dpop::is_bound),
    })
}

/// POSTs a form to a token endpoint, the client authenticated by its method (`basic`: HTTP
/// Basic; `post`: id and secret in the form; otherwise its id in the form; `None`: no client),
/// with a DPoP proof when `dpop` is given. The body of a 2xx answer, else the OAuth error
/// (`Rejected`), or `Failed` for an answer that is none. Token requests the `oauth2` crate has
/// no builder for (JWT-bearer, token exchange) go through here.
pub async fn post_form(
    http: &reqwest::Client,
    endpoint: &Url,
    client: Option<&ClientAuth>,
    mut form: Vec<(&str, String)>,
    dpop: Option<Arc<Dpop>>,
    deadline: Instant,
) -> Result<Vec<u8>, GrantError> {
    let mut request = http
        .post(endpoint.clone())
        .header(reqwest::header::ACCEPT, "application/json");
    if let Some(client) = client {
        match (client.method, &client.client_secret) {
            (TokenAuthMethod::Basic, Some(secret)) => {
                request = request.basic_auth(
                    form_urlencoded_component(&client.client_id),
                    Some(form_urlencoded_component(secret)),
                );
            }
            (TokenAuthMethod::Post, Some(secret)) => {
                form.push(("client_id", client.client_id.clone()));
                form.push(("client_secret", secret.clone()));
            }
            _ => form.push(("client_id", client.client_id.clone())),
        }
    }
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form.iter().map(|(k, v)| (*k, v.as_str())))
        .finish();
    let built = request
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(body);
    let until = deadline.min(Instant::now() + REQUEST_TIMEOUT);
    let (parts, body) = built
        .build()
        .map_err(|e| GrantError::Failed(error_chain(&e)))
        .and_then(|request| {
            oauth2::http::Request::try_from(request)
                .map_err(|e| GrantError::Failed(error_chain(&e)))
        })?
        .into_parts();
    let body = body.as_bytes().map(<[u8]>::to_vec).unwrap_or_default();
    let answer = send(
        http.clone(),
        HttpRequest::from_parts(parts, body),
        until,
        dpop,
    )
    .await
    .map_err(|e| GrantError::Unreachable(e.0))?;
    if answer.status().is_success() {
        return Ok(answer.into_body());
    }
    match serde_json::from_slice::<ErrorAnswer>(answer.body()) {
        Ok(err) => Err(GrantError::Rejected {
            error: err.error,
            description: err.error_description,
        }),
        Err(_) => Err(GrantError::Failed(format!(
            "HTTP {} without an OAuth error",
            answer.status().as_u16()
        ))),
    }
}

/// RFC 6749 section 2.3.1: id and secret are form-urlencoded before HTTP Basic.
fn form_urlencoded_component(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// `client_assertion` parameters of `private_key_jwt`; none for the other methods.
fn assertion_params(
    client: &ClientAuth,
    req: &TokenRequest<'_>,
) -> Result<Vec<(&'static str, String)>, GrantError> {
    if client.method != TokenAuthMethod::PrivateKeyJwt {
        return Ok(Vec::new());
    }
    let pem = client
        .private_key_pem
        .as_deref()
        .ok_or_else(|| GrantError::Failed("private_key_jwt needs private_key_file".into()))?;
    let assertion = jwt_assertion::sign(pem, &client.client_id, req.issuer, SystemTime::now())
        .map_err(|e| GrantError::Failed(e.to_string()))?;
    Ok(vec![
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_string(),
        ),
        ("client_assertion", assertion),
    ])
}

type Client = oauth2::Client<
    oauth2::basic::BasicErrorResponse,
    oauth2::basic::BasicTokenResponse,
    oauth2::basic::BasicTokenIntrospectionResponse,
    oauth2::StandardRevocableToken,
    oauth2::basic::BasicRevocationErrorResponse,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointSet,
>;

fn oauth_client(client: &ClientAuth, endpoint: &Url) -> Client {
    let mut oauth = BasicClient::new(ClientId::new(client.client_id.clone()))
        .set_token_uri(TokenUrl::from_url(endpoint.clone()));
    match client.method {
        TokenAuthMethod::Basic => {
            if let Some(secret) = &client.client_secret {
                oauth = oauth.set_client_secret(ClientSecret::new(secret.clone()));
            }
            oauth = oauth.set_auth_type(AuthType::BasicAuth);
        }
        TokenAuthMethod::Post => {
            if let Some(secret) = &client.client_secret {
                oauth = oauth.set_client_secret(ClientSecret::new(secret.clone()));
            }
            oauth = oauth.set_auth_type(AuthType::RequestBody);
        }
        // The id alone in the body (`none`), or beside the assertion (`private_key_jwt`).
        TokenAuthMethod::None | TokenAuthMethod::PrivateKeyJwt => {
            oauth = oauth.set_auth_type(AuthType::RequestBody);
        }
    }
    oauth
}

/// Sends one token request with `http`, with a DPoP proof when `dpop` is given: a
/// `use_dpop_nonce` refusal carrying a new `DPoP-Nonce` is sent once more with a proof naming
/// it (RFC 9449 section 8), and the nonce is remembered for the endpoint's origin.
async fn send(
    http: reqwest::Client,
    request: HttpRequest,
    until: Instant,
    dpop: Option<Arc<Dpop>>,
) -> Result<HttpResponse, HttpFailure> {
    let Some(dpop) = dpop else {
        return send_once(http, request, until).await;
    };
    let url = Url::parse(&request.uri().to_string())
        .map_err(|e| HttpFailure(format!("token endpoint is not a URL: {e}")))?;
    let (parts, body) = request.into_parts();
    let proven = || -> Result<HttpRequest, HttpFailure> {
        let proof = dpop
            .proof(parts.method.as_str(), &url, None)
            .map_err(|e| HttpFailure(e.to_string()))?;
        let mut request = oauth2::http::Request::builder()
            .method(parts.method.clone())
            .uri(parts.uri.clone());
        for (name, value) in &parts.headers {
            request = request.header(name, value);
        }
        request
            .header(dpop::DPOP_HEADER, proof)
            .body(body.clone())
            .map_err(|e| HttpFailure(e.to_string()))
    };
    let answer = send_once(http.clone(), proven()?, until).await?;
    let fresh_nonce = dpop.note_nonce(&url, answer.headers());
    let wants_nonce = answer.status().as_u16() == 400
        && serde_json::from_slice::<ErrorAnswer>(answer.body())
            .is_ok_and(|e| e.error == dpop::USE_NONCE_ERROR);
    if !(fresh_nonce && wants_nonce) {
        return Ok(answer);
    }
    let answer = send_once(http, proven()?, until).await?;
    dpop.note_nonce(&url, answer.headers());
    Ok(answer)
}

/// Sends one request with `http`; a 5xx answer is a transport failure (the endpoint is down),
/// any other answer goes back to be parsed.
async fn send_once(
    http: reqwest::Client,
    request: HttpRequest,
    until: Instant,
) -> Result<HttpResponse, HttpFailure> {
    let (parts, body) = request.into_parts();
    let url = parts.uri.to_string();
    let built = http
        .request(parts.method, &url)
        .headers(parts.headers)
        .body(body);
    let mut resp = timeout_at(until, built.send())
        .await
        .map_err(|_| HttpFailure("no answer in time".into()))?
        .map_err(|e| HttpFailure(error_chain(&e)))?;
    let status = resp.status();
    if status.is_server_error() {
        return Err(HttpFailure(format!("HTTP {}", status.as_u16())));
    }
    let mut out = oauth2::http::Response::builder().status(status);
    for (name, value) in resp.headers() {
        out = out.header(name, value);
    }
    let mut body = Vec::new();
    loop {
        let chunk = timeout_at(until, resp.chunk())
            .await
            .map_err(|_| HttpFailure("body not read in time".into()))?
            .map_err(|e| HttpFailure(error_chain(&e)))?;
        let Some(chunk) = chunk else { break };
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(HttpFailure(format!(
                "token response larger than {MAX_RESPONSE_BYTES} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    out.body(body)
        .map_err(|e| HttpFailure(format!("cannot read the answer: {e}")))
}

fn into_token(
    answer: Result<
        oauth2::basic::BasicTokenResponse,
        RequestTokenError<HttpFailure, oauth2::basic::BasicErrorResponse>,
    >,
    asked_scope: Option<&str>,
    old_refresh: Option<&str>,
    proven: bool,
) -> Result<CachedToken, GrantError> {
    let token = answer.map_err(|err| match err {
        RequestTokenError::ServerResponse(resp) => GrantError::Rejected {
            error: match resp.error() {
                BasicErrorResponseType::Extension(code) => code.clone(),
                other => other.as_ref().to_string(),
            },
            description: resp.error_description().cloned(),
        },
        RequestTokenError::Request(failure) => GrantError::Unreachable(failure.0),
        RequestTokenError::Parse(e, _) => {
            GrantError::Failed(format!("the answer is not a token response: {e}"))
        }
        RequestTokenError::Other(text) => GrantError::Failed(text),
    })?;
    let obtained_at = SystemTime::now();
    let granted = token.scopes().map(|scopes| {
        scopes
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    });
    Ok(CachedToken {
        access: token.access_token().secret().clone(),
        refresh: token
            .refresh_token()
            .map(|r| r.secret().clone())
            .or_else(|| old_refresh.map(str::to_string)),
        scope: granted.or_else(|| asked_scope.map(str::to_string)),
        obtained_at,
        expires_at: token.expires_in().map(|d| obtained_at + d),
        dpop_bound: proven && dpop::is_bound(token.token_type().as_ref()),
    })
}

//! OAuth 2.1 in the probe client (the MCP authorization spec; docs/auth.md): a server whose
//! entry has `auth = { type = "oauth", ... }` gets an [`Authorizer`]. On the server's 401 it
//! discovers the protected-resource and authorization-server metadata, asks the token endpoint
//! for a token (client credentials, or a refresh token), and the transport retries with
//! `Authorization: Bearer`. The token is kept across probes and renewed before it expires; a
//! 403 `insufficient_scope` asks for the scopes it names (step-up), a bounded number of times.
//!
//! One file per job: [`challenge`] (the `WWW-Authenticate` header), [`well_known`] (where the
//! documents are), [`metadata`] (fetching and checking them), [`scope`] (what to ask for),
//! [`grant`] (token requests: client credentials, refresh, JWT-bearer), [`jwt_assertion`] (`private_key_jwt`), [`cache`] (when to renew),
//! [`config`] (the `auth` key), [`metrics`] (the `mcp_auth_*` families), [`dpop`] (DPoP-bound
//! tokens and their proofs), [`token_exchange`] (enterprise-managed authorization) with its key
//! [`identity_provider`].
//! `mcp-exporter login` (src/cli/login.rs) runs the same client with a person at hand: [`login`]
//! (the authorization-code grant where the daemon would report `login_required`),
//! [`authorization_code`] (URL, loopback redirect, `state`/`iss` checks), [`pkce`],
//! [`registration`] (client ID metadata documents, dynamic registration) and
//! [`refresh_store`] (the refresh token the daemon then uses).

pub mod authorization_code;
pub mod cache;
pub mod challenge;
pub mod config;
pub mod dpop;
pub mod grant;
pub mod identity_provider;
pub mod jwt_assertion;
pub mod login;
pub mod metadata;
pub mod metrics;
pub mod pkce;
pub mod refresh_store;
pub mod registration;
pub mod scope;
pub mod token_exchange;
pub mod well_known;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::time::Instant;
use url::Url;

use cache::{CachedToken, Freshness};
use challenge::Challenge;
use config::{OauthConfig, TokenAuthMethod};
use dpop::Dpop;
use grant::{ClientAuth, GrantError, TokenRequest};
use metadata::MetadataError;

/// How many times one request is retried with a new token (a 401 answered, then 403
/// `insufficient_scope` step-ups) before the probe gives up.
pub const MAX_AUTH_RETRIES: usize = 3;

/// Why authorization failed, in the words an operator acts on (the probe's failure class).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// A person must log in: the authorization server offers only the authorization-code grant,
    /// or no client is configured, and no refresh token is held.
    LoginRequired,
    /// The token endpoint refused the client or grant, or the server refused a fresh token.
    CredentialRejected,
    /// The metadata or token endpoint did not answer, or answered 5xx.
    AuthServerDown,
    /// The metadata cannot be used as configured: an issuer or resource that does not match,
    /// no token endpoint, a key that cannot sign.
    Misconfigured,
}

/// An authorization failure and what happened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct AuthError {
    /// Which kind.
    pub failure: AuthFailure,
    /// A sentence for the operator (never a secret).
    pub detail: String,
}

impl AuthError {
    fn new(failure: AuthFailure, detail: impl Into<String>) -> Self {
        AuthError {
            failure,
            detail: detail.into(),
        }
    }

    fn from_metadata(err: MetadataError) -> Self {
        let failure = if err.is_unreachable() {
            AuthFailure::AuthServerDown
        } else {
            AuthFailure::Misconfigured
        };
        AuthError::new(failure, format!("authorization discovery failed: {err}"))
    }
}

/// Which metadata document (`document` label of `mcp_auth_metadata_up`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MetadataDocument {
    /// RFC 9728 protected-resource metadata.
    ProtectedResource,
    /// RFC 8414 / OpenID authorization-server metadata.
    AuthorizationServer,
}

impl MetadataDocument {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            MetadataDocument::ProtectedResource => "protected_resource",
            MetadataDocument::AuthorizationServer => "authorization_server",
        }
    }
}

/// How a token request ended (`outcome` label of `mcp_auth_refresh_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RefreshOutcome {
    /// A token was issued.
    Ok,
    /// The token endpoint refused the client or the grant.
    Rejected,
    /// The token endpoint did not answer, or answered 5xx.
    Unreachable,
    /// Anything else (an answer that is not a token response, a key that cannot sign).
    Error,
}

impl RefreshOutcome {
    /// Every outcome, for pre-creating series.
    pub const ALL: [RefreshOutcome; 4] = [
        RefreshOutcome::Ok,
        RefreshOutcome::Rejected,
        RefreshOutcome::Unreachable,
        RefreshOutcome::Error,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RefreshOutcome::Ok => "ok",
            RefreshOutcome::Rejected => "rejected",
            RefreshOutcome::Unreachable => "unreachable",
            RefreshOutcome::Error => "error",
        }
    }
}

/// What authorization did since the last report, for the metrics sink (read once per probe).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AuthReport {
    /// Token requests made, in order.
    pub token_requests: Vec<RefreshOutcome>,
    /// Each metadata document fetched: could it be had (last fetch wins).
    pub metadata: Vec<(MetadataDocument, bool)>,
    /// Expiry of the access token held, Unix seconds.
    pub access_expires_at: Option<i64>,
    /// Time spent on discovery and token requests.
    #[serde(skip)]
    pub spent: Duration,
}

/// What discovery found for one server.
#[derive(Debug, Clone)]
struct Discovered {
    /// The protected-resource metadata URL used (`None`: the legacy 2025-03-26 fallback).
    resource_metadata: Option<Url>,
    resource: String,
    scopes_supported: Option<Vec<String>>,
    issuer: String,
    token_endpoint: Url,
    grant_types: Option<Vec<String>>,
    auth_methods: Option<Vec<String>>,
    /// `dpop_signing_alg_values_supported` of the authorization server.
    dpop_algs: Option<Vec<String>>,
    /// The authorization server's metadata (`None`: the 2025-03-26 fallback).
    server_metadata: Option<metadata::ServerMetadata>,
}

#[derive(Debug, Default)]
struct State {
    client: Option<ResolvedClient>,
    discovered: Option<Discovered>,
    token: Option<CachedToken>,
    report: AuthReport,
    /// The DPoP key, made when a token is first asked for with DPoP; kept for the daemon's life.
    dpop: Option<Arc<Dpop>>,
    /// Set by `mcp-exporter login`: a person can authorize.
    login: Option<login::LoginSettings>,
    /// The issuer of the last login stored, and whether it holds a refresh token.
    stored: Option<(String, bool)>,
}

/// The configured client with its secrets resolved (per probe: a rotated secret file is read
/// again).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct ResolvedClient {
    /// The client id (`None`: none configured).
    pub client_id: Option<String>,
    /// The resolved `client_secret`.
    pub client_secret: Option<String>,
    /// The PEM text of `private_key_file`.
    pub private_key_pem: Option<String>,
    /// The resolved `assertion` of the JWT-bearer grant.
    pub assertion: Option<String>,
    /// The resolved `identity_provider.subject_token` (enterprise-managed authorization).
    pub subject_token: Option<String>,
    /// The resolved `identity_provider.client_secret`.
    pub idp_client_secret: Option<String>,
}

/// Secrets never reach a log line.
impl std::fmt::Debug for ResolvedClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResolvedClient")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// One server's OAuth client: configuration, discovered metadata, the token cache and the
/// report for the metrics. Cloning shares it; the probe runner keeps one across probes.
#[derive(Clone)]
pub struct Authorizer(Arc<Inner>);

struct Inner {
    config: OauthConfig,
    /// How long a token must still last when a probe starts (interval plus timeout).
    ahead: Duration,
    state: Mutex<State>,
}

impl std::fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Authorizer")
    }
}

/// Shared state, not a bound: any two compare equal (as `HttpClients`).
impl PartialEq for Authorizer {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Authorizer {}

impl Authorizer {
    /// An authorizer for `config`; tokens are renewed when they would not last `ahead` longer.
    pub fn new(config: OauthConfig, ahead: Duration) -> Self {
        Authorizer(Arc::new(Inner {
            config,
            ahead,
            state: Mutex::new(State::default()),
        }))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets the client with its secrets resolved for this probe; a changed client drops the
    /// token obtained with the old one.
    pub fn set_client(&self, client: ResolvedClient) {
        let mut state = self.state();
        if state.client.as_ref() != Some(&client) {
            state.token = None;
        }
        state.client = Some(client);
    }

    /// Lets a person authorize (`mcp-exporter login`): where the daemon would report
    /// `login_required`, the authorization-code grant runs, and its client and refresh token
    /// are stored for the daemon.
    pub fn allow_login(&self, settings: login::LoginSettings) {
        self.state().login = Some(settings);
    }

    /// The issuer of the last login stored by this client, and whether a refresh token came
    /// with it.
    pub fn stored_login(&self) -> Option<(String, bool)> {
        self.state().stored.clone()
    }

    /// The access token to send, if one is held.
    pub fn bearer(&self) -> Option<String> {
        self.state().token.as_ref().map(|t| t.access.clone())
    }

    /// The `Authorization` value for a `method` request to `url` with the token held, and the
    /// DPoP proof to send beside it for a DPoP-bound token (`None` for a bearer token).
    pub fn authorization(&self, method: &str, url: &Url) -> Option<(String, Option<String>)> {
        let state = self.state();
        let token = state.token.as_ref()?;
        match (&state.dpop, token.dpop_bound) {
            (Some(dpop), true) => {
                let proof = dpop.proof(method, url, Some(&token.access));
                match proof {
                    Ok(proof) => Some((format!("DPoP {}", token.access), Some(proof))),
                    Err(err) => {
                        tracing::warn!(error = %err, "no DPoP proof for the request");
                        Some((format!("DPoP {}", token.access), None))
                    }
                }
            }
            _ => Some((format!("Bearer {}", token.access), None)),
        }
    }

    /// Remembers the `DPoP-Nonce` a response from `url` carried, when DPoP is in use; true when
    /// it is a nonce not held before (a request refused for want of it can be sent again).
    pub fn note_nonce(&self, url: &Url, headers: &reqwest::header::HeaderMap) -> bool {
        let dpop = self.state().dpop.clone();
        dpop.is_some_and(|d| d.note_nonce(url, headers))
    }

    /// The DPoP key to prove possession with at the token endpoint: always with `dpop = true`,
    /// never with `false`, else when the authorization server offers ES256 proofs. Made on
    /// first use.
    fn dpop_for(
        &self,
        found: &Discovered,
        kept: Option<&refresh_store::StoredLogin>,
    ) -> Result<Option<Arc<Dpop>>, AuthError> {
        let wanted = self
            .0
            .config
            .dpop
            .unwrap_or_else(|| dpop::offered(found.dpop_algs.as_deref()));
        if !wanted {
            return Ok(None);
        }
        // The key the tokens `mcp-exporter login` stored are bound to comes first (a login run
        // since this key was made brought its own); else the key held; else a new one.
        let stored = kept.map(login::stored_dpop).transpose()?.flatten();
        let mut state = self.state();
        if let Some(stored) = stored {
            let held = state.dpop.as_ref().map(|k| k.thumbprint());
            if held.as_deref() != Some(stored.thumbprint().as_str()) {
                state.dpop = Some(Arc::new(stored));
            }
            return Ok(state.dpop.clone());
        }
        if let Some(key) = &state.dpop {
            return Ok(Some(key.clone()));
        }
        let key = Arc::new(
            Dpop::generate()
                .map_err(|e| AuthError::new(AuthFailure::Misconfigured, e.to_string()))?,
        );
        state.dpop = Some(key.clone());
        Ok(Some(key))
    }

    /// What happened since the last call, with the expiry of the token held.
    pub fn take_report(&self) -> AuthReport {
        let mut state = self.state();
        let mut report = std::mem::take(&mut state.report);
        report.access_expires_at = state.token.as_ref().and_then(CachedToken::expires_unix);
        report
    }

    /// Before a request: renews a held token that would not last until the next probe (with
    /// its refresh token, else the client-credentials grant again). A token that cannot be
    /// renewed is kept while it is valid; an expired one is dropped, so the server's 401 starts
    /// over.
    pub async fn prepare(&self, http: &reqwest::Client, deadline: Instant) {
        let now = SystemTime::now();
        let due = {
            let state = self.state();
            match &state.token {
                Some(token) if token.freshness(now, self.0.ahead) == Freshness::Renew => {
                    Some((token.clone(), state.discovered.clone()))
                }
                _ => None,
            }
        };
        let Some((token, Some(found))) = due else {
            return;
        };
        let started = Instant::now();
        let renewed = self
            .request_token(http, &found, token.scope.as_deref(), Some(&token), deadline)
            .await;
        let mut state = self.state();
        state.report.spent += started.elapsed();
        match renewed {
            Ok(fresh) => state.token = Some(fresh),
            Err(_) if token.expires_at.is_some_and(|at| at <= now) => state.token = None,
            Err(_) => {}
        }
    }

    /// Answers a server's refusal (`status` 401, or 403 with `insufficient_scope`) of the
    /// token held (or of no token): discovers the metadata when not known yet (or when the
    /// challenge points elsewhere), chooses the scopes and obtains a new token. Returns it.
    pub async fn answer(
        &self,
        http: &reqwest::Client,
        server: &Url,
        challenge: &Challenge,
        deadline: Instant,
    ) -> Result<String, AuthError> {
        let started = Instant::now();
        let result = self.answer_untimed(http, server, challenge, deadline).await;
        self.state().report.spent += started.elapsed();
        result
    }

    async fn answer_untimed(
        &self,
        http: &reqwest::Client,
        server: &Url,
        challenge: &Challenge,
        deadline: Instant,
    ) -> Result<String, AuthError> {
        let (known, previous, refused) = {
            let state = self.state();
            (
                state.discovered.clone(),
                state.token.as_ref().and_then(|t| t.scope.clone()),
                state.token.is_some() && !challenge.insufficient_scope(),
            )
        };
        let pointed_elsewhere = |found: &Discovered| {
            self.0.config.resource_metadata.is_none()
                && challenge.resource_metadata.as_deref().is_some_and(|url| {
                    found.resource_metadata.as_ref().map(Url::as_str) != Some(url)
                })
        };
        // A token refused outright may mean the authorization server moved (its protected
        // resource metadata names another): discovery runs again, and a token or client of the
        // old issuer is not carried to the new one.
        let known_issuer = known.as_ref().map(|k| k.issuer.clone());
        let found = match known {
            Some(found) if !pointed_elsewhere(&found) && !refused => found,
            _ => {
                let found = self.discover(http, server, challenge, deadline).await?;
                self.state().discovered = Some(found.clone());
                found
            }
        };
        let scope = scope::select(
            challenge,
            &self.0.config.scopes,
            found.scopes_supported.as_deref(),
            previous.as_deref(),
        );
        // The held token was refused: its refresh token is tried before the client's grant,
        // except on a step-up (a refresh cannot widen the scope: RFC 6749 section 6).
        let held = self
            .state()
            .token
            .take()
            .filter(|_| !challenge.insufficient_scope())
            .filter(|_| known_issuer.as_deref().is_none_or(|i| i == found.issuer));
        let token = self
            .request_token(http, &found, scope.as_deref(), held.as_ref(), deadline)
            .await?;
        let access = token.access.clone();
        self.state().token = Some(token);
        Ok(access)
    }

    /// Protected-resource metadata, then the authorization server's.
    async fn discover(
        &self,
        http: &reqwest::Client,
        server: &Url,
        challenge: &Challenge,
        deadline: Instant,
    ) -> Result<Discovered, AuthError> {
        let config = &self.0.config;
        let named = config.resource_metadata.clone().or_else(|| {
            challenge
                .resource_metadata
                .as_deref()
                .and_then(|u| Url::parse(u).ok())
        });
        let candidates = match named {
            Some(url) => vec![url],
            None => well_known::protected_resource_candidates(server),
        };
        let prm = metadata::protected_resource(http, &candidates, deadline).await;
        self.note_metadata(
            MetadataDocument::ProtectedResource,
            !matches!(&prm, Err(e) if e.is_unreachable()),
        );
        let (prm_url, prm) = match prm {
            Ok((url, doc)) => (Some(url), Some(doc)),
            // No protected-resource metadata: the 2025-03-26 rule, the server's origin is its
            // authorization server.
            Err(MetadataError::NotFound { .. }) if config.resource_metadata.is_none() => {
                (None, None)
            }
            Err(err) => return Err(AuthError::from_metadata(err)),
        };
        if let Some(stated) = prm.as_ref().and_then(|p| p.resource.as_deref())
            && !well_known::resource_covers(stated, server)
        {
            return Err(AuthError::new(
                AuthFailure::Misconfigured,
                format!(
                    "protected resource metadata names resource {stated:?}, which is not {server}; refusing to send a token for it"
                ),
            ));
        }
        let issuer = match (&config.authorization_server, &prm) {
            (Some(url), _) => url.as_str().trim_end_matches('/').to_string(),
            (None, Some(doc)) => doc.authorization_servers.first().cloned().ok_or_else(|| {
                AuthError::new(
                    AuthFailure::Misconfigured,
                    "protected resource metadata names no authorization server",
                )
            })?,
            (None, None) => well_known::origin_of(server)
                .as_str()
                .trim_end_matches('/')
                .to_string(),
        };
        let issuer_url = Url::parse(&issuer).map_err(|e| {
            AuthError::new(
                AuthFailure::Misconfigured,
                format!("authorization server {issuer:?} is not a URL ({e})"),
            )
        })?;
        let asm = metadata::authorization_server(
            http,
            &issuer,
            &well_known::authorization_server_candidates(&issuer_url),
            deadline,
        )
        .await;
        self.note_metadata(
            MetadataDocument::AuthorizationServer,
            !matches!(&asm, Err(e) if e.is_unreachable()),
        );
        let asm = match asm {
            Ok(doc) => Some(doc),
            // The 2025-03-26 fallback: default endpoints at the server's origin.
            Err(MetadataError::NotFound { .. }) if prm.is_none() => None,
            Err(err) => return Err(AuthError::from_metadata(err)),
        };
        let token_endpoint = match asm.as_ref().map(|a| a.token_endpoint.as_deref()) {
            Some(Some(endpoint)) => Url::parse(endpoint).map_err(|e| {
                AuthError::new(
                    AuthFailure::Misconfigured,
                    format!("token_endpoint {endpoint:?} is not a URL ({e})"),
                )
            })?,
            Some(None) => {
                return Err(AuthError::new(
                    AuthFailure::Misconfigured,
                    format!("authorization server {issuer} states no token_endpoint"),
                ));
            }
            None => issuer_url.join("/token").map_err(|e| {
                AuthError::new(
                    AuthFailure::Misconfigured,
                    format!("no token endpoint: {e}"),
                )
            })?,
        };
        let resource = config
            .resource
            .clone()
            .or_else(|| prm.as_ref().and_then(|p| p.resource.clone()))
            .unwrap_or_else(|| well_known::canonical_resource(server));
        Ok(Discovered {
            resource_metadata: prm_url,
            resource,
            scopes_supported: prm.and_then(|p| p.scopes_supported),
            issuer,
            token_endpoint,
            grant_types: asm.as_ref().and_then(|a| a.grant_types_supported.clone()),
            auth_methods: asm
                .as_ref()
                .and_then(|a| a.token_endpoint_auth_methods_supported.clone()),
            dpop_algs: asm
                .as_ref()
                .and_then(|a| a.dpop_signing_alg_values_supported.clone()),
            server_metadata: asm,
        })
    }

    fn note_metadata(&self, document: MetadataDocument, up: bool) {
        let mut state = self.state();
        state.report.metadata.retain(|(d, _)| *d != document);
        state.report.metadata.push((document, up));
    }

    /// Obtains a token: with `held`'s refresh token when it has one; else, without a person,
    /// with the refresh token `mcp-exporter login` stored; with a person (`login`), the
    /// authorization-code grant; else with the client-credentials grant.
    async fn request_token(
        &self,
        http: &reqwest::Client,
        found: &Discovered,
        scope: Option<&str>,
        held: Option<&CachedToken>,
        deadline: Instant,
    ) -> Result<CachedToken, AuthError> {
        let resolved = self.state().client.clone().unwrap_or_default();
        let person = self.state().login.clone();
        let login_file = self.0.config.login.as_ref();
        let kept = match login_file {
            Some(file) => login::kept(file, &found.issuer)?,
            None => None,
        };
        let dpop = self.dpop_for(found, kept.as_ref())?;
        let request = TokenRequest {
            endpoint: &found.token_endpoint,
            issuer: &found.issuer,
            scope,
            resource: &found.resource,
            dpop: dpop.as_ref(),
        };
        // The client: the configured one, else the one a login registered at this issuer.
        let usable = kept.as_ref().filter(|k| match &resolved.client_id {
            Some(id) => *id == k.client_id,
            None => k.registration != refresh_store::Registration::Configured,
        });
        let client_auth = |id: String, secret: Option<String>| {
            let with = ResolvedClient {
                client_id: Some(id.clone()),
                client_secret: secret.clone(),
                ..resolved.clone()
            };
            ClientAuth {
                method: choose_method(
                    self.0.config.token_endpoint_auth_method,
                    &with,
                    found.auth_methods.as_deref(),
                ),
                client_id: id,
                client_secret: secret,
                private_key_pem: resolved.private_key_pem.clone(),
            }
        };
        let client = match (&resolved.client_id, usable) {
            (Some(id), _) => Some(client_auth(id.clone(), resolved.client_secret.clone())),
            (None, Some(k)) => Some(client_auth(k.client_id.clone(), k.client_secret.clone())),
            (None, None) => None,
        };
        if let Some(client) = &client {
            if let Some(idp) = &self.0.config.identity_provider {
                // Enterprise-managed authorization: the identity provider's grant, then the
                // JWT-bearer grant with it, never another grant.
                let assertion = self
                    .identity_assertion(http, idp, &resolved, found, scope, deadline)
                    .await?;
                let answer = grant::jwt_bearer(http, client, &request, &assertion, deadline).await;
                self.note_request(&answer);
                return answer.map_err(|err| grant_failure(err, found));
            }
            if let Some(assertion) = resolved.assertion.as_deref() {
                // The JWT-bearer grant alone: a refused assertion is reported, never retried
                // with another grant (a workload identity is the client's only credential).
                let answer = grant::jwt_bearer(http, client, &request, assertion, deadline).await;
                self.note_request(&answer);
                return answer.map_err(|err| grant_failure(err, found));
            }
            // The access token a login left, while it lasts (it is refused: held, then dropped).
            if let (None, None, Some(stored)) = (
                held,
                &person,
                usable.and_then(|k| login::stored_access(k, SystemTime::now())),
            ) {
                return Ok(stored);
            }
            if let Some(refresh_token) = held.and_then(|t| t.refresh.as_deref()) {
                let answer = grant::refresh(http, client, &request, refresh_token, deadline).await;
                self.note_request(&answer);
                if let Ok(token) = answer {
                    login::keep_rotated(login_file, usable, &token);
                    return Ok(token);
                }
            } else if let (None, Some(stored), Some(file)) = (
                &person,
                usable.and_then(|k| k.refresh_token.as_deref()),
                login_file,
            ) {
                let answer = grant::refresh(http, client, &request, stored, deadline).await;
                self.note_request(&answer);
                return match answer {
                    Ok(token) => {
                        login::keep_rotated(login_file, usable, &token);
                        Ok(token)
                    }
                    Err(err @ GrantError::Rejected { .. }) => Err(AuthError::new(
                        AuthFailure::CredentialRejected,
                        format!(
                            "{} refused the refresh token `mcp-exporter login` stored in {} ({err}): run `mcp-exporter login {}` again",
                            found.issuer,
                            file.path.display(),
                            file.server
                        ),
                    )),
                    Err(err) => Err(grant_failure(err, found)),
                };
            }
        }
        let offers_client_credentials = found
            .grant_types
            .as_ref()
            .is_none_or(|g| g.iter().any(|g| g == "client_credentials"));
        // A person is asked only where the daemon could not get a token by itself.
        if let Some(settings) = person.filter(|_| client.is_none() || !offers_client_credentials) {
            let (token, stored) = login::authorize(
                http,
                &settings,
                &self.0.config,
                &resolved,
                found,
                scope,
                kept.as_ref(),
                dpop.as_ref(),
                deadline,
            )
            .await?;
            self.note_request(&Ok(token.clone()));
            if let Some(file) = login_file {
                login::save(file, stored)?;
            }
            self.state().stored = Some((found.issuer.clone(), token.refresh.is_some()));
            return Ok(token);
        }
        let run_login = login_file
            .map(|f| format!("run `mcp-exporter login {}`", f.server))
            .unwrap_or_else(|| "run `mcp-exporter login SERVER`".into());
        let Some(client) = client else {
            return Err(AuthError::new(
                AuthFailure::LoginRequired,
                format!(
                    "the server needs an OAuth token from {} and no client_id is configured: {run_login} (it registers a client and stores a refresh token) or set auth.client_id",
                    found.issuer
                ),
            ));
        };
        if !offers_client_credentials {
            return Err(AuthError::new(
                AuthFailure::LoginRequired,
                format!(
                    "authorization server {} does not offer the client_credentials grant (it offers {}): a person must log in; {run_login}",
                    found.issuer,
                    found.grant_types.as_deref().unwrap_or_default().join(", ")
                ),
            ));
        }
        let answer = grant::client_credentials(http, &client, &request, deadline).await;
        self.note_request(&answer);
        answer.map_err(|err| grant_failure(err, found))
    }

    /// Exchanges the configured identity token at the identity provider for an identity
    /// assertion grant naming `found`'s authorization server and resource
    /// (src/auth/token_exchange.rs). Counted as a token request.
    async fn identity_assertion(
        &self,
        http: &reqwest::Client,
        idp: &identity_provider::IdentityProvider,
        resolved: &ResolvedClient,
        found: &Discovered,
        scope: Option<&str>,
        deadline: Instant,
    ) -> Result<String, AuthError> {
        let subject_token = resolved.subject_token.as_deref().ok_or_else(|| {
            AuthError::new(
                AuthFailure::Misconfigured,
                "auth.identity_provider.subject_token has no value",
            )
        })?;
        let idp_client = idp.client_id.clone().map(|client_id| ClientAuth {
            method: if resolved.idp_client_secret.is_some() {
                TokenAuthMethod::Basic
            } else {
                TokenAuthMethod::None
            },
            client_id,
            client_secret: resolved.idp_client_secret.clone(),
            private_key_pem: None,
        });
        let exchange = token_exchange::Exchange {
            subject_token,
            subject_token_type: &idp.subject_token_type,
            audience: &found.issuer,
            resource: &found.resource,
            scope,
        };
        let answer = match token_exchange::token_endpoint(http, idp, deadline).await {
            Ok(endpoint) => {
                token_exchange::exchange(http, &endpoint, idp_client.as_ref(), &exchange, deadline)
                    .await
            }
            Err(err) => Err(err),
        };
        self.state().report.token_requests.push(outcome(&answer));
        answer.map_err(|err| {
            let failure = match &err {
                GrantError::Rejected { .. } => AuthFailure::CredentialRejected,
                GrantError::Unreachable(_) => AuthFailure::AuthServerDown,
                GrantError::Failed(_) => AuthFailure::Misconfigured,
            };
            let at = idp
                .token_endpoint
                .as_ref()
                .or(idp.issuer.as_ref())
                .map(Url::as_str)
                .unwrap_or_default();
            AuthError::new(
                failure,
                format!("identity provider token exchange: {err} ({at})"),
            )
        })
    }

    /// Counts a token request. A token endpoint that did not answer also forgets the
    /// discovered metadata: the next attempt reads it again, so `mcp_auth_metadata_up` tells
    /// whether the authorization server is back (or has moved) rather than what it said last.
    fn note_request(&self, answer: &Result<CachedToken, GrantError>) {
        let outcome = outcome(answer);
        let mut state = self.state();
        if outcome == RefreshOutcome::Unreachable {
            state.discovered = None;
        }
        state.report.token_requests.push(outcome);
    }
}

/// The `outcome` label of a token request's answer.
fn outcome<T>(answer: &Result<T, GrantError>) -> RefreshOutcome {
    match answer {
        Ok(_) => RefreshOutcome::Ok,
        Err(GrantError::Rejected { .. }) => RefreshOutcome::Rejected,
        Err(GrantError::Unreachable(_)) => RefreshOutcome::Unreachable,
        Err(GrantError::Failed(_)) => RefreshOutcome::Error,
    }
}

/// The failure class of a refused or failed token request.
fn grant_failure(err: GrantError, found: &Discovered) -> AuthError {
    let failure = match &err {
        GrantError::Rejected { error, .. } if error == "unsupported_grant_type" => {
            AuthFailure::LoginRequired
        }
        GrantError::Rejected { .. } => AuthFailure::CredentialRejected,
        GrantError::Unreachable(_) => AuthFailure::AuthServerDown,
        GrantError::Failed(_) => AuthFailure::Misconfigured,
    };
    AuthError::new(
        failure,
        format!("{err} (token endpoint {})", found.token_endpoint),
    )
}

/// The client authentication method: the configured one; else `private_key_jwt` with a key,
/// `none` without a secret, and with a secret `client_secret_basic` unless the server lists
/// only `client_secret_post` among the two (RFC 8414: basic is the default).
pub fn choose_method(
    configured: Option<TokenAuthMethod>,
    client: &ResolvedClient,
    supported: Option<&[String]>,
) -> TokenAuthMethod {
    if let Some(method) = configured {
        return method;
    }
    if client.private_key_pem.is_some() {
        return TokenAuthMethod::PrivateKeyJwt;
    }
    if client.client_secret.is_none() {
        return TokenAuthMethod::None;
    }
    let lists = |name: &str| supported.is_some_and(|s| s.iter().any(|m| m == name));
    if supported.is_some() && !lists("client_secret_basic") && lists("client_secret_post") {
        TokenAuthMethod::Post
    } else {
        TokenAuthMethod::Basic
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(secret: bool, key: bool) -> ResolvedClient {
        ResolvedClient {
            client_id: Some("c".into()),
            client_secret: secret.then(|| "s".into()),
            private_key_pem: key.then(|| "k".into()),
            assertion: None,
            subject_token: None,
            idp_client_secret: None,
        }
    }

    #[test]
    fn method_follows_config_then_credentials_then_metadata() {
        let post_only = vec!["client_secret_post".to_string(), "none".to_string()];
        let both = vec![
            "client_secret_post".to_string(),
            "client_secret_basic".to_string(),
        ];
        assert_eq!(
            choose_method(Some(TokenAuthMethod::Post), &client(true, false), None),
            TokenAuthMethod::Post
        );
        assert_eq!(
            choose_method(None, &client(false, true), None),
            TokenAuthMethod::PrivateKeyJwt
        );
        assert_eq!(
            choose_method(None, &client(false, false), Some(&both)),
            TokenAuthMethod::None
        );
        assert_eq!(
            choose_method(None, &client(true, false), Some(&post_only)),
            TokenAuthMethod::Post
        );
        assert_eq!(
            choose_method(None, &client(true, false), Some(&both)),
            TokenAuthMethod::Basic
        );
        assert_eq!(
            choose_method(None, &client(true, false), None),
            TokenAuthMethod::Basic
        );
    }

    #[test]
    fn a_changed_client_drops_the_token() {
        let auth = Authorizer::new(
            OauthConfig {
                client_id: Some("c".into()),
                client_secret: None,
                scopes: Vec::new(),
                token_endpoint_auth_method: None,
                private_key_file: None,
                authorization_server: None,
                resource_metadata: None,
                resource: None,
                assertion: None,
                dpop: None,
                identity_provider: None,
                client_metadata_url: None,
                login: None,
            },
            Duration::from_secs(60),
        );
        auth.set_client(client(true, false));
        auth.state().token = Some(CachedToken {
            access: "a".into(),
            refresh: None,
            scope: None,
            obtained_at: SystemTime::now(),
            expires_at: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000)),
            dpop_bound: false,
        });
        auth.set_client(client(true, false));
        assert_eq!(auth.bearer().as_deref(), Some("a"));
        assert_eq!(auth.take_report().access_expires_at, Some(2_000_000_000));
        let mut rotated = client(true, false);
        rotated.client_secret = Some("rotated".into());
        auth.set_client(rotated);
        assert_eq!(auth.bearer(), None);
    }
}

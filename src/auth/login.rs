//! The person's part of the authorization-code grant, run by `mcp-exporter login` inside the
//! probe's OAuth client (src/auth/mod.rs) wherever the daemon would report `login_required`:
//! the client (configured, kept from an earlier login at the same issuer, a client ID metadata
//! document, or dynamic registration), the loopback listener, the authorization URL printed and
//! opened, the redirect checked, the code exchanged. What to keep is returned as a
//! [`StoredLogin`] for src/auth/refresh_store.rs.

use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use tokio::time::Instant;
use url::Url;

use super::authorization_code::{AuthorizationRequest, Loopback, code_of};
use super::cache::CachedToken;
use super::config::{LoginFile, OauthConfig, TokenAuthMethod};
use super::grant::{self, ClientAuth, TokenRequest};
use super::refresh_store::{self, Registration, StoredLogin};
use super::{AuthError, AuthFailure, Discovered, ResolvedClient, choose_method, grant_failure};
use super::{pkce, registration};

/// The scope that asks for a refresh token (OpenID Connect; SEP-2207).
pub const OFFLINE_ACCESS: &str = "offline_access";

/// How `mcp-exporter login` lets the person authorize.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginSettings {
    /// The program (and its leading arguments) the authorization URL is handed to as its last
    /// argument (`xdg-open`, or `--open-with`); `None` prints the URL only.
    pub opener: Option<Vec<String>>,
    /// How long to wait for the redirect.
    pub wait: Duration,
}

/// The client for the authorization request, before the listener exists.
enum Client {
    /// Known already (configured, metadata document, or a registration kept).
    Known {
        id: String,
        secret: Option<String>,
        registration: Registration,
        redirect_port: Option<u16>,
    },
    /// To register once the redirect URI is known.
    Register(Url),
}

/// Runs the authorization-code grant with a person for `found`'s authorization server.
#[allow(clippy::too_many_arguments)]
pub(super) async fn authorize(
    http: &reqwest::Client,
    settings: &LoginSettings,
    config: &OauthConfig,
    resolved: &ResolvedClient,
    found: &Discovered,
    scope: Option<&str>,
    kept: Option<&StoredLogin>,
    dpop: Option<&std::sync::Arc<super::dpop::Dpop>>,
    deadline: Instant,
) -> Result<(CachedToken, StoredLogin), AuthError> {
    let misconfigured = |detail: String| AuthError::new(AuthFailure::Misconfigured, detail);
    let asm = found.server_metadata.clone().unwrap_or_default();
    let issuer_url = Url::parse(&found.issuer)
        .map_err(|e| misconfigured(format!("issuer {:?}: {e}", found.issuer)))?;
    // Without metadata (the 2025-03-26 fallback) the endpoints are the defaults at the origin.
    let endpoint = |stated: Option<&String>, default: &str| -> Result<Option<Url>, AuthError> {
        match stated {
            Some(text) => Url::parse(text)
                .map(Some)
                .map_err(|e| misconfigured(format!("{text:?} is not a URL ({e})"))),
            None if found.server_metadata.is_none() => Ok(issuer_url.join(default).ok()),
            None => Ok(None),
        }
    };
    let authorization_endpoint = endpoint(asm.authorization_endpoint.as_ref(), "/authorize")?
        .ok_or_else(|| {
            misconfigured(format!(
                "authorization server {} states no authorization_endpoint: no login is possible",
                found.issuer
            ))
        })?;
    if !pkce::server_accepts_s256(asm.code_challenge_methods_supported.as_deref()) {
        return Err(misconfigured(format!(
            "authorization server {} lists code_challenge_methods_supported without S256; refusing to log in without PKCE S256",
            found.issuer
        )));
    }
    let client = if let Some(id) = resolved.client_id.clone() {
        Client::Known {
            id,
            secret: resolved.client_secret.clone(),
            registration: Registration::Configured,
            redirect_port: None,
        }
    } else if let Some(kept) = kept.filter(|k| k.registration != Registration::Configured) {
        Client::Known {
            id: kept.client_id.clone(),
            secret: kept.client_secret.clone(),
            registration: kept.registration,
            redirect_port: kept
                .redirect_uri
                .as_deref()
                .and_then(|u| Url::parse(u).ok())
                .and_then(|u| u.port()),
        }
    } else if let Some(url) = config
        .client_metadata_url
        .clone()
        .filter(|_| asm.client_id_metadata_document_supported)
    {
        Client::Known {
            id: url.to_string(),
            secret: None,
            registration: Registration::MetadataDocument,
            redirect_port: None,
        }
    } else {
        let registration_endpoint = endpoint(asm.registration_endpoint.as_ref(), "/register")?
            .ok_or_else(|| {
                AuthError::new(
                    AuthFailure::LoginRequired,
                    format!(
                        "no client_id is configured and authorization server {} offers neither dynamic client registration nor client ID metadata documents{}: register a client and set auth.client_id",
                        found.issuer,
                        if asm.client_id_metadata_document_supported {
                            " (it accepts metadata documents: set auth.client_metadata_url)"
                        } else {
                            ""
                        }
                    ),
                )
            })?;
        Client::Register(registration_endpoint)
    };
    let wanted_port = match &client {
        Client::Known { redirect_port, .. } => *redirect_port,
        Client::Register(_) => None,
    };
    let loopback = Loopback::bind(wanted_port)
        .await
        .map_err(|e| misconfigured(e.to_string()))?;
    let redirect_uri = loopback.redirect_uri().to_string();
    let (id, secret, registration, method) = match client {
        // A kept registration names a redirect with its port: one that could not be had again
        // means registering anew.
        Client::Known {
            registration: Registration::Dynamic,
            redirect_port,
            ..
        } if redirect_port.is_some()
            && redirect_port != Url::parse(&redirect_uri).ok().and_then(|u| u.port()) =>
        {
            let endpoint = endpoint(asm.registration_endpoint.as_ref(), "/register")?
                .ok_or_else(|| misconfigured("no registration_endpoint".into()))?;
            register(http, &endpoint, &redirect_uri, deadline).await?
        }
        Client::Known {
            id,
            secret,
            registration,
            ..
        } => (id, secret, registration, None),
        Client::Register(endpoint) => register(http, &endpoint, &redirect_uri, deadline).await?,
    };
    let scope = with_offline_access(scope, asm.scopes_supported.as_deref());
    let request = AuthorizationRequest::new(
        authorization_endpoint,
        id.clone(),
        redirect_uri.clone(),
        scope.clone(),
        found.resource.clone(),
    );
    let url = request.url();
    eprintln!(
        "Open this URL to authorize mcp-exporter at {}:\n\n  {url}\n",
        found.issuer
    );
    if let Some(opener) = &settings.opener {
        open(opener, url.as_str());
    }
    eprintln!(
        "Waiting up to {}s for the redirect to {redirect_uri} ...",
        settings.wait.as_secs()
    );
    let params = loopback
        .wait(Instant::now() + settings.wait)
        .await
        .map_err(|e| AuthError::new(AuthFailure::LoginRequired, e.to_string()))?;
    let code = code_of(
        &params,
        &request.state,
        &found.issuer,
        asm.authorization_response_iss_parameter_supported,
    )
    .map_err(|e| AuthError::new(AuthFailure::CredentialRejected, e.to_string()))?;
    let with_secret = ResolvedClient {
        client_id: Some(id.clone()),
        client_secret: secret.clone(),
        private_key_pem: resolved.private_key_pem.clone(),
        assertion: None,
        ..ResolvedClient::default()
    };
    let client = ClientAuth {
        method: config
            .token_endpoint_auth_method
            .or(method)
            .unwrap_or_else(|| choose_method(None, &with_secret, found.auth_methods.as_deref())),
        client_id: id.clone(),
        client_secret: secret.clone(),
        private_key_pem: resolved.private_key_pem.clone(),
    };
    let token_request = TokenRequest {
        endpoint: &found.token_endpoint,
        issuer: &found.issuer,
        scope: scope.as_deref(),
        resource: &found.resource,
        dpop,
    };
    // The person has taken their time: the exchange gets its own deadline.
    let token = grant::authorization_code(
        http,
        &client,
        &token_request,
        &code,
        &request.pkce.verifier,
        &redirect_uri,
        deadline.max(Instant::now() + Duration::from_secs(30)),
    )
    .await
    .map_err(|err| grant_failure(err, found))?;
    let stored = StoredLogin {
        issuer: found.issuer.clone(),
        client_id: id,
        client_secret: secret.filter(|_| registration != Registration::Configured),
        registration,
        redirect_uri: (registration == Registration::Dynamic).then_some(redirect_uri),
        refresh_token: token.refresh.clone(),
        scope: token.scope.clone(),
        access_token: Some(token.access.clone()),
        access_expires_at: token.expires_unix().and_then(|at| u64::try_from(at).ok()),
        // The tokens are usable only with the key they are bound to.
        dpop_key: dpop
            .filter(|_| token.dpop_bound)
            .map(|d| URL_SAFE_NO_PAD.encode(d.pkcs8())),
        access_dpop_bound: token.dpop_bound,
    };
    Ok((token, stored))
}

/// The login stored in `file` for `issuer`; an unreadable file is a configuration problem.
pub(crate) fn kept(file: &LoginFile, issuer: &str) -> Result<Option<StoredLogin>, AuthError> {
    refresh_store::load(&file.path, &file.server)
        .map(|logins| logins.get(issuer).cloned())
        .map_err(|e| AuthError::new(AuthFailure::Misconfigured, format!("login file: {e}")))
}

/// Stores `login` in `file` beside the logins at other issuers.
pub(crate) fn save(file: &LoginFile, login: StoredLogin) -> Result<(), AuthError> {
    let mut logins = refresh_store::load(&file.path, &file.server)
        .map_err(|e| AuthError::new(AuthFailure::Misconfigured, format!("login file: {e}")))?;
    logins.put(login);
    refresh_store::save(&file.path, &logins).map_err(|e| {
        AuthError::new(
            AuthFailure::Misconfigured,
            format!("cannot store the login: {e}"),
        )
    })
}

/// The DPoP key the stored tokens are bound to, when they are (an unreadable key is a
/// configuration problem: the file was edited by hand).
pub(crate) fn stored_dpop(kept: &StoredLogin) -> Result<Option<super::dpop::Dpop>, AuthError> {
    let Some(encoded) = kept.dpop_key.as_deref() else {
        return Ok(None);
    };
    let misconfigured = |detail: String| {
        AuthError::new(AuthFailure::Misconfigured, format!("login file: {detail}"))
    };
    let pkcs8 = URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|e| misconfigured(format!("dpop_key: {e}")))?;
    super::dpop::Dpop::from_pkcs8(&pkcs8)
        .map(Some)
        .map_err(|e| misconfigured(format!("dpop_key: {e}")))
}

/// The access token `login` stored, while it has not expired (`None` once it has).
pub(crate) fn stored_access(kept: &StoredLogin, now: SystemTime) -> Option<CachedToken> {
    let access = kept.access_token.clone()?;
    let expires_at = kept
        .access_expires_at
        .map(|at| SystemTime::UNIX_EPOCH + Duration::from_secs(at));
    if expires_at.is_some_and(|at| at <= now) {
        return None;
    }
    Some(CachedToken {
        access,
        refresh: kept.refresh_token.clone(),
        scope: kept.scope.clone(),
        obtained_at: now,
        expires_at,
        dpop_bound: kept.access_dpop_bound,
    })
}

/// After a refresh: a rotated refresh token replaces the stored one (a refresh answer without
/// one keeps it). Only a login that exists is updated; a failure to write is logged, the token
/// is used all the same.
pub(crate) fn keep_rotated(
    file: Option<&LoginFile>,
    kept: Option<&StoredLogin>,
    token: &CachedToken,
) {
    let (Some(file), Some(kept), Some(refresh)) = (file, kept, token.refresh.as_ref()) else {
        return;
    };
    if kept.refresh_token.as_ref() == Some(refresh) {
        return;
    }
    let mut updated = kept.clone();
    updated.refresh_token = Some(refresh.clone());
    updated.access_token = None;
    updated.access_expires_at = None;
    if let Err(err) = save(file, updated) {
        tracing::warn!(server = %file.server, "the rotated refresh token could not be stored: {err}");
    }
}

/// `scope` with `offline_access` added when the authorization server lists it (so it issues a
/// refresh token); unchanged when it does not.
pub fn with_offline_access(scope: Option<&str>, as_scopes: Option<&[String]>) -> Option<String> {
    let listed = as_scopes.is_some_and(|s| s.iter().any(|s| s == OFFLINE_ACCESS));
    match scope {
        Some(scope) if listed && !scope.split_whitespace().any(|s| s == OFFLINE_ACCESS) => {
            Some(format!("{scope} {OFFLINE_ACCESS}"))
        }
        None if listed => Some(OFFLINE_ACCESS.to_string()),
        other => other.map(str::to_string),
    }
}

type Registered = (
    String,
    Option<String>,
    Registration,
    Option<TokenAuthMethod>,
);

async fn register(
    http: &reqwest::Client,
    endpoint: &Url,
    redirect_uri: &str,
    deadline: Instant,
) -> Result<Registered, AuthError> {
    let registered = registration::register(
        http,
        endpoint,
        redirect_uri,
        deadline.max(Instant::now() + Duration::from_secs(10)),
    )
    .await
    .map_err(|e| {
        let failure = match e {
            registration::RegistrationError::Unreachable { .. } => AuthFailure::AuthServerDown,
            registration::RegistrationError::Refused { .. } => AuthFailure::CredentialRejected,
        };
        AuthError::new(failure, format!("dynamic client registration failed: {e}"))
    })?;
    let method = match registered.token_endpoint_auth_method.as_deref() {
        Some("client_secret_basic") => Some(TokenAuthMethod::Basic),
        Some("client_secret_post") => Some(TokenAuthMethod::Post),
        Some("none") => Some(TokenAuthMethod::None),
        _ => None,
    };
    eprintln!("Registered client {} at {endpoint}", registered.client_id);
    Ok((
        registered.client_id,
        registered.client_secret,
        Registration::Dynamic,
        method,
    ))
}

/// Hands `url` to the opener; a failure to start it is reported, the URL is printed anyway.
fn open(opener: &[String], url: &str) {
    let Some((program, args)) = opener.split_first() else {
        return;
    };
    match tokio::process::Command::new(program)
        .args(args)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
    {
        Ok(mut child) => {
            tokio::spawn(async move {
                let _ = child.wait().await;
            });
        }
        Err(err) => eprintln!("cannot start {program}: {err}; open the URL yourself"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offline_access_only_when_the_server_lists_it() {
        let listed = vec!["mcp:basic".to_string(), OFFLINE_ACCESS.to_string()];
        let unlisted = vec!["mcp:basic".to_string()];
        assert_eq!(
            with_offline_access(Some("mcp:basic"), Some(&listed)).as_deref(),
            Some("mcp:basic offline_access")
        );
        assert_eq!(
            with_offline_access(None, Some(&listed)).as_deref(),
            Some("offline_access")
        );
        assert_eq!(
            with_offline_access(Some("offline_access x"), Some(&listed)).as_deref(),
            Some("offline_access x")
        );
        assert_eq!(
            with_offline_access(Some("mcp:basic"), Some(&unlisted)).as_deref(),
            Some("mcp:basic")
        );
        assert_eq!(with_offline_access(None, None), None);
    }
}

//! The `auth` key of an `http` or `sse` server (docs/auth.md): its TOML shape and validation.
//!
//! `auth = { type = "bearer", token = "${VAR}" }` is a configured bearer token, sent as the
//! `Authorization` header (the same as `headers = { Authorization = "Bearer ${VAR}" }`).
//! `auth = { type = "oauth", client_id = "...", client_secret = "${VAR}", scopes = [...] }`
//! makes the prober obtain its own access tokens (src/auth/mod.rs).

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use crate::config::{KeyError, SourceText};

/// How the prober authenticates to the token endpoint (`token_endpoint_auth_method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenAuthMethod {
    /// `client_secret_basic`: id and secret in an HTTP Basic `Authorization` header.
    #[serde(alias = "client_secret_basic")]
    Basic,
    /// `client_secret_post`: id and secret in the form body.
    #[serde(alias = "client_secret_post")]
    Post,
    /// A public client: the id alone in the form body.
    None,
    /// `private_key_jwt` (RFC 7523): a JWT signed with `private_key_file` asserts the id.
    PrivateKeyJwt,
}

impl TokenAuthMethod {
    /// The RFC 8414 name (`token_endpoint_auth_methods_supported`).
    pub fn as_str(self) -> &'static str {
        match self {
            TokenAuthMethod::Basic => "client_secret_basic",
            TokenAuthMethod::Post => "client_secret_post",
            TokenAuthMethod::None => "none",
            TokenAuthMethod::PrivateKeyJwt => "private_key_jwt",
        }
    }
}

/// A validated `auth = { type = "oauth", ... }` table. `client_secret` may still hold `${VAR}`
/// references, resolved at probe time like header values (src/probe/references.rs).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OauthConfig {
    /// The client id registered at the authorization server; without one the prober runs
    /// discovery and reports `login_required` (no client to obtain a token with).
    pub client_id: Option<String>,
    /// The client secret (`${VAR}` or `${file:PATH}`), for `basic` and `post`.
    pub client_secret: Option<String>,
    /// Scopes asked for when neither the server's challenge nor its metadata name any.
    pub scopes: Vec<String>,
    /// How the client authenticates at the token endpoint; chosen from the authorization
    /// server's metadata when unset.
    pub token_endpoint_auth_method: Option<TokenAuthMethod>,
    /// PEM PKCS#8 EC P-256 key signing `private_key_jwt` assertions.
    pub private_key_file: Option<PathBuf>,
    /// The authorization server's issuer URL, instead of the one protected-resource metadata
    /// names.
    pub authorization_server: Option<url::Url>,
    /// The protected-resource metadata URL, instead of the one the server's 401 names.
    pub resource_metadata: Option<url::Url>,
    /// The RFC 8707 `resource` sent with token requests, instead of the one the metadata states.
    pub resource: Option<String>,
    /// A JWT (`${VAR}` or `${file:PATH}`, e.g. a workload identity token) presented with the
    /// JWT-bearer grant (RFC 7523) instead of the client-credentials grant.
    pub assertion: Option<String>,
    /// DPoP-bound tokens (src/auth/dpop.rs): `Some(true)` always, `Some(false)` never, `None`
    /// when the authorization server's metadata offers ES256 proofs.
    pub dpop: Option<bool>,
    /// Enterprise-managed authorization (src/auth/token_exchange.rs): the identity provider
    /// whose token is exchanged for the grant presented with the JWT-bearer grant.
    pub identity_provider: Option<super::identity_provider::IdentityProvider>,
    /// The HTTPS URL of the client ID metadata document the operator hosts: the client id
    /// `mcp-exporter login` uses at an authorization server that accepts such documents
    /// (`client_id_metadata_document_supported`) when no `client_id` is configured.
    pub client_metadata_url: Option<url::Url>,
    /// Where `mcp-exporter login` keeps this server's refresh token and client registration
    /// (not a TOML key: set from the `[store]` directory when the configuration is loaded).
    pub login: Option<LoginFile>,
}

/// The login file of one server (src/auth/refresh_store.rs).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LoginFile {
    /// The server's name (the argument of `mcp-exporter login`).
    pub server: String,
    /// The file.
    pub path: PathBuf,
}

impl OauthConfig {
    /// Sets [`OauthConfig::login`] for server `server` with the login files kept in `dir`.
    pub fn keep_login_in(&mut self, dir: &std::path::Path, server: &str) {
        self.login = Some(LoginFile {
            server: server.to_string(),
            path: super::refresh_store::path_for(dir, server),
        });
    }
}

/// A validated `auth` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthConfig {
    /// A configured bearer token (may hold `${VAR}`): becomes the `Authorization` header.
    Bearer {
        /// The token, without the `Bearer ` prefix.
        token: String,
    },
    /// The prober runs OAuth 2.1 itself.
    Oauth(Box<OauthConfig>),
}

/// The TOML shape of an `auth` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    #[serde(rename = "type")]
    kind: Option<Spanned<String>>,
    token: Option<Spanned<String>>,
    client_id: Option<Spanned<String>>,
    client_secret: Option<Spanned<String>>,
    scopes: Option<Vec<String>>,
    token_endpoint_auth_method: Option<Spanned<TokenAuthMethod>>,
    private_key_file: Option<Spanned<PathBuf>>,
    authorization_server: Option<Spanned<String>>,
    resource_metadata: Option<Spanned<String>>,
    #[serde(alias = "audience")]
    resource: Option<Spanned<String>>,
    assertion: Option<Spanned<String>>,
    dpop: Option<bool>,
    identity_provider: Option<Spanned<super::identity_provider::RawIdentityProvider>>,
    client_metadata_url: Option<Spanned<String>>,
}

/// Validates an `auth` table of server `server`; error keys are `auth.…` (the caller prefixes
/// the server's table).
pub fn validate(
    raw: Spanned<RawAuth>,
    server: &str,
    src: &SourceText<'_>,
) -> Result<AuthConfig, KeyError> {
    let at = raw.span().start;
    let mut raw = raw.into_inner();
    let kind = raw.kind.take().ok_or_else(|| {
        src.key_error(
            at,
            "auth.type",
            format!("missing for server {server:?}; expected \"bearer\" or \"oauth\""),
        )
    })?;
    let kind_at = kind.span().start;
    match kind.get_ref().as_str() {
        "bearer" => {
            let oauth_only = [
                ("client_id", raw.client_id.as_ref().map(|s| s.span().start)),
                (
                    "client_secret",
                    raw.client_secret.as_ref().map(|s| s.span().start),
                ),
                (
                    "authorization_server",
                    raw.authorization_server.as_ref().map(|s| s.span().start),
                ),
            ];
            if let Some((name, Some(offset))) = oauth_only.iter().find(|(_, o)| o.is_some()) {
                return Err(src.key_error(
                    *offset,
                    format!("auth.{name}"),
                    format!("server {server:?}: applies to type = \"oauth\", not \"bearer\""),
                ));
            }
            let token = raw.token.ok_or_else(|| {
                src.key_error(
                    at,
                    "auth.token",
                    format!("missing for server {server:?}; expected e.g. \"${{API_TOKEN}}\""),
                )
            })?;
            if token.get_ref().trim().is_empty() {
                return Err(src.key_error(
                    token.span().start,
                    "auth.token",
                    format!("server {server:?}: must not be empty"),
                ));
            }
            Ok(AuthConfig::Bearer {
                token: token.into_inner(),
            })
        }
        "oauth" => validate_oauth(raw, at, server, src).map(|o| AuthConfig::Oauth(Box::new(o))),
        other => Err(src.key_error(
            kind_at,
            "auth.type",
            format!(
                "server {server:?}: {other:?} is not an auth type; expected \"bearer\" or \"oauth\""
            ),
        )),
    }
}

fn validate_oauth(
    raw: RawAuth,
    at: usize,
    server: &str,
    src: &SourceText<'_>,
) -> Result<OauthConfig, KeyError> {
    if let Some(token) = &raw.token {
        return Err(src.key_error(
            token.span().start,
            "auth.token",
            format!("server {server:?}: applies to type = \"bearer\"; an oauth client obtains its own tokens"),
        ));
    }
    if let Some(client_id) = &raw.client_id
        && client_id.get_ref().trim().is_empty()
    {
        return Err(src.key_error(
            client_id.span().start,
            "auth.client_id",
            format!("server {server:?}: must not be empty"),
        ));
    }
    let method = raw
        .token_endpoint_auth_method
        .map(|m| (m.span().start, m.into_inner()));
    let needs_secret = matches!(
        method,
        Some((_, TokenAuthMethod::Basic | TokenAuthMethod::Post))
    );
    if needs_secret && raw.client_secret.is_none() {
        return Err(src.key_error(
            at,
            "auth.client_secret",
            format!(
                "missing for server {server:?}: token_endpoint_auth_method = \"{}\" sends a secret",
                method.map_or("", |(_, m)| m.as_str())
            ),
        ));
    }
    let private_key_file = raw.private_key_file.map(Spanned::into_inner);
    if let Some((offset, TokenAuthMethod::PrivateKeyJwt)) = method
        && private_key_file.is_none()
    {
        return Err(src.key_error(
            offset,
            "auth.private_key_file",
            format!("missing for server {server:?}: private_key_jwt signs with a key file"),
        ));
    }
    let url_key =
        |value: Option<Spanned<String>>, name: &str| -> Result<Option<url::Url>, KeyError> {
            let Some(value) = value else {
                return Ok(None);
            };
            let parsed = url::Url::parse(value.get_ref()).map_err(|err| {
                src.key_error(
                    value.span().start,
                    format!("auth.{name}"),
                    format!(
                        "server {server:?}: {:?} is not a URL ({err})",
                        value.get_ref()
                    ),
                )
            })?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(src.key_error(
                    value.span().start,
                    format!("auth.{name}"),
                    format!("server {server:?}: expected an http or https URL"),
                ));
            }
            Ok(Some(parsed))
        };
    if let (Some(_), Some(idp)) = (&raw.assertion, &raw.identity_provider) {
        return Err(src.key_error(
            idp.span().start,
            "auth.identity_provider",
            format!(
                "server {server:?}: excludes auth.assertion (both are the JWT-bearer grant's assertion)"
            ),
        ));
    }
    Ok(OauthConfig {
        client_id: raw.client_id.map(Spanned::into_inner),
        client_secret: raw.client_secret.map(Spanned::into_inner),
        scopes: raw.scopes.unwrap_or_default(),
        token_endpoint_auth_method: method.map(|(_, m)| m),
        private_key_file,
        authorization_server: url_key(raw.authorization_server, "authorization_server")?,
        resource_metadata: url_key(raw.resource_metadata, "resource_metadata")?,
        resource: raw.resource.map(Spanned::into_inner),
        assertion: raw.assertion.map(Spanned::into_inner),
        dpop: raw.dpop,
        identity_provider: raw
            .identity_provider
            .map(|idp| super::identity_provider::validate(idp, server, src))
            .transpose()?,
        client_metadata_url: metadata_document_url(raw.client_metadata_url, server, src)?,
        login: None,
    })
}

/// `client_metadata_url`: an https URL with a path (the client ID metadata document rules).
fn metadata_document_url(
    value: Option<Spanned<String>>,
    server: &str,
    src: &SourceText<'_>,
) -> Result<Option<url::Url>, KeyError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let at = value.span().start;
    match url::Url::parse(value.get_ref()) {
        Ok(url) if url.scheme() == "https" && url.path() != "/" && url.fragment().is_none() => {
            Ok(Some(url))
        }
        _ => Err(src.key_error(
            at,
            "auth.client_metadata_url",
            format!(
                "server {server:?}: expected an https URL with a path (the client ID metadata document you host), got {:?}",
                value.get_ref()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Doc {
        auth: Spanned<RawAuth>,
    }

    fn check(text: &str) -> Result<AuthConfig, KeyError> {
        let doc: Doc = toml::from_str(text).expect("toml");
        validate(doc.auth, "api", &SourceText::new(text))
    }

    #[test]
    fn bearer_and_oauth_tables_validate() {
        assert_eq!(
            check("auth = { type = \"bearer\", token = \"${T}\" }").unwrap(),
            AuthConfig::Bearer {
                token: "${T}".into()
            }
        );
        let AuthConfig::Oauth(oauth) = check(
            "auth = { type = \"oauth\", client_id = \"probe\", client_secret = \"${S}\", scopes = [\"mcp:read\"], token_endpoint_auth_method = \"post\", audience = \"https://api.example/mcp\" }",
        )
        .unwrap() else {
            panic!("oauth expected");
        };
        assert_eq!(oauth.client_id.as_deref(), Some("probe"));
        assert_eq!(oauth.client_secret.as_deref(), Some("${S}"));
        assert_eq!(oauth.scopes, vec!["mcp:read".to_string()]);
        assert_eq!(
            oauth.token_endpoint_auth_method,
            Some(TokenAuthMethod::Post)
        );
        assert_eq!(oauth.resource.as_deref(), Some("https://api.example/mcp"));
        assert_eq!(oauth.dpop, None);
        assert_eq!(oauth.identity_provider, None);
        let AuthConfig::Oauth(oauth) = check(
            "auth = { type = \"oauth\", client_id = \"probe\", dpop = false, identity_provider = { token_endpoint = \"https://idp/token\", subject_token = \"${ID}\" } }",
        )
        .unwrap() else {
            panic!("oauth expected");
        };
        assert_eq!(oauth.dpop, Some(false));
        assert_eq!(
            oauth.identity_provider.map(|idp| idp.subject_token),
            Some("${ID}".to_string())
        );
    }

    #[test]
    fn errors_name_the_server_and_the_key() {
        let err = check("auth = { type = \"oauth\", client_id = \"\" }")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("auth.client_id") && err.contains("\"api\""),
            "{err}"
        );
        let err = check("auth = { type = \"magic\" }")
            .unwrap_err()
            .to_string();
        assert!(err.contains("auth.type"), "{err}");
        let err = check("auth = { type = \"oauth\", client_id = \"c\", token_endpoint_auth_method = \"basic\" }")
            .unwrap_err()
            .to_string();
        assert!(err.contains("auth.client_secret"), "{err}");
        let err = check("auth = { type = \"oauth\", client_id = \"c\", token_endpoint_auth_method = \"private_key_jwt\" }")
            .unwrap_err()
            .to_string();
        assert!(err.contains("auth.private_key_file"), "{err}");
        let err = check("auth = { type = \"bearer\", token = \"x\", client_id = \"c\" }")
            .unwrap_err()
            .to_string();
        assert!(err.contains("auth.client_id"), "{err}");
        let err = check(
            "auth = { type = \"oauth\", client_id = \"c\", authorization_server = \"nope\" }",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("auth.authorization_server"), "{err}");
        let err = check(
            "auth = { type = \"oauth\", client_id = \"c\", assertion = \"${A}\", identity_provider = { token_endpoint = \"https://idp/token\", subject_token = \"${ID}\" } }",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("auth.identity_provider"), "{err}");
        let err = check(
            "auth = { type = \"oauth\", client_id = \"c\", identity_provider = { subject_token = \"${ID}\" } }",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("auth.identity_provider.token_endpoint"),
            "{err}"
        );
        let err = check("auth = { type = \"oauth\", client_metadata_url = \"http://h/c.json\" }")
            .unwrap_err()
            .to_string();
        assert!(err.contains("auth.client_metadata_url"), "{err}");
    }

    #[test]
    fn client_metadata_url_is_kept() {
        let AuthConfig::Oauth(oauth) =
            check("auth = { type = \"oauth\", client_metadata_url = \"https://ops.example/mcp-exporter.json\" }")
                .unwrap()
        else {
            panic!("oauth expected");
        };
        assert_eq!(
            oauth.client_metadata_url.map(String::from).as_deref(),
            Some("https://ops.example/mcp-exporter.json")
        );
        assert_eq!(oauth.login, None);
    }
}

//! Enterprise-managed authorization (docs/auth.md#enterprise-managed-authorization): the
//! prober holds an identity token from the organisation's identity provider (IdP), exchanges it
//! at the IdP's token endpoint with the token-exchange grant (RFC 8693) for an identity
//! assertion authorization grant (ID-JAG, a JWT naming the MCP server's authorization server as
//! its audience and the server as its resource), and presents that JWT to the authorization
//! server with the JWT-bearer grant (RFC 7523, src/auth/grant.rs). This file holds the
//! `identity_provider` key and the exchange.

use serde::Deserialize;
use tokio::time::Instant;
use toml::Spanned;
use url::Url;

use super::grant::{self, ClientAuth, GrantError};
use super::{metadata, well_known};
use crate::config::{KeyError, SourceText};

/// The RFC 8693 grant type.
pub const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// The token type asked for: an identity assertion authorization grant.
pub const ID_JAG_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id-jag";
/// The default `subject_token_type`: an OpenID Connect ID token.
pub const ID_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id_token";

/// The short names `subject_token_type` accepts beside full URIs (RFC 8693 section 3).
const SHORT_TOKEN_TYPES: [(&str, &str); 5] = [
    ("id_token", ID_TOKEN_TYPE),
    (
        "access_token",
        "urn:ietf:params:oauth:token-type:access_token",
    ),
    ("jwt", "urn:ietf:params:oauth:token-type:jwt"),
    ("saml1", "urn:ietf:params:oauth:token-type:saml1"),
    ("saml2", "urn:ietf:params:oauth:token-type:saml2"),
];

/// The validated `auth.identity_provider` table. `subject_token` and `client_secret` may hold
/// `${VAR}` / `${file:PATH}` references, resolved at probe time (src/probe/references.rs).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdentityProvider {
    /// The IdP's token endpoint, where the subject token is exchanged.
    pub token_endpoint: Option<Url>,
    /// The IdP's issuer, whose metadata (RFC 8414, OpenID Connect Discovery) names the token
    /// endpoint when `token_endpoint` is not configured.
    pub issuer: Option<Url>,
    /// The prober's client id at the IdP, if the IdP wants one.
    pub client_id: Option<String>,
    /// Its secret (`client_secret_basic`), `${VAR}` or `${file:PATH}`.
    pub client_secret: Option<String>,
    /// The identity token exchanged, `${VAR}` or `${file:PATH}`.
    pub subject_token: String,
    /// Its RFC 8693 token type URI.
    pub subject_token_type: String,
}

/// The TOML shape of `auth.identity_provider`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIdentityProvider {
    token_endpoint: Option<Spanned<String>>,
    issuer: Option<Spanned<String>>,
    client_id: Option<Spanned<String>>,
    client_secret: Option<Spanned<String>>,
    subject_token: Option<Spanned<String>>,
    subject_token_type: Option<Spanned<String>>,
}

/// Validates `auth.identity_provider` of server `server`; errors name the key
/// (`auth.identity_provider.subject_token`).
pub fn validate(
    raw: Spanned<RawIdentityProvider>,
    server: &str,
    src: &SourceText<'_>,
) -> Result<IdentityProvider, KeyError> {
    let at = raw.span().start;
    let raw = raw.into_inner();
    let key = |name: &str| format!("auth.identity_provider.{name}");
    let url_key = |value: Option<Spanned<String>>, name: &str| -> Result<Option<Url>, KeyError> {
        let Some(value) = value else {
            return Ok(None);
        };
        Url::parse(value.get_ref())
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .map(Some)
            .ok_or_else(|| {
                src.key_error(
                    value.span().start,
                    key(name),
                    format!(
                        "server {server:?}: {:?} is not an http or https URL",
                        value.get_ref()
                    ),
                )
            })
    };
    let token_endpoint = url_key(raw.token_endpoint, "token_endpoint")?;
    let issuer = url_key(raw.issuer, "issuer")?;
    if token_endpoint.is_none() && issuer.is_none() {
        return Err(src.key_error(
            at,
            key("token_endpoint"),
            format!(
                "missing for server {server:?}: the identity provider's token endpoint (or its issuer)"
            ),
        ));
    }
    let subject_token = raw.subject_token.ok_or_else(|| {
        src.key_error(
            at,
            key("subject_token"),
            format!(
                "missing for server {server:?}: the identity token to exchange, e.g. \"${{ID_TOKEN}}\""
            ),
        )
    })?;
    if subject_token.get_ref().trim().is_empty() {
        return Err(src.key_error(
            subject_token.span().start,
            key("subject_token"),
            format!("server {server:?}: must not be empty"),
        ));
    }
    let subject_token_type = match raw.subject_token_type {
        None => ID_TOKEN_TYPE.to_string(),
        Some(kind) => token_type_uri(kind.get_ref()).ok_or_else(|| {
            src.key_error(
                kind.span().start,
                key("subject_token_type"),
                format!(
                    "server {server:?}: {:?} is not a token type; expected a URI or one of id_token, access_token, jwt, saml1, saml2",
                    kind.get_ref()
                ),
            )
        })?,
    };
    if let Some(client_id) = &raw.client_id
        && client_id.get_ref().trim().is_empty()
    {
        return Err(src.key_error(
            client_id.span().start,
            key("client_id"),
            format!("server {server:?}: must not be empty"),
        ));
    }
    if let (Some(secret), None) = (&raw.client_secret, &raw.client_id) {
        return Err(src.key_error(
            secret.span().start,
            key("client_id"),
            format!("missing for server {server:?}: a client_secret authenticates a client id"),
        ));
    }
    Ok(IdentityProvider {
        token_endpoint,
        issuer,
        client_id: raw.client_id.map(Spanned::into_inner),
        client_secret: raw.client_secret.map(Spanned::into_inner),
        subject_token: subject_token.into_inner(),
        subject_token_type,
    })
}

/// A token type as configured: a short name, or a URI (`urn:…`, `https:…`) taken as written.
fn token_type_uri(text: &str) -> Option<String> {
    if let Some((_, uri)) = SHORT_TOKEN_TYPES.iter().find(|(name, _)| *name == text) {
        return Some((*uri).to_string());
    }
    (text.contains(':') && !text.chars().any(char::is_whitespace)).then(|| text.to_string())
}

/// What one exchange asks the IdP for.
#[derive(Debug, Clone)]
pub struct Exchange<'a> {
    /// The identity token (resolved).
    pub subject_token: &'a str,
    /// Its token type URI.
    pub subject_token_type: &'a str,
    /// The MCP server's authorization server (its issuer): the grant's audience.
    pub audience: &'a str,
    /// The MCP server (RFC 8707 resource).
    pub resource: &'a str,
    /// Scopes, space separated; `None` leaves `scope` out.
    pub scope: Option<&'a str>,
}

/// The form fields of the token-exchange request (client authentication aside).
pub fn form(exchange: &Exchange<'_>) -> Vec<(&'static str, String)> {
    let mut form = vec![
        ("grant_type", TOKEN_EXCHANGE_GRANT.to_string()),
        ("requested_token_type", ID_JAG_TOKEN_TYPE.to_string()),
        ("subject_token", exchange.subject_token.to_string()),
        (
            "subject_token_type",
            exchange.subject_token_type.to_string(),
        ),
        ("audience", exchange.audience.to_string()),
        ("resource", exchange.resource.to_string()),
    ];
    if let Some(scope) = exchange.scope {
        form.push(("scope", scope.to_string()));
    }
    form
}

/// The IdP's answer (RFC 8693 section 2.2.1), as far as the prober reads it.
#[derive(Deserialize)]
struct ExchangeAnswer {
    access_token: String,
    issued_token_type: Option<String>,
}

/// The IdP's token endpoint: the configured one, else the one its issuer's metadata names (an
/// IdP that does not answer is `Unreachable`, metadata that cannot be used `Failed`).
pub async fn token_endpoint(
    http: &reqwest::Client,
    idp: &IdentityProvider,
    deadline: Instant,
) -> Result<Url, GrantError> {
    if let Some(endpoint) = &idp.token_endpoint {
        return Ok(endpoint.clone());
    }
    let Some(issuer_url) = &idp.issuer else {
        return Err(GrantError::Failed(
            "the identity provider has neither token_endpoint nor issuer".into(),
        ));
    };
    let issuer = issuer_url.as_str().trim_end_matches('/');
    let candidates = well_known::authorization_server_candidates(issuer_url);
    let doc = metadata::authorization_server(http, issuer, &candidates, deadline)
        .await
        .map_err(|err| {
            let detail = format!("identity provider metadata: {err}");
            if err.is_unreachable() {
                GrantError::Unreachable(detail)
            } else {
                GrantError::Failed(detail)
            }
        })?;
    let endpoint = doc.token_endpoint.ok_or_else(|| {
        GrantError::Failed(format!(
            "identity provider {issuer} states no token_endpoint"
        ))
    })?;
    Url::parse(&endpoint).map_err(|e| {
        GrantError::Failed(format!(
            "the identity provider's token_endpoint {endpoint:?} is not a URL ({e})"
        ))
    })
}

/// Exchanges the subject token at the IdP's `endpoint` for an ID-JAG. `client` is the
/// prober's client at the IdP (`None`: it authenticates no client). An answer of another token
/// type is refused (`Failed`): only an ID-JAG is presented to the authorization server.
pub async fn exchange(
    http: &reqwest::Client,
    endpoint: &Url,
    client: Option<&ClientAuth>,
    exchange: &Exchange<'_>,
    deadline: Instant,
) -> Result<String, GrantError> {
    let body = grant::post_form(http, endpoint, client, form(exchange), None, deadline).await?;
    let answer: ExchangeAnswer = serde_json::from_slice(&body).map_err(|e| {
        GrantError::Failed(format!(
            "the identity provider's answer is not a token-exchange response: {e}"
        ))
    })?;
    match answer.issued_token_type.as_deref() {
        Some(ID_JAG_TOKEN_TYPE) => Ok(answer.access_token),
        other => Err(GrantError::Failed(format!(
            "the identity provider issued {} instead of an identity assertion grant ({ID_JAG_TOKEN_TYPE})",
            other.unwrap_or("a token of no stated type")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Doc {
        identity_provider: Spanned<RawIdentityProvider>,
    }

    fn check(text: &str) -> Result<IdentityProvider, KeyError> {
        let doc: Doc = toml::from_str(text).expect("toml");
        validate(doc.identity_provider, "api", &SourceText::new(text))
    }

    #[test]
    fn the_table_validates_with_defaults() {
        let idp = check(
            "identity_provider = { token_endpoint = \"https://idp.example/token\", subject_token = \"${ID_TOKEN}\" }",
        )
        .unwrap();
        assert_eq!(
            idp.token_endpoint.as_ref().map(Url::as_str),
            Some("https://idp.example/token")
        );
        assert_eq!(idp.subject_token, "${ID_TOKEN}");
        assert_eq!(idp.subject_token_type, ID_TOKEN_TYPE);
        let idp = check(
            "identity_provider = { issuer = \"https://idp.example\", subject_token = \"x\" }",
        )
        .unwrap();
        assert_eq!(idp.token_endpoint, None);
        assert_eq!(
            idp.issuer.as_ref().map(Url::as_str),
            Some("https://idp.example/")
        );
        let idp = check(
            "identity_provider = { token_endpoint = \"https://idp/t\", subject_token = \"x\", subject_token_type = \"saml2\", client_id = \"c\", client_secret = \"${S}\" }",
        )
        .unwrap();
        assert_eq!(
            idp.subject_token_type,
            "urn:ietf:params:oauth:token-type:saml2"
        );
        assert_eq!(idp.client_secret.as_deref(), Some("${S}"));
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            (
                "identity_provider = { subject_token = \"x\" }",
                "auth.identity_provider.token_endpoint",
            ),
            (
                "identity_provider = { token_endpoint = \"ftp://idp\", subject_token = \"x\" }",
                "auth.identity_provider.token_endpoint",
            ),
            (
                "identity_provider = { issuer = \"idp\", subject_token = \"x\" }",
                "auth.identity_provider.issuer",
            ),
            (
                "identity_provider = { token_endpoint = \"https://idp\" }",
                "auth.identity_provider.subject_token",
            ),
            (
                "identity_provider = { token_endpoint = \"https://idp\", subject_token = \"x\", subject_token_type = \"magic\" }",
                "auth.identity_provider.subject_token_type",
            ),
            (
                "identity_provider = { token_endpoint = \"https://idp\", subject_token = \"x\", client_secret = \"s\" }",
                "auth.identity_provider.client_id",
            ),
        ];
        for (text, key) in cases {
            let err = check(text).unwrap_err().to_string();
            assert!(
                err.contains(key) && err.contains("\"api\""),
                "{text}: {err}"
            );
        }
    }

    #[test]
    fn the_exchange_asks_for_an_id_jag_for_the_server() {
        let fields = form(&Exchange {
            subject_token: "id.token.jwt",
            subject_token_type: ID_TOKEN_TYPE,
            audience: "https://as.example",
            resource: "https://mcp.example/mcp",
            scope: Some("mcp:read"),
        });
        let get = |name: &str| {
            fields
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("grant_type"), Some(TOKEN_EXCHANGE_GRANT));
        assert_eq!(
            get("requested_token_type"),
            Some("urn:ietf:params:oauth:token-type:id-jag")
        );
        assert_eq!(get("subject_token"), Some("id.token.jwt"));
        assert_eq!(
            get("subject_token_type"),
            Some("urn:ietf:params:oauth:token-type:id_token")
        );
        assert_eq!(get("audience"), Some("https://as.example"));
        assert_eq!(get("resource"), Some("https://mcp.example/mcp"));
        assert_eq!(get("scope"), Some("mcp:read"));
        assert_eq!(fields.len(), 7);
    }
}

//! The `auth.identity_provider` key of enterprise-managed authorization
//! (docs/auth.md#enterprise-managed-authorization): which identity provider the prober's
//! identity token is exchanged at (src/auth/token_exchange.rs does the exchange).

use serde::Deserialize;
use toml::Spanned;
use url::Url;

use crate::config::{KeyError, SourceText};

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
}

//! Enterprise-managed authorization (docs/auth.md#enterprise-managed-authorization): the
//! prober holds an identity token from the organisation's identity provider (IdP), exchanges it
//! at the IdP's token endpoint with the token-exchange grant (RFC 8693) for an identity
//! assertion authorization grant (ID-JAG, a JWT naming the MCP server's authorization server as
//! its audience and the server as its resource), and presents that JWT to the authorization
//! server with the JWT-bearer grant (RFC 7523, src/auth/grant.rs). This file holds the
//! exchange; the `identity_provider` key is src/auth/identity_provider.rs.

use serde::Deserialize;
use tokio::time::Instant;
use url::Url;

use super::grant::{self, ClientAuth, GrantError};
use super::identity_provider::IdentityProvider;
use super::{metadata, well_known};

/// The RFC 8693 grant type.
pub const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// The token type asked for: an identity assertion authorization grant.
pub const ID_JAG_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id-jag";
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

    #[test]
    fn the_exchange_asks_for_an_id_jag_for_the_server() {
        let fields = form(&Exchange {
            subject_token: "id.token.jwt",
            subject_token_type: crate::auth::identity_provider::ID_TOKEN_TYPE,
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

//! The credentials a probe presents to an HTTP server: when they expire (a bearer token that is
//! a JWT carries its `exp`) and whether the server refused one it had accepted before. Token
//! contents never leave this module: only the expiry time and the kind are reported
//! (docs/metrics.md#credentials).

pub mod jwt;
pub mod metrics;

use serde::Serialize;

use crate::mcp::TransportSpec;

/// What a credential is, the `kind` label of `mcp_credential_expiry_timestamp_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    /// A configured `Authorization: Bearer` token.
    Bearer,
    /// An OAuth access token the prober obtained itself.
    OauthAccess,
}

impl CredentialKind {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::Bearer => "bearer",
            CredentialKind::OauthAccess => "oauth_access",
        }
    }
}

/// When one credential stops being valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CredentialExpiry {
    /// What the credential is.
    pub kind: CredentialKind,
    /// Its expiry, Unix seconds.
    pub expires_at: i64,
}

/// What a probe knows of the credentials it presented.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CredentialReport {
    /// The probe sent a credential (an `Authorization` header).
    pub presented: bool,
    /// Expiry of each credential that states one.
    pub expiries: Vec<CredentialExpiry>,
    /// The server answered HTTP 401 during this probe.
    pub refused: bool,
    /// What the prober's OAuth client did during this probe (src/auth/), for the `mcp_auth_*`
    /// families.
    #[serde(skip)]
    pub auth: crate::auth::AuthReport,
}

impl CredentialReport {
    /// The credentials of a resolved transport: an `Authorization` header is presented; a
    /// bearer token that is a JWT with an `exp` claim states its expiry.
    pub fn of_transport(spec: &TransportSpec) -> Self {
        let headers = match spec {
            TransportSpec::Http { headers, .. } | TransportSpec::Sse { headers, .. } => headers,
            TransportSpec::Stdio { .. } => return CredentialReport::default(),
        };
        let authorization = headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("authorization"))
            .map(|(_, value)| value.as_str());
        let Some(authorization) = authorization else {
            return CredentialReport::default();
        };
        let expiries = jwt::bearer_token(authorization)
            .and_then(jwt::expiry)
            .map(|expires_at| CredentialExpiry {
                kind: CredentialKind::Bearer,
                expires_at,
            })
            .into_iter()
            .collect();
        CredentialReport {
            presented: true,
            expiries,
            ..CredentialReport::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(headers: &[(&str, &str)]) -> TransportSpec {
        TransportSpec::Http {
            url: url::Url::parse("https://h/mcp").expect("url"),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            tls: Default::default(),
        }
    }

    #[test]
    fn a_jwt_bearer_states_its_expiry_and_other_credentials_are_only_presented() {
        let jwt = jwt::tests::token(
            r#"{"alg":"HS256","typ":"JWT"}"#,
            r#"{"sub":"p","exp":1900000000}"#,
        );
        let report =
            CredentialReport::of_transport(&http(&[("authorization", &format!("Bearer {jwt}"))]));
        assert!(report.presented);
        assert_eq!(
            report.expiries,
            vec![CredentialExpiry {
                kind: CredentialKind::Bearer,
                expires_at: 1_900_000_000
            }]
        );
        let opaque = CredentialReport::of_transport(&http(&[("Authorization", "Bearer abc")]));
        assert!(opaque.presented && opaque.expiries.is_empty());
        let none = CredentialReport::of_transport(&http(&[("X-Api-Key", "k")]));
        assert_eq!(none, CredentialReport::default());
    }
}

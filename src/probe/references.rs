//! The `${VAR}` and `${file:PATH}` references of a server's header and env values: resolved at
//! probe time, listed for `validate`, and which of the values are secrets to redact.

use std::fmt;

use crate::config::reference::{self, FILE_PREFIX};
use crate::config::secret::{SecretError, is_secret_header, looks_secret};
use crate::mcp::TransportSpec;

use super::config::ServerConfig;

/// A `${…}` reference of a server that has no value.
#[derive(Debug, thiserror::Error)]
pub struct UnsetVariable {
    /// What the reference names: an environment variable, or `file:PATH`.
    pub variable: String,
    /// The config key holding the reference, e.g. `headers.Authorization`.
    pub key: String,
    /// Why it has no value.
    pub cause: SecretError,
}

impl fmt::Display for UnsetVariable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = &self.key;
        match (self.variable.strip_prefix(FILE_PREFIX), &self.cause) {
            (Some(path), SecretError::TooLarge { .. }) => write!(
                f,
                "secret file `{path}` is larger than {} bytes, so it (referenced by `{key}`) is not set",
                crate::config::secret::MAX_SECRET_FILE_BYTES
            ),
            (Some(path), _) => write!(
                f,
                "secret file `{path}` is unreadable or empty, so it (referenced by `{key}`) is not set"
            ),
            (None, _) => write!(
                f,
                "environment variable `{}` (referenced by `{key}`) is not set",
                self.variable
            ),
        }
    }
}

/// The config key of the OAuth client secret, as listed and warned about.
const AUTH_SECRET_KEY: &str = "auth.client_secret";
/// The config key of the JWT-bearer assertion, as listed and warned about.
const AUTH_ASSERTION_KEY: &str = "auth.assertion";
/// The config key of the identity token of enterprise-managed authorization.
const IDP_SUBJECT_TOKEN_KEY: &str = "auth.identity_provider.subject_token";
/// The config key of the identity provider's client secret.
const IDP_SECRET_KEY: &str = "auth.identity_provider.client_secret";

impl ServerConfig {
    /// The transport with every `${VAR}` in header and env values replaced from the process
    /// environment and every `${file:PATH}` from its secret file, or the first reference that
    /// has no value.
    pub fn resolve_transport(&self) -> Result<TransportSpec, UnsetVariable> {
        self.resolve_transport_with(|name| reference::resolve(name, |v| std::env::var(v).ok()))
    }

    /// [`ServerConfig::resolve_transport`] with an explicit lookup of references (for tests).
    pub fn resolve_transport_with(
        &self,
        lookup: impl Fn(&str) -> Result<String, SecretError>,
    ) -> Result<TransportSpec, UnsetVariable> {
        let resolve = |value: &str, key: String| {
            let mut variable = String::new();
            reference::expand(value, |name| {
                variable = name.to_string();
                lookup(name)
            })
            .map_err(|cause| UnsetVariable {
                variable: variable.clone(),
                key,
                cause,
            })
        };
        let mut spec = self.transport.clone();
        match &mut spec {
            TransportSpec::Stdio { env, .. } => {
                for (key, value) in env.iter_mut() {
                    *value = resolve(value, format!("env.{key}"))?;
                }
            }
            TransportSpec::Http { headers, .. } | TransportSpec::Sse { headers, .. } => {
                for (key, value) in headers.iter_mut() {
                    *value = resolve(value, format!("headers.{key}"))?;
                }
            }
        }
        Ok(spec)
    }

    /// The OAuth client of `auth = { type = "oauth" }` with `client_secret` resolved like a
    /// header value and `private_key_file` read; `None` without one.
    pub fn resolve_auth(&self) -> Result<Option<crate::auth::ResolvedClient>, UnsetVariable> {
        self.resolve_auth_with(|name| reference::resolve(name, |v| std::env::var(v).ok()))
    }

    /// [`ServerConfig::resolve_auth`] with an explicit lookup of references (for tests).
    pub fn resolve_auth_with(
        &self,
        lookup: impl Fn(&str) -> Result<String, SecretError>,
    ) -> Result<Option<crate::auth::ResolvedClient>, UnsetVariable> {
        let Some(oauth) = &self.auth else {
            return Ok(None);
        };
        let resolve =
            |value: &Option<String>, key: &str| -> Result<Option<String>, UnsetVariable> {
                let Some(value) = value else {
                    return Ok(None);
                };
                let mut variable = String::new();
                reference::expand(value, |name| {
                    variable = name.to_string();
                    lookup(name)
                })
                .map(Some)
                .map_err(|cause| UnsetVariable {
                    variable: variable.clone(),
                    key: key.into(),
                    cause,
                })
            };
        let client_secret = resolve(&oauth.client_secret, AUTH_SECRET_KEY)?;
        let assertion = resolve(&oauth.assertion, AUTH_ASSERTION_KEY)?;
        let idp = oauth.identity_provider.as_ref();
        let subject_token = resolve(&idp.map(|i| i.subject_token.clone()), IDP_SUBJECT_TOKEN_KEY)?;
        let idp_client_secret =
            resolve(&idp.and_then(|i| i.client_secret.clone()), IDP_SECRET_KEY)?;
        let private_key_pem = match &oauth.private_key_file {
            Some(path) => Some(
                crate::config::secret::read_secret_file(path).map_err(|cause| UnsetVariable {
                    variable: format!("{FILE_PREFIX}{}", path.display()),
                    key: "auth.private_key_file".into(),
                    cause,
                })?,
            ),
            None => None,
        };
        Ok(Some(crate::auth::ResolvedClient {
            client_id: oauth.client_id.clone(),
            client_secret,
            private_key_pem,
            assertion,
            subject_token,
            idp_client_secret,
        }))
    }

    /// Names of the environment variables (and `file:PATH` secret files) this server's headers
    /// and env refer to.
    pub fn referenced_variables(&self) -> Vec<String> {
        self.raw_values()
            .iter()
            .flat_map(|(_, value)| reference::referenced_names(value))
            .collect()
    }

    /// The resolved values that are secrets: env entries that come from a reference or whose
    /// name looks secret, header values that come from a reference or are credentials. Empty
    /// when a reference has no value.
    pub fn secret_values(&self) -> Vec<String> {
        let refs = !self.referenced_variables().is_empty();
        let Ok(spec) = self.resolve_transport() else {
            return Vec::new();
        };
        let mut values = Vec::new();
        match (&self.transport, spec) {
            (TransportSpec::Stdio { env: raw, .. }, TransportSpec::Stdio { env, .. }) => {
                for (k, v) in env {
                    if raw.get(&k).is_some_and(|r| r.contains("${")) || looks_secret(&k) {
                        values.push(v);
                    }
                }
            }
            (
                TransportSpec::Http { headers: raw, .. } | TransportSpec::Sse { headers: raw, .. },
                TransportSpec::Http { headers, .. } | TransportSpec::Sse { headers, .. },
            ) => {
                for ((k, v), (_, r)) in headers.into_iter().zip(raw.iter()) {
                    if (refs && r.contains("${")) || is_secret_header(&k) {
                        values.push(v);
                    }
                }
            }
            _ => {}
        }
        if let Ok(Some(client)) = self.resolve_auth() {
            values.extend(client.client_secret);
            values.extend(client.private_key_pem);
            values.extend(client.assertion);
            values.extend(client.subject_token);
            values.extend(client.idp_client_secret);
        }
        values
    }

    /// Keys (`env` names, header names) whose values are secrets written literally in the file
    /// instead of `${VAR}` / `${file:PATH}`.
    pub fn literal_secret_keys(&self) -> Vec<String> {
        let stdio = matches!(self.transport, TransportSpec::Stdio { .. });
        self.raw_values()
            .into_iter()
            .filter(|(k, v)| {
                let secret = if stdio {
                    looks_secret(k)
                } else {
                    is_secret_header(k)
                };
                let oauth_secret = [
                    AUTH_SECRET_KEY,
                    AUTH_ASSERTION_KEY,
                    IDP_SUBJECT_TOKEN_KEY,
                    IDP_SECRET_KEY,
                ]
                .contains(k);
                (secret || oauth_secret) && !v.contains("${")
            })
            .map(|(k, _)| k.to_string())
            .collect()
    }

    /// The env entries (stdio) or headers (http, sse) as written in the file, and the OAuth
    /// `client_secret`.
    fn raw_values(&self) -> Vec<(&str, &str)> {
        let mut values = self.transport_values();
        if let Some(secret) = self.auth.as_ref().and_then(|a| a.client_secret.as_deref()) {
            values.push((AUTH_SECRET_KEY, secret));
        }
        if let Some(assertion) = self.auth.as_ref().and_then(|a| a.assertion.as_deref()) {
            values.push((AUTH_ASSERTION_KEY, assertion));
        }
        if let Some(idp) = self
            .auth
            .as_ref()
            .and_then(|a| a.identity_provider.as_ref())
        {
            values.push((IDP_SUBJECT_TOKEN_KEY, &idp.subject_token));
            if let Some(secret) = &idp.client_secret {
                values.push((IDP_SECRET_KEY, secret));
            }
        }
        values
    }

    fn transport_values(&self) -> Vec<(&str, &str)> {
        match &self.transport {
            TransportSpec::Stdio { env, .. } => {
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
            }
            TransportSpec::Http { headers, .. } | TransportSpec::Sse { headers, .. } => headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::secret::SecretError;
    use crate::mcp::TransportSpec;
    use crate::settings::Config;

    fn parse(auth: &str) -> Result<Config, String> {
        let text = format!(
            "[[servers]]\nname = \"api\"\ntransport = \"http\"\nurl = \"https://api.example/mcp\"\n{auth}\n"
        );
        Config::from_toml(&text, Path::new("t.toml")).map_err(|e| e.to_string())
    }

    fn lookup(name: &str) -> Result<String, SecretError> {
        match name {
            "SECRET" => Ok("s3cr3t-value".into()),
            "TOKEN" => Ok("tok-value".into()),
            _ => Err(SecretError::Unset { name: name.into() }),
        }
    }

    #[test]
    fn a_bearer_auth_is_the_authorization_header() {
        let config = parse("auth = { type = \"bearer\", token = \"${TOKEN}\" }").unwrap();
        let server = &config.servers[0];
        assert_eq!(server.auth, None);
        match server.resolve_transport_with(lookup).unwrap() {
            TransportSpec::Http { headers, .. } => assert_eq!(
                headers,
                vec![("Authorization".to_string(), "Bearer tok-value".to_string())]
            ),
            other => panic!("http expected, got {other:?}"),
        }
        let err = parse(
            "headers = { Authorization = \"Bearer x\" }\nauth = { type = \"bearer\", token = \"y\" }",
        )
        .unwrap_err();
        assert!(err.contains("servers[0].auth"), "{err}");
    }

    #[test]
    fn an_oauth_secret_is_resolved_listed_and_warned_about_when_literal() {
        let config = parse(
            "auth = { type = \"oauth\", client_id = \"probe\", client_secret = \"${SECRET}\" }",
        )
        .unwrap();
        let server = &config.servers[0];
        let client = server.resolve_auth_with(lookup).unwrap().unwrap();
        assert_eq!(client.client_id.as_deref(), Some("probe"));
        assert_eq!(client.client_secret.as_deref(), Some("s3cr3t-value"));
        assert!(!format!("{client:?}").contains("s3cr3t"));
        assert_eq!(server.referenced_variables(), vec!["SECRET".to_string()]);
        assert!(server.literal_secret_keys().is_empty());
        let unset = server
            .resolve_auth_with(|name| Err(SecretError::Unset { name: name.into() }))
            .unwrap_err();
        assert_eq!(unset.key, "auth.client_secret");

        let literal =
            parse("auth = { type = \"oauth\", client_id = \"probe\", client_secret = \"plain\" }")
                .unwrap();
        assert_eq!(
            literal.servers[0].literal_secret_keys(),
            vec!["auth.client_secret".to_string()]
        );
        assert_eq!(
            literal.servers[0].secret_values(),
            vec!["plain".to_string()]
        );
    }

    #[test]
    fn an_identity_token_is_resolved_and_redacted_like_a_secret() {
        let config = parse(
            "auth = { type = \"oauth\", client_id = \"probe\", client_secret = \"${SECRET}\", identity_provider = { token_endpoint = \"https://idp/token\", client_id = \"at-idp\", client_secret = \"${SECRET}\", subject_token = \"${ID_TOKEN}\" } }",
        )
        .unwrap();
        let server = &config.servers[0];
        let lookup = |name: &str| match name {
            "ID_TOKEN" => Ok("id-token-value".to_string()),
            other => lookup(other),
        };
        let client = server.resolve_auth_with(lookup).unwrap().unwrap();
        assert_eq!(client.subject_token.as_deref(), Some("id-token-value"));
        assert_eq!(client.idp_client_secret.as_deref(), Some("s3cr3t-value"));
        assert!(!format!("{client:?}").contains("id-token-value"));
        let mut names = server.referenced_variables();
        names.sort();
        names.dedup();
        assert_eq!(names, vec!["ID_TOKEN".to_string(), "SECRET".to_string()]);
        let unset = server
            .resolve_auth_with(|name| match name {
                "ID_TOKEN" => Err(SecretError::Unset { name: name.into() }),
                other => lookup(other),
            })
            .unwrap_err();
        assert_eq!(unset.key, "auth.identity_provider.subject_token");

        let literal = parse(
            "auth = { type = \"oauth\", client_id = \"probe\", identity_provider = { token_endpoint = \"https://idp/token\", subject_token = \"plain-id-token\" } }",
        )
        .unwrap();
        assert_eq!(
            literal.servers[0].literal_secret_keys(),
            vec!["auth.identity_provider.subject_token".to_string()]
        );
        assert!(
            literal.servers[0]
                .secret_values()
                .contains(&"plain-id-token".to_string())
        );
    }

    #[test]
    fn auth_errors_name_the_server_table_and_key() {
        let err = parse(
            "auth = { type = \"oauth\", client_id = \"c\", token_endpoint_auth_method = \"post\" }",
        )
        .unwrap_err();
        assert!(err.contains("servers[0].auth.client_secret"), "{err}");
        let text = "[[servers]]\nname = \"kid\"\ntransport = \"stdio\"\ncommand = \"x\"\nauth = { type = \"bearer\", token = \"t\" }\n";
        let err = Config::from_toml(text, Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("servers[0].auth"), "{err}");
    }
}

//! What `mcp-exporter login` leaves for the daemon (docs/auth.md#login): per server, one JSON
//! file in the store's directory, mode 0600, holding for each authorization server (keyed by
//! issuer) the client the prober registered there and the refresh token obtained. The daemon
//! reads it when it holds no token and writes a rotated refresh token back. Writes are atomic
//! (a temporary file in the same directory, renamed over the old one).

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// How the client of a stored login came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Registration {
    /// `auth.client_id` of the configuration.
    Configured,
    /// A client ID metadata document: the client id is the document's HTTPS URL.
    MetadataDocument,
    /// Dynamic client registration (RFC 7591) at the authorization server.
    Dynamic,
}

/// One authorization server's client and refresh token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredLogin {
    /// The authorization server's issuer, as its metadata states it.
    pub issuer: String,
    /// The client id used.
    pub client_id: String,
    /// The secret a dynamic registration issued, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// How the client was obtained.
    pub registration: Registration,
    /// The loopback redirect URI registered (dynamic registration), reused when its port is free.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_uri: Option<String>,
    /// The refresh token, when the authorization server issued one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// The scopes granted, space separated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The access token the login obtained: the daemon uses it while it lasts, which is all it
    /// can do at an authorization server that issues no refresh token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    /// Its expiry, Unix seconds (`None`: not stated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_expires_at: Option<u64>,
    /// The DPoP key (PKCS#8, base64url) the tokens are bound to, when the authorization server
    /// bound them (src/auth/dpop.rs): the daemon signs its proofs with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_key: Option<String>,
    /// The access token is DPoP-bound (sent as `Authorization: DPoP`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub access_dpop_bound: bool,
}

/// Secrets never reach a log line.
impl std::fmt::Debug for StoredLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredLogin")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("registration", &self.registration)
            .field("refresh_token", &self.refresh_token.is_some())
            .field("dpop_key", &self.dpop_key.is_some())
            .finish_non_exhaustive()
    }
}

/// The file of one server.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredLogins {
    /// The server's name in the configuration.
    pub server: String,
    /// One entry per authorization server.
    #[serde(default)]
    pub logins: Vec<StoredLogin>,
}

impl StoredLogins {
    /// The login at `issuer`.
    pub fn get(&self, issuer: &str) -> Option<&StoredLogin> {
        self.logins.iter().find(|l| l.issuer == issuer)
    }

    /// Replaces (or adds) the login of its issuer.
    pub fn put(&mut self, login: StoredLogin) {
        self.logins.retain(|l| l.issuer != login.issuer);
        self.logins.push(login);
    }
}

/// Why the file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
    /// The file is not a login file.
    #[error("{path}: not a login file of mcp-exporter ({detail})")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        detail: String,
    },
}

/// The login file of `server` in `dir`: `oauth-login-NAME-HASH.json`, NAME the server name with
/// anything but letters, digits, `-` and `_` replaced, HASH eight hex digits of its SHA-256 (two
/// names that read alike keep two files).
pub fn path_for(dir: &Path, server: &str) -> PathBuf {
    let readable: String = server
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    let digest = Sha256::digest(server.as_bytes());
    let hash: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    dir.join(format!("oauth-login-{readable}-{hash}.json"))
}

/// Reads `path`; a missing file is an empty one.
pub fn load(path: &Path, server: &str) -> Result<StoredLogins, StoreError> {
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Ok(StoredLogins {
                server: server.to_string(),
                logins: Vec::new(),
            });
        }
        Err(source) => {
            return Err(StoreError::Io {
                path: path.display().to_string(),
                source,
            });
        }
    };
    serde_json::from_slice(&text).map_err(|e| StoreError::Invalid {
        path: path.display().to_string(),
        detail: e.to_string(),
    })
}

/// Writes `logins` to `path` atomically with mode 0600 (created with it, never readable by
/// others even for a moment).
pub fn save(path: &Path, logins: &StoredLogins) -> Result<(), StoreError> {
    let io = |source| StoreError::Io {
        path: path.display().to_string(),
        source,
    };
    let text = serde_json::to_vec_pretty(logins).map_err(|e| StoreError::Invalid {
        path: path.display().to_string(),
        detail: e.to_string(),
    })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        file.write_all(&text)?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written.map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(issuer: &str, refresh: &str) -> StoredLogin {
        StoredLogin {
            issuer: issuer.into(),
            client_id: "c".into(),
            client_secret: None,
            registration: Registration::Dynamic,
            redirect_uri: Some("http://127.0.0.1:1234/callback".into()),
            refresh_token: Some(refresh.into()),
            scope: None,
            access_token: Some("a".into()),
            access_expires_at: Some(2_000_000_000),
            dpop_key: None,
            access_dpop_bound: false,
        }
    }

    #[test]
    fn written_0600_read_back_and_keyed_by_issuer() {
        let dir = std::env::temp_dir().join(format!("mcpx-login-{}", rand::random::<u64>()));
        let path = path_for(&dir, "api/prod");
        assert!(
            path.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("oauth-login-api_prod-")
        );
        assert_ne!(path, path_for(&dir, "api_prod"));
        let mut logins = load(&path, "api/prod").unwrap();
        assert!(logins.logins.is_empty());
        logins.put(login("https://as1", "r1"));
        logins.put(login("https://as2", "r2"));
        logins.put(login("https://as1", "r1b"));
        save(&path, &logins).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let back = load(&path, "api/prod").unwrap();
        assert_eq!(back, logins);
        assert_eq!(
            back.get("https://as1").unwrap().refresh_token.as_deref(),
            Some("r1b")
        );
        assert!(back.get("https://as1/").is_none());
        assert!(!format!("{back:?}").contains("r1b"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_file_of_something_else_is_refused() {
        let dir = std::env::temp_dir().join(format!("mcpx-login-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x.json");
        std::fs::write(&path, "[1, 2]").unwrap();
        assert!(matches!(load(&path, "x"), Err(StoreError::Invalid { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

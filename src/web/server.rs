//! Serves the router with the settings of `--web.config.file`: TLS (rustls, optional client
//! certificates), basic authentication with bcrypt, extra response headers. The file and the
//! certificates it names are re-read on SIGHUP ([`WebServer::reload`]) and when their
//! modification time changes, so renewed certificates apply without a restart.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum_server::tls_rustls::RustlsConfig;
use base64::Engine;
use prometheus_client::metrics::counter::Counter;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::config::{WebConfig, WebConfigError};

/// How often the web config file and certificates are checked for changes.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(2);
/// Longest `Authorization` header looked at.
const MAX_AUTH_HEADER_BYTES: usize = 4096;

/// The running endpoint's protection settings.
#[derive(Clone)]
pub struct WebServer {
    current: Arc<RwLock<Arc<WebConfig>>>,
    tls: Option<RustlsConfig>,
    unauthorized: Counter,
}

/// The bcrypt hash unknown users are checked against, of the same cost as the configured
/// users' hashes (the highest one), so their answer takes as long as a known user's with a
/// wrong password. Made once per cost.
fn dummy_hash(cost: u32) -> String {
    static HASHES: OnceLock<Mutex<HashMap<u32, String>>> = OnceLock::new();
    let hashes = HASHES.get_or_init(|| Mutex::new(HashMap::new()));
    let mut hashes = hashes.lock().unwrap_or_else(|p| p.into_inner());
    hashes
        .entry(cost)
        .or_insert_with(|| {
            let secret: [u8; 16] = rand::random();
            bcrypt::hash(secret, cost).unwrap_or_default()
        })
        .clone()
}

/// Highest bcrypt cost among the configured hashes (10 when none parses).
fn users_cost(config: &WebConfig) -> u32 {
    config
        .users
        .values()
        .filter_map(|h| h.parse::<bcrypt::HashParts>().ok())
        .map(|p| p.get_cost())
        .max()
        .unwrap_or(10)
}

impl WebServer {
    /// Loads the web config file; an invalid file is an error (start-up stops).
    pub fn load(path: Option<&PathBuf>, unauthorized: Counter) -> Result<Self, WebConfigError> {
        let config = match path {
            Some(p) => WebConfig::load(p)?,
            None => WebConfig {
                path: PathBuf::new(),
                tls: None,
                users: Default::default(),
                headers: Vec::new(),
                files: Vec::new(),
                ignored: Vec::new(),
            },
        };
        for key in &config.ignored {
            tracing::warn!(file = %config.path.display(), key, "web config setting ignored (rustls chooses its own modern cipher suites and curves)");
        }
        let tls = config.tls.clone().map(RustlsConfig::from_config);
        if !config.users.is_empty() {
            let _ = dummy_hash(users_cost(&config));
        }
        Ok(WebServer {
            current: Arc::new(RwLock::new(Arc::new(config))),
            tls,
            unauthorized,
        })
    }

    /// True when the endpoint speaks TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// True when `--web.config.file` sets `basic_auth_users` (every request is authenticated).
    pub fn requires_authentication(&self) -> bool {
        !self.config().users.is_empty()
    }

    fn config(&self) -> Arc<WebConfig> {
        Arc::clone(&self.current.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Re-reads the file; an invalid file, or one that turns TLS on or off (which needs a
    /// restart), is logged and the running settings are kept.
    pub fn reload(&self) {
        let old = self.config();
        if old.path.as_os_str().is_empty() {
            return;
        }
        match WebConfig::load(&old.path) {
            Ok(new) if new.tls.is_some() != self.tls.is_some() => tracing::error!(
                file = %old.path.display(),
                "web config: turning TLS on or off needs a restart; keeping the running settings"
            ),
            Ok(new) => {
                if let (Some(tls), Some(server_config)) = (&self.tls, &new.tls) {
                    tls.reload_from_config(Arc::clone(server_config));
                }
                tracing::info!(file = %old.path.display(), users = new.users.len(), tls = new.tls.is_some(), "web config reloaded");
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(new);
            }
            Err(err) => {
                tracing::error!(error = %err, "web config rejected; keeping the running settings")
            }
        }
    }

    /// Serves `router` on `listener` until `stop` changes; also watches the files for changes.
    pub fn spawn(
        &self,
        listener: TcpListener,
        router: Router,
        mut stop: watch::Receiver<bool>,
    ) -> std::io::Result<JoinHandle<std::io::Result<()>>> {
        let app = router.layer(middleware::from_fn_with_state(self.clone(), protect));
        let watcher = self.clone();
        let mut watch_stop = stop.clone();
        tokio::spawn(async move {
            let mut last = watcher.config().fingerprint();
            loop {
                tokio::select! {
                    _ = watch_stop.changed() => return,
                    _ = tokio::time::sleep(WATCH_INTERVAL) => {}
                }
                let now = watcher.config().fingerprint();
                if now != last {
                    watcher.reload();
                    last = watcher.config().fingerprint();
                }
            }
        });
        match &self.tls {
            None => Ok(tokio::spawn(async move {
                axum::serve(
                    crate::nodelay::no_delay(listener),
                    app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
                )
                .with_graceful_shutdown(async move {
                    let _ = stop.changed().await;
                })
                .await
            })),
            Some(tls) => {
                let std_listener = listener.into_std()?;
                let handle = axum_server::Handle::new();
                let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(tls.clone())
                    .acceptor(axum_server::accept::NoDelayAcceptor::new());
                let server = axum_server::from_tcp(std_listener)?
                    .acceptor(acceptor)
                    .handle(handle.clone());
                tokio::spawn(async move {
                    let _ = stop.changed().await;
                    handle.graceful_shutdown(Some(Duration::from_secs(5)));
                });
                Ok(tokio::spawn(async move {
                    server
                        .serve(app.into_make_service_with_connect_info::<std::net::SocketAddr>())
                        .await
                }))
            }
        }
    }
}

/// Checks basic-auth credentials when users are configured; adds configured headers.
async fn protect(State(web): State<WebServer>, request: Request, next: Next) -> Response {
    let config = web.config();
    if !config.users.is_empty() {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .filter(|v| v.len() <= MAX_AUTH_HEADER_BYTES)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_basic);
        let ok = match given {
            None => false,
            Some((user, password)) => {
                let known = config.users.get(&user).cloned();
                let known_clone = known.clone();
                let cost = users_cost(&config);
                let verified = tokio::task::spawn_blocking(move || {
                    let hash = known_hash_or_dummy(known_clone, cost);
                    bcrypt::verify(password.as_bytes(), &hash).unwrap_or(false)
                })
                .await
                .unwrap_or(false);
                known.is_some() && verified
            }
        };
        if !ok {
            web.unauthorized.inc();
            return (
                StatusCode::UNAUTHORIZED,
                [(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"mcp-exporter\""),
                )],
                Body::from("Unauthorized\n"),
            )
                .into_response();
        }
    }
    let mut response = next.run(request).await;
    for (name, value) in &config.headers {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response
}

fn known_hash_or_dummy(known: Option<String>, cost: u32) -> String {
    known.unwrap_or_else(|| dummy_hash(cost))
}

/// Decodes `Basic base64(user:password)`.
pub fn parse_basic(value: &str) -> Option<(String, String)> {
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_decoded() {
        assert_eq!(
            parse_basic("Basic YWxpY2U6czNjcjN0OnguLg=="),
            Some(("alice".into(), "s3cr3t:x..".into()))
        );
        assert_eq!(parse_basic("Bearer abc"), None);
        assert_eq!(parse_basic("Basic !!!"), None);
    }
}

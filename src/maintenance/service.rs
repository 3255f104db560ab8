//! The daemon's maintenance windows: started, listed and ended through the HTTP API
//! (src/web/maintenance.rs), kept in the history store, published as `mcp_server_maintenance`,
//! and mirrored as Alertmanager silences when `[alertmanager]` is configured.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::alertmanager::Alertmanager;
use super::metrics::{MaintenanceMetrics, Operation};
use super::window::{Scope, Window};
use crate::store::Store;
use crate::store::maintenance::{self as rows, NewMaintenance};

/// Longest window one request may open.
pub const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);
/// How often windows that reached their end are dropped and the gauges refreshed.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(1);
/// How often a silence Alertmanager did not take is asked for again.
pub const SILENCE_RETRY_INTERVAL: Duration = Duration::from_secs(30);

/// Why a maintenance request was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum MaintenanceError {
    /// The server is not in the configuration.
    #[error("unknown server {name:?}; configured servers: {known}")]
    UnknownServer {
        /// The name asked for.
        name: String,
        /// The configured names, comma separated.
        known: String,
    },
    /// No reason given.
    #[error("a maintenance window needs a reason (--reason TEXT)")]
    EmptyReason,
    /// Zero or too long.
    #[error("a maintenance window lasts more than 0 s and at most {} days", MAX_DURATION.as_secs() / 86400)]
    BadDuration,
    /// No open window has this id.
    #[error("no open maintenance window with id {0} (see `mcp-exporter maintenance list`)")]
    NotFound(i64),
    /// The history store failed.
    #[error("cannot record the maintenance window in the history store: {0}")]
    Store(#[from] sqlx::Error),
}

/// What `maintenance start` asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct StartRequest {
    /// The servers covered.
    pub scope: Scope,
    /// From now, for how long.
    pub duration: Duration,
    /// Why.
    pub reason: String,
}

#[derive(Debug, Default)]
struct State {
    /// Windows not yet ended, oldest first.
    open: Vec<Window>,
    /// The configured servers.
    servers: BTreeSet<String>,
    /// Ids of windows kept in memory only (no store).
    last_memory_id: i64,
    /// When a missing silence was last asked for.
    last_silence_retry: Option<f64>,
    /// Windows whose silence request is in flight (so a retry never makes a second one).
    silencing: BTreeSet<i64>,
}

/// The maintenance windows of a running daemon.
#[derive(Debug)]
pub struct Maintenance {
    state: Mutex<State>,
    store: Option<Store>,
    metrics: MaintenanceMetrics,
    alertmanager: Option<Alertmanager>,
}

fn now_unix() -> f64 {
    crate::wall_clock::unix_seconds(SystemTime::now())
}

impl Maintenance {
    /// Loads the windows still open from `store` (none without a store; a store that cannot
    /// be read is logged and new windows are still written to it).
    pub async fn open(
        store: Option<Store>,
        metrics: MaintenanceMetrics,
        alertmanager: Option<Alertmanager>,
    ) -> Maintenance {
        let open = match &store {
            Some(store) => match rows::open_at(store, now_unix()).await {
                Ok(found) => found.into_iter().map(Window::from).collect(),
                Err(err) => {
                    tracing::error!(error = %err, "cannot read the maintenance windows from the history store; windows started before the restart are not known");
                    Vec::new()
                }
            },
            None => Vec::new(),
        };
        if !open.is_empty() {
            tracing::info!(
                windows = open.len(),
                "maintenance windows restored from the history store"
            );
        }
        Maintenance {
            state: Mutex::new(State {
                open,
                ..State::default()
            }),
            store,
            metrics,
            alertmanager,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A server is configured: its gauge is set at once.
    pub fn server_added(&self, server: &str) {
        let mut state = self.lock();
        state.servers.insert(server.to_string());
        let now = now_unix();
        let held = state.open.iter().any(|w| w.silences(server, now));
        self.metrics.set(server, held);
    }

    /// A server left the configuration (its series go with the server's other series).
    pub fn server_removed(&self, server: &str) {
        self.lock().servers.remove(server);
    }

    /// Whether a window holds for `server` now.
    pub fn in_maintenance(&self, server: &str) -> bool {
        let now = now_unix();
        self.lock().open.iter().any(|w| w.silences(server, now))
    }

    /// The windows not yet ended (holding, or planned), oldest first.
    pub fn list(&self) -> Vec<Window> {
        let now = now_unix();
        let mut state = self.lock();
        state.open.retain(|w| w.ends_at > now);
        state.open.clone()
    }

    fn validate(&self, request: &StartRequest) -> Result<(), MaintenanceError> {
        if request.reason.trim().is_empty() {
            return Err(MaintenanceError::EmptyReason);
        }
        if request.duration.is_zero() || request.duration > MAX_DURATION {
            return Err(MaintenanceError::BadDuration);
        }
        if let Scope::Server(name) = &request.scope {
            let state = self.lock();
            if !state.servers.contains(name) {
                return Err(MaintenanceError::UnknownServer {
                    name: name.clone(),
                    known: state.servers.iter().cloned().collect::<Vec<_>>().join(", "),
                });
            }
        }
        Ok(())
    }

    /// Starts a window now: stored, published, then silenced in Alertmanager (a failure there
    /// is logged and counted; the window holds regardless).
    pub async fn start(&self, request: StartRequest) -> Result<Window, MaintenanceError> {
        self.validate(&request)?;
        let now = now_unix();
        let new = NewMaintenance {
            server: request.scope.as_column(),
            starts_at: now,
            ends_at: now + request.duration.as_secs_f64(),
            reason: request.reason.trim().to_string(),
            created_at: now,
        };
        let mut window = match &self.store {
            Some(store) => Window::from(rows::insert(store, &new).await?),
            None => {
                let mut state = self.lock();
                state.last_memory_id += 1;
                Window {
                    id: state.last_memory_id,
                    server: new.server,
                    starts_at: new.starts_at,
                    ends_at: new.ends_at,
                    reason: new.reason,
                    ended_early: false,
                    silence_id: None,
                }
            }
        };
        self.lock().open.push(window.clone());
        self.refresh_gauges(now);
        tracing::info!(id = window.id, scope = %window.scope(), until = window.ends_at, reason = %window.reason, "maintenance window started");
        if let Some(silence) = self.silence(&window).await {
            window.silence_id = Some(silence);
        }
        Ok(window)
    }

    /// Asks Alertmanager for the silence of `window` and records it; `None` when there is no
    /// Alertmanager, a request for it is already in flight, or it failed (logged and counted).
    /// A window ended while its silence was being made gets the silence expired at once.
    async fn silence(&self, window: &Window) -> Option<String> {
        let alertmanager = self.alertmanager.as_ref()?;
        if !self.lock().silencing.insert(window.id) {
            return None;
        }
        let created = alertmanager.create_silence(window).await;
        let still_open = {
            let mut state = self.lock();
            state.silencing.remove(&window.id);
            match (&created, state.open.iter_mut().find(|w| w.id == window.id)) {
                (Ok(id), Some(open)) => {
                    open.silence_id = Some(id.clone());
                    true
                }
                _ => false,
            }
        };
        match created {
            Ok(id) if still_open => {
                tracing::info!(window = window.id, silence = %id, "Alertmanager silence created");
                if let Some(store) = &self.store
                    && let Err(err) = rows::set_silence(store, window.id, &id).await
                {
                    tracing::warn!(error = %err, window = window.id, "cannot record the silence id in the history store");
                }
                Some(id)
            }
            Ok(id) => {
                // Ended while the silence was made: it must not outlive the window.
                self.expire(alertmanager, window.id, &id).await;
                None
            }
            Err(err) => {
                self.metrics.alertmanager_failed(Operation::CreateSilence);
                tracing::warn!(error = %err, window = window.id, "maintenance window holds without an Alertmanager silence; retried every {} s", SILENCE_RETRY_INTERVAL.as_secs());
                None
            }
        }
    }

    /// Expires `silence` of window `id`; a failure is logged and counted.
    async fn expire(&self, alertmanager: &Alertmanager, id: i64, silence: &str) {
        if let Err(err) = alertmanager.expire_silence(silence).await {
            self.metrics.alertmanager_failed(Operation::ExpireSilence);
            tracing::warn!(error = %err, window = id, silence = %silence, "cannot expire the Alertmanager silence; it ends at the window's planned end");
        }
    }

    /// Ends window `id` now; its silence is expired.
    pub async fn end(&self, id: i64) -> Result<Window, MaintenanceError> {
        let now = now_unix();
        let window = {
            let mut state = self.lock();
            let Some(at) = state
                .open
                .iter()
                .position(|w| w.id == id && w.ends_at > now)
            else {
                return Err(MaintenanceError::NotFound(id));
            };
            let mut window = state.open.remove(at);
            window.ends_at = now.max(window.starts_at);
            window.ended_early = true;
            window
        };
        self.refresh_gauges(now);
        if let Some(store) = &self.store {
            rows::end_early(store, id, window.ends_at).await?;
        }
        tracing::info!(id, scope = %window.scope(), "maintenance window ended early");
        if let (Some(alertmanager), Some(silence)) = (&self.alertmanager, &window.silence_id) {
            self.expire(alertmanager, id, silence).await;
        }
        Ok(window)
    }

    /// Drops windows that reached their end and sets every configured server's gauge.
    fn refresh_gauges(&self, now: f64) {
        let mut state = self.lock();
        state.open.retain(|w| w.ends_at > now);
        for server in &state.servers {
            let held = state.open.iter().any(|w| w.silences(server, now));
            self.metrics.set(server, held);
        }
    }

    /// Asks again for the silences Alertmanager did not take, at most every
    /// [`SILENCE_RETRY_INTERVAL`].
    async fn retry_silences(&self, now: f64) {
        if self.alertmanager.is_none() {
            return;
        }
        let pending: Vec<Window> = {
            let mut state = self.lock();
            let due = state
                .last_silence_retry
                .is_none_or(|at| now - at >= SILENCE_RETRY_INTERVAL.as_secs_f64());
            if !due {
                return;
            }
            state.last_silence_retry = Some(now);
            state
                .open
                .iter()
                .filter(|w| w.silence_id.is_none() && !state.silencing.contains(&w.id))
                .cloned()
                .collect()
        };
        for window in pending {
            self.silence(&window).await;
        }
    }

    /// Refreshes the gauges every [`REFRESH_INTERVAL`] (windows end on time without a
    /// request) and retries missing silences, until `stop` changes.
    pub fn spawn_refresh(self: Arc<Self>, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(REFRESH_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.changed() => return,
                    _ = tick.tick() => {}
                }
                let now = now_unix();
                self.refresh_gauges(now);
                self.retry_silences(now).await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metric_registry::MetricsRegistry;

    fn request(scope: Scope, seconds: u64) -> StartRequest {
        StartRequest {
            scope,
            duration: Duration::from_secs(seconds),
            reason: "kernel upgrade".into(),
        }
    }

    async fn service(store: Option<Store>) -> (Maintenance, MetricsRegistry) {
        let mut registry = MetricsRegistry::default();
        let metrics = MaintenanceMetrics::register(&mut registry);
        let m = Maintenance::open(store, metrics, None).await;
        m.server_added("a");
        m.server_added("b");
        (m, registry)
    }

    #[tokio::test]
    async fn a_window_sets_its_servers_gauge_until_it_is_ended() {
        let (m, registry) = service(None).await;
        let w = m
            .start(request(Scope::Server("a".into()), 3600))
            .await
            .unwrap();
        let text = registry.encode();
        assert!(
            text.contains("mcp_server_maintenance{server=\"a\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("mcp_server_maintenance{server=\"b\"} 0"),
            "{text}"
        );
        assert!(m.in_maintenance("a") && !m.in_maintenance("b"));
        assert_eq!(m.list(), vec![w.clone()]);
        let ended = m.end(w.id).await.unwrap();
        assert!(ended.ended_early && ended.ends_at <= w.ends_at);
        assert!(
            registry
                .encode()
                .contains("mcp_server_maintenance{server=\"a\"} 0")
        );
        assert!(m.list().is_empty());
        assert!(matches!(
            m.end(w.id).await,
            Err(MaintenanceError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn all_covers_servers_added_later_and_requests_are_checked() {
        let (m, registry) = service(None).await;
        m.start(request(Scope::All, 60)).await.unwrap();
        m.server_added("c");
        let text = registry.encode();
        for s in ["a", "b", "c"] {
            assert!(
                text.contains(&format!("mcp_server_maintenance{{server=\"{s}\"}} 1")),
                "{text}"
            );
        }
        let err = m
            .start(request(Scope::Server("zz".into()), 60))
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown server \"zz\"; configured servers: a, b, c"
        );
        assert!(matches!(
            m.start(request(Scope::All, 0)).await,
            Err(MaintenanceError::BadDuration)
        ));
        let mut blank = request(Scope::All, 60);
        blank.reason = "  ".into();
        assert!(matches!(
            m.start(blank).await,
            Err(MaintenanceError::EmptyReason)
        ));
    }

    #[tokio::test]
    async fn windows_are_restored_from_the_store_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        let store = Store::open(&path).await.unwrap();
        let (m, _) = service(Some(store.clone())).await;
        let kept = m
            .start(request(Scope::Server("b".into()), 3600))
            .await
            .unwrap();
        let ended = m
            .start(request(Scope::Server("a".into()), 3600))
            .await
            .unwrap();
        m.end(ended.id).await.unwrap();
        drop(m);
        store.close().await;

        let store = Store::open(&path).await.unwrap();
        let (m, registry) = service(Some(store)).await;
        assert_eq!(m.list(), vec![kept]);
        let text = registry.encode();
        assert!(
            text.contains("mcp_server_maintenance{server=\"b\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("mcp_server_maintenance{server=\"a\"} 0"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn an_unreachable_alertmanager_is_counted_and_the_window_holds() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let config = crate::settings::AlertmanagerConfig {
            url: url::Url::parse(&format!("http://127.0.0.1:{port}")).unwrap(),
            timeout: Duration::from_secs(2),
        };
        let mut registry = MetricsRegistry::default();
        let metrics = MaintenanceMetrics::register(&mut registry);
        let m = Maintenance::open(None, metrics, Some(Alertmanager::new(&config).unwrap())).await;
        m.server_added("a");
        let w = m
            .start(request(Scope::Server("a".into()), 60))
            .await
            .unwrap();
        assert_eq!(w.silence_id, None);
        assert!(m.in_maintenance("a"));
        let text = registry.encode();
        assert!(
            text.contains(
                "mcp_alertmanager_request_failures_total{operation=\"create_silence\"} 1"
            ),
            "{text}"
        );
    }
}

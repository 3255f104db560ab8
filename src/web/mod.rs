//! The HTTP surface: `/metrics`, `/health`, `/api/servers`, `/api/dependencies`, `/sd`
//! (Prometheus HTTP service discovery) and the status page at `/`, served with the TLS and basic-auth settings of `--web.config.file`.
//! Handlers only read what the scheduler last published; none of them probes.

mod assets;
mod compress;
pub mod config;
mod dependencies;
pub mod lifecycle;
pub mod sd;
pub mod server;
mod status_page;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};

use crate::metrics::Metrics;
use crate::status::StatusBoard;

const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The registry `/metrics` encodes.
    pub metrics: Arc<Metrics>,
    /// Per-server status for `/` and `/api/servers`.
    pub board: StatusBoard,
    /// When the daemon started, for `/health`.
    pub started: Instant,
    /// Dependency states for `/api/dependencies`.
    pub dependencies: crate::deps::DependencyBoard,
    /// Which servers use which dependency.
    pub dependents: crate::deps::Dependents,
    /// Where `POST /-/reload` sends its requests; `None` unless `--web.enable-lifecycle`.
    pub reload: Option<lifecycle::ReloadRequests>,
    /// The servers this instance probes, for `/sd`.
    pub sd: sd::SdTargets,
}

/// Where `/metrics` is served unless `--web.telemetry-path` says otherwise.
pub const DEFAULT_TELEMETRY_PATH: &str = "/metrics";

/// Builds the router; the metrics are served at `telemetry_path` (e.g. `/metrics`).
pub fn router(state: AppState, telemetry_path: &str) -> Router {
    Router::new()
        .route("/", get(status_page_handler))
        .route(telemetry_path, get(metrics_handler))
        .route("/-/reload", post(lifecycle::reload_handler))
        .route("/health", get(health_handler))
        .route("/api/servers", get(servers_handler))
        .route("/api/dependencies", get(dependencies_handler))
        .route("/sd", get(sd_handler))
        .merge(assets::routes())
        .fallback(not_found)
        .with_state(state)
}

async fn metrics_handler(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let wants_openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    let (content_type, body) = if wants_openmetrics {
        (
            OPENMETRICS_CONTENT_TYPE,
            redact(state.metrics.encode_openmetrics()),
        )
    } else {
        (
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            redact(state.metrics.encode_prometheus()),
        )
    };
    if compress::accepts_gzip(&headers) {
        (
            [
                (header::CONTENT_TYPE, content_type),
                (header::CONTENT_ENCODING, "gzip"),
                (header::VARY, "Accept-Encoding"),
            ],
            compress::gzip(body.as_bytes()),
        )
            .into_response()
    } else {
        (
            [
                (header::CONTENT_TYPE, content_type),
                (header::VARY, "Accept-Encoding"),
            ],
            body,
        )
            .into_response()
    }
}

async fn health_handler(State(state): State<AppState>) -> Response {
    let servers = state.board.snapshot().len();
    axum::Json(serde_json::json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": state.started.elapsed().as_secs_f64(),
        "servers": servers,
    }))
    .into_response()
}

async fn servers_handler(State(state): State<AppState>) -> Response {
    let json = serde_json::to_string(&state.board.snapshot()).unwrap_or_else(|_| "[]".into());
    ([(header::CONTENT_TYPE, "application/json")], redact(json)).into_response()
}

async fn dependencies_handler(State(state): State<AppState>) -> Response {
    let views = dependencies::views(&state.dependencies, &state.dependents);
    let json = serde_json::to_string(&views).unwrap_or_else(|_| "[]".into());
    ([(header::CONTENT_TYPE, "application/json")], redact(json)).into_response()
}

/// Prometheus HTTP service discovery: this instance's servers as target groups
/// (src/web/sd.rs).
async fn sd_handler(State(state): State<AppState>) -> Response {
    let json = serde_json::to_string(&*state.sd.groups()).unwrap_or_else(|_| "[]".into());
    ([(header::CONTENT_TYPE, "application/json")], redact(json)).into_response()
}

async fn status_page_handler(State(state): State<AppState>) -> Html<String> {
    Html(redact(status_page::render(&state.board.snapshot())))
}

/// No registered secret leaves the daemon through an endpoint (README.md#security).
fn redact(text: String) -> String {
    crate::security::redact::redact_owned(text)
}

async fn not_found() -> (StatusCode, &'static str) {
    (
        StatusCode::NOT_FOUND,
        "not found; try /metrics, /health, /api/servers, /api/dependencies, /sd or /\n",
    )
}

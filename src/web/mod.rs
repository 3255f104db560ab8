//! The HTTP surface: `/metrics`, `/health`, `/api/servers`, `/api/dependencies`,
//! `/api/maintenance` (src/web/maintenance.rs), `/sd` (Prometheus HTTP service discovery),
//! `/probe`, `/servers/NAME`, `/config`, `/reports` and the status page at `/`, served with the
//! TLS and basic-auth settings of `--web.config.file`.
//! Handlers only read what the scheduler last published; none of them probes.

mod assets;
pub(crate) mod compress;
pub mod config;
mod dependencies;
pub mod lifecycle;
pub mod maintenance;
pub mod probe_endpoint;
pub mod sd;
pub mod server;
mod server_page;
mod status_page;
pub mod write_access;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{delete, get, post};

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
    /// The `[modules.NAME]` `/probe` uses (replaced at each reload).
    pub modules: crate::probe::module::ModuleTable,
    /// Bounds the `/probe` requests running at once.
    pub probe_slots: std::sync::Arc<tokio::sync::Semaphore>,
    /// Each server's recent probes, for its page.
    pub recent: crate::recent_probes::RecentProbes,
    /// The history store, read by the server pages and `/reports`; `None` when disabled.
    pub store: Option<crate::store::Store>,
    /// What `/reports` reads besides the store: its `max_size` (capacity) and `[prometheus]`.
    pub report_sources: crate::report::Sources,
    /// What `/config` shows: the running configuration as `validate` reports it.
    pub running_config: RunningConfig,
    /// The maintenance windows behind `/api/maintenance`; `None` answers 503.
    pub maintenance: Option<maintenance::MaintenanceApi>,
    /// The servers this instance probes, for `/sd`.
    pub sd: sd::SdTargets,
}

/// The running configuration's report (src/validate.rs), replaced at each reload.
#[derive(Debug, Clone, Default)]
pub struct RunningConfig(std::sync::Arc<std::sync::RwLock<String>>);

impl RunningConfig {
    /// Replaces the report.
    pub fn set(&self, report: String) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = report;
    }

    /// The report as it is now.
    pub fn get(&self) -> String {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
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
        .route("/probe", get(probe_endpoint::probe_handler))
        .route("/servers/{name}", get(server_page_handler))
        .route("/config", get(config_handler))
        .route("/reports", get(reports_handler))
        .route(
            "/api/maintenance",
            get(maintenance::list).post(maintenance::start),
        )
        .route("/api/maintenance/{id}", delete(maintenance::end))
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

async fn server_page_handler(
    State(state): State<AppState>,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Response {
    let Some(status) = state.board.get(&name) else {
        let known: Vec<String> = state.board.snapshot().into_iter().map(|s| s.name).collect();
        return (
            StatusCode::NOT_FOUND,
            redact(format!(
                "no server named {name:?}; configured servers: {}\n",
                known.join(", ")
            )),
        )
            .into_response();
    };
    let history = match &state.store {
        None => server_page::HistoryView::Disabled,
        Some(store) => {
            let since = crate::wall_clock::unix_seconds(std::time::SystemTime::now())
                - server_page::HISTORY_SECONDS;
            match crate::store::query::history(store, &name, since).await {
                Ok(h) => server_page::HistoryView::Found(h),
                Err(err) => server_page::HistoryView::Failed(err.to_string()),
            }
        }
    };
    let probes = state.recent.of(&name);
    Html(redact(server_page::render(&status, &history, &probes))).into_response()
}

/// `/reports?since=24h[&server=NAME][&format=html|markdown|json]`: `mcp-exporter report`
/// served (src/report/), HTML by default.
async fn reports_handler(
    State(state): State<AppState>,
    axum::extract::Query(params): axum::extract::Query<std::collections::BTreeMap<String, String>>,
) -> Response {
    use crate::report::render::ReportOutput;
    let Some(store) = &state.store else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "reports are made from the history store, which is disabled ([store] enabled = false)\n",
        )
            .into_response();
    };
    let since = params.get("since").map(String::as_str).unwrap_or("24h");
    let Ok(period) = humantime::parse_duration(since) else {
        return (
            StatusCode::BAD_REQUEST,
            format!("since={since:?} is not a duration; expected e.g. 24h or 7d\n"),
        )
            .into_response();
    };
    let (output, content_type) = match params.get("format").map(String::as_str) {
        None | Some("html") => (ReportOutput::Html, "text/html; charset=utf-8"),
        Some("markdown") => (ReportOutput::Markdown, "text/markdown; charset=utf-8"),
        Some("json") => (ReportOutput::Json, "application/json"),
        Some(other) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("format={other:?} is unknown; expected html, markdown or json\n"),
            )
                .into_response();
        }
    };
    let until = crate::wall_clock::unix_seconds(std::time::SystemTime::now());
    let server = params.get("server").map(String::as_str);
    match crate::report::build(
        store,
        until - period.as_secs_f64(),
        until,
        server,
        &state.report_sources,
    )
    .await
    {
        Ok(report) => (
            [(header::CONTENT_TYPE, content_type)],
            crate::report::render::rendered(&report, output),
        )
            .into_response(),
        Err(err) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the history store could not be read: {err}\n"),
        )
            .into_response(),
    }
}

async fn config_handler(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        redact(state.running_config.get()),
    )
        .into_response()
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
        "not found; try /metrics, /health, /api/servers, /api/dependencies, /api/maintenance, /servers/NAME, /config, /reports, /probe, /sd or /\n",
    )
}

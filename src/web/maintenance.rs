//! `/api/maintenance`: the daemon's maintenance windows (src/maintenance/).
//!
//! - `GET /api/maintenance`: the windows not yet ended, as JSON;
//! - `POST /api/maintenance` with `{"server": "NAME" | "all": true, "duration_seconds": N,
//!   "reason": "TEXT"}`: starts a window now (201 and the window);
//! - `DELETE /api/maintenance/{id}`: ends a window now (200 and the window).
//!
//! Writes follow src/web/write_access.rs; a refusal is 403 with the reason. `POST` takes only
//! `Content-Type: application/json`: a web page in the operator's browser cannot send that to
//! the daemon across origins without a CORS preflight (which the daemon never grants), so a
//! page cannot open a window through a loopback-only daemon.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::AppState;
use super::write_access::WriteAccess;
use crate::maintenance::{Maintenance, MaintenanceError, Scope, StartRequest};

/// Largest request body taken.
const MAX_BODY_BYTES: usize = 16 * 1024;

/// What the maintenance endpoints need.
#[derive(Clone)]
pub struct MaintenanceApi {
    /// The windows.
    pub windows: Arc<Maintenance>,
    /// Who may change them.
    pub access: WriteAccess,
}

/// The body of `POST /api/maintenance`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StartBody {
    server: Option<String>,
    #[serde(default)]
    all: bool,
    duration_seconds: f64,
    reason: String,
}

fn text(status: StatusCode, message: impl Into<String>) -> Response {
    let mut message = message.into();
    if !message.ends_with('\n') {
        message.push('\n');
    }
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message,
    )
        .into_response()
}

fn unavailable() -> Response {
    text(
        StatusCode::SERVICE_UNAVAILABLE,
        "maintenance windows are not available in this daemon",
    )
}

fn failed(err: MaintenanceError) -> Response {
    let status = match err {
        MaintenanceError::NotFound(_) => StatusCode::NOT_FOUND,
        MaintenanceError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    };
    text(status, err.to_string())
}

fn peer(request: &Request) -> Option<SocketAddr> {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
}

/// Whether the request says its body is JSON.
fn is_json(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

/// Parses the start body into a request.
fn start_request(body: &[u8]) -> Result<StartRequest, String> {
    let body: StartBody = serde_json::from_slice(body).map_err(|e| {
        format!(
            "invalid body ({e}); expected {{\"server\": \"NAME\" or \"all\": true, \"duration_seconds\": 3600, \"reason\": \"TEXT\"}}"
        )
    })?;
    let scope = match (body.server, body.all) {
        (Some(name), false) => Scope::Server(name),
        (None, true) => Scope::All,
        (Some(_), true) => return Err("give either \"server\" or \"all\": true, not both".into()),
        (None, false) => return Err("name the server (\"server\") or \"all\": true".into()),
    };
    let duration = Duration::try_from_secs_f64(body.duration_seconds)
        .map_err(|_| "duration_seconds must be a positive number".to_string())?;
    Ok(StartRequest {
        scope,
        duration,
        reason: body.reason,
    })
}

pub(super) async fn list(State(state): State<AppState>) -> Response {
    let Some(api) = &state.maintenance else {
        return unavailable();
    };
    Json(api.windows.list()).into_response()
}

pub(super) async fn start(State(state): State<AppState>, request: Request) -> Response {
    let Some(api) = &state.maintenance else {
        return unavailable();
    };
    if let Err(reason) = api.access.check(peer(&request)) {
        return text(StatusCode::FORBIDDEN, reason);
    }
    if !is_json(request.headers()) {
        return text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the window as JSON with Content-Type: application/json",
        );
    }
    let body = match axum::body::to_bytes(request.into_body(), MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(err) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("cannot read the body: {err}"),
            );
        }
    };
    let wanted = match start_request(&body) {
        Ok(wanted) => wanted,
        Err(message) => return text(StatusCode::BAD_REQUEST, message),
    };
    match api.windows.start(wanted).await {
        Ok(window) => (StatusCode::CREATED, Json(window)).into_response(),
        Err(err) => failed(err),
    }
}

pub(super) async fn end(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    request: Request,
) -> Response {
    let Some(api) = &state.maintenance else {
        return unavailable();
    };
    if let Err(reason) = api.access.check(peer(&request)) {
        return text(StatusCode::FORBIDDEN, reason);
    }
    match api.windows.end(id).await {
        Ok(window) => Json(window).into_response(),
        Err(err) => failed(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_json_bodies_are_taken() {
        let mut headers = axum::http::HeaderMap::new();
        assert!(!is_json(&headers));
        headers.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        assert!(!is_json(&headers));
        headers.insert(
            header::CONTENT_TYPE,
            "application/json; charset=utf-8".parse().unwrap(),
        );
        assert!(is_json(&headers));
    }

    #[test]
    fn start_bodies_name_one_server_or_all() {
        let r = start_request(br#"{"server":"db","duration_seconds":3600,"reason":"upgrade"}"#)
            .unwrap();
        assert_eq!(r.scope, Scope::Server("db".into()));
        assert_eq!(r.duration, Duration::from_secs(3600));
        let r = start_request(br#"{"all":true,"duration_seconds":60,"reason":"x"}"#).unwrap();
        assert_eq!(r.scope, Scope::All);
        for bad in [
            br#"{"server":"db","all":true,"duration_seconds":60,"reason":"x"}"#.as_slice(),
            br#"{"duration_seconds":60,"reason":"x"}"#,
            br#"{"server":"db","duration_seconds":-1,"reason":"x"}"#,
            br#"{"server":"db","reason":"x"}"#,
            b"not json",
        ] {
            assert!(
                start_request(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}

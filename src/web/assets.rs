//! The monitoring bundle over HTTP: `/alerts/mcp-exporter.rules.yml`, `/dashboards/<name>.json`
//! and `/runbooks/<alert>.md`, compiled into the binary (see `crate::bundle`).

use axum::Router;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::bundle;

/// Routes of the bundle; merged into the main router.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            &format!("/alerts/{}", bundle::RULES_FILE_NAME),
            get(rules_handler),
        )
        .route("/dashboards/{file}", get(dashboard_handler))
        .route("/runbooks/{file}", get(runbook_handler))
}

async fn rules_handler() -> Response {
    (
        [(header::CONTENT_TYPE, "application/yaml; charset=utf-8")],
        bundle::RULES_YML,
    )
        .into_response()
}

async fn dashboard_handler(Path(file): Path<String>) -> Response {
    match file.strip_suffix(".json").and_then(bundle::dashboard) {
        Some(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        None => missing(
            "dashboard",
            bundle::DASHBOARDS.iter().map(|(n, _)| n),
            ".json",
        ),
    }
}

async fn runbook_handler(Path(file): Path<String>) -> Response {
    match file.strip_suffix(".md").and_then(bundle::runbook) {
        Some(md) => ([(header::CONTENT_TYPE, "text/markdown; charset=utf-8")], md).into_response(),
        None => missing("runbook", bundle::RUNBOOKS.iter().map(|(n, _)| n), ".md"),
    }
}

fn missing<'a>(what: &str, names: impl Iterator<Item = &'a &'a str>, ext: &str) -> Response {
    let list: Vec<String> = names.map(|n| format!("{n}{ext}")).collect();
    (
        StatusCode::NOT_FOUND,
        format!("no such {what}; there are: {}\n", list.join(", ")),
    )
        .into_response()
}

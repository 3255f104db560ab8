//! `POST /-/reload`, Prometheus' lifecycle endpoint: asks the daemon to re-read its
//! configuration and answers with the outcome. Off unless `serve --web.enable-lifecycle`, as in
//! Prometheus; when on, it is protected like every endpoint (`--web.config.file` basic auth).

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use tokio::sync::{mpsc, oneshot};

use super::AppState;

/// The longest a reload request waits for the daemon's answer (stopping servers that left the
/// configuration takes up to their stop grace).
const REPLY_TIMEOUT: Duration = Duration::from_secs(60);

/// The reply a reload request gets: the summary, or why the file was rejected.
pub type ReloadReply = Result<String, String>;

/// Where reload requests go (the daemon's main loop), each with the channel of its reply.
pub type ReloadRequests = mpsc::Sender<oneshot::Sender<ReloadReply>>;

pub(super) async fn reload_handler(State(state): State<AppState>) -> (StatusCode, String) {
    let Some(requests) = &state.reload else {
        return (
            StatusCode::FORBIDDEN,
            "Lifecycle API is not enabled (start the daemon with --web.enable-lifecycle).\n".into(),
        );
    };
    let (reply_tx, reply_rx) = oneshot::channel();
    if requests.send(reply_tx).await.is_err() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "the daemon is shutting down\n".into(),
        );
    }
    match tokio::time::timeout(REPLY_TIMEOUT, reply_rx).await {
        Ok(Ok(Ok(summary))) => (StatusCode::OK, format!("{summary}\n")),
        Ok(Ok(Err(reason))) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("configuration rejected; the running one is kept: {reason}\n"),
        ),
        Ok(Err(_)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the daemon is shutting down\n".into(),
        ),
        Err(_) => (
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "the reload did not finish within {} s; it goes on in the background\n",
                REPLY_TIMEOUT.as_secs()
            ),
        ),
    }
}

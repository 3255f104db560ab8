//! The outer deadline of a probe: its own timeout plus a grace, after which the probe is
//! abandoned and reported as a failure (the daemon and `mcp-exporter check` both use it).

use std::future::Future;
use std::time::{Duration, SystemTime};

use super::config::ServerConfig;

use super::outcome::{FailureClass, ProbeOutcome, Stage};

/// Extra time a probe gets beyond its own timeout before it is abandoned.
pub const DEADLINE_GRACE: Duration = Duration::from_secs(2);

/// Runs `probe` under `server`'s deadline; a probe still running at the deadline is dropped
/// and reported down at connect.
pub async fn within_deadline(
    server: &ServerConfig,
    probe: impl Future<Output = ProbeOutcome>,
) -> ProbeOutcome {
    tokio::time::timeout(server.timeout + DEADLINE_GRACE, probe)
        .await
        .unwrap_or_else(|_| abandoned(server))
}

/// The outcome of a probe abandoned at its deadline.
pub fn abandoned(server: &ServerConfig) -> ProbeOutcome {
    let deadline = server.timeout + DEADLINE_GRACE;
    let mut outcome = ProbeOutcome::started(SystemTime::now() - deadline);
    outcome.duration = deadline;
    outcome.fail(
        Stage::Connect,
        FailureClass::Down,
        format!(
            "probe did not finish within its {} ms deadline",
            deadline.as_millis()
        ),
    );
    outcome
}

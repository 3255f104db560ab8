//! Wall-clock times as the Unix seconds that metrics, the history store and the JSON API carry.

use std::time::{SystemTime, UNIX_EPOCH};

/// Unix seconds of a wall-clock time (0 before the epoch).
pub fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// `2026-11-28T16:33:12Z` (UTC, seconds) for a Unix time: how the CLI, the pages and the
/// reports print times.
pub fn format_rfc3339(unix: f64) -> String {
    let t = UNIX_EPOCH + std::time::Duration::from_secs_f64(unix.max(0.0));
    humantime::format_rfc3339_seconds(t).to_string()
}

//! Wall-clock times as the Unix seconds that metrics, the history store and the JSON API carry.

use std::time::{SystemTime, UNIX_EPOCH};

/// Unix seconds of a wall-clock time (0 before the epoch).
pub fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

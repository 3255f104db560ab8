//! Waiting for a condition, bounded, instead of sleeping a fixed time.

use std::thread;
use std::time::{Duration, Instant};

/// Calls `check` every `poll_interval` until it returns `Ok`, and returns that value.
///
/// Panics after `timeout` with the last error `check` returned.
pub fn eventually<T, F>(timeout: Duration, poll_interval: Duration, mut check: F) -> T
where
    F: FnMut() -> Result<T, String>,
{
    let start = Instant::now();
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let err = match check() {
            Ok(value) => return value,
            Err(err) => err,
        };
        if start.elapsed() >= timeout {
            panic!(
                "eventually: condition not met after {timeout:?} ({attempts} attempts); last error: {err}"
            );
        }
        thread::sleep(poll_interval.min(timeout.saturating_sub(start.elapsed())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eventually_returns_the_first_ok() {
        let mut n = 0;
        let got = eventually(Duration::from_secs(5), Duration::from_millis(1), || {
            n += 1;
            if n < 3 {
                Err(format!("try {n}"))
            } else {
                Ok(n)
            }
        });
        assert_eq!(got, 3);
    }

    #[test]
    #[should_panic(expected = "last error: still 7")]
    fn eventually_panics_with_the_last_error() {
        eventually::<(), _>(Duration::from_millis(50), Duration::from_millis(5), || {
            Err("still 7".to_string())
        });
    }
}

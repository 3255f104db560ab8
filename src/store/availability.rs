//! Time-weighted availability: the share of observed time a server was up, from its probes.
//!
//! Counting probes is biased whenever probes are not evenly spaced: a crash-looping stdio
//! server is probed on its restart back-off, a hung one only after each timeout. Here each
//! probe's result holds from its time until the next probe, so every second counts once. A gap
//! much longer than the server's usual spacing (the daemon was stopped, the machine slept) is
//! not observation: each span is capped at [`GAP_FACTOR`] times the median spacing.
//!
//! Time inside a maintenance window (src/store/maintenance.rs) is planned downtime: it is
//! counted apart ([`TimeWeighted::planned_seconds`]) and neither up nor observed, so a planned
//! restart is not an outage.

use serde::Serialize;

/// A span longer than this many median spacings is cut there (the rest is unobserved).
pub const GAP_FACTOR: f64 = 3.0;

/// Availability over the observed time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TimeWeighted {
    /// Seconds the last probe said up.
    pub up_seconds: f64,
    /// Seconds covered by probes (gaps cut, see the module documentation).
    pub observed_seconds: f64,
    /// `up_seconds / observed_seconds` in percent.
    pub percent: f64,
    /// Seconds covered by probes that fell inside maintenance windows (not in the two above).
    pub planned_seconds: f64,
}

/// Computes availability from `(unix seconds, up)` probes in time order, up to `now` (the last
/// probe holds until then, within the cap). `None` with no probe or no observed time.
pub fn time_weighted(probes: &[(f64, bool)], now: f64) -> Option<TimeWeighted> {
    time_weighted_with_planned(probes, now, &[])
}

/// Like [`time_weighted`], with the `(start, end)` Unix seconds of maintenance windows whose
/// time is planned downtime rather than observation. `None` when no unplanned time is observed.
pub fn time_weighted_with_planned(
    probes: &[(f64, bool)],
    now: f64,
    planned: &[(f64, f64)],
) -> Option<TimeWeighted> {
    let cap = GAP_FACTOR * median_spacing(probes)?;
    let planned = merged(planned);
    let mut up_seconds = 0.0;
    let mut observed_seconds = 0.0;
    let mut planned_seconds = 0.0;
    for (i, &(ts, up)) in probes.iter().enumerate() {
        let until = probes.get(i + 1).map_or(now, |next| next.0);
        let span = (until - ts).clamp(0.0, cap);
        let in_window = overlap(ts, ts + span, &planned);
        planned_seconds += in_window;
        let counted = span - in_window;
        observed_seconds += counted;
        if up {
            up_seconds += counted;
        }
    }
    (observed_seconds > 0.0).then(|| TimeWeighted {
        up_seconds,
        observed_seconds,
        percent: up_seconds * 100.0 / observed_seconds,
        planned_seconds,
    })
}

/// The intervals sorted and with overlapping ones joined.
fn merged(intervals: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut sorted: Vec<(f64, f64)> = intervals.iter().copied().filter(|(a, b)| b > a).collect();
    sorted.sort_by(|x, y| x.0.total_cmp(&y.0));
    let mut out: Vec<(f64, f64)> = Vec::with_capacity(sorted.len());
    for (start, end) in sorted {
        match out.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => out.push((start, end)),
        }
    }
    out
}

/// Seconds of `[from, to)` inside the (merged) intervals.
fn overlap(from: f64, to: f64, intervals: &[(f64, f64)]) -> f64 {
    intervals
        .iter()
        .map(|&(start, end)| (to.min(end) - from.max(start)).max(0.0))
        .sum()
}

/// Median time between consecutive probes; a single probe has no spacing to go by.
fn median_spacing(probes: &[(f64, bool)]) -> Option<f64> {
    let mut gaps: Vec<f64> = probes
        .windows(2)
        .map(|w| w[1].0 - w[0].0)
        .filter(|g| *g > 0.0)
        .collect();
    if gaps.is_empty() {
        return None;
    }
    gaps.sort_by(f64::total_cmp);
    Some(gaps[gaps.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every(interval: f64, ups: &[bool]) -> Vec<(f64, bool)> {
        ups.iter()
            .enumerate()
            .map(|(i, &up)| (i as f64 * interval, up))
            .collect()
    }

    #[test]
    fn evenly_spaced_probes_weigh_alike() {
        let probes = every(15.0, &[true, true, false, true]);
        let a = time_weighted(&probes, 60.0).unwrap();
        assert_eq!((a.up_seconds, a.observed_seconds), (45.0, 60.0));
        assert_eq!(a.percent, 75.0);
    }

    #[test]
    fn sparse_probes_while_down_count_for_their_whole_span() {
        // Up, probed every 10 s for 100 s; then down for 100 s, probed only every 20 s (the
        // restart back-off). By probes that is 10 of 15 up (67%); by time it is half.
        let mut probes = every(10.0, &[true; 10]);
        probes.extend((0..5).map(|i| (100.0 + 20.0 * i as f64, false)));
        let a = time_weighted(&probes, 200.0).unwrap();
        assert_eq!((a.up_seconds, a.observed_seconds), (100.0, 200.0));
        assert_eq!(a.percent, 50.0);
    }

    #[test]
    fn a_gap_while_the_daemon_was_stopped_is_not_observed() {
        // Probes every 15 s, then nothing for an hour (exporter stopped), then again.
        let mut probes = every(15.0, &[true, true, true]);
        probes.extend([(3630.0, false), (3645.0, false)]);
        let a = time_weighted(&probes, 3660.0).unwrap();
        // The probe before the gap holds for 3 x 15 s only.
        assert_eq!(a.up_seconds, 15.0 + 15.0 + 45.0);
        assert_eq!(a.observed_seconds, 75.0 + 15.0 + 15.0);
    }

    #[test]
    fn the_last_probe_holds_until_now_within_the_cap() {
        let probes = every(10.0, &[false, false, true]);
        assert_eq!(time_weighted(&probes, 25.0).unwrap().up_seconds, 5.0);
        assert_eq!(time_weighted(&probes, 500.0).unwrap().up_seconds, 30.0);
    }

    #[test]
    fn time_in_maintenance_is_planned_not_an_outage() {
        // Down from 40 s to 100 s, of which 40-90 s was a maintenance window (two overlapping
        // windows joined): only 10 s of it is an outage.
        let probes = every(
            10.0,
            &[
                true, true, true, true, false, false, false, false, false, false,
            ],
        );
        let a = time_weighted_with_planned(&probes, 100.0, &[(40.0, 70.0), (60.0, 90.0)]).unwrap();
        assert_eq!(a.planned_seconds, 50.0);
        assert_eq!((a.up_seconds, a.observed_seconds), (40.0, 50.0));
        assert_eq!(a.percent, 80.0);
        let without = time_weighted(&probes, 100.0).unwrap();
        assert_eq!((without.percent, without.planned_seconds), (40.0, 0.0));
    }

    #[test]
    fn too_few_probes_give_none() {
        assert_eq!(time_weighted(&[], 10.0), None);
        assert_eq!(time_weighted(&[(5.0, true)], 10.0), None);
    }
}

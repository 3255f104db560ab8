//! A period cut into equal slots, each with its latency percentiles and its availability, for
//! the report's charts (src/report/chart.rs) and its JSON. Each slot's figures come from the
//! same functions as the period's: [`percentiles`] (the buckets of
//! `mcp_request_duration_seconds` through src/quantile.rs) and
//! [`time_weighted_with_planned`] (src/store/availability.rs, as `history` computes it).

use serde::Serialize;

use super::{Percentiles, percentiles};
use crate::store::availability::time_weighted_with_planned;

/// Slots a period is cut into.
pub const SLOTS: usize = 48;

/// One stored probe: Unix seconds, up, latency in seconds when it had one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProbePoint {
    /// Unix seconds.
    pub ts: f64,
    /// The server answered.
    pub up: bool,
    /// The probe's latency, seconds.
    pub latency_seconds: Option<f64>,
}

/// One slot of a period.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Slot {
    /// Start of the slot (Unix seconds); it lasts [`Series::slot_seconds`].
    pub start: f64,
    /// p50/p95/p99 of the slot's probes.
    #[serde(flatten)]
    pub latency: Percentiles,
    /// Time-weighted availability of the slot, percent; `None` with fewer than two probes.
    pub availability_percent: Option<f64>,
}

/// A period's slots, oldest first.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Series {
    /// Length of every slot, seconds.
    pub slot_seconds: f64,
    /// The slots, covering the period from its start.
    pub slots: Vec<Slot>,
}

/// This period's series beside the previous period's (the same slots, one period earlier).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SeriesComparison {
    /// The reported period.
    pub current: Series,
    /// The period of the same length just before it.
    pub previous: Series,
}

/// The series of `[since, until)` from `probes` (any order; those outside are ignored), with
/// `planned` maintenance windows (`(start, end)` Unix seconds) left out of availability.
pub fn series(probes: &[ProbePoint], since: f64, until: f64, planned: &[(f64, f64)]) -> Series {
    let slot_seconds = ((until - since) / SLOTS as f64).max(f64::MIN_POSITIVE);
    let mut sorted: Vec<ProbePoint> = probes
        .iter()
        .copied()
        .filter(|p| p.ts >= since && p.ts < until)
        .collect();
    sorted.sort_by(|a, b| a.ts.total_cmp(&b.ts));
    let slots = (0..SLOTS)
        .map(|i| {
            let start = since + i as f64 * slot_seconds;
            let end = if i + 1 == SLOTS {
                until
            } else {
                start + slot_seconds
            };
            let inside: Vec<&ProbePoint> = sorted
                .iter()
                .filter(|p| p.ts >= start && p.ts < end)
                .collect();
            let latencies: Vec<f64> = inside.iter().filter_map(|p| p.latency_seconds).collect();
            let ups: Vec<(f64, bool)> = inside.iter().map(|p| (p.ts, p.up)).collect();
            Slot {
                start,
                latency: percentiles(&latencies),
                availability_percent: time_weighted_with_planned(&ups, end, planned)
                    .map(|a| a.percent),
            }
        })
        .collect();
    Series {
        slot_seconds,
        slots,
    }
}

/// A textual sparkline of `values` (one character per value, `·` where there is none), scaled
/// from 0 to the largest value.
pub fn sparkline(values: &[Option<f64>]) -> String {
    const LEVELS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let max = values.iter().flatten().copied().fold(0.0_f64, f64::max);
    values
        .iter()
        .map(|v| match v {
            None => '·',
            Some(_) if max <= 0.0 => LEVELS[0],
            Some(v) => {
                let level = ((v / max) * (LEVELS.len() - 1) as f64).round() as usize;
                LEVELS[level.min(LEVELS.len() - 1)]
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(ts: f64, up: bool, latency: f64) -> ProbePoint {
        ProbePoint {
            ts,
            up,
            latency_seconds: Some(latency),
        }
    }

    #[test]
    fn each_slot_has_the_percentiles_and_availability_of_its_own_probes() {
        // 48 slots of 10 s; probes every second, the server down in slot 5 and slow in slot 7.
        let probes: Vec<ProbePoint> = (0..480)
            .map(|s| {
                let ts = 1000.0 + s as f64;
                let slot = s / 10;
                probe(ts, slot != 5, if slot == 7 { 3.0 } else { 0.02 })
            })
            .collect();
        let s = series(&probes, 1000.0, 1480.0, &[]);
        assert_eq!(s.slots.len(), SLOTS);
        assert_eq!(s.slot_seconds, 10.0);
        assert_eq!(s.slots[5].start, 1050.0);
        assert_eq!(s.slots[5].availability_percent, Some(0.0));
        assert_eq!(s.slots[4].availability_percent, Some(100.0));
        // The same numbers as the period's function gives the slot's probes.
        assert_eq!(s.slots[7].latency, percentiles(&[3.0; 10]));
        assert_eq!(s.slots[6].latency, percentiles(&[0.02; 10]));
        assert_eq!(s.slots[7].latency.observations, 10);
    }

    #[test]
    fn a_slot_without_probes_has_no_figures_and_probes_outside_are_ignored() {
        let probes = [
            probe(5.0, true, 0.1),
            probe(6.0, true, 0.1),
            probe(500.0, true, 9.0),
        ];
        let s = series(&probes, 0.0, 480.0, &[]);
        assert_eq!(s.slots[0].latency.observations, 2);
        assert_eq!(s.slots[1].latency.p50_ms, None);
        assert_eq!(s.slots[1].availability_percent, None);
        let observed: u64 = s.slots.iter().map(|x| x.latency.observations).sum();
        assert_eq!(observed, 2);
    }

    #[test]
    fn sparkline_scales_to_the_largest_value() {
        assert_eq!(sparkline(&[Some(0.0), None, Some(5.0), Some(10.0)]), "▁·▅█");
        assert_eq!(sparkline(&[None, Some(0.0)]), "·▁");
    }
}

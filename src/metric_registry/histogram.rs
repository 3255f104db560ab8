//! A histogram with fixed bounds that takes single observations (a probe's round trip) and
//! whole bucket counts (a wrapper's report, already bucketed on its side), so probe and real
//! traffic series can share one family. It encodes exactly as prometheus-client's `Histogram`.

use std::sync::{Arc, Mutex, MutexGuard};

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// A histogram over `bounds` (upper bounds, inclusive, ascending; `+Inf` implied); clones share
/// the counts.
#[derive(Clone, Debug)]
pub struct BucketHistogram {
    bounds: &'static [f64],
    inner: Arc<Mutex<Counts>>,
}

#[derive(Debug)]
struct Counts {
    /// Non-cumulative counts per bucket, `bounds.len() + 1` of them (the last is `+Inf`).
    buckets: Vec<u64>,
    sum: f64,
}

impl BucketHistogram {
    /// An empty histogram over `bounds`.
    pub fn new(bounds: &'static [f64]) -> Self {
        BucketHistogram {
            bounds,
            inner: Arc::new(Mutex::new(Counts {
                buckets: vec![0; bounds.len() + 1],
                sum: 0.0,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Counts> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts one value.
    pub fn observe(&self, value: f64) {
        let index = bucket_index(self.bounds, value);
        let mut counts = self.lock();
        counts.buckets[index] = counts.buckets[index].saturating_add(1);
        counts.sum += value;
    }

    /// Adds counts bucketed elsewhere over the same bounds: `buckets` non-cumulative, one per
    /// bound plus `+Inf`, and the sum of the values they count. Returns false (and adds
    /// nothing) when the number of buckets differs.
    pub fn add(&self, buckets: &[u64], sum: f64) -> bool {
        if buckets.len() != self.bounds.len() + 1 {
            return false;
        }
        let mut counts = self.lock();
        for (mine, theirs) in counts.buckets.iter_mut().zip(buckets) {
            *mine = mine.saturating_add(*theirs);
        }
        if sum.is_finite() {
            counts.sum += sum;
        }
        true
    }

    /// Number of values counted.
    pub fn count(&self) -> u64 {
        self.lock().buckets.iter().sum()
    }

    /// Number of values counted and their sum, read together.
    pub fn count_and_sum(&self) -> (u64, f64) {
        let counts = self.lock();
        (counts.buckets.iter().sum(), counts.sum)
    }
}

/// The bucket of `value` over `bounds`: the first bound at or above it, else `+Inf`.
pub fn bucket_index(bounds: &[f64], value: f64) -> usize {
    bounds
        .iter()
        .position(|bound| value <= *bound)
        .unwrap_or(bounds.len())
}

impl TypedMetric for BucketHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for BucketHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let (buckets, sum, count) = {
            let counts = self.lock();
            let buckets: Vec<(f64, u64)> = self
                .bounds
                .iter()
                .copied()
                .chain(std::iter::once(f64::INFINITY))
                .zip(counts.buckets.iter().copied())
                .collect();
            (buckets, counts.sum, counts.buckets.iter().sum::<u64>())
        };
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::metrics::histogram::Histogram;
    use prometheus_client::registry::Registry;

    use super::*;

    const BOUNDS: [f64; 3] = [0.1, 1.0, 10.0];

    fn text(registry: &Registry) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, registry);
        out
    }

    #[test]
    fn encodes_like_prometheus_client_histogram() {
        let ours = BucketHistogram::new(&BOUNDS);
        let theirs = Histogram::new(BOUNDS);
        for value in [0.05, 0.1, 0.5, 3.0, 99.0] {
            ours.observe(value);
            theirs.observe(value);
        }
        let (mut a, mut b) = (Registry::default(), Registry::default());
        a.register("h", "A histogram", ours.clone());
        b.register("h", "A histogram", theirs);
        assert_eq!(text(&a), text(&b));
    }

    #[test]
    fn bucketed_counts_add_to_observations() {
        let h = BucketHistogram::new(&BOUNDS);
        h.observe(0.5);
        assert!(h.add(&[1, 0, 2, 1], 30.0));
        assert!(!h.add(&[1, 2], 1.0), "a different bucket count is refused");
        assert_eq!(h.count(), 5);
        let mut registry = Registry::default();
        registry.register("h", "A histogram", h);
        let out = text(&registry);
        for needle in [
            "h_bucket{le=\"0.1\"} 1",
            "h_bucket{le=\"1\"} 2",
            "h_bucket{le=\"10\"} 4",
            "h_bucket{le=\"+Inf\"} 5",
            "h_sum 30.5",
            "h_count 5",
        ] {
            assert!(out.contains(needle), "missing {needle} in\n{out}");
        }
    }
}

//! A histogram with fixed bounds that takes single observations (a probe's round trip) and
//! whole bucket counts (a wrapper's report, already bucketed on its side), so probe and real
//! traffic series can share one family. It encodes exactly as prometheus-client's `Histogram`.
//!
//! A series fed by single observations only also keeps the trace id of the last traced
//! observation of each bucket, encoded as its OpenMetrics exemplar (docs/tracing.md#exemplars;
//! the Prometheus text format has none and leaves them out).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::exemplar::HistogramWithExemplars;
use prometheus_client::metrics::{MetricType, TypedMetric};

use super::text_format::{Format, LineValues};

/// The label set of an exemplar: the trace the observation was made in.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TraceLabels {
    /// 32 hex digits.
    pub trace_id: String,
}

/// A histogram over `bounds` (upper bounds, inclusive, ascending; `+Inf` implied); clones share
/// the counts.
#[derive(Clone, Debug)]
pub struct BucketHistogram {
    bounds: &'static [f64],
    inner: Arc<Mutex<Counts>>,
    /// The same single observations with their exemplars; what is encoded until counts are
    /// added in bulk (prometheus-client builds exemplars only through its own histogram).
    traced: HistogramWithExemplars<TraceLabels>,
}

#[derive(Debug)]
struct Counts {
    /// Non-cumulative counts per bucket, `bounds.len() + 1` of them (the last is `+Inf`).
    buckets: Vec<u64>,
    sum: f64,
    /// Counts were added in bulk: `traced` no longer holds them all.
    bulk: bool,
    /// A traced observation went into `traced`: its OpenMetrics lines carry an exemplar.
    exemplars: bool,
}

impl BucketHistogram {
    /// An empty histogram over `bounds`.
    pub fn new(bounds: &'static [f64]) -> Self {
        BucketHistogram {
            bounds,
            inner: Arc::new(Mutex::new(Counts {
                buckets: vec![0; bounds.len() + 1],
                sum: 0.0,
                bulk: false,
                exemplars: false,
            })),
            traced: HistogramWithExemplars::new(bounds.iter().copied()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Counts> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts one value.
    pub fn observe(&self, value: f64) {
        self.observe_in_trace(value, None);
    }

    /// Counts one value observed in the trace `trace_id`, which becomes its bucket's exemplar.
    pub fn observe_in_trace(&self, value: f64, trace_id: Option<&str>) {
        let index = bucket_index(self.bounds, value);
        let mut counts = self.lock();
        counts.buckets[index] = counts.buckets[index].saturating_add(1);
        counts.sum += value;
        if !counts.bulk {
            let exemplar = trace_id.map(|id| TraceLabels {
                trace_id: id.to_string(),
            });
            counts.exemplars |= exemplar.is_some();
            let at = exemplar.as_ref().map(|_| SystemTime::now());
            self.traced.observe(value, exemplar, at);
        }
    }

    /// Adds counts bucketed elsewhere over the same bounds: `buckets` non-cumulative, one per
    /// bound plus `+Inf`, and the sum of the values they count. Returns false (and adds
    /// nothing) when the number of buckets differs.
    pub fn add(&self, buckets: &[u64], sum: f64) -> bool {
        if buckets.len() != self.bounds.len() + 1 {
            return false;
        }
        let mut counts = self.lock();
        counts.bulk = true;
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

impl BucketHistogram {
    /// The values of the lines it encodes to in `format`, in their order (the Prometheus text
    /// format: cumulative buckets, `_sum`, `_count`; OpenMetrics: `_sum`, `_count`, buckets), for
    /// the exposition cache (`series_value.rs`); false when its OpenMetrics lines carry
    /// exemplars.
    pub(super) fn line_values_in(&self, format: Format, out: &mut LineValues) -> bool {
        let counts = self.lock();
        if format == Format::OpenMetrics && counts.exemplars && !counts.bulk {
            return false;
        }
        let count: u64 = counts.buckets.iter().sum();
        let buckets = |out: &mut LineValues| {
            let mut cumulative = 0u64;
            for bucket in &counts.buckets {
                cumulative += bucket;
                out.push_u64(cumulative);
            }
        };
        match format {
            Format::Prometheus => {
                buckets(out);
                out.push_f64(counts.sum, format);
                out.push_u64(count);
            }
            Format::OpenMetrics => {
                out.push_f64(counts.sum, format);
                out.push_u64(count);
                buckets(out);
            }
        }
        true
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
            if !counts.bulk {
                // Observations are written to `traced` under this lock: it holds them all.
                return self.traced.encode(encoder);
            }
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
    fn traced_observations_are_exemplars_in_openmetrics_only() {
        let h = BucketHistogram::new(&BOUNDS);
        h.observe(0.05);
        h.observe_in_trace(0.5, Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        let mut registry = Registry::default();
        registry.register("h", "A histogram", h.clone());
        let mut openmetrics = String::new();
        prometheus_client::encoding::text::encode(&mut openmetrics, &registry).expect("encodes");
        assert!(
            openmetrics.lines().any(|l| l.starts_with(
                "h_bucket{le=\"1.0\"} 2 # {trace_id=\"4bf92f3577b34da6a3ce929d0e0e4736\"} 0.5 "
            )),
            "{openmetrics}"
        );
        let plain = text(&registry);
        assert!(
            !plain.contains('#') || !plain.contains("trace_id"),
            "{plain}"
        );
        assert!(plain.contains("h_bucket{le=\"1\"} 2"), "{plain}");
        // Counts added in bulk end the exemplars, never the counts.
        assert!(h.add(&[0, 0, 1, 0], 3.0));
        let mut after = String::new();
        prometheus_client::encoding::text::encode(&mut after, &registry).expect("encodes");
        assert!(!after.contains("trace_id"), "{after}");
        assert!(after.contains("h_count 3"), "{after}");
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

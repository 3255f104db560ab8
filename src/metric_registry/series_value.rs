//! What the exposition cache (`cached.rs`) reads of a metric to tell whether its encoded text
//! may have changed: the words of its current value, cheap to read (atomic loads, no
//! formatting) and compared exactly.

use std::sync::atomic::{AtomicI64, AtomicU64};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::exemplar::HistogramWithExemplars;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;

use super::histogram::BucketHistogram;

/// A metric whose value can be read as words: equal words mean the encoded text is the same.
pub trait SeriesValue {
    /// Appends the words of the current value to `out`; false when the value cannot be read
    /// cheaply, and the series is then encoded at every scrape.
    fn value_words(&self, out: &mut Vec<u64>) -> bool;
}

impl SeriesValue for Counter<u64, AtomicU64> {
    fn value_words(&self, out: &mut Vec<u64>) -> bool {
        out.push(self.get());
        true
    }
}

impl SeriesValue for Gauge<i64, AtomicI64> {
    fn value_words(&self, out: &mut Vec<u64>) -> bool {
        out.push(self.get() as u64);
        true
    }
}

impl SeriesValue for Gauge<f64, AtomicU64> {
    fn value_words(&self, out: &mut Vec<u64>) -> bool {
        out.push(self.get().to_bits());
        true
    }
}

impl SeriesValue for BucketHistogram {
    fn value_words(&self, out: &mut Vec<u64>) -> bool {
        // Every observation or bucketed count adds to the count, so count and sum tell every
        // change of the buckets.
        let (count, sum) = self.count_and_sum();
        out.extend([count, sum.to_bits()]);
        true
    }
}

/// prometheus-client's histograms keep their counts private: encoded at every scrape.
impl SeriesValue for Histogram {
    fn value_words(&self, _out: &mut Vec<u64>) -> bool {
        false
    }
}

/// prometheus-client's histograms keep their counts private: encoded at every scrape.
impl<S> SeriesValue for HistogramWithExemplars<S> {
    fn value_words(&self, _out: &mut Vec<u64>) -> bool {
        false
    }
}

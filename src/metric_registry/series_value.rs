//! What the exposition cache (`cached.rs`) reads of a metric: the words of its current value,
//! cheap to read (atomic loads, no formatting) and compared exactly, to tell whether its encoded
//! text may have changed; and, when it did, the text of each value its lines carry, formatted
//! exactly as prometheus-client's text encoders format them, so the cache can put new values
//! into the lines it kept instead of encoding the labels again.

use std::sync::atomic::{AtomicI64, AtomicU64};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::exemplar::HistogramWithExemplars;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;

use super::histogram::BucketHistogram;
use super::text_format::{Format, LineValues};

/// A metric whose value can be read as words: equal words mean the encoded text is the same.
pub trait SeriesValue {
    /// Appends the words of the current value to `out`; false when the value cannot be read
    /// cheaply, and the series is then encoded at every scrape.
    fn value_words(&self, out: &mut Vec<u64>) -> bool;

    /// Appends the value of each line the metric encodes to in `format`, in the order of the
    /// lines, as prometheus-client writes it; false (with `out` in any state) when the lines
    /// carry more than a value (an exemplar) or the metric cannot tell, and the cache then
    /// encodes the series through prometheus-client.
    fn line_values(&self, _format: Format, _out: &mut LineValues) -> bool {
        false
    }
}

impl SeriesValue for Counter<u64, AtomicU64> {
    fn value_words(&self, out: &mut Vec<u64>) -> bool {
        out.push(self.get());
        true
    }

    fn line_values(&self, _format: Format, out: &mut LineValues) -> bool {
        out.push_u64(self.get());
        true
    }
}

impl SeriesValue for Gauge<i64, AtomicI64> {
    fn value_words(&self, out: &mut Vec<u64>) -> bool {
        out.push(self.get() as u64);
        true
    }

    fn line_values(&self, _format: Format, out: &mut LineValues) -> bool {
        out.push_i64(self.get());
        true
    }
}

impl SeriesValue for Gauge<f64, AtomicU64> {
    fn value_words(&self, out: &mut Vec<u64>) -> bool {
        out.push(self.get().to_bits());
        true
    }

    fn line_values(&self, format: Format, out: &mut LineValues) -> bool {
        out.push_f64(self.get(), format);
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

    fn line_values(&self, format: Format, out: &mut LineValues) -> bool {
        self.line_values_in(format, out)
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

#[cfg(test)]
mod tests {
    use prometheus_client::registry::Registry;

    use super::*;

    /// The value prometheus-client writes for `gauge` in `format`.
    fn encoded_value(gauge: &Gauge<f64, AtomicU64>, format: Format) -> String {
        let mut registry = Registry::default();
        registry.register("g", "G", gauge.clone());
        let mut text = String::new();
        format.encode_registry(&mut text, &registry);
        let line = text
            .lines()
            .find(|l| l.starts_with("g "))
            .expect("a sample line");
        line["g ".len()..].to_string()
    }

    #[test]
    fn floats_are_written_as_prometheus_client_writes_them() {
        let mut values = vec![
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.5,
            1.5e-7,
            1e-5,
            123_456_789.123,
            1e15,
            1e16,
            1e17,
            1e21,
            1.7e308,
            f64::MIN_POSITIVE,
            f64::EPSILON,
            f64::MAX,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            1_764_470_000.123_456,
            0.1 + 0.2,
        ];
        // And a spread of bit patterns (a fixed generator: the same values every run).
        let mut bits: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..2000 {
            bits ^= bits << 13;
            bits ^= bits >> 7;
            bits ^= bits << 17;
            values.push(f64::from_bits(bits));
        }
        let gauge = Gauge::<f64, AtomicU64>::default();
        let mut ours = LineValues::default();
        for format in [Format::Prometheus, Format::OpenMetrics] {
            for value in &values {
                gauge.set(*value);
                ours.clear();
                assert!(gauge.line_values(format, &mut ours));
                assert_eq!(ours.len(), 1);
                assert_eq!(
                    ours.get(0),
                    encoded_value(&gauge, format),
                    "{value:e} in {format:?}"
                );
            }
        }
    }

    #[test]
    fn values_are_kept_apart() {
        let mut values = LineValues::default();
        values.push_u64(12);
        values.push_i64(-3);
        values.push_f64(0.25, Format::Prometheus);
        assert_eq!(values.len(), 3);
        assert_eq!(
            (values.get(0), values.get(1), values.get(2)),
            ("12", "-3", "0.25")
        );
        values.clear();
        assert!(values.is_empty());
    }
}

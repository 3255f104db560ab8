//! The text formats of the exposition and the value texts of encoded lines: what the
//! exposition cache (`cached.rs`), the metrics' values (`series_value.rs`) and the bucket
//! histogram (`histogram.rs`) share.

use std::fmt::Write;

use prometheus_client::registry::Registry;

/// The two text formats `/metrics` answers in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// The Prometheus text format 0.0.4.
    Prometheus,
    /// OpenMetrics 1.0 text (without the `# EOF` line, which ends the whole exposition).
    OpenMetrics,
}

impl Format {
    /// The format's slot in a server's texts ([`ServerTexts`](super::server_text::ServerTexts)).
    pub(super) fn index(self) -> usize {
        match self {
            Format::Prometheus => 0,
            Format::OpenMetrics => 1,
        }
    }

    /// Appends the text of `registry` in this format to `out`.
    pub fn encode_registry(self, out: &mut String, registry: &Registry) {
        // Writing into a String cannot fail.
        let _ = match self {
            Format::Prometheus => {
                prometheus_client::encoding::prometheus_text::encode(out, registry)
            }
            Format::OpenMetrics => {
                prometheus_client::encoding::text::encode_registry(out, registry)
            }
        };
    }
}

/// The value texts of encoded lines, one after another in one buffer.
#[derive(Debug, Default)]
pub struct LineValues {
    text: String,
    ends: Vec<usize>,
}

impl LineValues {
    /// Forgets every value, keeping the buffers.
    pub fn clear(&mut self) {
        self.text.clear();
        self.ends.clear();
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there is no value.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The text of value `index`.
    pub fn get(&self, index: usize) -> &str {
        let start = if index == 0 { 0 } else { self.ends[index - 1] };
        &self.text[start..self.ends[index]]
    }

    /// An integer, in decimal (as itoa writes it for prometheus-client).
    pub fn push_u64(&mut self, value: u64) {
        // Writing into a String cannot fail.
        let _ = write!(self.text, "{value}");
        self.ends.push(self.text.len());
    }

    /// A signed integer, in decimal.
    pub fn push_i64(&mut self, value: i64) {
        let _ = write!(self.text, "{value}");
        self.ends.push(self.text.len());
    }

    /// A float as the encoder of `format` writes a sample value: the shortest text that reads
    /// back to it (dtoa), `NaN`/`+Inf`/`-Inf` in the Prometheus text format and dtoa's own
    /// words for them in OpenMetrics.
    pub fn push_f64(&mut self, value: f64, format: Format) {
        let mut buffer = dtoa::Buffer::new();
        let text = match format {
            Format::OpenMetrics => buffer.format(value),
            Format::Prometheus if value.is_finite() => buffer.format_finite(value),
            Format::Prometheus if value.is_nan() => "NaN",
            Format::Prometheus if value.is_sign_positive() => "+Inf",
            Format::Prometheus => "-Inf",
        };
        self.text.push_str(text);
        self.ends.push(self.text.len());
    }
}

//! The exposition of a family with a `server` label, cached per server: each scrape re-encodes
//! only the servers whose series changed since the previous scrape (a value, or a series added
//! or removed) and copies the text of the others. A scrape of a fleet encodes every series of
//! every server otherwise, although most servers were not probed since the last scrape and
//! most of a probed server's gauges (up, success, health, info) keep their value.
//!
//! A server's text is first encoded by prometheus-client itself (through a one-family scratch
//! registry holding that server's series), so the output is byte for byte what encoding the
//! whole family at once gives. The cache keeps where each line's value sits in that text: when
//! only values changed since (the same series), it writes the new values, formatted as
//! prometheus-client formats them (`series_value.rs`), between the kept label text instead of
//! encoding the labels again. A series whose lines carry more than a value (an OpenMetrics
//! exemplar) is always encoded through prometheus-client. Values are read *before* they are
//! written: a value that changes in between is in the text but not in the words kept, so the
//! next scrape writes it again.
//!
//! The texts live beside the series they were encoded from (`ServerSeries::texts` in
//! `server_family.rs`), so they go with a server that leaves and are dropped whenever a series
//! is added or removed.

use std::fmt::Debug;
use std::sync::{Arc, Mutex, MutexGuard};

use prometheus_client::encoding::{EncodeMetric, MetricEncoder};
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

use super::labels::ServerLabelSet;
use super::series_value::SeriesValue;
use super::server_family::{ServerFamily, ServerSeries};
use super::server_text::ServerText;
use super::text_format::{Format, LineValues};

/// A family the registry encodes through its cache.
pub trait CachedFamily: Send + Sync {
    /// Appends the family (its `# HELP` and `# TYPE` lines, then the series of every server) in
    /// `format` to `out`; nothing when it has no series.
    fn encode(&self, out: &mut String, format: Format);
}

/// A [`ServerFamily`] with the encoded text of each of its servers.
pub struct FamilyText<S, M, C> {
    family: ServerFamily<S, M, C>,
    cache: Mutex<Cache<S, M>>,
}

/// What encoding a family needs besides the servers' texts (one scrape at a time).
struct Cache<S, M> {
    /// A registry holding only `view`, under the family's name and help.
    scratch: Registry,
    /// The series of the server being encoded.
    view: ServerView<S, M>,
    /// Per format: the `# HELP`/`# TYPE` lines, once known.
    headers: [Option<String>; 2],
    /// The words of the server being looked at.
    words: Vec<u64>,
    /// The new values of the server being rewritten.
    values: LineValues,
    /// The scratch registry's output.
    scratch_text: String,
    /// Server texts encoded through prometheus-client so far, for the tests.
    #[cfg(test)]
    encoded: usize,
    /// Server texts rewritten with new values so far, for the tests.
    #[cfg(test)]
    rewritten: usize,
}

impl<S, M, C> FamilyText<S, M, C>
where
    S: ServerLabelSet,
    M: EncodeMetric + TypedMetric + SeriesValue + Debug + Clone + Send + Sync + 'static,
{
    /// The cached encoding of `family`, registered as `name` with `help`.
    pub fn new(name: &str, help: impl Into<String>, family: ServerFamily<S, M, C>) -> Self {
        let view = ServerView(Arc::new(Mutex::new(Vec::new())));
        let mut scratch = Registry::default();
        scratch.register(name, help, view.clone());
        FamilyText {
            family,
            cache: Mutex::new(Cache {
                scratch,
                view,
                headers: [None, None],
                words: Vec::new(),
                values: LineValues::default(),
                scratch_text: String::new(),
                #[cfg(test)]
                encoded: 0,
                #[cfg(test)]
                rewritten: 0,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Cache<S, M>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<S, M, C> CachedFamily for FamilyText<S, M, C>
where
    S: ServerLabelSet,
    M: EncodeMetric + TypedMetric + SeriesValue + Debug + Clone + Send + Sync + 'static,
    C: Send + Sync,
{
    fn encode(&self, out: &mut String, format: Format) {
        let servers = self.family.read();
        let mut guard = self.lock();
        let cache = &mut *guard;
        let f = format.index();
        let mut header_written = false;
        for series in servers.values() {
            let mut texts = series.lock_texts();
            cache.words.clear();
            let readable = series
                .series
                .values()
                .all(|metric| metric.value_words(&mut cache.words));
            let current = match &mut texts[f] {
                Some(kept) if kept.reusable && kept.words == cache.words => true,
                Some(kept) if readable => cache.rewrite_values(kept, series, format),
                _ => false,
            };
            if !current {
                texts[f] = Some(cache.encode_server(series, format, readable));
            }
            // The header is known once one server was encoded in this format, which the first
            // server of the first scrape always is.
            if !header_written && let Some(header) = &cache.headers[f] {
                out.push_str(header);
                header_written = true;
            }
            if let Some(kept) = &texts[f] {
                out.push_str(&kept.text);
            }
        }
    }
}

impl<S, M> Cache<S, M>
where
    S: ServerLabelSet,
    M: EncodeMetric + TypedMetric + SeriesValue + Debug + Clone + Send + Sync + 'static,
{
    /// The text of one server's series through prometheus-client, with the words read before
    /// (`self.words`); remembers the header lines the first time.
    fn encode_server(
        &mut self,
        series: &ServerSeries<S, M>,
        format: Format,
        readable: bool,
    ) -> ServerText {
        #[cfg(test)]
        {
            self.encoded += 1;
        }
        self.view.fill(series);
        self.scratch_text.clear();
        format.encode_registry(&mut self.scratch_text, &self.scratch);
        self.view.fill_empty();
        let body = header_length(&self.scratch_text);
        let header = &mut self.headers[format.index()];
        if header.is_none() {
            *header = Some(self.scratch_text[..body].to_string());
        }
        let text = self.scratch_text[body..].to_string();
        ServerText {
            words: self.words.clone(),
            reusable: readable,
            values: value_positions(&text),
            text,
        }
    }

    /// Writes the current values of `series` into `kept`'s lines (the series are the ones it was
    /// encoded from: a change of series drops it); false, with `kept` unchanged, when its lines
    /// or the metric cannot be rewritten.
    fn rewrite_values(
        &mut self,
        kept: &mut ServerText,
        series: &ServerSeries<S, M>,
        format: Format,
    ) -> bool {
        let Some(positions) = &mut kept.values else {
            return false;
        };
        self.values.clear();
        let formatted = series
            .series
            .values()
            .all(|metric| metric.line_values(format, &mut self.values));
        if !formatted || self.values.len() != positions.len() {
            return false;
        }
        #[cfg(test)]
        {
            self.rewritten += 1;
        }
        let old = std::mem::take(&mut kept.text);
        let mut text = String::with_capacity(old.len() + 16);
        let mut copied = 0;
        for (index, position) in positions.iter_mut().enumerate() {
            let (start, end) = (position.0 as usize, position.1 as usize);
            text.push_str(&old[copied..start]);
            let value_start = text.len();
            text.push_str(self.values.get(index));
            *position = (value_start as u32, text.len() as u32);
            copied = end;
        }
        text.push_str(&old[copied..]);
        kept.text = text;
        kept.words.clone_from(&self.words);
        true
    }
}

/// Length of the comment lines (`# HELP`, `# TYPE`, `# UNIT`) that open `text`.
fn header_length(text: &str) -> usize {
    let mut at = 0;
    while text[at..].starts_with('#') {
        match text[at..].find('\n') {
            Some(end) => at += end + 1,
            None => return text.len(),
        }
    }
    at
}

/// Where the value of each sample line of `text` is (byte offsets, start and end), when every
/// line is a name, an optional label set, one space, a value and the newline; `None` when a
/// line carries anything else (an OpenMetrics exemplar) or the text is longer than offsets
/// hold.
fn value_positions(text: &str) -> Option<Vec<(u32, u32)>> {
    u32::try_from(text.len()).ok()?;
    let bytes = text.as_bytes();
    let mut positions = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        // The name ends at the label set or at the space before the value.
        while at < bytes.len() && bytes[at] != b'{' && bytes[at] != b' ' {
            at += 1;
        }
        if bytes.get(at) == Some(&b'{') {
            at = label_set_end(bytes, at)?;
        }
        if bytes.get(at) != Some(&b' ') {
            return None;
        }
        let start = at + 1;
        let mut end = start;
        while end < bytes.len() && bytes[end] != b' ' && bytes[end] != b'\n' {
            end += 1;
        }
        if end == start || bytes.get(end) != Some(&b'\n') {
            return None;
        }
        positions.push((start as u32, end as u32));
        at = end + 1;
    }
    Some(positions)
}

/// The offset after the `}` closing the label set that opens at `open` (label values are quoted,
/// with `\\`, `\"` and `\n` escaped).
fn label_set_end(bytes: &[u8], open: usize) -> Option<usize> {
    let mut at = open + 1;
    let mut quoted = false;
    while let Some(&byte) = bytes.get(at) {
        match (quoted, byte) {
            (true, b'\\') => at += 1,
            (_, b'"') => quoted = !quoted,
            (false, b'}') => return Some(at + 1),
            (false, b'\n') => return None,
            _ => {}
        }
        at += 1;
    }
    None
}

/// The series of one server, as the scratch registry encodes them (handles sharing the values).
#[derive(Debug)]
struct ServerView<S, M>(Arc<Mutex<Vec<(S, M)>>>);

impl<S, M> Clone for ServerView<S, M> {
    fn clone(&self) -> Self {
        ServerView(Arc::clone(&self.0))
    }
}

impl<S: Clone, M: Clone> ServerView<S, M> {
    fn lock(&self) -> MutexGuard<'_, Vec<(S, M)>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Holds the series of `server`, in the order the family encodes them.
    fn fill(&self, server: &ServerSeries<S, M>) {
        let mut view = self.lock();
        view.clear();
        view.extend(
            server
                .series
                .iter()
                .map(|(labels, metric)| (labels.clone(), metric.clone())),
        );
    }

    /// Lets go of the handles once encoded.
    fn fill_empty(&self) {
        self.lock().clear();
    }
}

impl<S, M: TypedMetric> TypedMetric for ServerView<S, M> {
    const TYPE: MetricType = M::TYPE;
}

impl<S, M> EncodeMetric for ServerView<S, M>
where
    S: ServerLabelSet,
    M: EncodeMetric + TypedMetric + Clone,
{
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        for (labels, metric) in self.lock().iter() {
            metric.encode(encoder.encode_family(labels)?)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        M::TYPE
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use prometheus_client::encoding::EncodeLabelSet;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::gauge::Gauge;

    use super::*;
    use crate::metric_registry::histogram::BucketHistogram;
    use crate::metric_registry::labels::impl_server_label_set;
    use crate::metric_registry::per_server::ServerScoped;

    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    struct ColourLabels {
        server: String,
        colour: &'static str,
    }

    impl_server_label_set!(ColourLabels);

    fn colour(server: &str, colour: &'static str) -> ColourLabels {
        ColourLabels {
            server: server.into(),
            colour,
        }
    }

    const BOUNDS: [f64; 2] = [0.1, 1.0];

    fn histogram() -> BucketHistogram {
        BucketHistogram::new(&BOUNDS)
    }

    type Histograms = ServerFamily<ColourLabels, BucketHistogram, fn() -> BucketHistogram>;

    /// A counter family and a histogram family, cached, and the registry that encodes both
    /// without cache.
    struct Fixture {
        counters: ServerFamily<ColourLabels, Counter>,
        histograms: Histograms,
        cached: FamilyText<ColourLabels, Counter, fn() -> Counter>,
        cached_histograms: FamilyText<ColourLabels, BucketHistogram, fn() -> BucketHistogram>,
        uncached: Registry,
    }

    impl Fixture {
        fn new() -> Self {
            let counters = ServerFamily::new(Counter::default as fn() -> Counter);
            let histograms: Histograms = ServerFamily::new(histogram as fn() -> BucketHistogram);
            let mut uncached = Registry::default();
            uncached.register("test_colours", "Colours seen", counters.clone());
            uncached.register("test_latency_seconds", "Latency", histograms.clone());
            Fixture {
                cached: FamilyText::new("test_colours", "Colours seen", counters.clone()),
                cached_histograms: FamilyText::new(
                    "test_latency_seconds",
                    "Latency",
                    histograms.clone(),
                ),
                counters,
                histograms,
                uncached,
            }
        }

        fn encode(&self, format: Format) -> String {
            let mut out = String::new();
            self.cached.encode(&mut out, format);
            self.cached_histograms.encode(&mut out, format);
            out
        }

        fn encode_uncached(&self, format: Format) -> String {
            let mut out = String::new();
            format.encode_registry(&mut out, &self.uncached);
            out
        }

        /// Server texts encoded through prometheus-client so far.
        fn encoded(&self) -> usize {
            self.cached.lock().encoded + self.cached_histograms.lock().encoded
        }

        /// Server texts rewritten with new values so far.
        fn rewritten(&self) -> usize {
            self.cached.lock().rewritten + self.cached_histograms.lock().rewritten
        }

        fn assert_same_as_uncached(&self) {
            for format in [Format::Prometheus, Format::OpenMetrics] {
                assert_eq!(
                    self.encode(format),
                    self.encode_uncached(format),
                    "{format:?}"
                );
            }
        }
    }

    #[test]
    fn only_changed_servers_are_written_again_and_only_their_values() {
        let f = Fixture::new();
        for server in ["a", "b", "c"] {
            f.counters.get_or_create(&colour(server, "red")).inc();
            f.histograms
                .get_or_create(&colour(server, "red"))
                .observe(0.5);
        }
        let first = f.encode(Format::Prometheus);
        assert_eq!(f.encoded(), 6, "every server of both families, once");
        assert_eq!(f.encode(Format::Prometheus), first);
        assert_eq!(
            (f.encoded(), f.rewritten()),
            (6, 0),
            "nothing changed, nothing written"
        );
        // A value of b changes: the value of b's counter line only.
        f.counters.get_or_create(&colour("b", "red")).inc();
        let second = f.encode(Format::Prometheus);
        assert_eq!((f.encoded(), f.rewritten()), (6, 1));
        assert!(second.contains("test_colours_total{server=\"b\",colour=\"red\"} 2"));
        // An observation of c: the values of c's histogram lines only.
        f.histograms
            .get_or_create(&colour("c", "red"))
            .observe(0.05);
        assert!(
            f.encode(Format::Prometheus)
                .contains("test_latency_seconds_bucket{server=\"c\",colour=\"red\",le=\"0.1\"} 1")
        );
        assert_eq!((f.encoded(), f.rewritten()), (6, 2));
        // A new series of a at value 0: its label sets changed, so it is encoded again.
        f.counters.get_or_create(&colour("a", "blue"));
        assert!(f.encode(Format::Prometheus).contains("colour=\"blue\"} 0"));
        assert_eq!((f.encoded(), f.rewritten()), (7, 2));
        // The other format has its own texts.
        f.encode(Format::OpenMetrics);
        assert_eq!(f.encoded(), 13);
        f.assert_same_as_uncached();
    }

    #[test]
    fn rewritten_values_equal_an_uncached_encode_whatever_the_labels_hold() {
        type Gauges = ServerFamily<ColourLabels, Gauge<f64, AtomicU64>>;
        let gauges: Gauges = ServerFamily::new(Gauge::default as fn() -> Gauge<f64, AtomicU64>);
        let cached = FamilyText::new("test_gauge", "A gauge", gauges.clone());
        let mut uncached = Registry::default();
        uncached.register("test_gauge", "A gauge", gauges.clone());
        // Label values with what the line scan must step over: quotes, braces, spaces, a
        // backslash and a newline (escaped by the encoder).
        let servers = [
            "plain",
            "we\"ird} 1 {x=\"",
            "back\\slash\nnewline # {a=\"b\"} 1",
        ];
        let values = [
            0.0,
            1.0,
            -2.5,
            1e-9,
            1.5e21,
            f64::NAN,
            f64::INFINITY,
            1_764_470_000.25,
        ];
        for (round, value) in values.iter().enumerate() {
            for (i, server) in servers.iter().enumerate() {
                for shade in ["red", "green"] {
                    gauges
                        .get_or_create(&colour(server, shade))
                        .set(value * (i + 1) as f64);
                }
            }
            for format in [Format::Prometheus, Format::OpenMetrics] {
                let mut ours = String::new();
                cached.encode(&mut ours, format);
                let mut theirs = String::new();
                format.encode_registry(&mut theirs, &uncached);
                assert_eq!(ours, theirs, "round {round}, {format:?}");
            }
        }
        let cache = cached.lock();
        assert_eq!(cache.encoded, 6, "each server once per format");
        assert!(cache.rewritten > 0);
    }

    #[test]
    fn lines_with_exemplars_are_encoded_through_prometheus_client() {
        let f = Fixture::new();
        let h = f.histograms.get_or_create(&colour("traced", "red"));
        h.observe_in_trace(0.5, Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        let first = f.encode(Format::OpenMetrics);
        assert!(first.contains("trace_id"), "{first}");
        h.observe_in_trace(0.05, Some("0af7651916cd43dd8448eb211c80319c"));
        let second = f.encode(Format::OpenMetrics);
        assert!(
            second.contains("0af7651916cd43dd8448eb211c80319c"),
            "{second}"
        );
        assert_eq!((f.encoded(), f.rewritten()), (2, 0));
        // The Prometheus text format has no exemplars: its lines are rewritten.
        f.encode(Format::Prometheus);
        h.observe(0.7);
        f.encode(Format::Prometheus);
        assert_eq!((f.encoded(), f.rewritten()), (3, 1));
        f.assert_same_as_uncached();
    }

    #[test]
    fn value_positions_are_found_after_the_label_set() {
        let text = "a{s=\"x} 1\\\" y\"} 12\nb 3.5\nc_bucket{le=\"+Inf\"} 7\n";
        let positions = value_positions(text).expect("plain lines");
        let values: Vec<&str> = positions
            .iter()
            .map(|(start, end)| &text[*start as usize..*end as usize])
            .collect();
        assert_eq!(values, ["12", "3.5", "7"]);
        assert_eq!(value_positions(""), Some(vec![]));
        // An exemplar, a line without a value, a label set never closed.
        for odd in [
            "h_bucket{le=\"1\"} 2 # {trace_id=\"ab\"} 0.5 1.0\n",
            "a{s=\"x\"}\n",
            "a{s=\"x} 1\n",
            "a 1",
        ] {
            assert_eq!(value_positions(odd), None, "{odd}");
        }
    }

    #[test]
    fn a_removed_server_is_gone_from_the_text() {
        let f = Fixture::new();
        for server in ["gone", "kept"] {
            f.counters.get_or_create(&colour(server, "red")).inc();
            f.histograms
                .get_or_create(&colour(server, "red"))
                .observe(0.5);
        }
        assert!(f.encode(Format::Prometheus).contains("server=\"gone\""));
        f.counters.remove_server("gone");
        f.histograms.remove_server("gone");
        let text = f.encode(Format::Prometheus);
        assert!(!text.contains("server=\"gone\""), "{text}");
        assert!(text.contains("server=\"kept\""), "{text}");
        // One series removed: the server's text changes with it.
        f.counters.get_or_create(&colour("kept", "blue")).inc();
        f.encode(Format::Prometheus);
        f.counters.remove(&colour("kept", "blue"));
        assert!(!f.encode(Format::Prometheus).contains("blue"));
        // Every series removed: the family is left out, header and all.
        f.counters.remove_server("kept");
        f.histograms.remove_server("kept");
        assert_eq!(f.encode(Format::Prometheus), "");
        f.assert_same_as_uncached();
    }

    #[test]
    fn the_cached_text_equals_an_uncached_encode_through_changes() {
        let f = Fixture::new();
        for round in 0..5u32 {
            for i in 0..20 {
                let server = format!("s{i}");
                if (i + round) % 3 == 0 {
                    f.counters.get_or_create(&colour(&server, "red")).inc();
                    f.histograms
                        .get_or_create(&colour(&server, "red"))
                        .observe(f64::from(i) / 10.0);
                }
                if i % 7 == round {
                    f.counters.remove_server(&server);
                }
            }
            f.assert_same_as_uncached();
        }
    }

    #[test]
    fn the_header_ends_before_the_first_sample() {
        assert_eq!(header_length("# HELP a A.\n# TYPE a gauge\na 1\n"), 27);
        assert_eq!(header_length("a 1\n"), 0);
        assert_eq!(header_length("# HELP a A.\n"), 12);
    }
}

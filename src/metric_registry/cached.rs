//! The exposition of a family with a `server` label, cached per server: each scrape re-encodes
//! only the servers whose series changed since the previous scrape (a value, or a series added
//! or removed) and copies the text of the others. A scrape of a fleet encodes every series of
//! every server otherwise, although most servers were not probed since the last scrape and
//! most of a probed server's gauges (up, success, health, info) keep their value.
//!
//! A server's text is encoded by prometheus-client itself (through a one-family scratch
//! registry holding that server's series), so the output is byte for byte what encoding the
//! whole family at once gives. Its values are read *before* it is encoded: a value that changes
//! in between is in the text but not in the words kept, so the next scrape re-encodes it.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex, MutexGuard};

use prometheus_client::encoding::{EncodeMetric, MetricEncoder};
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

use super::labels::ServerLabelSet;
use super::series_value::SeriesValue;
use super::server_family::{ServerFamily, ServerSeries};

/// The two text formats `/metrics` answers in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// The Prometheus text format 0.0.4.
    Prometheus,
    /// OpenMetrics 1.0 text (without the `# EOF` line, which ends the whole exposition).
    OpenMetrics,
}

impl Format {
    fn index(self) -> usize {
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

struct Cache<S, M> {
    /// A registry holding only `view`, under the family's name and help.
    scratch: Registry,
    /// The series of the server being encoded.
    view: ServerView<S, M>,
    /// Per format: the `# HELP`/`# TYPE` lines, once known.
    headers: [Option<String>; 2],
    /// Per format: the text of each server, with the state it was encoded from.
    servers: [HashMap<String, ServerText>; 2],
    /// The words of the server being looked at.
    words: Vec<u64>,
    /// The scratch registry's output.
    scratch_text: String,
    /// Server texts encoded so far, for the tests.
    #[cfg(test)]
    encoded: usize,
}

/// One server's encoded series and what they were encoded from.
struct ServerText {
    shape: u64,
    words: Vec<u64>,
    /// False when a value could not be read: encoded at every scrape.
    reusable: bool,
    text: String,
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
                servers: [HashMap::new(), HashMap::new()],
                words: Vec::new(),
                scratch_text: String::new(),
                #[cfg(test)]
                encoded: 0,
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
        for (server, series) in servers.iter() {
            cache.words.clear();
            let readable = series
                .series
                .values()
                .all(|metric| metric.value_words(&mut cache.words));
            let unchanged = cache.servers[f].get(server).is_some_and(|kept| {
                kept.reusable && kept.shape == series.shape && kept.words == cache.words
            });
            if !unchanged {
                let text = cache.encode_server(series, format);
                cache.servers[f].insert(
                    server.clone(),
                    ServerText {
                        shape: series.shape,
                        words: cache.words.clone(),
                        reusable: readable,
                        text,
                    },
                );
            }
            // The header is known once one server was encoded in this format, which the first
            // server of the first scrape always is.
            if !header_written && let Some(header) = &cache.headers[f] {
                out.push_str(header);
                header_written = true;
            }
            if let Some(kept) = cache.servers[f].get(server) {
                out.push_str(&kept.text);
            }
        }
        // Texts of servers that left (every present server has one in this format, so there are
        // such texts exactly when there are more texts than servers). The other format's go at
        // its next scrape; a server that comes back has a new shape stamp, so an old text is
        // never used for it.
        if cache.servers[f].len() > servers.len() {
            cache.servers[f].retain(|server, _| servers.contains_key(server));
        }
    }
}

impl<S, M> Cache<S, M>
where
    S: ServerLabelSet,
    M: EncodeMetric + TypedMetric + Debug + Clone + Send + Sync + 'static,
{
    /// The text of one server's series; remembers the header lines the first time.
    fn encode_server(&mut self, series: &ServerSeries<S, M>, format: Format) -> String {
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
        self.scratch_text[body..].to_string()
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
    use prometheus_client::encoding::EncodeLabelSet;
    use prometheus_client::metrics::counter::Counter;

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

        fn encoded(&self) -> usize {
            self.cached.lock().encoded + self.cached_histograms.lock().encoded
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
    fn only_changed_servers_are_encoded_again() {
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
        assert_eq!(f.encoded(), 6, "nothing changed, nothing encoded");
        // A value of b changes: b's counter text only.
        f.counters.get_or_create(&colour("b", "red")).inc();
        let second = f.encode(Format::Prometheus);
        assert_eq!(f.encoded(), 7);
        assert!(second.contains("test_colours_total{server=\"b\",colour=\"red\"} 2"));
        // An observation of c: c's histogram text only.
        f.histograms
            .get_or_create(&colour("c", "red"))
            .observe(0.05);
        assert!(
            f.encode(Format::Prometheus)
                .contains("test_latency_seconds_bucket{server=\"c\",colour=\"red\",le=\"0.1\"} 1")
        );
        assert_eq!(f.encoded(), 8);
        // A new series of a at value 0: its label sets changed, so its text does.
        f.counters.get_or_create(&colour("a", "blue"));
        assert!(f.encode(Format::Prometheus).contains("colour=\"blue\"} 0"));
        assert_eq!(f.encoded(), 9);
        // The other format has its own texts.
        f.encode(Format::OpenMetrics);
        assert_eq!(f.encoded(), 15);
        f.assert_same_as_uncached();
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
        // Its cached text went too.
        assert_eq!(f.cached.lock().servers[0].len(), 1);
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

//! A metric family whose label sets all carry a `server` label, so that the per-server tracker
//! can remove one server's series without a list of its label sets, and the exposition cache
//! (`cached.rs`) can keep one server's encoded text beside its series. Its series are kept per
//! server (one map per server, one series per label set) and encode exactly as
//! prometheus-client's `Family` encodes them (labels in field order), the series of a server one
//! after another.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use prometheus_client::encoding::{EncodeMetric, MetricEncoder};
use prometheus_client::metrics::{MetricType, TypedMetric};

use super::labels::ServerLabelSet;
use super::per_server::ServerScoped;
use super::server_text::ServerTexts;

/// A family of metrics `M` labelled by `S`, whose new metrics `C` builds (histograms with
/// their buckets); cheap to clone, clones share the series.
pub struct ServerFamily<S, M, C = fn() -> M> {
    inner: Arc<Inner<S, M, C>>,
}

struct Inner<S, M, C> {
    series: RwLock<HashMap<String, ServerSeries<S, M>>>,
    constructor: C,
}

/// The series of one server in one family.
pub(super) struct ServerSeries<S, M> {
    /// The series, by label set.
    pub(super) series: HashMap<S, M>,
    /// The exposition cache's texts of these series: dropped whenever a series is added or
    /// removed, so a kept text always has a line for each series, in the map's order.
    texts: Mutex<ServerTexts>,
}

impl<S, M> ServerSeries<S, M> {
    fn new() -> Self {
        ServerSeries {
            series: HashMap::new(),
            texts: Mutex::new([None, None]),
        }
    }

    /// The cached texts of these series.
    pub(super) fn lock_texts(&self) -> MutexGuard<'_, ServerTexts> {
        self.texts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drops the cached texts (the set of series changed).
    fn series_changed(&mut self) {
        *self.texts.get_mut().unwrap_or_else(|p| p.into_inner()) = [None, None];
    }
}

impl<S, M, C> ServerFamily<S, M, C>
where
    S: ServerLabelSet,
    M: Clone,
    C: Fn() -> M,
{
    /// An empty family whose metrics `constructor` builds.
    pub fn new(constructor: C) -> Self {
        ServerFamily {
            inner: Arc::new(Inner {
                series: RwLock::new(HashMap::new()),
                constructor,
            }),
        }
    }

    /// The metric of `labels` (a handle sharing its value), created if new.
    pub fn get_or_create(&self, labels: &S) -> M {
        if let Some(metric) = self
            .read()
            .get(labels.server())
            .and_then(|server| server.series.get(labels))
        {
            return metric.clone();
        }
        let mut servers = self.write();
        let server = servers
            .entry(labels.server().to_string())
            .or_insert_with(ServerSeries::new);
        if let Some(metric) = server.series.get(labels) {
            return metric.clone();
        }
        let metric = (self.inner.constructor)();
        server.series.insert(labels.clone(), metric.clone());
        server.series_changed();
        metric
    }

    /// Whether the series of `labels` exists.
    pub fn contains(&self, labels: &S) -> bool {
        self.read()
            .get(labels.server())
            .is_some_and(|server| server.series.contains_key(labels))
    }

    /// Removes the series of `labels`.
    pub fn remove(&self, labels: &S) {
        self.retain_server(labels.server(), |other| other != labels);
    }

    /// Removes the series of `server` whose label set `keep` refuses; looks at every series of
    /// the server, so it is meant for changes (a dependency dropped), not for every probe.
    ///
    /// Most calls remove nothing (a health reason that did not hold, a credential the server
    /// never had): they look under the read lock first and take the write lock, which a scrape
    /// encoding the family waits behind, only when a series goes.
    pub fn retain_server(&self, server: &str, mut keep: impl FnMut(&S) -> bool) {
        let removes = self
            .read()
            .get(server)
            .is_some_and(|series| series.series.keys().any(|labels| !keep(labels)));
        if !removes {
            return;
        }
        let mut servers = self.write();
        let Some(series) = servers.get_mut(server) else {
            return;
        };
        let before = series.series.len();
        series.series.retain(|labels, _| keep(labels));
        if series.series.is_empty() {
            servers.remove(server);
        } else if series.series.len() != before {
            series.series_changed();
        }
    }
}

impl<S, M, C> ServerFamily<S, M, C> {
    /// The series, by server; a server with no series has no entry.
    pub(super) fn read(&self) -> RwLockReadGuard<'_, HashMap<String, ServerSeries<S, M>>> {
        self.inner.series.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<String, ServerSeries<S, M>>> {
        self.inner.series.write().unwrap_or_else(|p| p.into_inner())
    }
}

impl<S, M, C> Clone for ServerFamily<S, M, C> {
    fn clone(&self) -> Self {
        ServerFamily {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<S: Debug, M: Debug, C> Debug for ServerFamily<S, M, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let servers = self.read();
        let series: Vec<(&S, &M)> = servers.values().flat_map(|s| s.series.iter()).collect();
        f.debug_tuple("ServerFamily").field(&series).finish()
    }
}

impl<S, M, C> ServerScoped for ServerFamily<S, M, C>
where
    S: ServerLabelSet,
    M: Send + Sync,
    C: Send + Sync,
{
    fn remove_server(&self, server: &str) {
        self.write().remove(server);
    }
}

impl<S, M: TypedMetric, C> TypedMetric for ServerFamily<S, M, C> {
    const TYPE: MetricType = M::TYPE;
}

impl<S, M, C> EncodeMetric for ServerFamily<S, M, C>
where
    S: ServerLabelSet,
    M: EncodeMetric + TypedMetric,
{
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        for server in self.read().values() {
            for (labels, metric) in &server.series {
                metric.encode(encoder.encode_family(labels)?)?;
            }
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        M::TYPE
    }

    fn is_empty(&self) -> bool {
        self.read().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::encoding::EncodeLabelSet;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::registry::Registry;

    use super::*;
    use crate::metric_registry::labels::impl_server_label_set;

    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    struct ColourLabels {
        server: String,
        colour: &'static str,
    }

    impl_server_label_set!(ColourLabels);

    fn sorted_lines(registry: &Registry, open_metrics: bool) -> Vec<String> {
        let mut out = String::new();
        if open_metrics {
            let _ = prometheus_client::encoding::text::encode(&mut out, registry);
        } else {
            let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, registry);
        }
        let mut lines: Vec<String> = out.lines().map(String::from).collect();
        lines.sort();
        lines
    }

    #[test]
    fn encodes_like_prometheus_client_family() {
        let ours: ServerFamily<ColourLabels, Counter> = ServerFamily::new(Counter::default);
        let theirs: Family<ColourLabels, Counter> = Family::default();
        let (mut with_ours, mut with_theirs) = (Registry::default(), Registry::default());
        with_ours.register("test_colours", "Colours seen", ours.clone());
        with_theirs.register("test_colours", "Colours seen", theirs.clone());
        for (server, colour, n) in [("a", "red", 2), ("a", "blue", 1), ("b", "red", 5)] {
            let labels = ColourLabels {
                server: server.into(),
                colour,
            };
            ours.get_or_create(&labels).inc_by(n);
            theirs.get_or_create(&labels).inc_by(n);
        }
        for open_metrics in [false, true] {
            assert_eq!(
                sorted_lines(&with_ours, open_metrics),
                sorted_lines(&with_theirs, open_metrics)
            );
        }
    }

    #[test]
    fn an_emptied_family_is_left_out_like_an_empty_family() {
        let ours: ServerFamily<ColourLabels, Counter> = ServerFamily::new(Counter::default);
        let mut registry = Registry::default();
        registry.register("test_colours", "Colours seen", ours.clone());
        let labels = ColourLabels {
            server: "a".into(),
            colour: "red",
        };
        ours.get_or_create(&labels).inc();
        ours.remove(&labels);
        assert!(sorted_lines(&registry, false).is_empty());
    }
}

//! A metric family whose label sets all carry a `server` label, so that the per-server tracker
//! can remove one server's series without a list of its label sets. It stores and encodes its
//! series exactly as prometheus-client's `Family` does (one flat map, one series per label set,
//! labels in field order), so the exposition and the time to encode it are the same.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use prometheus_client::encoding::{EncodeMetric, MetricEncoder};
use prometheus_client::metrics::{MetricType, TypedMetric};

use super::labels::ServerLabelSet;
use super::per_server::ServerScoped;

/// A family of metrics `M` labelled by `S`, whose new metrics `C` builds (histograms with
/// their buckets); cheap to clone, clones share the series.
pub struct ServerFamily<S, M, C = fn() -> M> {
    inner: Arc<Inner<S, M, C>>,
}

struct Inner<S, M, C> {
    series: RwLock<HashMap<S, M>>,
    constructor: C,
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
        if let Some(metric) = self.read().get(labels) {
            return metric.clone();
        }
        self.write()
            .entry(labels.clone())
            .or_insert_with(|| (self.inner.constructor)())
            .clone()
    }

    /// Whether the series of `labels` exists.
    pub fn contains(&self, labels: &S) -> bool {
        self.read().contains_key(labels)
    }

    /// Removes the series of `labels`.
    pub fn remove(&self, labels: &S) {
        self.write().remove(labels);
    }

    /// Removes the series of `server` whose label set `keep` refuses; looks at every series of
    /// the family, so it is meant for changes (a dependency dropped), not for every probe.
    pub fn retain_server(&self, server: &str, mut keep: impl FnMut(&S) -> bool) {
        self.write()
            .retain(|labels, _| labels.server() != server || keep(labels));
    }
}

impl<S, M, C> ServerFamily<S, M, C> {
    fn read(&self) -> RwLockReadGuard<'_, HashMap<S, M>> {
        self.inner.series.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<S, M>> {
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
        f.debug_tuple("ServerFamily").field(&*self.read()).finish()
    }
}

/// Removing a server looks at every series of the family once (servers leave on a
/// configuration change, not on a hot path).
impl<S, M, C> ServerScoped for ServerFamily<S, M, C>
where
    S: ServerLabelSet,
    M: Send + Sync,
    C: Send + Sync,
{
    fn remove_server(&self, server: &str) {
        self.write().retain(|labels, _| labels.server() != server);
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
        for (labels, metric) in self.read().iter() {
            metric.encode(encoder.encode_family(labels)?)?;
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

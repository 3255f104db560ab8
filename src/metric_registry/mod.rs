//! The registry every component registers its families in (`fn register(registry: &mut
//! MetricsRegistry) -> Self`) and that `/metrics` encodes, with what families built on it share:
//! label sets (`labels.rs`), the family whose series all carry a `server` label
//! (`server_family.rs`) and the per-server tracker that removes a server from every family
//! (`per_server.rs`), and the per-server cache of their encoded text (`cached.rs`). It depends
//! on no other module of the crate, so every component can register its own families;
//! `src/metrics/` gathers them.

pub mod cached;
pub mod histogram;
pub mod labels;
pub mod per_server;
pub mod series_value;
pub mod server_family;
mod server_text;
pub mod text_format;

use std::fmt::Debug;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::EncodeMetric;
use prometheus_client::metrics::TypedMetric;
use prometheus_client::registry::{Metric, Registry};

use self::cached::{CachedFamily, FamilyText};
use self::labels::ServerLabelSet;
use self::per_server::{ServerScoped, ServerSeriesTracker, ServerState};
use self::series_value::SeriesValue;
use self::server_family::ServerFamily;
use self::text_format::Format;

/// Which optional groups of families are registered or filled: the one place the metrics
/// profile (`[exporter] metrics = "full" | "fleet"`, [`MetricsProfile`]) and its per-family
/// overrides switch them. docs/metrics.md#profiles says what each switch covers and why it has
/// its default. The switches shape the probes' series only; real traffic (`source="traffic"`)
/// fills its families in every profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FamilySwitches {
    /// The OpenTelemetry MCP semantic-convention histograms
    /// (`mcp_client_operation_duration_seconds`, `mcp_server_operation_duration_seconds`).
    pub semconv_histograms: bool,
    /// The probes' per-method and per-tool histograms (`mcp_request_duration_seconds` and
    /// `mcp_tool_execution_duration_seconds` with `source="probe"`, and
    /// `mcp_client_operation_duration_seconds` when `semconv_histograms` is on too): 18 series
    /// per method and per tool a server's probes use, each.
    pub probe_method_histograms: bool,
    /// A series at 0 for every protocol violation kind of every server
    /// (`mcp_protocol_violations_total`, 4 per server); off, a kind's series appears at its
    /// first occurrence, as every other counter with a label vocabulary.
    pub zero_violation_series: bool,
    /// The HTTP phase gauges of the last probe (`mcp_probe_http_phase_duration_seconds`, 4
    /// per HTTP server); `mcp_http_connections_opened_total` is kept either way.
    pub probe_http_phases: bool,
    /// `mcp_server_maintenance` at 0 for every server; off, a server has the series only while
    /// a maintenance window holds (the bundled alerts read it with `unless`, which an absent
    /// series satisfies).
    pub zero_maintenance_series: bool,
}

impl Default for FamilySwitches {
    /// Everything on: the full profile.
    fn default() -> Self {
        MetricsProfile::Full.switches()
    }
}

/// A named set of [`FamilySwitches`]: `[exporter] metrics` (docs/metrics.md#profiles).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MetricsProfile {
    /// Every family, every probe histogram: the default, because it is what the playbook's
    /// alerts and dashboards were written for and what an installation of a few dozen servers
    /// can afford.
    #[default]
    Full,
    /// The lean profile for fleets of hundreds of servers: the probes keep their counters and
    /// gauges and one latency histogram per server (`mcp_probe_latency_seconds`, always
    /// registered), but no per-method or per-tool histograms. Real traffic keeps all of its
    /// histograms (`mcp_server_operation_duration_seconds` included).
    Fleet,
}

impl MetricsProfile {
    /// The profile named `name` (`full` or `fleet`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "full" => Some(MetricsProfile::Full),
            "fleet" => Some(MetricsProfile::Fleet),
            _ => None,
        }
    }

    /// The name as written in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricsProfile::Full => "full",
            MetricsProfile::Fleet => "fleet",
        }
    }

    /// The switches of the profile.
    pub fn switches(self) -> FamilySwitches {
        FamilySwitches {
            semconv_histograms: true,
            probe_method_histograms: self == MetricsProfile::Full,
            zero_violation_series: self == MetricsProfile::Full,
            probe_http_phases: self == MetricsProfile::Full,
            zero_maintenance_series: self == MetricsProfile::Full,
        }
    }
}

/// prometheus-client's registry (families without a `server` label, collectors), the families
/// with a `server` label (encoded after it, through their caches) and the per-server tracker.
#[derive(Default)]
pub struct MetricsRegistry {
    registry: Registry,
    server_families: Vec<Box<dyn CachedFamily>>,
    /// The same families, encoded without cache: what the cached exposition must equal.
    #[cfg(test)]
    uncached: Registry,
    servers: ServerSeriesTracker,
    switches: FamilySwitches,
    /// Names of the families registered with a `server` label, so a test can check that it
    /// recorded a series in each.
    #[cfg(test)]
    server_family_names: Vec<String>,
}

impl MetricsRegistry {
    /// An empty registry whose components register the families `switches` turn on.
    pub fn with_switches(switches: FamilySwitches) -> Self {
        MetricsRegistry {
            switches,
            ..MetricsRegistry::default()
        }
    }

    /// Which optional families components should register.
    pub fn switches(&self) -> FamilySwitches {
        self.switches
    }

    /// Registers a metric or a family without a `server` label and returns the handle to
    /// record in.
    pub fn register<M: Metric + Clone>(
        &mut self,
        name: &str,
        help: impl Into<String>,
        metric: M,
    ) -> M {
        self.registry.register(name, help, metric.clone());
        metric
    }

    /// Registers a family with a `server` label whose metrics start at their default.
    pub fn server_family<S, M>(&mut self, name: &str, help: impl Into<String>) -> ServerFamily<S, M>
    where
        S: ServerLabelSet,
        M: EncodeMetric + TypedMetric + SeriesValue + Debug + Default + Clone + Send + Sync,
        M: 'static,
    {
        self.server_family_with_constructor(name, help, M::default as fn() -> M)
    }

    /// Registers a family with a `server` label whose metrics `constructor` builds (histograms
    /// with their buckets).
    pub fn server_family_with_constructor<S, M, C>(
        &mut self,
        name: &str,
        help: impl Into<String>,
        constructor: C,
    ) -> ServerFamily<S, M, C>
    where
        S: ServerLabelSet,
        M: EncodeMetric + TypedMetric + SeriesValue + Debug + Clone + Send + Sync + 'static,
        C: Fn() -> M + Send + Sync + 'static,
    {
        let family = ServerFamily::new(constructor);
        let help = help.into();
        #[cfg(test)]
        self.uncached.register(name, help.clone(), family.clone());
        self.server_families
            .push(Box::new(FamilyText::new(name, help, family.clone())));
        #[cfg(test)]
        self.server_family_names.push(name.to_string());
        self.servers.track(Arc::new(family.clone()));
        family
    }

    /// Per-server bookkeeping of a component, forgotten with the server.
    pub fn server_state<T: Default + Send + 'static>(&mut self) -> ServerState<T> {
        let (state, member) = ServerState::new();
        self.servers.track(member);
        state
    }

    /// Registers a collector that encodes per-server values read at scrape time; it forgets a
    /// removed server like the families do.
    pub fn server_collector<T: Collector + ServerScoped>(&mut self, collector: &Arc<T>) {
        self.registry
            .register_collector(Box::new(Arc::clone(collector)));
        self.servers
            .track(Arc::clone(collector) as Arc<dyn ServerScoped>);
    }

    /// Removes every series of `server` from every family, collector and state.
    pub fn remove_server(&self, server: &str) {
        self.servers.remove_server(server);
    }

    /// Appends the Prometheus text format 0.0.4 to `out`: the families without a `server`
    /// label and the collectors, then the families with one.
    pub fn encode_prometheus(&self, out: &mut String) {
        self.encode_families(out, Format::Prometheus);
    }

    /// Appends the OpenMetrics 1.0 text format to `out`, `# EOF` last.
    pub fn encode_openmetrics(&self, out: &mut String) {
        self.encode_families(out, Format::OpenMetrics);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode_eof(out);
    }

    fn encode_families(&self, out: &mut String, format: Format) {
        format.encode_registry(out, &self.registry);
        for family in &self.server_families {
            family.encode(out, format);
        }
    }

    /// The exposition as encoding every series afresh gives it, for the cache's tests.
    #[cfg(test)]
    pub(crate) fn encode_uncached(&self, format: Format) -> String {
        let mut out = String::new();
        format.encode_registry(&mut out, &self.registry);
        format.encode_registry(&mut out, &self.uncached);
        if format == Format::OpenMetrics {
            let _ = prometheus_client::encoding::text::encode_eof(&mut out);
        }
        out
    }

    /// Names of the families registered with a `server` label (collectors not included).
    #[cfg(test)]
    pub(crate) fn server_family_names(&self) -> &[String] {
        &self.server_family_names
    }

    /// The Prometheus text format, for tests of one component.
    #[cfg(test)]
    pub(crate) fn encode(&self) -> String {
        let mut out = String::new();
        self.encode_prometheus(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use prometheus_client::encoding::EncodeLabelSet;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::gauge::Gauge;

    use super::*;
    use crate::metric_registry::labels::ServerLabels;

    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    struct ColourLabels {
        server: String,
        colour: String,
    }

    impl ServerLabelSet for ColourLabels {
        fn server(&self) -> &str {
            &self.server
        }
    }

    fn series_of(text: &str, server: &str) -> BTreeSet<String> {
        let needle = format!("server=\"{server}\"");
        text.lines()
            .filter(|l| !l.starts_with('#') && l.contains(&needle))
            .map(String::from)
            .collect()
    }

    #[test]
    fn a_new_family_created_through_the_tracker_loses_a_removed_servers_series() {
        let mut registry = MetricsRegistry::default();
        let colours: ServerFamily<ColourLabels, Counter> =
            registry.server_family("test_colours", "Colours seen");
        let size: ServerFamily<ServerLabels, Gauge> = registry.server_family("test_size", "Size");
        let seen: ServerState<u32> = registry.server_state();
        for server in ["a", "b"] {
            for colour in ["red", "green", "blue"] {
                colours
                    .get_or_create(&ColourLabels {
                        server: server.into(),
                        colour: colour.into(),
                    })
                    .inc();
            }
            size.get_or_create(&ServerLabels::new(server)).set(3);
            seen.with(server, |n| *n += 1);
        }
        let before = registry.encode();
        assert_eq!(series_of(&before, "a").len(), 4, "{before}");
        let kept = series_of(&before, "b");
        assert_eq!(kept.len(), 4, "{before}");

        registry.remove_server("a");
        let after = registry.encode();
        assert!(series_of(&after, "a").is_empty(), "{after}");
        assert_eq!(series_of(&after, "b"), kept, "{after}");
        assert_eq!(
            seen.with("a", |n| *n),
            0,
            "state of a removed server is forgotten"
        );
        assert_eq!(seen.with("b", |n| *n), 1);
    }

    #[test]
    fn retained_and_removed_series_are_gone_and_a_recreated_one_goes_with_its_server() {
        let mut registry = MetricsRegistry::default();
        let colours: ServerFamily<ColourLabels, Gauge> =
            registry.server_family("test_colours", "Colours seen");
        let labels = |colour: &str| ColourLabels {
            server: "a".into(),
            colour: colour.into(),
        };
        for colour in ["red", "green", "blue"] {
            colours.get_or_create(&labels(colour)).set(1);
        }
        colours.retain_server("a", |l| l.colour != "red");
        colours.remove(&labels("green"));
        let text = registry.encode();
        assert_eq!(
            series_of(&text, "a"),
            BTreeSet::from(["test_colours{server=\"a\",colour=\"blue\"} 1".to_string()]),
            "{text}"
        );
        // A series created again after its removal is removed with the server.
        colours.get_or_create(&labels("red")).set(2);
        registry.remove_server("a");
        assert!(series_of(&registry.encode(), "a").is_empty());
    }
}

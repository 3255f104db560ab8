//! Real traffic on `/metrics`: the wrappers' reports written into the families the probes fill
//! too, with `source="traffic"` (src/probe/metrics.rs `RequestFamilies`, the wire families of
//! src/mcp/wire_metrics.rs), the OpenTelemetry server-side histogram, and the receiver's own
//! health. docs/metrics.md#real-traffic lists every family and label.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::gauge::ConstGauge;

use crate::mcp::wire_metrics::{ExtraWireSeries, ExtraWireServer, WireMetrics};
use crate::metric_registry::MetricsRegistry;
use crate::metric_registry::labels::{ServerLabelSet, ServerLabels, Source};
use crate::metric_registry::per_server::ServerScoped;
use crate::metric_registry::server_family::ServerFamily;
use crate::probe::metrics::{
    HistogramFamily, MethodLabels, OperationLabels, RequestFamilies, RequestLabels, SizeLabels,
    SourceLabels, ToolCallLabels, ToolLabels, semconv_family,
};

use super::book::TrafficBook;
use super::receiver::{ReceiverCounters, TrafficConsumer, WrapperInfo};
use super::totals::{Peer, RequestKey, RequestStats, TrafficState, TrafficTotals};

const TRAFFIC: &str = "traffic";

/// The traffic book plus the families it writes into; the daemon's [`TrafficConsumer`].
#[derive(Debug)]
pub struct TrafficMetrics {
    book: TrafficBook,
    families: Families,
    receiver: ReceiverHealth,
}

#[derive(Debug)]
struct Families {
    shared: RequestFamilies,
    server_operations: Option<HistogramFamily<OperationLabels>>,
}

/// What the receiver's own health families read at scrape time.
#[derive(Debug)]
struct ReceiverHealth {
    /// 1 while the socket is bound, 0 when binding failed or the receiver stopped; -1 before
    /// the daemon tried (or when `[traffic] enabled = false`).
    socket_up: AtomicI64,
    counters: RwLock<Option<Arc<ReceiverCounters>>>,
}

impl TrafficMetrics {
    /// Registers the traffic-only families and returns the consumer to give the receiver;
    /// `shared` are the families the probes fill too, `wire` takes the traffic's message and
    /// in-flight series.
    pub fn register(
        registry: &mut MetricsRegistry,
        shared: RequestFamilies,
        wire: &WireMetrics,
    ) -> Arc<Self> {
        let server_operations = semconv_family(
            registry,
            "mcp_server_operation_duration_seconds",
            "OpenTelemetry MCP semantic convention: duration of each MCP request real clients made, as the wrapped server handled it (mcp.method.name, gen_ai.tool.name, error.type, network.transport, mcp.protocol.version)",
        );
        let metrics = Arc::new(TrafficMetrics {
            book: TrafficBook::default(),
            families: Families {
                shared,
                server_operations,
            },
            receiver: ReceiverHealth {
                socket_up: AtomicI64::new(-1),
                counters: RwLock::default(),
            },
        });
        registry.server_collector(&Arc::new(HealthCollector(Arc::clone(&metrics))));
        wire.add_source(Arc::new(WireView(Arc::clone(&metrics))));
        metrics
    }

    /// The totals per server label (what `/metrics` shows, before the families' removal of a
    /// server that left the configuration).
    pub fn book(&self) -> &TrafficBook {
        &self.book
    }

    /// The socket is bound and the receiver runs; its counters are read from `counters`.
    pub fn receiver_started(&self, counters: Arc<ReceiverCounters>) {
        *self
            .receiver
            .counters
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(counters);
        self.receiver.socket_up.store(1, Ordering::Relaxed);
    }

    /// The socket could not be bound, or the receiver stopped.
    pub fn receiver_down(&self) {
        self.receiver.socket_up.store(0, Ordering::Relaxed);
    }

    fn record(&self, server: &str, delta: &TrafficTotals, state: &TrafficState) {
        let protocol_version = state.protocol_version.clone().unwrap_or_default();
        // Looked up once per report, not per request key and error type (it takes the book's lock).
        let transport = self.book.transport_of(server);
        for (key, stats) in &delta.requests {
            if key.origin == Peer::Client {
                self.record_request(server, key, stats, &protocol_version, transport);
            }
        }
        add(
            &self.families.shared.session_starts,
            &SourceLabels::new(server, Source::Traffic),
            delta.sessions.started,
        );
    }

    fn record_request(
        &self,
        server: &str,
        key: &RequestKey,
        stats: &RequestStats,
        protocol: &str,
        transport: &'static str,
    ) {
        let shared = &self.families.shared;
        for (outcome, count) in outcomes(stats) {
            let labels = RequestLabels {
                server: server.to_string(),
                method: key.method.clone(),
                outcome,
                source: TRAFFIC,
            };
            add(&shared.requests, &labels, count);
            if let Some(tool) = &key.tool {
                let labels = ToolCallLabels {
                    server: server.to_string(),
                    tool: tool.clone(),
                    outcome,
                    source: TRAFFIC,
                };
                add(&shared.tool_calls, &labels, count);
            }
        }
        let duration = &stats.duration;
        if duration.count() > 0 {
            let method = MethodLabels {
                server: server.to_string(),
                method: key.method.clone(),
                source: TRAFFIC,
            };
            shared
                .request_duration
                .get_or_create(&method)
                .add(&duration.counts, duration.sum_seconds);
            if let Some(tool) = &key.tool {
                let labels = ToolLabels {
                    server: server.to_string(),
                    tool: tool.clone(),
                    source: TRAFFIC,
                };
                shared
                    .tool_duration
                    .get_or_create(&labels)
                    .add(&duration.counts, duration.sum_seconds);
            }
        }
        let size_labels = SizeLabels {
            server: server.to_string(),
            method: key.method.clone(),
            tool: key.tool.clone().unwrap_or_default(),
            source: TRAFFIC,
        };
        for (family, sizes) in [
            (&shared.request_size, &stats.request_sizes),
            (&shared.response_size, &stats.response_sizes),
        ] {
            if sizes.count() > 0 {
                family
                    .get_or_create(&size_labels)
                    .add(&sizes.counts, sizes.sum);
            }
        }
        if let Some(family) = &self.families.server_operations {
            for (error_type, buckets) in &stats.operations {
                if buckets.count() == 0 {
                    continue;
                }
                let labels = OperationLabels {
                    server: server.to_string(),
                    mcp_method_name: key.method.clone(),
                    gen_ai_tool_name: key.tool.clone().unwrap_or_default(),
                    error_type: error_type.clone(),
                    network_transport: transport,
                    mcp_protocol_version: protocol.to_string(),
                };
                family
                    .get_or_create(&labels)
                    .add(&buckets.counts, buckets.sum);
            }
        }
    }
}

/// How the requests of a delta ended, as `outcome` label values (`evicted` requests are
/// `unanswered`: their answer can no longer be matched).
fn outcomes(stats: &RequestStats) -> [(&'static str, u64); 5] {
    [
        ("ok", stats.ok),
        ("tool_error", stats.tool_errors),
        ("error", stats.error_count()),
        ("cancelled", stats.cancelled),
        ("unanswered", stats.unanswered.saturating_add(stats.evicted)),
    ]
}

/// Adds `count` to the counter of `labels`, creating its series only for a count above 0.
fn add<S: ServerLabelSet>(family: &ServerFamily<S, Counter>, labels: &S, count: u64) {
    if count > 0 {
        family.get_or_create(labels).inc_by(count);
    }
}

impl crate::traffic::book::LocalTraffic for TrafficMetrics {
    fn attach_local(
        &self,
        label: &str,
        network_transport: &'static str,
    ) -> Result<WrapperInfo, String> {
        self.book.attach_local(label, network_transport)
    }
}

impl TrafficConsumer for TrafficMetrics {
    fn connected(&self, wrapper: &WrapperInfo) -> Result<(), String> {
        self.book.connected(wrapper)
    }

    fn report(&self, wrapper: &WrapperInfo, delta: &TrafficTotals, state: &TrafficState) {
        if let Some((delta, state)) = self.book.record(wrapper, delta, state) {
            self.record(wrapper.label(), &delta, &state);
        }
    }

    fn exited(&self, wrapper: &WrapperInfo, status: i32) {
        self.book.exited(wrapper, status);
    }

    fn disconnected(&self, wrapper: &WrapperInfo) {
        self.book.disconnected(wrapper);
    }
}

/// The traffic's series of `mcp_messages_processed_total` and `mcp_concurrent_operations`.
#[derive(Debug)]
struct WireView(Arc<TrafficMetrics>);

impl ExtraWireSeries for WireView {
    fn source(&self) -> &'static str {
        TRAFFIC
    }

    fn servers(&self) -> Vec<ExtraWireServer> {
        self.0
            .book
            .snapshot()
            .into_iter()
            .map(|(server, traffic)| ExtraWireServer {
                sent: traffic.totals.client_to_server.messages,
                received: traffic.totals.server_to_client.messages,
                in_flight: traffic
                    .in_flight
                    .iter()
                    .filter(|(key, _)| key.origin == Peer::Client)
                    .map(|(_, count)| count)
                    .sum(),
                server,
            })
            .collect()
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// The receiver's health and the per-server wrapper gauges, read at scrape time.
#[derive(Debug)]
struct HealthCollector(Arc<TrafficMetrics>);

/// A configured server that leaves the configuration loses its traffic totals with its other
/// series (the shared families are removed by the per-server tracker itself).
impl ServerScoped for HealthCollector {
    fn remove_server(&self, server: &str) {
        self.0.book.forget(server);
    }
}

impl Collector for HealthCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let health = &self.0.receiver;
        let up = health.socket_up.load(Ordering::Relaxed);
        if up >= 0 {
            let family = encoder.encode_descriptor(
                "mcp_traffic_socket_up",
                "1 while the traffic socket is bound and wrappers can report; 0 when binding it failed (the reason is logged) or the receiver stopped",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(up).encode(family)?;
        }
        let counters = health
            .counters
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|c| c.snapshot());
        if let Some(stats) = counters {
            let mut family = encoder.encode_descriptor(
                "mcp_traffic_connections",
                "Wrapper connections to the traffic socket by outcome: accepted; refused (over the connection cap or the server-label cap); protocol_error (disconnected for breaking the protocol or its limits)",
                None,
                MetricType::Counter,
            )?;
            for (outcome, value) in [
                ("accepted", stats.accepted),
                ("refused", stats.refused),
                ("protocol_error", stats.protocol_errors),
            ] {
                ConstCounter::new(value)
                    .encode(family.encode_family(&OutcomeLabels { outcome })?)?;
            }
            let family = encoder.encode_descriptor(
                "mcp_traffic_reports",
                "Reports received from wrappers",
                None,
                MetricType::Counter,
            )?;
            ConstCounter::new(stats.reports).encode(family)?;
        }
        let snapshot = self.0.book.snapshot();
        if snapshot.is_empty() {
            return Ok(());
        }
        let mut family = encoder.encode_descriptor(
            "mcp_traffic_wrappers_connected",
            "Wrappers (mcp-exporter wrap) connected now, per server label",
            None,
            MetricType::Gauge,
        )?;
        for (server, traffic) in &snapshot {
            ConstGauge::new(traffic.wrappers as i64)
                .encode(family.encode_family(&ServerLabels::new(server))?)?;
        }
        let mut family = encoder.encode_descriptor(
            "mcp_traffic_sessions_active",
            "Connected wrappers with an open MCP session, per server label",
            None,
            MetricType::Gauge,
        )?;
        for (server, traffic) in &snapshot {
            ConstGauge::new(traffic.sessions_active as i64)
                .encode(family.encode_family(&ServerLabels::new(server))?)?;
        }
        Ok(())
    }
}

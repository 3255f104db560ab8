//! Every metric family the exporter emits is defined here, once.
//!
//! Names, types and labels of the playbook's metrics follow `METRICS.md` exactly. Values of
//! labels that come from a monitored server (tool names) are sanitized and capped per server.

mod deps;
mod sink;

pub use deps::DepMetrics;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::health::Health;
use crate::mcp::WireCounters;
use crate::probe::ProbeOutcome;

pub mod http;
pub mod process;
// Issue 5: history store and log-line metrics.
pub mod store;

/// Most distinct `tool` label values one server can create; the rest are folded into `other`.
pub const MAX_TOOL_LABELS_PER_SERVER: usize = 100;
/// Longest label value taken from a server; longer values are cut.
const MAX_LABEL_VALUE_BYTES: usize = 128;
/// Probes `mcp_cache_hit_rate` looks back over.
pub const SESSION_REUSE_WINDOW: usize = 20;
/// Window of `mcp_throughput_requests_per_second`.
pub const THROUGHPUT_WINDOW: Duration = Duration::from_secs(60);

/// Buckets of the request and tool histograms (seconds); 5 s is a boundary because the
/// playbook's MCPSlowResponseTime alert fires on a p95 above 5 s.
const DURATION_BUCKETS: [f64; 15] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Appended to the HELP of the families a scrape-time reader could misread (prometheus-client
/// ends every HELP text with a period of its own, so none of ours ends with one).
/// prometheus-client ends every HELP text with a period of its own, so none of ours ends with one.
const SCHEDULE_NOTE: &str = "Probes run on the exporter's own schedule (per-server interval), not at scrape time: stdio MCP servers are long-lived sessions, so this departs on purpose from Prometheus' 'writing exporters' guide; see mcp_probe_last_run_timestamp_seconds";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServerLabels {
    server: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    server: String,
    method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    server: String,
    method: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ToolLabels {
    server: String,
    tool: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    server: String,
    class: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InfoLabels {
    server: String,
    server_name: String,
    server_version: String,
    protocol_version: String,
    era: String,
    transport: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    rustc_version: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// Label sets created for one server, so all of them can be removed when it leaves the config.
#[derive(Default)]
struct ServerSeries {
    methods: BTreeSet<String>,
    request_outcomes: BTreeSet<(String, String)>,
    tools: BTreeSet<String>,
    failure_classes: BTreeSet<&'static str>,
    info: Option<InfoLabels>,
    /// The last probes, newest last: did each reuse the cached session?
    session_reuse: std::collections::VecDeque<bool>,
}

/// Handles to every family; cheap to share behind an `Arc`.
pub struct Metrics {
    registry: Registry,
    server_up: Family<ServerLabels, Gauge>,
    health_status: Family<ServerLabels, Gauge>,
    server_info: Family<InfoLabels, Gauge>,
    request_duration: Family<MethodLabels, Histogram, fn() -> Histogram>,
    tool_duration: Family<ToolLabels, Histogram, fn() -> Histogram>,
    requests: Family<RequestLabels, Counter>,
    probe_success: Family<ServerLabels, Gauge>,
    probe_duration: Family<ServerLabels, FloatGauge>,
    probe_last_run: Family<ServerLabels, FloatGauge>,
    probes: Family<ServerLabels, Counter>,
    probe_failures: Family<FailureLabels, Counter>,
    tools: Family<ServerLabels, Gauge>,
    catalog_changes: Family<ServerLabels, Counter>,
    session_starts: Family<ServerLabels, Counter>,
    cache_hit_rate: Family<ServerLabels, FloatGauge>,
    /// Size of the last `/metrics` body, to size the next one's buffer.
    last_exposition_bytes: std::sync::atomic::AtomicUsize,
    live: Arc<LiveCollector>,
    series: Mutex<HashMap<String, ServerSeries>>,
    /// Dependency and health-reason families (issue 4).
    pub deps: DepMetrics,
    /// Security events and refused requests.
    pub security: crate::security::metrics::SecurityMetrics,
    /// Process families (issue 3).
    pub process: process::ProcessMetrics,
    /// HTTP phase timings of the HTTP transports.
    pub http: http::HttpPhaseMetrics,
    /// History store and log-line metrics (issue 5).
    pub store: Arc<store::StoreMetrics>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Builds the registry with every family registered.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let server_up = Family::<ServerLabels, Gauge>::default();
        registry.register(
            "mcp_server_up",
            format!("1 when the last probe completed the MCP handshake (or ping) in time, else 0. {SCHEDULE_NOTE}"),
            server_up.clone(),
        );
        let health_status = Family::<ServerLabels, Gauge>::default();
        registry.register(
            "mcp_server_health_status",
            "Health of the server: 2 healthy, 1 degraded, 0 unhealthy, -1 unknown; from the probe result and latency threshold",
            health_status.clone(),
        );
        let server_info = Family::<InfoLabels, Gauge>::default();
        registry.register(
            "mcp_server_info",
            "Identity the server reported in its handshake (serverInfo name and version, negotiated protocol version and era) and the transport; value is always 1",
            server_info.clone(),
        );
        let request_duration =
            Family::<MethodLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                duration_histogram,
            );
        registry.register(
            "mcp_request_duration_seconds",
            "JSON-RPC round trip per MCP method (initialize, server/discover, ping, tools/list, tools/call)",
            request_duration.clone(),
        );
        let tool_duration =
            Family::<ToolLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                duration_histogram,
            );
        registry.register(
            "mcp_tool_execution_duration_seconds",
            "Duration of tools/call per tool (tool names are sanitized and capped per server; excess is 'other')",
            tool_duration.clone(),
        );
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "mcp_requests",
            "JSON-RPC requests sent to the server by the prober, by method and outcome (ok: a result came back; unsupported: the era probe's server/discover refused by a legacy server; error: anything else)",
            requests.clone(),
        );
        let probe_success = Family::<ServerLabels, Gauge>::default();
        registry.register(
            "mcp_probe_success",
            "1 when every stage of the last probe passed (blackbox_exporter's probe_success), else 0",
            probe_success.clone(),
        );
        let probe_duration = Family::<ServerLabels, FloatGauge>::default();
        registry.register(
            "mcp_probe_duration_seconds",
            "Duration of the last probe, all stages",
            probe_duration.clone(),
        );
        let probe_last_run = Family::<ServerLabels, FloatGauge>::default();
        registry.register(
            "mcp_probe_last_run_timestamp_seconds",
            format!("Unix time the last probe of the server started. {SCHEDULE_NOTE}"),
            probe_last_run.clone(),
        );
        let probes = Family::<ServerLabels, Counter>::default();
        registry.register("mcp_probes", "Probes run", probes.clone());
        let probe_failures = Family::<FailureLabels, Counter>::default();
        registry.register(
            "mcp_probe_failures",
            "Failed probes by class: down, auth_required, misconfigured, protocol_error, check_failed",
            probe_failures.clone(),
        );
        let tools = Family::<ServerLabels, Gauge>::default();
        registry.register(
            "mcp_server_tools",
            "Number of tools the server listed in the last tools/list",
            tools.clone(),
        );
        let catalog_changes = Family::<ServerLabels, Counter>::default();
        registry.register(
            "mcp_tool_catalog_changes",
            "Times the content hash of the tool catalog changed between probes (schema drift)",
            catalog_changes.clone(),
        );
        let session_starts = Family::<ServerLabels, Counter>::default();
        registry.register(
            "mcp_sessions_started",
            "Sessions established by the prober (stdio child spawned or HTTP session initialized)",
            session_starts.clone(),
        );
        let cache_hit_rate = Family::<ServerLabels, FloatGauge>::default();
        registry.register(
            "mcp_cache_hit_rate",
            format!("Session cache: share of the last {SESSION_REUSE_WINDOW} probes served by the prober's cached session (kept stdio child, HTTP session, remembered modern-era discovery) rather than a new handshake; low means the server loses sessions (restarts, expiry, a load balancer without affinity). PromQL equivalent: 1 - rate(mcp_sessions_started_total[5m]) / rate(mcp_probes_total[5m])"),
            cache_hit_rate.clone(),
        );
        let build_info = Family::<BuildLabels, Gauge>::default();
        registry.register(
            "mcp_exporter_build_info",
            "Version of the exporter; value is always 1",
            build_info.clone(),
        );
        build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_string(),
                rustc_version: option_env!("MCP_EXPORTER_RUSTC")
                    .unwrap_or("unknown")
                    .to_string(),
            })
            .set(1);
        let security = crate::security::metrics::SecurityMetrics::register(&mut registry);
        let live = Arc::new(LiveCollector::default());
        registry.register_collector(Box::new(Arc::clone(&live)));
        let deps = DepMetrics::register(&mut registry);
        let process = process::ProcessMetrics::register(&mut registry);
        let http = http::HttpPhaseMetrics::register(&mut registry);
        let store = Arc::new(store::StoreMetrics::register(&mut registry));
        Metrics {
            registry,
            server_up,
            health_status,
            server_info,
            request_duration,
            tool_duration,
            requests,
            probe_success,
            probe_duration,
            probe_last_run,
            probes,
            probe_failures,
            tools,
            catalog_changes,
            session_starts,
            cache_hit_rate,
            last_exposition_bytes: Default::default(),
            live,
            series: Mutex::new(HashMap::new()),
            deps,
            security,
            process,
            http,
            store,
        }
    }

    /// Encodes in the Prometheus text format 0.0.4.
    pub fn encode_prometheus(&self) -> String {
        let mut out = self.output_buffer();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        self.remember_size(&out);
        out
    }

    /// Encodes in the OpenMetrics 1.0 text format.
    pub fn encode_openmetrics(&self) -> String {
        let mut out = self.output_buffer();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        self.remember_size(&out);
        out
    }

    /// A buffer sized for the last exposition plus an eighth, so encoding a few hundred
    /// kilobytes does not copy them over and over while the string grows.
    fn output_buffer(&self) -> String {
        let last = self.last_exposition_bytes.load(Ordering::Relaxed);
        String::with_capacity((last + last / 8).max(16 * 1024))
    }

    fn remember_size(&self, out: &str) {
        self.last_exposition_bytes
            .store(out.len(), Ordering::Relaxed);
    }

    /// Starts tracking a server: health UNKNOWN until its first probe, live counters exposed.
    pub fn add_server(&self, server: &str, counters: Arc<WireCounters>) {
        let labels = server_labels(server);
        self.health_status.get_or_create(&labels).set(-1);
        self.live.add(server, counters);
        self.lock_series().entry(server.to_string()).or_default();
    }

    /// Removes every series of a server that left the configuration.
    pub fn remove_server(&self, server: &str) {
        let labels = server_labels(server);
        for family in [
            &self.server_up,
            &self.health_status,
            &self.probe_success,
            &self.tools,
        ] {
            family.remove(&labels);
        }
        self.probe_duration.remove(&labels);
        self.probe_last_run.remove(&labels);
        self.probes.remove(&labels);
        self.catalog_changes.remove(&labels);
        self.session_starts.remove(&labels);
        self.cache_hit_rate.remove(&labels);
        self.live.remove(server);
        self.deps.remove_server(server);
        self.security.remove_server(server);
        self.process.remove_server(server);
        self.http.remove_server(server);
        self.store.remove_server(server);
        let Some(series) = self.lock_series().remove(server) else {
            return;
        };
        for method in series.methods {
            self.request_duration.remove(&MethodLabels {
                server: server.to_string(),
                method,
            });
        }
        for (method, outcome) in series.request_outcomes {
            self.requests.remove(&RequestLabels {
                server: server.to_string(),
                method,
                outcome,
            });
        }
        for tool in series.tools {
            self.tool_duration.remove(&ToolLabels {
                server: server.to_string(),
                tool,
            });
        }
        for class in series.failure_classes {
            self.probe_failures.remove(&FailureLabels {
                server: server.to_string(),
                class: class.to_string(),
            });
        }
        if let Some(info) = series.info {
            self.server_info.remove(&info);
        }
    }

    /// Records one probe of `server` and the health decided from it.
    pub fn record_probe(
        &self,
        server: &str,
        transport: &str,
        outcome: &ProbeOutcome,
        health: &Health,
        catalog_changed: bool,
    ) {
        if let Some(phases) = &outcome.http_phases {
            self.http.record(server, phases);
        }
        let labels = server_labels(server);
        self.server_up
            .get_or_create(&labels)
            .set(i64::from(outcome.up));
        self.probe_success
            .get_or_create(&labels)
            .set(i64::from(outcome.success));
        self.health_status
            .get_or_create(&labels)
            .set(health.status.code());
        self.probe_duration
            .get_or_create(&labels)
            .set(outcome.duration.as_secs_f64());
        self.probe_last_run
            .get_or_create(&labels)
            .set(crate::wall_clock::unix_seconds(outcome.started_at));
        self.probes.get_or_create(&labels).inc();
        if outcome.new_session {
            self.session_starts.get_or_create(&labels).inc();
        }
        if let Some(catalog) = &outcome.catalog {
            self.tools.get_or_create(&labels).set(catalog.count as i64);
        }
        if catalog_changed {
            self.catalog_changes.get_or_create(&labels).inc();
        }
        let mut all_series = self.lock_series();
        let series = all_series.entry(server.to_string()).or_default();
        if series.session_reuse.len() >= SESSION_REUSE_WINDOW {
            series.session_reuse.pop_front();
        }
        series
            .session_reuse
            .push_back(outcome.up && !outcome.new_session);
        let hits = series.session_reuse.iter().filter(|hit| **hit).count();
        self.cache_hit_rate
            .get_or_create(&labels)
            .set(hits as f64 / series.session_reuse.len() as f64);
        if let Some(failure) = &outcome.failure {
            let class = failure.class.as_str();
            series.failure_classes.insert(class);
            self.probe_failures
                .get_or_create(&FailureLabels {
                    server: server.to_string(),
                    class: class.to_string(),
                })
                .inc();
        }
        for record in &outcome.requests {
            let method = sanitize_label_value(&record.method);
            self.request_duration
                .get_or_create(&MethodLabels {
                    server: server.to_string(),
                    method: method.clone(),
                })
                .observe(record.duration.as_secs_f64());
            let result = record.outcome.as_str();
            self.requests
                .get_or_create(&RequestLabels {
                    server: server.to_string(),
                    method: method.clone(),
                    outcome: result.to_string(),
                })
                .inc();
            series
                .request_outcomes
                .insert((method.clone(), result.to_string()));
            series.methods.insert(method);
            if let Some(tool) = &record.tool {
                let tool = capped_tool_label(&mut series.tools, tool);
                self.tool_duration
                    .get_or_create(&ToolLabels {
                        server: server.to_string(),
                        tool,
                    })
                    .observe(record.duration.as_secs_f64());
            }
        }
        if let Some(identity) = &outcome.identity {
            let info = InfoLabels {
                server: server.to_string(),
                server_name: sanitize_label_value(&identity.name),
                server_version: sanitize_label_value(&identity.version),
                protocol_version: sanitize_label_value(&identity.protocol_version),
                era: identity.era.to_string(),
                transport: transport.to_string(),
            };
            if series.info.as_ref() != Some(&info) {
                if let Some(old) = series.info.take() {
                    self.server_info.remove(&old);
                }
                self.server_info.get_or_create(&info).set(1);
                series.info = Some(info);
            }
        }
        drop(all_series);
        self.live.record_requests(server, outcome.requests.len());
    }

    /// Sets a server's health gauge without a probe (re-assessment after a dependency changed).
    pub fn record_health(&self, server: &str, health: &Health) {
        self.health_status
            .get_or_create(&server_labels(server))
            .set(health.status.code());
    }

    fn lock_series(&self) -> std::sync::MutexGuard<'_, HashMap<String, ServerSeries>> {
        self.series
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn server_labels(server: &str) -> ServerLabels {
    ServerLabels {
        server: server.to_string(),
    }
}

/// Makes an untrusted value safe and bounded as a label value: control characters become
/// `_`, and the value is cut at `MAX_LABEL_VALUE_BYTES` (128) on a character boundary.
pub fn sanitize_label_value(value: &str) -> String {
    let mut out: String = value
        .chars()
        .map(|c| if c.is_control() { '_' } else { c })
        .collect();
    out.truncate(out.floor_char_boundary(MAX_LABEL_VALUE_BYTES));
    if out.is_empty() {
        out.push_str("unknown");
    }
    out
}

/// Returns the label to use for `tool`: itself while the server has fewer than the cap,
/// `other` once the cap is reached.
fn capped_tool_label(seen: &mut BTreeSet<String>, tool: &str) -> String {
    let tool = sanitize_label_value(tool);
    if seen.contains(&tool) {
        return tool;
    }
    if seen.len() >= MAX_TOOL_LABELS_PER_SERVER {
        seen.insert("other".to_string());
        return "other".to_string();
    }
    seen.insert(tool.clone());
    tool
}

/// Live per-server values read at scrape time: wire counters shared with the MCP client
/// (so a scrape sees requests in flight right now) and request throughput.
#[derive(Debug, Default)]
struct LiveCollector {
    servers: RwLock<BTreeMap<String, LiveServer>>,
}

#[derive(Debug)]
struct LiveServer {
    counters: Arc<WireCounters>,
    requests: Mutex<VecDeque<(Instant, usize)>>,
    since: Instant,
}

impl LiveCollector {
    fn add(&self, server: &str, counters: Arc<WireCounters>) {
        let mut servers = self.servers.write().unwrap_or_else(|p| p.into_inner());
        servers.insert(
            server.to_string(),
            LiveServer {
                counters,
                requests: Mutex::new(VecDeque::new()),
                since: Instant::now(),
            },
        );
    }

    fn remove(&self, server: &str) {
        let mut servers = self.servers.write().unwrap_or_else(|p| p.into_inner());
        servers.remove(server);
    }

    fn record_requests(&self, server: &str, count: usize) {
        let servers = self.servers.read().unwrap_or_else(|p| p.into_inner());
        if let Some(live) = servers.get(server) {
            let mut window = live.requests.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            window.push_back((now, count));
            while window
                .front()
                .is_some_and(|(t, _)| now.duration_since(*t) > THROUGHPUT_WINDOW)
            {
                window.pop_front();
            }
        }
    }
}

impl LiveServer {
    fn throughput(&self, now: Instant) -> f64 {
        let window = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        let count: usize = window
            .iter()
            .filter(|(t, _)| now.duration_since(*t) <= THROUGHPUT_WINDOW)
            .map(|(_, n)| n)
            .sum();
        let span = now.duration_since(self.since).min(THROUGHPUT_WINDOW);
        if span.is_zero() {
            return 0.0;
        }
        count as f64 / span.as_secs_f64().max(1.0)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    server: String,
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ViolationLabels {
    server: String,
    kind: &'static str,
}

impl Collector for LiveCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let servers = self.servers.read().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();

        let mut family = encoder.encode_descriptor(
            "mcp_messages_processed",
            "JSON-RPC messages exchanged with the server (direction: sent, received), including notifications and replies to server requests",
            None,
            MetricType::Counter,
        )?;
        for (server, live) in servers.iter() {
            for (direction, value) in [
                ("sent", &live.counters.sent),
                ("received", &live.counters.received),
            ] {
                let labels = DirectionLabels {
                    server: server.clone(),
                    direction,
                };
                ConstCounter::new(value.load(Ordering::Relaxed))
                    .encode(family.encode_family(&labels)?)?;
            }
        }

        let mut family = encoder.encode_descriptor(
            "mcp_concurrent_operations",
            "Requests from the prober to the server in flight right now",
            None,
            MetricType::Gauge,
        )?;
        for (server, live) in servers.iter() {
            let labels = server_labels(server);
            ConstGauge::new(live.counters.in_flight.load(Ordering::Relaxed))
                .encode(family.encode_family(&labels)?)?;
        }

        let mut family = encoder.encode_descriptor(
            "mcp_throughput_requests_per_second",
            "Requests per second to the server over the last 60 s; rate(mcp_requests_total[5m]) is the Prometheus-native equivalent",
            None,
            MetricType::Gauge,
        )?;
        for (server, live) in servers.iter() {
            let labels = server_labels(server);
            ConstGauge::new(live.throughput(now)).encode(family.encode_family(&labels)?)?;
        }

        let mut family = encoder.encode_descriptor(
            "mcp_protocol_violations",
            "Protocol rule breaks seen from the server (kind: stdout_garbage, unknown_response_id, oversize_message, server_request_refused)",
            None,
            MetricType::Counter,
        )?;
        for (server, live) in servers.iter() {
            let c = &live.counters;
            for (kind, value) in [
                ("stdout_garbage", &c.stdout_garbage_lines),
                ("unknown_response_id", &c.unknown_response_ids),
                ("oversize_message", &c.oversize_messages),
                ("server_request_refused", &c.server_requests_refused),
            ] {
                let labels = ViolationLabels {
                    server: server.clone(),
                    kind,
                };
                ConstCounter::new(value.load(Ordering::Relaxed))
                    .encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::{Health, HealthStatus};
    use crate::mcp::{Era, RequestOutcome, RequestRecord};
    use crate::probe::ServerIdentity;

    fn outcome_with(records: Vec<RequestRecord>) -> ProbeOutcome {
        let mut o = ProbeOutcome::started(std::time::SystemTime::now());
        o.up = true;
        o.success = true;
        o.requests = records;
        o.identity = Some(ServerIdentity {
            name: "mcp-servers/everything".into(),
            version: "2.0.0".into(),
            protocol_version: "2025-11-25".into(),
            era: Era::Legacy,
        });
        o
    }

    fn healthy() -> Health {
        Health {
            status: HealthStatus::Healthy,
            reasons: vec![],
            codes: vec![],
        }
    }

    fn record(method: &str, tool: Option<&str>) -> RequestRecord {
        RequestRecord {
            method: method.into(),
            tool: tool.map(String::from),
            duration: Duration::from_millis(3),
            outcome: RequestOutcome::Ok,
        }
    }

    #[test]
    fn a_probe_fills_the_contract_metrics() {
        let m = Metrics::new();
        m.add_server("e", Arc::new(WireCounters::default()));
        let o = outcome_with(vec![
            record("ping", None),
            record("tools/call", Some("echo")),
        ]);
        m.record_probe("e", "stdio", &o, &healthy(), false);
        let text = m.encode_prometheus();
        for needle in [
            "mcp_server_up{server=\"e\"} 1",
            "mcp_server_health_status{server=\"e\"} 2",
            "mcp_request_duration_seconds_count{server=\"e\",method=\"ping\"} 1",
            "mcp_tool_execution_duration_seconds_count{server=\"e\",tool=\"echo\"} 1",
            "mcp_requests_total{server=\"e\",method=\"ping\",outcome=\"ok\"} 1",
            "mcp_messages_processed_total{server=\"e\",direction=\"sent\"} 0",
            "mcp_concurrent_operations{server=\"e\"} 0",
            "mcp_server_info{server=\"e\",server_name=\"mcp-servers/everything\",server_version=\"2.0.0\",protocol_version=\"2025-11-25\",era=\"legacy\",transport=\"stdio\"} 1",
            "# TYPE mcp_exporter_build_info gauge",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
        assert!(m.encode_openmetrics().ends_with("# EOF\n"));
    }

    #[test]
    fn http_phases_are_gauges_of_the_last_probe_and_connections_add_up() {
        let m = Metrics::new();
        m.add_server("h", Arc::new(WireCounters::default()));
        let mut o = outcome_with(vec![record("ping", None)]);
        o.http_phases = Some(crate::mcp::HttpPhases {
            resolve: Duration::from_millis(2),
            connect: Duration::from_millis(3),
            processing: Duration::from_millis(40),
            transfer: Duration::from_millis(5),
            connections_opened: 1,
        });
        m.record_probe("h", "http", &o, &healthy(), false);
        // The next probe reused the connection.
        o.http_phases = Some(crate::mcp::HttpPhases {
            processing: Duration::from_millis(30),
            transfer: Duration::from_millis(4),
            ..Default::default()
        });
        m.record_probe("h", "http", &o, &healthy(), false);
        let text = m.encode_prometheus();
        for needle in [
            "mcp_probe_http_phase_duration_seconds{server=\"h\",phase=\"resolve\"} 0.0",
            "mcp_probe_http_phase_duration_seconds{server=\"h\",phase=\"connect\"} 0.0",
            "mcp_probe_http_phase_duration_seconds{server=\"h\",phase=\"processing\"} 0.03",
            "mcp_probe_http_phase_duration_seconds{server=\"h\",phase=\"transfer\"} 0.004",
            "mcp_http_connections_opened_total{server=\"h\"} 1",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }

    #[test]
    fn cache_hit_rate_is_the_share_of_recent_probes_on_the_cached_session() {
        let m = Metrics::new();
        m.add_server("c", Arc::new(WireCounters::default()));
        let rate = |m: &Metrics| {
            let text = m.encode_prometheus();
            text.lines()
                .find_map(|l| l.strip_prefix("mcp_cache_hit_rate{server=\"c\"} "))
                .map(|v| v.parse::<f64>().unwrap())
        };
        let mut o = outcome_with(vec![]);
        o.new_session = true;
        m.record_probe("c", "stdio", &o, &healthy(), false);
        assert_eq!(rate(&m), Some(0.0));
        o.new_session = false;
        for _ in 0..3 {
            m.record_probe("c", "stdio", &o, &healthy(), false);
        }
        assert_eq!(rate(&m), Some(0.75));
        // A probe that found the server down could not use the cached session.
        o.up = false;
        m.record_probe("c", "stdio", &o, &healthy(), false);
        assert_eq!(rate(&m), Some(0.6));
        // The window keeps the last SESSION_REUSE_WINDOW probes.
        o.up = true;
        for _ in 0..SESSION_REUSE_WINDOW {
            m.record_probe("c", "stdio", &o, &healthy(), false);
        }
        assert_eq!(rate(&m), Some(1.0));
    }

    #[test]
    fn no_help_text_ends_in_two_periods() {
        // prometheus-client appends a period to every HELP text.
        let text = Metrics::new().encode_prometheus();
        let doubled: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("# HELP") && l.ends_with(".."))
            .collect();
        assert!(doubled.is_empty(), "{doubled:#?}");
    }

    #[test]
    fn removing_a_server_drops_all_its_series() {
        let m = Metrics::new();
        record_every_family(&m, "gone");
        record_every_family(&m, "kept");
        let before = m.encode_prometheus();
        let families_of = |text: &str, server: &str| -> BTreeSet<String> {
            let needle = format!("server=\"{server}\"");
            text.lines()
                .filter(|l| !l.starts_with('#') && l.contains(&needle))
                .filter_map(|l| l.split('{').next().map(String::from))
                .collect()
        };
        let recorded = families_of(&before, "gone");
        assert!(recorded.len() >= 40, "{recorded:#?}");
        m.remove_server("gone");
        let text = m.encode_prometheus();
        assert!(!text.contains("server=\"gone\""), "{text}");
        assert_eq!(families_of(&text, "kept"), recorded, "{text}");
    }

    /// Records into `m` a probe of `server` with every optional part (HTTP phases, identity,
    /// tools, a failure), its dependencies, its process, store log lines and a security event,
    /// so every family that carries a `server` label has a series of it.
    fn record_every_family(m: &Metrics, server: &str) {
        use crate::health::HealthReason;
        use crate::probe::{CatalogSummary, FailureClass, Stage};
        use crate::process::{ProcessStatus, supervise::SupervisionStatus, usage::Usage};
        m.add_server(server, Arc::new(WireCounters::default()));
        let mut o = outcome_with(vec![
            record("initialize", None),
            record("ping", None),
            record("tools/list", None),
            record("tools/call", Some("echo")),
        ]);
        o.new_session = true;
        o.catalog = Some(CatalogSummary {
            count: 2,
            content_hash: 7,
            names: vec!["echo".into(), "get-sum".into()],
        });
        o.http_phases = Some(crate::mcp::HttpPhases {
            resolve: Duration::from_millis(1),
            connect: Duration::from_millis(2),
            processing: Duration::from_millis(3),
            transfer: Duration::from_millis(4),
            connections_opened: 1,
        });
        o.fail(
            Stage::ToolCall,
            FailureClass::CheckFailed,
            "unexpected text",
        );
        let health = Health {
            status: HealthStatus::Unhealthy,
            reasons: vec!["probe failed".into()],
            codes: vec![HealthReason::ProbeFailed, HealthReason::DependencyDown],
        };
        m.deps.record_server(
            server,
            &[("pg", "postgres", HealthStatus::Unhealthy)],
            &health,
        );
        m.record_probe(server, "http", &o, &health, true);
        m.record_health(server, &health);
        m.process.record(
            server,
            &ProcessStatus {
                found: Some(true),
                usage: Some(Usage {
                    processes: 2,
                    main_pid: 1,
                    cpu_percent: Some(1.5),
                    memory_bytes: 1000,
                    file_descriptors: Some(7),
                    file_descriptors_limit: Some(1024),
                    connections: Some(3),
                    listening_sockets: Some(1),
                    threads: Some(4),
                    start_time_seconds: 1.5e9,
                }),
                resource_score: Some(0.25),
                supervision: Some(SupervisionStatus {
                    restarts: 2,
                    recent_exits: 2,
                    crash_looping: true,
                    crash_loop_reason: None,
                    next_restart_in_ms: None,
                    last_exit: None,
                }),
                ..ProcessStatus::default()
            },
        );
        m.process.remediation(server, "success");
        m.store.log_line(server, crate::store::Level::Error);
        m.security
            .count_event(server, crate::security::EventKind::AuthFailure, 1);
    }

    /// Time of `encode_prometheus` with 1,000 fully recorded servers; run with
    /// `cargo test --release --lib -- --ignored --nocapture encode_time_for_1000_servers`.
    #[test]
    #[ignore = "a timing, not a check; run by hand to compare exposition speed"]
    fn encode_time_for_1000_servers() {
        let m = Metrics::new();
        for i in 0..1000 {
            record_every_family(&m, &format!("server-{i:04}"));
        }
        let bytes = m.encode_prometheus().len();
        let mut took: Vec<Duration> = (0..30)
            .map(|_| {
                let start = std::time::Instant::now();
                std::hint::black_box(m.encode_prometheus());
                start.elapsed()
            })
            .collect();
        took.sort();
        println!(
            "encode_prometheus, 1000 servers, {bytes} bytes: min {:?}, median {:?}, max {:?}",
            took[0],
            took[took.len() / 2],
            took[took.len() - 1]
        );
    }

    #[test]
    fn tool_labels_are_capped_per_server() {
        let mut seen = BTreeSet::new();
        for i in 0..MAX_TOOL_LABELS_PER_SERVER {
            assert_eq!(
                capped_tool_label(&mut seen, &format!("t{i}")),
                format!("t{i}")
            );
        }
        assert_eq!(capped_tool_label(&mut seen, "one-too-many"), "other");
        assert_eq!(capped_tool_label(&mut seen, "t3"), "t3");
        assert_eq!(seen.len(), MAX_TOOL_LABELS_PER_SERVER + 1);
    }

    #[test]
    fn label_values_are_sanitized_and_bounded() {
        assert_eq!(sanitize_label_value("a\nb\"c"), "a_b\"c");
        assert_eq!(sanitize_label_value(""), "unknown");
        let long = "é".repeat(200);
        let cut = sanitize_label_value(&long);
        assert!(cut.len() <= MAX_LABEL_VALUE_BYTES);
        assert!(cut.chars().all(|c| c == 'é'));
    }

    #[test]
    fn info_changes_replace_the_old_series() {
        let m = Metrics::new();
        m.add_server("e", Arc::new(WireCounters::default()));
        let mut o = outcome_with(vec![]);
        m.record_probe("e", "stdio", &o, &healthy(), false);
        if let Some(id) = o.identity.as_mut() {
            id.version = "2.0.1".into();
        }
        m.record_probe("e", "stdio", &o, &healthy(), false);
        let text = m.encode_prometheus();
        assert!(!text.contains("server_version=\"2.0.0\""), "{text}");
        assert!(text.contains("server_version=\"2.0.1\""), "{text}");
    }
}

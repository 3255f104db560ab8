//! The families a probe fills: up, success, duration and time of the last probe, counts of
//! probes, failures and sessions, the session cache hit rate, the JSON-RPC requests and tool
//! calls it made, the tool catalog and the identity the server reported.

use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

use crate::mcp::RequestOutcome;
use crate::metric_registry::MetricsRegistry;
use crate::metric_registry::histogram::BucketHistogram;
use crate::metric_registry::labels::{
    ServerLabels, Source, impl_server_label_set, sanitize_label_value,
};
use crate::metric_registry::per_server::ServerState;
use crate::metric_registry::server_family::ServerFamily;
use crate::probe::{ProbeOutcome, ServerIdentity};

/// Most distinct `tool` label values one server can create; the rest are folded into `other`.
pub const MAX_TOOL_LABELS_PER_SERVER: usize = 100;
/// Probes `mcp_cache_hit_rate` looks back over.
pub const SESSION_REUSE_WINDOW: usize = 20;

/// Buckets of the request and tool histograms (seconds); 5 s is a boundary because the
/// playbook's MCPSlowResponseTime alert fires on a p95 above 5 s.
pub const DURATION_BUCKETS: [f64; 15] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Upper bounds (seconds) of the OpenTelemetry MCP operation duration histograms, the
/// semantic convention's advice (docs/metrics.md#opentelemetry-histograms).
pub const OPERATION_BUCKETS: [f64; 14] = [
    0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];
/// Buckets of `mcp_probe_latency_seconds` (seconds): few, as it is the one probe histogram
/// of the fleet profile too (docs/metrics.md).
pub const PROBE_LATENCY_BUCKETS: [f64; 5] = [0.025, 0.1, 0.5, 1.0, 5.0];
/// Upper bounds (bytes) of the message size histograms: powers of four from 128 B to 8 MiB.
pub const SIZE_BUCKETS: [f64; 9] = [
    128.0, 512.0, 2048.0, 8192.0, 32768.0, 131072.0, 524288.0, 2097152.0, 8388608.0,
];
/// `error_type` of a probe request that failed: the probe keeps no JSON-RPC code, so it is the
/// semantic convention's fallback value.
const PROBE_ERROR_TYPE: &str = "_OTHER";
/// Appended to the HELP of the families a scrape-time reader could misread (prometheus-client
/// ends every HELP text with a period of its own, so none of ours ends with one).
const SCHEDULE_NOTE: &str = "Probes run on the exporter's own schedule (per-server interval), not at scrape time: stdio MCP servers are long-lived sessions, so this departs on purpose from Prometheus' 'writing exporters' guide; see mcp_probe_last_run_timestamp_seconds";

type FloatGauge = Gauge<f64, AtomicU64>;
/// A histogram family over fixed bounds.
pub type HistogramFamily<S> = ServerFamily<S, BucketHistogram, fn() -> BucketHistogram>;

fn duration_histogram() -> BucketHistogram {
    BucketHistogram::new(&DURATION_BUCKETS)
}

fn probe_latency_histogram() -> BucketHistogram {
    BucketHistogram::new(&PROBE_LATENCY_BUCKETS)
}

fn operation_histogram() -> BucketHistogram {
    BucketHistogram::new(&OPERATION_BUCKETS)
}

fn size_histogram() -> BucketHistogram {
    BucketHistogram::new(&SIZE_BUCKETS)
}

/// `{server, method, source}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabels {
    /// The server label.
    pub server: String,
    /// The JSON-RPC method (sanitized).
    pub method: String,
    /// `probe` or `traffic`.
    pub source: &'static str,
}

/// `{server, method, outcome, source}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The server label.
    pub server: String,
    /// The JSON-RPC method (sanitized).
    pub method: String,
    /// How the request ended (docs/metrics.md#label-values).
    pub outcome: &'static str,
    /// `probe` or `traffic`.
    pub source: &'static str,
}

/// `{server, tool, source}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ToolLabels {
    /// The server label.
    pub server: String,
    /// The tool (sanitized, capped).
    pub tool: String,
    /// `probe` or `traffic`.
    pub source: &'static str,
}

/// `{server, tool, outcome, source}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ToolCallLabels {
    /// The server label.
    pub server: String,
    /// The tool (sanitized, capped).
    pub tool: String,
    /// How the call ended: `ok`, `tool_error` (`isError`), `error` (JSON-RPC error or, for a
    /// probe, any failure), `cancelled`, `unanswered`.
    pub outcome: &'static str,
    /// `probe` or `traffic`.
    pub source: &'static str,
}

/// `{server, method, tool, source}` of the message size histograms; `tool` is empty for
/// methods other than `tools/call`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SizeLabels {
    /// The server label.
    pub server: String,
    /// The JSON-RPC method (sanitized).
    pub method: String,
    /// The tool of a `tools/call`, else empty.
    pub tool: String,
    /// `probe` or `traffic`.
    pub source: &'static str,
}

/// The labels of the OpenTelemetry MCP semantic-convention histograms (attribute names with
/// dots as underscores) plus `server`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    /// The server label.
    pub server: String,
    /// `mcp.method.name`.
    pub mcp_method_name: String,
    /// `gen_ai.tool.name`: the tool of a `tools/call`, else empty.
    pub gen_ai_tool_name: String,
    /// `error.type`: empty on success, `tool_error` for an `isError` result, the JSON-RPC error
    /// code, or `_OTHER`.
    pub error_type: String,
    /// `network.transport`: `pipe` (stdio) or `tcp` (Streamable HTTP, SSE).
    pub network_transport: &'static str,
    /// `mcp.protocol.version`: the negotiated revision, empty when unknown.
    pub mcp_protocol_version: String,
}

impl OperationLabels {
    /// `network.transport` of an exporter transport (`stdio`, `http`, `sse`).
    pub fn network_transport(transport: &str) -> &'static str {
        if transport == "stdio" { "pipe" } else { "tcp" }
    }
}

/// The families both the probes and real traffic fill, told apart by their `source` label
/// (docs/metrics.md#sources); cheap to clone, clones share the series.
#[derive(Clone, Debug)]
pub struct RequestFamilies {
    /// `mcp_requests_total`.
    pub requests: ServerFamily<RequestLabels, Counter>,
    /// `mcp_request_duration_seconds`.
    pub request_duration: HistogramFamily<MethodLabels>,
    /// `mcp_tool_execution_duration_seconds`.
    pub tool_duration: HistogramFamily<ToolLabels>,
    /// `mcp_tool_calls_total`.
    pub tool_calls: ServerFamily<ToolCallLabels, Counter>,
    /// `mcp_sessions_started_total`.
    pub session_starts: ServerFamily<SourceLabels, Counter>,
    /// `mcp_request_size_bytes`.
    pub request_size: HistogramFamily<SizeLabels>,
    /// `mcp_response_size_bytes`.
    pub response_size: HistogramFamily<SizeLabels>,
}

/// `{server, source}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    /// The server label.
    pub server: String,
    /// `probe` or `traffic`.
    pub source: &'static str,
}

impl SourceLabels {
    /// The label set of `server` from `source`.
    pub fn new(server: &str, source: Source) -> Self {
        SourceLabels {
            server: server.to_string(),
            source: source.as_str(),
        }
    }
}

impl RequestFamilies {
    fn register(registry: &mut MetricsRegistry) -> Self {
        RequestFamilies {
            request_duration: registry.server_family_with_constructor(
                "mcp_request_duration_seconds",
                "JSON-RPC round trip per MCP method, by source (probe: the exporter's probes; traffic: real clients through mcp-exporter wrap)",
                duration_histogram as fn() -> BucketHistogram,
            ),
            tool_duration: registry.server_family_with_constructor(
                "mcp_tool_execution_duration_seconds",
                "Duration of tools/call per tool and source (tool names are sanitized and capped per server; excess is 'other')",
                duration_histogram as fn() -> BucketHistogram,
            ),
            requests: registry.server_family(
                "mcp_requests",
                "JSON-RPC requests to the server by method, outcome and source (ok: a result came back; error: a JSON-RPC error or, for probes, any failure; tool_error: a tools/call result with isError (traffic); unsupported: the era probe's server/discover refused by a legacy server; cancelled, unanswered: traffic only)",
            ),
            tool_calls: registry.server_family(
                "mcp_tool_calls",
                "tools/call requests per tool, outcome (ok, tool_error, error, cancelled, unanswered) and source",
            ),
            session_starts: registry.server_family(
                "mcp_sessions_started",
                "Sessions established, by source (probe: stdio child spawned or HTTP session initialized by the prober; traffic: an initialize through a wrapper)",
            ),
            request_size: registry.server_family_with_constructor(
                "mcp_request_size_bytes",
                "Size of each JSON-RPC request frame per method and tool (empty for methods other than tools/call), by source",
                size_histogram as fn() -> BucketHistogram,
            ),
            response_size: registry.server_family_with_constructor(
                "mcp_response_size_bytes",
                "Size of each JSON-RPC response frame per method and tool (empty for methods other than tools/call), by source",
                size_histogram as fn() -> BucketHistogram,
            ),
        }
    }
}

/// Registers `mcp_client_operation_duration_seconds` or `mcp_server_operation_duration_seconds`
/// when the registry's switches turn the semantic-convention histograms on.
pub fn semconv_family(
    registry: &mut MetricsRegistry,
    name: &str,
    help: &str,
) -> Option<HistogramFamily<OperationLabels>> {
    registry.switches().semconv_histograms.then(|| {
        registry.server_family_with_constructor(
            name,
            help,
            operation_histogram as fn() -> BucketHistogram,
        )
    })
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    server: String,
    class: &'static str,
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

impl_server_label_set!(
    MethodLabels,
    RequestLabels,
    ToolLabels,
    ToolCallLabels,
    SizeLabels,
    SourceLabels,
    OperationLabels,
    FailureLabels,
    InfoLabels
);

/// What the probe families remember of a server between probes.
#[derive(Default)]
struct ProbeHistory {
    /// The last probes, newest last: did each reuse the cached session?
    session_reuse: VecDeque<bool>,
    /// `tool` label values created (capped at `MAX_TOOL_LABELS_PER_SERVER` plus `other`).
    tools: BTreeSet<String>,
    /// The server's `method_histograms`, when its entry sets it (else the profile decides).
    method_histograms: Option<bool>,
    /// The series the server's probes wrote so far.
    series: ProbeSeries,
}

/// Handles to the series a server's probes write, each resolved (looked up by its label set,
/// created if new) the first time a probe writes it and kept in the server's
/// [`ProbeHistory`], so that recording a probe sets values without a lookup per series. A
/// series is still created only when a probe first writes it, so the exposition is the one the
/// lookups gave.
///
/// The per-server tracker forgets the history with the server's series: the history is
/// registered after every family these handles point into, so a server that leaves loses its
/// series first and then its handles, and a server added again resolves new ones. Nothing
/// else removes a series these handles hold (the identity's series, replaced when the server
/// reports another identity, is not held).
#[derive(Default)]
struct ProbeSeries {
    /// The series every probe writes.
    every_probe: Option<EveryProbeSeries>,
    /// `mcp_probe_latency_seconds`, `result="success"` and `result="failure"`.
    latency: [Option<BucketHistogram>; 2],
    /// `mcp_sessions_started_total{source="probe"}`.
    session_starts: Option<Counter>,
    /// `mcp_server_tools`.
    tools: Option<Gauge>,
    /// `mcp_tool_catalog_changes_total`.
    catalog_changes: Option<Counter>,
    /// `mcp_probe_failures_total` by class.
    failures: Vec<(&'static str, Counter)>,
    /// The request series by method (the sanitized label value).
    methods: Vec<MethodSeries>,
    /// The identity and transport `mcp_server_info` holds now.
    info: Option<(ServerIdentity, String)>,
}

/// The series every probe of a server writes.
struct EveryProbeSeries {
    up: Gauge,
    success: Gauge,
    duration: FloatGauge,
    last_run: FloatGauge,
    probes: Counter,
    cache_hit_rate: FloatGauge,
}

/// The series of one JSON-RPC method a server's probes sent.
struct MethodSeries {
    /// The `method` label value.
    method: String,
    /// `mcp_requests_total{source="probe"}` by outcome.
    requests: Vec<(&'static str, Counter)>,
    /// `mcp_request_duration_seconds{source="probe"}`, when the server's probes fill it.
    duration: Option<BucketHistogram>,
}

impl MethodSeries {
    /// No series resolved yet for `method` (a sanitized label value).
    fn new(method: String) -> Self {
        MethodSeries {
            method,
            requests: Vec::new(),
            duration: None,
        }
    }
}

/// The series held under `key` in `held`, resolved by `resolve` and kept there the first time.
fn held_or_resolve<K: PartialEq, T>(
    held: &mut Vec<(K, T)>,
    key: K,
    resolve: impl FnOnce() -> T,
) -> &T {
    let index = match held.iter().position(|(known, _)| *known == key) {
        Some(index) => index,
        None => {
            held.push((key, resolve()));
            held.len() - 1
        }
    };
    &held[index].1
}

/// Most methods a server's [`ProbeSeries`] keeps handles for; a probe's methods are a handful,
/// so the cap only bounds what an unexpected method name could grow (past it, a request's
/// series are looked up each time, as before handles).
const MAX_METHOD_HANDLES: usize = 16;

/// Labels of `mcp_probe_latency_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProbeResultLabels {
    server: String,
    /// `success` or `failure`.
    result: &'static str,
}
impl_server_label_set!(ProbeResultLabels);

/// Handles to the probe families.
pub struct ProbeMetrics {
    server_up: ServerFamily<ServerLabels, Gauge>,
    server_info: ServerFamily<InfoLabels, Gauge>,
    shared: RequestFamilies,
    client_operations: Option<HistogramFamily<OperationLabels>>,
    probe_success: ServerFamily<ServerLabels, Gauge>,
    probe_duration: ServerFamily<ServerLabels, FloatGauge>,
    probe_latency: HistogramFamily<ProbeResultLabels>,
    probe_last_run: ServerFamily<ServerLabels, FloatGauge>,
    probes: ServerFamily<ServerLabels, Counter>,
    probe_failures: ServerFamily<FailureLabels, Counter>,
    tools: ServerFamily<ServerLabels, Gauge>,
    catalog_changes: ServerFamily<ServerLabels, Counter>,
    cache_hit_rate: ServerFamily<ServerLabels, FloatGauge>,
    history: ServerState<ProbeHistory>,
    /// Whether probes fill the per-method and per-tool histograms (docs/metrics.md#profiles),
    /// unless a server's entry says otherwise ([`ProbeMetrics::set_method_histograms`]).
    method_histograms: bool,
}

impl ProbeMetrics {
    /// Registers the probe families in `registry`.
    pub fn register(registry: &mut MetricsRegistry) -> Self {
        ProbeMetrics {
            server_up: registry.server_family(
                "mcp_server_up",
                format!("1 when the last probe completed the MCP handshake (or ping) in time, else 0. {SCHEDULE_NOTE}"),
            ),
            server_info: registry.server_family(
                "mcp_server_info",
                "Identity the server reported in its handshake (serverInfo name and version, negotiated protocol version and era) and the transport; value is always 1",
            ),
            shared: RequestFamilies::register(registry),
            // Registered whenever the semantic-convention histograms are on: a server's
            // `method_histograms = true` fills it in the fleet profile too.
            client_operations: semconv_family(
                registry,
                "mcp_client_operation_duration_seconds",
                "OpenTelemetry MCP semantic convention: duration of each MCP request the prober sent, as a client sees it (mcp.method.name, gen_ai.tool.name, error.type, network.transport, mcp.protocol.version)",
            ),
            probe_success: registry.server_family(
                "mcp_probe_success",
                "1 when every stage of the last probe passed (blackbox_exporter's probe_success), else 0",
            ),
            probe_duration: registry.server_family(
                "mcp_probe_duration_seconds",
                "Duration of the last probe, all stages",
            ),
            probe_latency: registry.server_family_with_constructor(
                "mcp_probe_latency_seconds",
                "Duration of each probe, all stages, by result (success or failure); its exemplars carry the probe's trace id when traces are on (docs/tracing.md)",
                probe_latency_histogram as fn() -> BucketHistogram,
            ),
            probe_last_run: registry.server_family(
                "mcp_probe_last_run_timestamp_seconds",
                format!("Unix time the last probe of the server started. {SCHEDULE_NOTE}"),
            ),
            probes: registry.server_family("mcp_probes", "Probes run"),
            probe_failures: registry.server_family(
                "mcp_probe_failures",
                "Failed probes by class: down, auth_required, misconfigured, protocol_error, check_failed",
            ),
            tools: registry.server_family(
                "mcp_server_tools",
                "Number of tools the server listed in the last tools/list",
            ),
            catalog_changes: registry.server_family(
                "mcp_tool_catalog_changes",
                "Times the content hash of the tool catalog changed between probes (schema drift)",
            ),
            cache_hit_rate: registry.server_family(
                "mcp_cache_hit_rate",
                format!("Session cache: share of the last {SESSION_REUSE_WINDOW} probes served by the prober's cached session (kept stdio child, HTTP session, remembered modern-era discovery) rather than a new handshake; low means the server loses sessions (restarts, expiry, a load balancer without affinity). PromQL equivalent: 1 - rate(mcp_sessions_started_total[5m]) / rate(mcp_probes_total[5m])"),
            ),
            history: registry.server_state(),
            method_histograms: registry.switches().probe_method_histograms,
        }
    }

    /// Makes `server`'s probes fill the per-method and per-tool histograms or not, whatever the
    /// profile says (its entry's `method_histograms`); `None` follows the profile.
    pub fn set_method_histograms(&self, server: &str, method_histograms: Option<bool>) {
        self.history.with(server, |history| {
            history.method_histograms = method_histograms
        });
    }

    /// The families real traffic fills too (src/traffic/metrics.rs).
    pub fn shared(&self) -> RequestFamilies {
        self.shared.clone()
    }

    /// Records one probe of `server` over `transport`; `catalog_changed` when its tool catalog
    /// differs from the previous probe's. The server's series are written through the handles
    /// its history keeps (`ProbeSeries`).
    pub fn record(
        &self,
        server: &str,
        transport: &str,
        outcome: &ProbeOutcome,
        catalog_changed: bool,
    ) {
        self.history.with(server, |history| {
            let hit_rate = history.session_reused(outcome.up && !outcome.new_session);
            let histograms = history.method_histograms.unwrap_or(self.method_histograms);
            let series = &mut history.series;
            let every = series
                .every_probe
                .get_or_insert_with(|| self.every_probe_series(server));
            every.up.set(i64::from(outcome.up));
            every.success.set(i64::from(outcome.success));
            every.duration.set(outcome.duration.as_secs_f64());
            let result = if outcome.success {
                "success"
            } else {
                "failure"
            };
            series.latency[usize::from(!outcome.success)]
                .get_or_insert_with(|| {
                    self.probe_latency.get_or_create(&ProbeResultLabels {
                        server: server.to_string(),
                        result,
                    })
                })
                .observe_in_trace(outcome.duration.as_secs_f64(), outcome.trace_id.as_deref());
            every
                .last_run
                .set(crate::wall_clock::unix_seconds(outcome.started_at));
            every.probes.inc();
            if outcome.new_session {
                series
                    .session_starts
                    .get_or_insert_with(|| {
                        self.shared
                            .session_starts
                            .get_or_create(&SourceLabels::new(server, Source::Probe))
                    })
                    .inc();
            }
            if let Some(catalog) = &outcome.catalog {
                series
                    .tools
                    .get_or_insert_with(|| self.tools.get_or_create(&ServerLabels::new(server)))
                    .set(catalog.count as i64);
            }
            if catalog_changed {
                series
                    .catalog_changes
                    .get_or_insert_with(|| {
                        self.catalog_changes
                            .get_or_create(&ServerLabels::new(server))
                    })
                    .inc();
            }
            if let Some(failure) = &outcome.failure {
                let class = failure.class.as_str();
                held_or_resolve(&mut series.failures, class, || {
                    self.probe_failures.get_or_create(&FailureLabels {
                        server: server.to_string(),
                        class,
                    })
                })
                .inc();
            }
            every.cache_hit_rate.set(hit_rate);
            self.record_requests(server, transport, outcome, history, histograms);
            if let Some(identity) = &outcome.identity {
                self.record_identity(server, transport, identity, &mut history.series.info);
            }
        });
    }

    /// Resolves the series every probe of `server` writes.
    fn every_probe_series(&self, server: &str) -> EveryProbeSeries {
        let labels = ServerLabels::new(server);
        EveryProbeSeries {
            up: self.server_up.get_or_create(&labels),
            success: self.probe_success.get_or_create(&labels),
            duration: self.probe_duration.get_or_create(&labels),
            last_run: self.probe_last_run.get_or_create(&labels),
            probes: self.probes.get_or_create(&labels),
            cache_hit_rate: self.cache_hit_rate.get_or_create(&labels),
        }
    }

    /// Replaces `mcp_server_info` of `server` when its identity or transport changed since
    /// `held` (what the series holds now).
    fn record_identity(
        &self,
        server: &str,
        transport: &str,
        identity: &ServerIdentity,
        held: &mut Option<(ServerIdentity, String)>,
    ) {
        if held.as_ref().is_some_and(|(known, known_transport)| {
            known == identity && known_transport == transport
        }) {
            return;
        }
        let info = InfoLabels {
            server: server.to_string(),
            server_name: sanitize_label_value(&identity.name),
            server_version: sanitize_label_value(&identity.version),
            protocol_version: sanitize_label_value(&identity.protocol_version),
            era: identity.era.to_string(),
            transport: transport.to_string(),
        };
        if !self.server_info.contains(&info) {
            self.server_info.retain_server(server, |old| *old == info);
            self.server_info.get_or_create(&info).set(1);
        }
        *held = Some((identity.clone(), transport.to_string()));
    }

    fn record_requests(
        &self,
        server: &str,
        transport: &str,
        outcome: &ProbeOutcome,
        history: &mut ProbeHistory,
        method_histograms: bool,
    ) {
        let source = Source::Probe.as_str();
        let protocol_version = outcome
            .identity
            .as_ref()
            .map(|identity| sanitize_label_value(&identity.protocol_version))
            .unwrap_or_default();
        for record in &outcome.requests {
            let took = record.duration.as_secs_f64();
            let request_outcome = record.outcome.as_str();
            let methods = &mut history.series.methods;
            // A method held already is found by its name as sent (a name that sanitizing
            // changes is never held under it, and is sanitized to be found).
            let index = methods
                .iter()
                .position(|m| m.method == record.method)
                .or_else(|| {
                    let method = sanitize_label_value(&record.method);
                    methods.iter().position(|m| m.method == method).or_else(|| {
                        (methods.len() < MAX_METHOD_HANDLES).then(|| {
                            methods.push(MethodSeries::new(method));
                            methods.len() - 1
                        })
                    })
                });
            // Past the cap, the method's series are resolved for this request only.
            let mut unheld;
            let held = match index {
                Some(index) => &mut methods[index],
                None => {
                    unheld = MethodSeries::new(sanitize_label_value(&record.method));
                    &mut unheld
                }
            };
            held_or_resolve(&mut held.requests, request_outcome, || {
                self.shared.requests.get_or_create(&RequestLabels {
                    server: server.to_string(),
                    method: held.method.clone(),
                    outcome: request_outcome,
                    source,
                })
            })
            .inc();
            if method_histograms {
                let method = &held.method;
                held.duration
                    .get_or_insert_with(|| {
                        self.shared.request_duration.get_or_create(&MethodLabels {
                            server: server.to_string(),
                            method: method.clone(),
                            source,
                        })
                    })
                    .observe_in_trace(took, outcome.trace_id.as_deref());
            }
            let method = held.method.clone();
            let tool = record
                .tool
                .as_deref()
                .map(|tool| capped_tool_label(&mut history.tools, tool));
            if let Some(tool) = &tool {
                if method_histograms {
                    self.shared
                        .tool_duration
                        .get_or_create(&ToolLabels {
                            server: server.to_string(),
                            tool: tool.clone(),
                            source,
                        })
                        .observe(took);
                }
                self.shared
                    .tool_calls
                    .get_or_create(&ToolCallLabels {
                        server: server.to_string(),
                        tool: tool.clone(),
                        outcome: match record.outcome {
                            RequestOutcome::Ok => "ok",
                            _ => "error",
                        },
                        source,
                    })
                    .inc();
            }
            if let Some(family) = self
                .client_operations
                .as_ref()
                .filter(|_| method_histograms)
            {
                family
                    .get_or_create(&OperationLabels {
                        server: server.to_string(),
                        mcp_method_name: method,
                        gen_ai_tool_name: tool.unwrap_or_default(),
                        error_type: match record.outcome {
                            RequestOutcome::Ok => String::new(),
                            _ => PROBE_ERROR_TYPE.to_string(),
                        },
                        network_transport: OperationLabels::network_transport(transport),
                        mcp_protocol_version: protocol_version.clone(),
                    })
                    .observe(took);
            }
        }
    }
}

impl ProbeHistory {
    /// Remembers whether the latest probe reused the cached session; returns the share of the
    /// last `SESSION_REUSE_WINDOW` probes that did.
    fn session_reused(&mut self, reused: bool) -> f64 {
        if self.session_reuse.len() >= SESSION_REUSE_WINDOW {
            self.session_reuse.pop_front();
        }
        self.session_reuse.push_back(reused);
        let hits = self.session_reuse.iter().filter(|hit| **hit).count();
        hits as f64 / self.session_reuse.len() as f64
    }
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

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::mcp::{Era, RequestOutcome, RequestRecord};
    use crate::probe::ServerIdentity;

    fn outcome() -> ProbeOutcome {
        let mut o = ProbeOutcome::started(SystemTime::now());
        o.up = true;
        o.success = true;
        o.requests = vec![RequestRecord {
            tool: Some("echo".into()),
            duration: Duration::from_millis(3),
            ..request_ok("tools/call")
        }];
        o.identity = Some(ServerIdentity {
            name: "mcp-servers/everything".into(),
            version: "2.0.0".into(),
            protocol_version: "2025-11-25".into(),
            era: Era::Legacy,
        });
        o
    }

    /// A successful request of `method`, no tool, 1 ms.
    fn request_ok(method: &str) -> RequestRecord {
        RequestRecord {
            method: method.into(),
            tool: None,
            duration: Duration::from_millis(1),
            outcome: RequestOutcome::Ok,
        }
    }

    #[test]
    fn cache_hit_rate_is_the_share_of_recent_probes_on_the_cached_session() {
        let mut registry = MetricsRegistry::default();
        let m = ProbeMetrics::register(&mut registry);
        let rate = |registry: &MetricsRegistry| {
            registry
                .encode()
                .lines()
                .find_map(|l| l.strip_prefix("mcp_cache_hit_rate{server=\"c\"} "))
                .and_then(|v| v.parse::<f64>().ok())
        };
        let mut o = outcome();
        o.new_session = true;
        m.record("c", "stdio", &o, false);
        assert_eq!(rate(&registry), Some(0.0));
        o.new_session = false;
        for _ in 0..3 {
            m.record("c", "stdio", &o, false);
        }
        assert_eq!(rate(&registry), Some(0.75));
        // A probe that found the server down could not use the cached session.
        o.up = false;
        m.record("c", "stdio", &o, false);
        assert_eq!(rate(&registry), Some(0.6));
        // The window keeps the last SESSION_REUSE_WINDOW probes.
        o.up = true;
        for _ in 0..SESSION_REUSE_WINDOW {
            m.record("c", "stdio", &o, false);
        }
        assert_eq!(rate(&registry), Some(1.0));
        // A server removed and added again starts a new window.
        registry.remove_server("c");
        o.new_session = true;
        m.record("c", "stdio", &o, false);
        assert_eq!(rate(&registry), Some(0.0));
    }

    #[test]
    fn info_changes_replace_the_old_series() {
        let mut registry = MetricsRegistry::default();
        let m = ProbeMetrics::register(&mut registry);
        let mut o = outcome();
        m.record("e", "stdio", &o, false);
        if let Some(id) = o.identity.as_mut() {
            id.version = "2.0.1".into();
        }
        m.record("e", "stdio", &o, false);
        let text = registry.encode();
        assert!(!text.contains("server_version=\"2.0.0\""), "{text}");
        assert!(text.contains("server_version=\"2.0.1\""), "{text}");
    }

    /// The lines of `server` in `text`.
    fn lines_of(text: &str, server: &str) -> BTreeSet<String> {
        let needle = format!("server=\"{server}\"");
        text.lines()
            .filter(|l| l.contains(&needle))
            .map(String::from)
            .collect()
    }

    #[test]
    fn a_removed_servers_series_go_and_come_back_new_when_it_is_added_again() {
        let mut registry = MetricsRegistry::default();
        let m = ProbeMetrics::register(&mut registry);
        for _ in 0..3 {
            m.record("gone", "http", &outcome(), false);
            m.record("kept", "http", &outcome(), false);
        }
        let kept = lines_of(&registry.encode(), "kept");
        assert!(
            kept.contains("mcp_probes_total{server=\"kept\"} 3"),
            "{kept:?}"
        );
        registry.remove_server("gone");
        let text = registry.encode();
        assert!(lines_of(&text, "gone").is_empty(), "{text}");
        assert_eq!(lines_of(&text, "kept"), kept);
        // Added again: new series from zero, not the handles of the removed ones.
        m.record("gone", "http", &outcome(), false);
        let text = registry.encode();
        let again = lines_of(&text, "gone");
        assert!(
            again.contains("mcp_probes_total{server=\"gone\"} 1"),
            "{again:?}"
        );
        assert!(
            again.contains("mcp_requests_total{server=\"gone\",method=\"tools/call\",outcome=\"ok\",source=\"probe\"} 1"),
            "{again:?}"
        );
        assert_eq!(
            text,
            registry.encode_uncached(crate::metric_registry::text_format::Format::Prometheus)
        );
    }

    #[test]
    fn new_label_values_make_new_series_beside_the_held_ones() {
        let mut registry = MetricsRegistry::default();
        let m = ProbeMetrics::register(&mut registry);
        let mut o = outcome();
        m.record("s", "http", &o, false);
        o.success = false;
        o.failure = Some(crate::probe::ProbeFailure {
            class: crate::probe::FailureClass::Down,
            stage: crate::probe::Stage::Connect,
            reason: "refused".into(),
        });
        o.requests[0].outcome = RequestOutcome::Error;
        o.requests.push(request_ok("ping"));
        m.record("s", "http", &o, false);
        m.record("s", "http", &o, false);
        let text = registry.encode();
        for line in [
            "mcp_probe_latency_seconds_count{server=\"s\",result=\"success\"} 1",
            "mcp_probe_latency_seconds_count{server=\"s\",result=\"failure\"} 2",
            "mcp_probe_failures_total{server=\"s\",class=\"down\"} 2",
            "mcp_requests_total{server=\"s\",method=\"tools/call\",outcome=\"ok\",source=\"probe\"} 1",
            "mcp_requests_total{server=\"s\",method=\"tools/call\",outcome=\"error\",source=\"probe\"} 2",
            "mcp_requests_total{server=\"s\",method=\"ping\",outcome=\"ok\",source=\"probe\"} 2",
            "mcp_probes_total{server=\"s\"} 3",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        // A method name that sanitizing changes is counted under its sanitized name.
        o.requests = vec![request_ok("odd\nname")];
        m.record("s", "http", &o, false);
        m.record("s", "http", &o, false);
        assert!(registry.encode().contains(
            "mcp_requests_total{server=\"s\",method=\"odd_name\",outcome=\"ok\",source=\"probe\"} 2"
        ));
        assert_eq!(
            registry.encode(),
            registry.encode_uncached(crate::metric_registry::text_format::Format::Prometheus)
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
}

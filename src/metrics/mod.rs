//! Every metric family the exporter emits, gathered into the registry `/metrics` encodes.
//!
//! Each family is registered by the component that records it, beside that component's code
//! (`fn register(registry: &mut MetricsRegistry) -> Self`): probe families in
//! `src/probe/metrics.rs`, health in `health.rs`, live wire counters in
//! `src/mcp/wire_metrics.rs`, HTTP phases in `src/mcp/http_phase_metrics.rs`, dependencies in
//! `src/deps/metrics.rs`, processes in `src/process/metrics.rs`, the history store and log lines
//! in `src/store/metrics.rs` (its integrity check in `src/store/integrity.rs`), security counters
//! in `src/security/metrics.rs`, certificates in `src/tls/metrics.rs`, credential expiry in
//! `src/credentials/metrics.rs` (OAuth in `src/auth/metrics.rs`), maintenance windows in `src/maintenance/metrics.rs`, real traffic
//! in `src/traffic/metrics.rs` (into the probe families too, with `source="traffic"`). Families with a
//! `server` label are created through the per-server tracker of `src/metric_registry/`, so
//! removing a server removes all of its series. Names, types and labels are listed in
//! docs/metrics.md.

pub mod build_info;
pub mod health;
pub mod reload;
mod sink;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::auth::metrics::AuthMetrics;
use crate::credentials::metrics::CredentialMetrics;
use crate::deps::metrics::DepMetrics;
use crate::health::Health;
use crate::maintenance::metrics::MaintenanceMetrics;
use crate::mcp::WireCounters;
use crate::mcp::http_phase_metrics::HttpPhaseMetrics;
use crate::mcp::wire_metrics::WireMetrics;
use crate::metric_registry::{FamilySwitches, MetricsRegistry};
use crate::probe::ProbeOutcome;
use crate::probe::catalog_metrics::CatalogMetrics;
use crate::probe::metrics::ProbeMetrics;
use crate::process::metrics::ProcessMetrics;
use crate::security::metrics::SecurityMetrics;
use crate::store::integrity::IntegrityMetrics;
use crate::store::metrics::StoreMetrics;
use crate::tls::metrics::TlsMetrics;
use crate::traffic::metrics::TrafficMetrics;

use self::build_info::BuildInfo;
use self::health::HealthMetrics;

/// The registry and a handle to every component's families; cheap to share behind an `Arc`.
pub struct Metrics {
    registry: MetricsRegistry,
    /// Size of the last `/metrics` body, to size the next one's buffer.
    last_exposition_bytes: AtomicUsize,
    probe: ProbeMetrics,
    health: HealthMetrics,
    wire: WireMetrics,
    /// Dependency families.
    pub deps: DepMetrics,
    /// Security events and refused requests.
    pub security: SecurityMetrics,
    /// Process families.
    pub process: ProcessMetrics,
    /// HTTP phase timings of the HTTP transports.
    pub http: HttpPhaseMetrics,
    /// History store and log-line families.
    pub store: Arc<StoreMetrics>,
    /// The exporter's configuration reloads.
    pub reload: self::reload::ReloadMetrics,
    /// Certificate expiry and TLS version of HTTPS servers and dependencies.
    pub tls: TlsMetrics,
    /// Expiry of the credentials probes present.
    pub credentials: CredentialMetrics,
    /// The prober's OAuth token requests and metadata fetches (src/auth/metrics.rs).
    pub auth: AuthMetrics,
    /// Maintenance windows and the Alertmanager requests they make (src/maintenance/).
    pub maintenance: MaintenanceMetrics,
    /// The history store's integrity check (src/store/integrity.rs).
    pub integrity: IntegrityMetrics,
    /// Real traffic reported by wrappers: the receiver's consumer (src/traffic/metrics.rs).
    pub traffic: Arc<TrafficMetrics>,
    /// The discovery directory's files and servers.
    pub discovery: crate::discovery::metrics::DiscoveryMetrics,
    /// Tool definition changes, unapproved tools and catalog context cost.
    pub catalog: CatalogMetrics,
    /// The trace export's dropped spans (src/otel/metrics.rs).
    pub otel: crate::otel::metrics::OtelMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Builds the registry with every family (the full profile).
    pub fn new() -> Self {
        Metrics::with_switches(FamilySwitches::default())
    }

    /// Builds the registry: each component registers its families, the optional ones as
    /// `switches` say.
    pub fn with_switches(switches: FamilySwitches) -> Self {
        let mut registry = MetricsRegistry::with_switches(switches);
        let probe = ProbeMetrics::register(&mut registry);
        let health = HealthMetrics::register(&mut registry);
        BuildInfo::register(&mut registry);
        let security = SecurityMetrics::register(&mut registry);
        let wire = WireMetrics::register(&mut registry);
        let deps = DepMetrics::register(&mut registry);
        let process = ProcessMetrics::register(&mut registry);
        let http = HttpPhaseMetrics::register(&mut registry);
        let store = Arc::new(StoreMetrics::register(&mut registry));
        let reload = self::reload::ReloadMetrics::register(&mut registry);
        let tls = TlsMetrics::register(&mut registry);
        let credentials = CredentialMetrics::register(&mut registry);
        let auth = AuthMetrics::register(&mut registry);
        let maintenance = MaintenanceMetrics::register(&mut registry);
        let integrity = IntegrityMetrics::register(&mut registry);
        let traffic = TrafficMetrics::register(&mut registry, probe.shared(), &wire);
        let discovery = crate::discovery::metrics::DiscoveryMetrics::register(&mut registry);
        let catalog = CatalogMetrics::register(&mut registry);
        let otel = crate::otel::metrics::OtelMetrics::register(&mut registry);
        Metrics {
            registry,
            last_exposition_bytes: AtomicUsize::new(0),
            probe,
            health,
            wire,
            deps,
            security,
            process,
            http,
            store,
            reload,
            tls,
            credentials,
            auth,
            maintenance,
            integrity,
            traffic,
            discovery,
            catalog,
            otel,
        }
    }

    /// Encodes in the Prometheus text format 0.0.4.
    pub fn encode_prometheus(&self) -> String {
        let mut out = self.output_buffer();
        self.registry.encode_prometheus(&mut out);
        self.remember_size(&out);
        out
    }

    /// Encodes in the OpenMetrics 1.0 text format.
    pub fn encode_openmetrics(&self) -> String {
        let mut out = self.output_buffer();
        self.registry.encode_openmetrics(&mut out);
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
        self.health.add_server(server);
        self.wire.add_server(server, counters);
    }

    /// Removes every series of a server that left the configuration, through the per-server
    /// tracker (which knows every family with a `server` label).
    pub fn remove_server(&self, server: &str) {
        self.registry.remove_server(server);
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
        self.probe
            .record(server, transport, outcome, catalog_changed);
        self.tls.record_server(server, outcome.tls.as_ref());
        self.credentials.record(server, &outcome.credentials);
        self.auth.record(server, &outcome.credentials.auth);
        self.health.record(server, health);
        self.wire.record_requests(server, outcome.requests.len());
    }

    /// Publishes a server's health without a probe (re-assessment after a dependency changed).
    pub fn record_health(&self, server: &str, health: &Health) {
        self.health.record(server, health);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::Duration;

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
            "mcp_request_duration_seconds_count{server=\"e\",method=\"ping\",source=\"probe\"} 1",
            "mcp_tool_execution_duration_seconds_count{server=\"e\",tool=\"echo\",source=\"probe\"} 1",
            "mcp_requests_total{server=\"e\",method=\"ping\",outcome=\"ok\",source=\"probe\"} 1",
            "mcp_tool_calls_total{server=\"e\",tool=\"echo\",outcome=\"ok\",source=\"probe\"} 1",
            "mcp_client_operation_duration_seconds_count{server=\"e\",mcp_method_name=\"tools/call\",gen_ai_tool_name=\"echo\",error_type=\"\",network_transport=\"pipe\",mcp_protocol_version=\"2025-11-25\"} 1",
            "mcp_messages_processed_total{server=\"e\",direction=\"sent\",source=\"probe\"} 0",
            "mcp_concurrent_operations{server=\"e\",source=\"probe\"} 0",
            "mcp_server_info{server=\"e\",server_name=\"mcp-servers/everything\",server_version=\"2.0.0\",protocol_version=\"2025-11-25\",era=\"legacy\",transport=\"stdio\"} 1",
            "# TYPE mcp_exporter_build_info gauge",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
        assert!(m.encode_openmetrics().ends_with("# EOF\n"));
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
        // Every family registered with a `server` label has a series of the server, so a family
        // added later without a line in record_every_family fails here.
        let samples_of = |family: &str| {
            ["", "_total", "_bucket", "_sum", "_count"].map(|suffix| format!("{family}{suffix}"))
        };
        let unrecorded: Vec<&String> = m
            .registry
            .server_family_names()
            .iter()
            .filter(|family| !samples_of(family).iter().any(|s| recorded.contains(s)))
            .collect();
        assert!(unrecorded.is_empty(), "no series of: {unrecorded:?}");
        // The collector's families (read at scrape time) have a series of every added server.
        for family in [
            "mcp_messages_processed_total",
            "mcp_concurrent_operations",
            "mcp_throughput_requests_per_second",
            "mcp_protocol_violations_total",
        ] {
            assert!(recorded.contains(family), "no series of {family}");
        }
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
            definitions: Default::default(),
        });
        o.http_phases = Some(crate::mcp::HttpPhases {
            resolve: Duration::from_millis(1),
            connect: Duration::from_millis(2),
            processing: Duration::from_millis(3),
            transfer: Duration::from_millis(4),
            connections_opened: 1,
        });
        o.tls = Some(crate::tls::TlsObservation {
            cert_not_after: 1_900_000_000,
            leaf_not_after: 1_900_000_000,
            certificates: 2,
            version: "TLS 1.3",
        });
        o.credentials.presented = true;
        o.credentials.expiries = vec![crate::credentials::CredentialExpiry {
            kind: crate::credentials::CredentialKind::Bearer,
            expires_at: 1_900_000_000,
        }];
        o.credentials.auth = crate::auth::AuthReport {
            token_requests: vec![crate::auth::RefreshOutcome::Ok],
            metadata: vec![(crate::auth::MetadataDocument::ProtectedResource, true)],
            ..Default::default()
        };
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
        m.deps
            .record_server(server, &[("pg", "postgres", HealthStatus::Unhealthy)]);
        m.record_probe(server, "http", &o, &health, true);
        m.record_health(server, &health);
        // A prompt too, so the kind-labelled catalog families have series.
        let catalog = crate::probe::catalog::CatalogDefinitions {
            prompts: Some(crate::probe::catalog::definitions_by_name(&[
                serde_json::json!({"name": "greet"}),
            ])),
            ..crate::probe::catalog::CatalogDefinitions::of(&[
                serde_json::json!({"name": "echo", "inputSchema": {"type": "object"}}),
            ])
        };
        m.catalog.record(
            server,
            crate::probe::catalog_metrics::CatalogObservation {
                definitions: &catalog,
                cost: &crate::probe::catalog::ContextCost::of(&catalog),
                changes: &[],
                lock: Some(&Default::default()),
                token_budget: 10_000,
            },
        );
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
        m.maintenance.set(server, true);
        record_traffic(m, server);
    }

    /// Reports through `m`'s traffic consumer one wrapper's session of `server`: a tool call
    /// and a JSON-RPC error, with sizes and semantic-convention durations.
    fn record_traffic(m: &Metrics, server: &str) {
        use crate::traffic::totals::{OPERATION_BUCKETS, SIZE_BUCKETS};
        use crate::traffic::{
            Peer, RequestKey, RequestStats, TrafficConsumer, TrafficState, TrafficTotals,
            WrapperInfo,
        };
        let wrapper = WrapperInfo {
            connection: 1,
            name: "w".into(),
            server: Some(server.into()),
            command: "node".into(),
            args: vec![],
            wrapper_version: "0".into(),
            instance: "1".into(),
            peer_uid: None,
            peer_pid: None,
        };
        m.traffic.connected(&wrapper).expect("admitted");
        let mut delta = TrafficTotals::default();
        let mut stats = RequestStats {
            started: 2,
            ok: 1,
            errors: std::collections::BTreeMap::from([("-32602".to_string(), 1)]),
            request_bytes: 100,
            ..RequestStats::default()
        };
        stats.duration.observe(0.02);
        stats.duration.observe(0.04);
        stats.request_sizes.observe(&SIZE_BUCKETS, 50.0);
        stats.request_sizes.observe(&SIZE_BUCKETS, 50.0);
        stats.response_sizes.observe(&SIZE_BUCKETS, 70.0);
        for error_type in ["", "-32602"] {
            stats
                .operations
                .entry(error_type.into())
                .or_default()
                .observe(&OPERATION_BUCKETS, 0.03);
        }
        delta.requests.insert(
            RequestKey {
                origin: Peer::Client,
                method: "tools/call".into(),
                tool: Some("echo".into()),
            },
            stats,
        );
        delta.sessions.started = 1;
        delta.client_to_server.messages = 3;
        m.traffic.report(
            &wrapper,
            &delta,
            &TrafficState {
                session_active: true,
                protocol_version: Some("2025-06-18".into()),
                ..TrafficState::default()
            },
        );
    }

    #[test]
    fn traffic_reports_fill_the_shared_families_with_their_source() {
        let m = Metrics::new();
        record_traffic(&m, "t");
        let text = m.encode_prometheus();
        for needle in [
            "mcp_requests_total{server=\"t\",method=\"tools/call\",outcome=\"ok\",source=\"traffic\"} 1",
            "mcp_requests_total{server=\"t\",method=\"tools/call\",outcome=\"error\",source=\"traffic\"} 1",
            "mcp_tool_calls_total{server=\"t\",tool=\"echo\",outcome=\"error\",source=\"traffic\"} 1",
            "mcp_request_duration_seconds_count{server=\"t\",method=\"tools/call\",source=\"traffic\"} 2",
            "mcp_tool_execution_duration_seconds_bucket{server=\"t\",tool=\"echo\",source=\"traffic\",le=\"0.025\"} 1",
            "mcp_request_size_bytes_sum{server=\"t\",method=\"tools/call\",tool=\"echo\",source=\"traffic\"} 100",
            "mcp_response_size_bytes_count{server=\"t\",method=\"tools/call\",tool=\"echo\",source=\"traffic\"} 1",
            "mcp_server_operation_duration_seconds_count{server=\"t\",mcp_method_name=\"tools/call\",gen_ai_tool_name=\"echo\",error_type=\"-32602\",network_transport=\"pipe\",mcp_protocol_version=\"2025-06-18\"} 1",
            "mcp_sessions_started_total{server=\"t\",source=\"traffic\"} 1",
            "mcp_messages_processed_total{server=\"t\",direction=\"sent\",source=\"traffic\"} 3",
            "mcp_concurrent_operations{server=\"t\",source=\"traffic\"} 0",
            "mcp_traffic_wrappers_connected{server=\"t\"} 1",
            "mcp_traffic_sessions_active{server=\"t\"} 1",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
        assert!(
            !text.contains("mcp_traffic_socket_up"),
            "not before the daemon tried"
        );
        m.traffic.receiver_down();
        assert!(m.encode_prometheus().contains("mcp_traffic_socket_up 0"));
    }

    #[test]
    fn the_semconv_switch_leaves_out_both_histograms() {
        let m = Metrics::with_switches(FamilySwitches {
            semconv_histograms: false,
            ..FamilySwitches::default()
        });
        record_every_family(&m, "s");
        let text = m.encode_prometheus();
        assert!(!text.contains("operation_duration_seconds"), "{text}");
        assert!(text.contains("mcp_request_duration_seconds_count"));
    }

    /// Records one liveness probe of an HTTP server as the fleet benchmark's targets answer it
    /// (scripts/bench-fleet.sh): a legacy one refuses `server/discover`, then `initialize` and
    /// `ping`; a modern one answers `server/discover`.
    fn record_liveness(m: &Metrics, server: &str, legacy: bool) {
        let records = if legacy {
            vec![
                RequestRecord {
                    outcome: RequestOutcome::Unsupported,
                    ..record("server/discover", None)
                },
                record("initialize", None),
                record("ping", None),
            ]
        } else {
            vec![record("server/discover", None)]
        };
        let mut o = outcome_with(records);
        o.http_phases = Some(crate::mcp::HttpPhases {
            resolve: Duration::from_millis(1),
            connect: Duration::from_millis(2),
            processing: Duration::from_millis(3),
            transfer: Duration::from_millis(4),
            connections_opened: 1,
        });
        m.record_probe(server, "http", &o, &healthy(), false);
    }

    /// Where a `/metrics` scrape of 1,000 liveness servers spends its time: encoding, redaction,
    /// gzip; run with
    /// `cargo test --release --lib -- --ignored --nocapture fleet_scrape_cost`.
    #[test]
    #[ignore = "a timing, not a check; run by hand to see where a scrape's time goes"]
    fn fleet_scrape_cost() {
        use crate::metric_registry::MetricsProfile;
        for profile in [MetricsProfile::Full, MetricsProfile::Fleet] {
            let switches = profile.switches();
            let m = Metrics::with_switches(switches);
            for i in 0..1000 {
                let server = format!("s{i:05}");
                m.add_server(&server, Arc::new(WireCounters::default()));
                record_liveness(&m, &server, i % 2 == 0);
            }
            // The median of 21 runs of `measure`, each after `prepare` (not timed).
            let timed = |prepare: &mut dyn FnMut(), measure: &mut dyn FnMut()| {
                let mut took: Vec<Duration> = (0..21)
                    .map(|_| {
                        prepare();
                        let start = std::time::Instant::now();
                        measure();
                        start.elapsed()
                    })
                    .collect();
                took.sort();
                took[took.len() / 2]
            };
            let median = |f: &mut dyn FnMut()| timed(&mut || {}, f);
            let text = m.encode_prometheus();
            // Between two scrapes 15 s apart every server was probed once; between two scrapes
            // 1 s apart, one server in 15.
            let probe_some = |every: usize| {
                for i in (0..1000).step_by(every) {
                    record_liveness(&m, &format!("s{i:05}"), i % 2 == 0);
                }
            };
            let encode = || {
                std::hint::black_box(m.encode_prometheus());
            };
            let cached_all = timed(&mut || probe_some(1), &mut { encode });
            let cached_some = timed(&mut || probe_some(15), &mut { encode });
            let uncached = timed(&mut || probe_some(15), &mut || {
                std::hint::black_box(
                    m.registry
                        .encode_uncached(crate::metric_registry::text_format::Format::Prometheus),
                );
            });
            let redact = median(&mut || {
                std::hint::black_box(crate::security::redact::redact_owned(text.clone()));
            });
            let gzip = median(&mut || {
                std::hint::black_box(crate::web::compress::gzip(text.as_bytes()));
            });
            println!(
                "{profile:?}: {} series, {} bytes: encode uncached {uncached:?}, cached with every server probed {cached_all:?}, with one in 15 probed {cached_some:?}; redact {redact:?}, gzip {gzip:?}",
                text.lines().filter(|l| !l.starts_with('#')).count(),
                text.len()
            );
        }
    }

    /// `count` liveness servers under the fleet profile, each with one probe recorded (every
    /// other one failed).
    fn liveness_fleet(count: usize) -> (Arc<Metrics>, Arc<Vec<String>>) {
        use crate::metric_registry::MetricsProfile;
        let m = Arc::new(Metrics::with_switches(MetricsProfile::Fleet.switches()));
        let names: Arc<Vec<String>> = Arc::new((0..count).map(|i| format!("s{i:05}")).collect());
        for (i, server) in names.iter().enumerate() {
            m.add_server(server, Arc::new(WireCounters::default()));
            record_liveness(&m, server, i % 2 == 0);
        }
        (m, names)
    }

    /// Two threads recording the fleet's liveness probes back to back until stopped: each
    /// every server, or (`split`) each half of them.
    struct LivenessWriters {
        stop: Arc<std::sync::atomic::AtomicBool>,
        threads: Vec<std::thread::JoinHandle<u64>>,
    }

    impl LivenessWriters {
        fn start(m: &Arc<Metrics>, names: &Arc<Vec<String>>, split: bool) -> LivenessWriters {
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let threads = (0..2)
                .map(|w| {
                    let (m, names, stop) = (Arc::clone(m), Arc::clone(names), Arc::clone(&stop));
                    let (skip, step) = if split { (w, 2) } else { (0, 1) };
                    std::thread::spawn(move || {
                        let mut recorded = 0u64;
                        while !stop.load(Ordering::Relaxed) {
                            for (i, server) in names.iter().enumerate().skip(skip).step_by(step) {
                                record_liveness(&m, server, i % 2 == 0);
                                recorded += 1;
                            }
                        }
                        recorded
                    })
                })
                .collect();
            LivenessWriters { stop, threads }
        }

        /// Stops the threads; the probes they recorded.
        fn stop(self) -> u64 {
            self.stop.store(true, Ordering::Relaxed);
            self.threads
                .into_iter()
                .map(|t| t.join().expect("a writer"))
                .sum()
        }
    }

    /// Scrapes encoded while probes of the same servers are being recorded hold every series
    /// of every server once, each histogram whole (cumulative buckets, `+Inf` equal to
    /// `_count`), and counters that never go back; once the writers stop, the cached text is
    /// the uncached encode.
    #[test]
    fn scrapes_while_probes_write_hold_whole_consistent_servers() {
        use crate::metric_registry::text_format::Format;
        use std::collections::HashMap;
        let (m, names) = liveness_fleet(40);
        let first = m.encode_prometheus();
        let series: HashMap<&str, usize> = names
            .iter()
            .map(|s| (s.as_str(), series_of_server(&first, s)))
            .collect();
        let writers = LivenessWriters::start(&m, &names, false);
        let mut probes_before: HashMap<String, f64> = HashMap::new();
        for _ in 0..30 {
            let text = m.encode_prometheus();
            for server in names.iter() {
                assert_eq!(
                    series_of_server(&text, server),
                    series[server.as_str()],
                    "{server}"
                );
            }
            let value = |line: &str| {
                line.rsplit(' ')
                    .next()
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(f64::NAN)
            };
            let mut buckets: HashMap<String, Vec<f64>> = HashMap::new();
            for line in text.lines().filter(|l| !l.starts_with('#')) {
                if let Some(rest) = line.strip_prefix("mcp_probe_latency_seconds_bucket{") {
                    let series = rest.split(",le=").next().unwrap_or_default().to_string();
                    buckets.entry(series).or_default().push(value(line));
                } else if let Some(rest) = line.strip_prefix("mcp_probe_latency_seconds_count{") {
                    let series = rest.trim_end_matches(|c| c != '}').trim_end_matches('}');
                    let counts = &buckets[series];
                    assert!(
                        counts.windows(2).all(|w| w[0] <= w[1]),
                        "{line}: {counts:?}"
                    );
                    assert_eq!(counts.last().copied(), Some(value(line)), "{line}");
                } else if line.starts_with("mcp_probes_total{") {
                    let before = probes_before.insert(
                        line.split(' ').next().unwrap_or_default().to_string(),
                        value(line),
                    );
                    assert!(
                        before.is_none_or(|b| b <= value(line)),
                        "{line} after {before:?}"
                    );
                }
            }
        }
        writers.stop();
        // The throughput gauge divides by the time since the server was added: read at each
        // encode, it differs between two.
        let steady = |text: String| -> Vec<String> {
            text.lines()
                .filter(|l| !l.starts_with("mcp_throughput_requests_per_second{"))
                .map(String::from)
                .collect()
        };
        let (cached, uncached) = (
            steady(m.encode_prometheus()),
            steady(m.registry.encode_uncached(Format::Prometheus)),
        );
        assert!(
            cached == uncached,
            "the cached text differs from the uncached encode"
        );
    }

    /// What a scrape of 1,000 liveness servers costs while probes write: two threads record
    /// the fleet's probes back to back (far more often than 1,000 servers every 15 s do, so
    /// that every encode overlaps writes to the families it reads) while the test encodes and
    /// gzips; prints the scrape's p50/p99 and the probes recorded per second. Run with
    /// `cargo test --release --lib -- --ignored --nocapture fleet_scrape_under_writes`.
    #[test]
    #[ignore = "a timing, not a check; run by hand to see what probe writes cost a scrape"]
    fn fleet_scrape_under_writes() {
        let (m, names) = liveness_fleet(1000);
        let writers = LivenessWriters::start(&m, &names, true);
        let started = std::time::Instant::now();
        let mut took: Vec<Duration> = (0..200)
            .map(|_| {
                let start = std::time::Instant::now();
                let text = m.encode_prometheus();
                std::hint::black_box(crate::web::compress::gzip(text.as_bytes()));
                let took = start.elapsed();
                std::thread::sleep(Duration::from_millis(5));
                took
            })
            .collect();
        let window = started.elapsed();
        let recorded = writers.stop();
        took.sort();
        println!(
            "encode+gzip under writes: p50 {:?}, p99 {:?}, max {:?}; {:.0} probes recorded per second",
            took[took.len() / 2],
            took[took.len() * 99 / 100],
            took[took.len() - 1],
            recorded as f64 / window.as_secs_f64()
        );
    }

    /// A server's `method_histograms` key beats the profile, through the sink's `server_added`,
    /// for that server alone, in either direction.
    #[test]
    fn a_servers_method_histograms_key_overrides_the_profile_for_it_alone() {
        use crate::assessment::Sink;
        use crate::metric_registry::MetricsProfile;
        let config = crate::settings::Config::from_toml(
            "[[servers]]\nname = \"opted\"\ntransport = \"http\"\nurl = \"http://127.0.0.1:1/\"\nmethod_histograms = true\n\n\
             [[servers]]\nname = \"out\"\ntransport = \"http\"\nurl = \"http://127.0.0.1:1/\"\nmethod_histograms = false\n\n\
             [[servers]]\nname = \"plain\"\ntransport = \"http\"\nurl = \"http://127.0.0.1:1/\"\n",
            std::path::Path::new("t.toml"),
        )
        .expect("valid config");
        let histograms = [
            "mcp_request_duration_seconds",
            "mcp_client_operation_duration_seconds",
        ];
        for (profile, with_histograms) in [
            (MetricsProfile::Fleet, ["opted"]),
            (MetricsProfile::Full, ["plain"]),
        ] {
            let m = Metrics::with_switches(profile.switches());
            for server in &config.servers {
                m.server_added(server, &Arc::new(WireCounters::default()));
                record_liveness(&m, &server.name, true);
            }
            let text = m.encode_prometheus();
            for server in ["opted", "out", "plain"] {
                let families = families_of_server(&text, server);
                let expected = with_histograms.contains(&server)
                    || (profile == MetricsProfile::Full && server == "opted");
                for family in histograms {
                    assert_eq!(
                        families.contains(family),
                        expected,
                        "{profile:?}: {family} of {server}"
                    );
                }
                assert!(families.contains("mcp_requests_total"), "{server}");
            }
        }
    }

    /// The families with a series of `server` in `text` (samples folded into their family).
    fn families_of_server(text: &str, server: &str) -> BTreeSet<String> {
        let needle = format!("server=\"{server}\"");
        text.lines()
            .filter(|l| !l.starts_with('#') && l.contains(&needle))
            .filter_map(|l| l.split('{').next())
            .map(|sample| {
                ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|suffix| sample.strip_suffix(suffix))
                    .unwrap_or(sample)
                    .to_string()
            })
            .collect()
    }

    fn series_of_server(text: &str, server: &str) -> usize {
        let needle = format!("server=\"{server}\"");
        text.lines()
            .filter(|l| !l.starts_with('#') && l.contains(&needle))
            .count()
    }

    #[test]
    fn the_fleet_profile_keeps_the_probe_histograms_out_and_traffic_in() {
        use crate::metric_registry::MetricsProfile;
        let histograms = [
            "mcp_request_duration_seconds",
            "mcp_tool_execution_duration_seconds",
            "mcp_client_operation_duration_seconds",
        ];
        let full = Metrics::with_switches(MetricsProfile::Full.switches());
        let fleet = Metrics::with_switches(MetricsProfile::Fleet.switches());
        for m in [&full, &fleet] {
            m.add_server("legacy", Arc::new(WireCounters::default()));
            record_liveness(m, "legacy", true);
            m.add_server("modern", Arc::new(WireCounters::default()));
            record_liveness(m, "modern", false);
            // A readiness probe with a tools/call check.
            m.add_server("tools", Arc::new(WireCounters::default()));
            let o = outcome_with(vec![
                record("initialize", None),
                record("tools/list", None),
                record("tools/call", Some("echo")),
            ]);
            m.record_probe("tools", "stdio", &o, &healthy(), false);
            record_traffic(m, "wrapped");
        }
        let (full_text, fleet_text) = (full.encode_prometheus(), fleet.encode_prometheus());
        for family in histograms {
            assert!(
                families_of_server(&full_text, "tools").contains(family),
                "{family}"
            );
            assert!(
                !families_of_server(&fleet_text, "tools").contains(family),
                "{family}"
            );
        }
        // The fleet profile loses only those, the protocol violation kinds still at 0 and the
        // HTTP phase gauges: the counters of the same requests stay.
        for server in ["legacy", "modern", "tools"] {
            let kept: BTreeSet<String> = families_of_server(&full_text, server)
                .into_iter()
                .filter(|family| !histograms.contains(&family.as_str()))
                .filter(|family| family != "mcp_protocol_violations_total")
                .filter(|family| family != "mcp_probe_http_phase_duration_seconds")
                .collect();
            assert_eq!(families_of_server(&fleet_text, server), kept, "{server}");
        }
        assert!(fleet_text.contains(
            "mcp_tool_calls_total{server=\"tools\",tool=\"echo\",outcome=\"ok\",source=\"probe\"} 1"
        ));
        // Liveness servers stay within 25 series (docs/metrics.md#profiles); the full profile
        // has 18 more per method and per tool called in the request and tool histograms.
        for (server, methods, tools) in [("legacy", 3, 0), ("modern", 1, 0), ("tools", 3, 1)] {
            let fleet = series_of_server(&fleet_text, server);
            assert!(
                server == "tools" || fleet <= 25,
                "{server}: {fleet}\n{fleet_text}"
            );
            // 17 of the OpenTelemetry histogram (14 buckets); the 4 protocol violation kinds at
            // 0; the 4 HTTP phase gauges of an HTTP server.
            let phases = if families_of_server(&full_text, server)
                .contains("mcp_probe_http_phase_duration_seconds")
            {
                4
            } else {
                0
            };
            assert_eq!(
                series_of_server(&full_text, server),
                fleet + 18 * (methods + tools) + 17 * methods + 4 + phases,
                "{server}"
            );
        }
        // Real traffic keeps its request histograms in both profiles.
        for text in [&full_text, &fleet_text] {
            assert!(text.contains(
                "mcp_request_duration_seconds_count{server=\"wrapped\",method=\"tools/call\",source=\"traffic\"} 2"
            ));
        }
    }

    #[test]
    fn the_cached_exposition_equals_an_uncached_encode() {
        use crate::metric_registry::text_format::Format;
        // The throughput gauge is computed at scrape time from a sliding window.
        let stable = |text: String| -> String {
            text.lines()
                .filter(|l| !l.starts_with("mcp_throughput_requests_per_second{"))
                .map(|l| format!("{l}\n"))
                .collect()
        };
        let m = Metrics::new();
        for round in 0..3 {
            for i in 0..6 {
                let server = format!("s{i}");
                if (i + round) % 2 == 0 {
                    record_every_family(&m, &server);
                } else {
                    record_liveness(&m, &server, i % 3 == 0);
                }
            }
            if round == 1 {
                m.remove_server("s4");
            }
            assert_eq!(
                stable(m.encode_prometheus()),
                stable(m.registry.encode_uncached(Format::Prometheus))
            );
            assert_eq!(
                stable(m.encode_openmetrics()),
                stable(m.registry.encode_uncached(Format::OpenMetrics))
            );
        }
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
}

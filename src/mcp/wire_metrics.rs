//! Families read from the client's [`WireCounters`] at scrape time, so a scrape sees the
//! requests in flight right now: messages exchanged, operations in flight, request throughput
//! and protocol violations.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use super::WireCounters;
use crate::metric_registry::MetricsRegistry;
use crate::metric_registry::labels::{ServerKindLabels, ServerLabels};
use crate::metric_registry::per_server::ServerScoped;

/// Window of `mcp_throughput_requests_per_second`.
pub const THROUGHPUT_WINDOW: Duration = Duration::from_secs(60);

/// `source` of the series the probes' counters give (docs/metrics.md#sources).
const PROBE: &str = "probe";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    server: String,
    direction: &'static str,
    source: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    server: String,
    source: &'static str,
}

/// One server's figures of the wire families from a source other than the probes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExtraWireServer {
    /// The server label.
    pub server: String,
    /// Messages the client side sent to the server.
    pub sent: u64,
    /// Messages the server sent to the client side.
    pub received: u64,
    /// Requests to the server awaiting their response now.
    pub in_flight: u64,
}

/// Another source of `mcp_messages_processed_total` and `mcp_concurrent_operations` series
/// (real traffic, src/traffic/metrics.rs), read at scrape time.
pub trait ExtraWireSeries: Send + Sync + std::fmt::Debug {
    /// The `source` label of its series.
    fn source(&self) -> &'static str;
    /// Its figures now, one entry per server label.
    fn servers(&self) -> Vec<ExtraWireServer>;
}

/// Handle to the live wire families; cheap to clone.
#[derive(Clone, Debug)]
pub struct WireMetrics {
    live: Arc<LiveServers>,
}

/// The counters of every server, read by the collector at scrape time.
#[derive(Debug, Default)]
struct LiveServers {
    servers: RwLock<BTreeMap<String, LiveServer>>,
    extra: RwLock<Vec<Arc<dyn ExtraWireSeries>>>,
    /// Whether a protocol violation kind that never happened has a series at 0
    /// (`FamilySwitches::zero_violation_series`, docs/metrics.md#profiles).
    zero_violations: bool,
}

#[derive(Debug)]
struct LiveServer {
    counters: Arc<WireCounters>,
    requests: Mutex<VecDeque<(Instant, usize)>>,
    since: Instant,
}

impl WireMetrics {
    /// Registers the collector of the wire families in `registry`.
    pub fn register(registry: &mut MetricsRegistry) -> Self {
        let live = Arc::new(LiveServers {
            zero_violations: registry.switches().zero_violation_series,
            ..LiveServers::default()
        });
        registry.server_collector(&live);
        WireMetrics { live }
    }

    /// Exposes the counters `server`'s client updates.
    pub fn add_server(&self, server: &str, counters: Arc<WireCounters>) {
        let mut servers = self.live.write();
        servers.insert(
            server.to_string(),
            LiveServer {
                counters,
                requests: Mutex::new(VecDeque::new()),
                since: Instant::now(),
            },
        );
    }

    /// Adds a source of series beside the probes' (encoded after them in the same families).
    pub fn add_source(&self, source: Arc<dyn ExtraWireSeries>) {
        self.live
            .extra
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(source);
    }

    /// Counts `count` requests of one probe of `server` towards its throughput.
    pub fn record_requests(&self, server: &str, count: usize) {
        let servers = self.live.servers.read().unwrap_or_else(|p| p.into_inner());
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

impl LiveServers {
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, LiveServer>> {
        self.servers.write().unwrap_or_else(|p| p.into_inner())
    }
}

impl ServerScoped for LiveServers {
    fn remove_server(&self, server: &str) {
        self.write().remove(server);
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

impl Collector for LiveServers {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let servers = self.servers.read().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let extra: Vec<(&'static str, Vec<ExtraWireServer>)> = self
            .extra
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|source| (source.source(), source.servers()))
            .collect();

        let mut family = encoder.encode_descriptor(
            "mcp_messages_processed",
            "JSON-RPC messages exchanged with the server (direction: sent to it, received from it), including notifications and replies to server requests, by source (probe: the prober's; traffic: real clients' through wrappers)",
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
                    source: PROBE,
                };
                ConstCounter::new(value.load(Ordering::Relaxed))
                    .encode(family.encode_family(&labels)?)?;
            }
        }
        for (source, figures) in &extra {
            for figure in figures {
                for (direction, value) in [("sent", figure.sent), ("received", figure.received)] {
                    let labels = DirectionLabels {
                        server: figure.server.clone(),
                        direction,
                        source,
                    };
                    ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
                }
            }
        }

        let mut family = encoder.encode_descriptor(
            "mcp_concurrent_operations",
            "Requests to the server in flight right now, by source (probe: from the prober; traffic: from real clients through wrappers)",
            None,
            MetricType::Gauge,
        )?;
        for (server, live) in servers.iter() {
            let labels = SourceLabels {
                server: server.clone(),
                source: PROBE,
            };
            ConstGauge::new(live.counters.in_flight.load(Ordering::Relaxed))
                .encode(family.encode_family(&labels)?)?;
        }
        for (source, figures) in &extra {
            for figure in figures {
                let labels = SourceLabels {
                    server: figure.server.clone(),
                    source,
                };
                ConstGauge::new(figure.in_flight as i64).encode(family.encode_family(&labels)?)?;
            }
        }

        let mut family = encoder.encode_descriptor(
            "mcp_throughput_requests_per_second",
            "Requests per second to the server over the last 60 s; rate(mcp_requests_total[5m]) is the Prometheus-native equivalent",
            None,
            MetricType::Gauge,
        )?;
        for (server, live) in servers.iter() {
            ConstGauge::new(live.throughput(now))
                .encode(family.encode_family(&ServerLabels::new(server))?)?;
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
                let value = value.load(Ordering::Relaxed);
                if value == 0 && !self.zero_violations {
                    continue;
                }
                ConstCounter::new(value)
                    .encode(family.encode_family(&ServerKindLabels::new(server, kind))?)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Fixed;

    impl ExtraWireSeries for Fixed {
        fn source(&self) -> &'static str {
            "traffic"
        }

        fn servers(&self) -> Vec<ExtraWireServer> {
            vec![ExtraWireServer {
                server: "real".into(),
                sent: 5,
                received: 6,
                in_flight: 2,
            }]
        }
    }

    #[test]
    fn counters_are_read_at_scrape_time_and_forgotten_with_the_server() {
        let mut registry = MetricsRegistry::default();
        let m = WireMetrics::register(&mut registry);
        let counters = Arc::new(WireCounters::default());
        m.add_server("w", Arc::clone(&counters));
        counters.sent.fetch_add(3, Ordering::Relaxed);
        counters.in_flight.fetch_add(1, Ordering::Relaxed);
        counters.oversize_messages.fetch_add(2, Ordering::Relaxed);
        m.record_requests("w", 4);
        m.add_source(Arc::new(Fixed));
        let text = registry.encode();
        for needle in [
            "mcp_messages_processed_total{server=\"w\",direction=\"sent\",source=\"probe\"} 3",
            "mcp_messages_processed_total{server=\"w\",direction=\"received\",source=\"probe\"} 0",
            "mcp_concurrent_operations{server=\"w\",source=\"probe\"} 1",
            "mcp_messages_processed_total{server=\"real\",direction=\"received\",source=\"traffic\"} 6",
            "mcp_concurrent_operations{server=\"real\",source=\"traffic\"} 2",
            "mcp_protocol_violations_total{server=\"w\",kind=\"oversize_message\"} 2",
            "mcp_throughput_requests_per_second{server=\"w\"} ",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
        registry.remove_server("w");
        assert!(!registry.encode().contains("server=\"w\""));
    }
}

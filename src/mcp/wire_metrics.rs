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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    server: String,
    direction: &'static str,
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
        let live = Arc::new(LiveServers::default());
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
            ConstGauge::new(live.counters.in_flight.load(Ordering::Relaxed))
                .encode(family.encode_family(&ServerLabels::new(server))?)?;
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
                ConstCounter::new(value.load(Ordering::Relaxed))
                    .encode(family.encode_family(&ServerKindLabels::new(server, kind))?)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let text = registry.encode();
        for needle in [
            "mcp_messages_processed_total{server=\"w\",direction=\"sent\"} 3",
            "mcp_messages_processed_total{server=\"w\",direction=\"received\"} 0",
            "mcp_concurrent_operations{server=\"w\"} 1",
            "mcp_protocol_violations_total{server=\"w\",kind=\"oversize_message\"} 2",
            "mcp_throughput_requests_per_second{server=\"w\"} ",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
        registry.remove_server("w");
        assert!(!registry.encode().contains("server=\"w\""));
    }
}

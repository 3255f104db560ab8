//! Dependency families: the state of every dependency check and each server's view of its
//! dependencies (the health reasons they lead to are in `src/metrics/health.rs`).

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;

use crate::deps::{CONNECTION_STATES, DependencyCheck, PostgresStats};
use crate::health::HealthStatus;
use crate::metric_registry::MetricsRegistry;
use crate::metric_registry::labels::impl_server_label_set;
use crate::metric_registry::per_server::ServerState;
use crate::metric_registry::server_family::ServerFamily;

type FloatGauge = Gauge<f64, AtomicU64>;
type LatencyFamily = Family<DepLabels, Histogram, fn() -> Histogram>;

/// Buckets of `mcp_dependency_check_latency_seconds` (seconds): a local PostgreSQL answers in
/// about a millisecond, a remote API in tens to hundreds, a check times out at its `timeout`
/// (5 s by default).
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PgStateLabels {
    dependency: String,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DepLabels {
    dependency: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DepNameLabels {
    dependency: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServerDepLabels {
    server: String,
    dependency: String,
    kind: String,
}

impl_server_label_set!(ServerDepLabels);

/// Handles to the dependency families.
pub struct DepMetrics {
    server_dependency_status: ServerFamily<ServerDepLabels, Gauge>,
    dependency_up: Family<DepLabels, Gauge>,
    check_duration: Family<DepLabels, FloatGauge>,
    dependency_status: Family<DepLabels, Gauge>,
    rate_limit_remaining: Family<DepNameLabels, Gauge>,
    retry_after: Family<DepNameLabels, FloatGauge>,
    check_latency: LatencyFamily,
    pg_connections: Family<PgStateLabels, Gauge>,
    pg_max_connections: Family<DepNameLabels, Gauge>,
    pg_long_running: Family<DepNameLabels, Gauge>,
    pg_checksum_failures: Family<DepNameLabels, Gauge>,
    /// The (dependency, kind) pairs each server listed last time.
    listed: ServerState<Vec<(String, String)>>,
}

impl DepMetrics {
    /// Registers the dependency families in `registry`.
    pub fn register(registry: &mut MetricsRegistry) -> Self {
        DepMetrics {
            server_dependency_status: registry.server_family(
                "mcp_server_dependency_status",
                "Status of a dependency as the server sees it, on the health scale: 2 healthy, 1 degraded, 0 down, -1 unknown (not checked yet or the check could not run)",
            ),
            dependency_up: registry.register(
                "mcp_dependency_up",
                "1 when the last check of the dependency passed (healthy or degraded), else 0",
                Family::default(),
            ),
            check_duration: registry.register(
                "mcp_dependency_check_duration_seconds",
                "Duration of the last check of the dependency",
                Family::default(),
            ),
            dependency_status: registry.register(
                "mcp_dependency_status",
                "Status of the dependency check itself: 2 healthy, 1 degraded (low space, rate limited), 0 down, -1 unknown (not checked yet or could not run)",
                Family::default(),
            ),
            rate_limit_remaining: registry.register(
                "mcp_dependency_rate_limit_remaining",
                "Requests left in the API's rate-limit window, as its last answer said (X-RateLimit-Remaining / RateLimit-Remaining)",
                Family::default(),
            ),
            retry_after: registry.register(
                "mcp_dependency_retry_after_seconds",
                "Wait the API asked for before the next request (Retry-After or an exhausted rate limit), honoured by the checker; 0 when none",
                Family::default(),
            ),
            check_latency: registry.register(
                "mcp_dependency_check_latency_seconds",
                "Duration of each check of the dependency (connect and query, request, or file system calls); the distribution behind mcp_dependency_check_duration_seconds",
                LatencyFamily::new_with_constructor(latency_histogram as fn() -> Histogram),
            ),
            pg_connections: registry.register(
                "mcp_dependency_postgres_connections",
                "Client connections of the PostgreSQL dependency by state, from pg_stat_activity (unknown: sessions of other roles the monitoring role may not see; grant it pg_monitor)",
                Family::default(),
            ),
            pg_max_connections: registry.register(
                "mcp_dependency_postgres_max_connections",
                "The PostgreSQL dependency's max_connections setting",
                Family::default(),
            ),
            pg_long_running: registry.register(
                "mcp_dependency_postgres_long_running_queries",
                "Active queries on the PostgreSQL dependency running longer than its long_query_threshold (default 5m)",
                Family::default(),
            ),
            pg_checksum_failures: registry.register(
                "mcp_dependency_postgres_checksum_failures",
                "Data page checksum failures the PostgreSQL dependency reports (sum of pg_stat_database.checksum_failures, cumulative until its statistics are reset); absent where data checksums are off",
                Family::default(),
            ),
            listed: registry.server_state(),
        }
    }

    /// A dependency started: UNKNOWN until its first check.
    pub fn add_dependency(&self, dependency: &str, kind: &str) {
        let labels = dep_labels(dependency, kind);
        self.dependency_status.get_or_create(&labels).set(-1);
        self.dependency_up.get_or_create(&labels).set(0);
    }

    /// Records one check; `next_in` is the wait before the next one.
    pub fn record_check(&self, dependency: &str, kind: &str, check: &DependencyCheck) {
        let labels = dep_labels(dependency, kind);
        self.dependency_up
            .get_or_create(&labels)
            .set(i64::from(check.up()));
        self.dependency_status
            .get_or_create(&labels)
            .set(check.status.code());
        self.check_duration
            .get_or_create(&labels)
            .set(check.duration.as_secs_f64());
        self.check_latency
            .get_or_create(&labels)
            .observe(check.duration.as_secs_f64());
        let name = DepNameLabels {
            dependency: dependency.to_string(),
        };
        if let Some(pg) = &check.postgres {
            self.record_postgres(dependency, pg);
        } else if !check.up() {
            // A server that cannot be reached has no figures: none rather than stale ones.
            self.remove_postgres(&name);
        }
        match check.rate_limit.remaining {
            Some(r) => {
                self.rate_limit_remaining
                    .get_or_create(&name)
                    .set(i64::try_from(r).unwrap_or(i64::MAX));
            }
            None => {
                self.rate_limit_remaining.remove(&name);
            }
        }
        self.retry_after.get_or_create(&name).set(
            check
                .rate_limit
                .retry_after
                .map_or(0.0, |d| d.as_secs_f64()),
        );
    }

    /// Records PostgreSQL's own figures; the last ones stay while a passing check cannot read
    /// them (a statement timeout, a missing view).
    fn record_postgres(&self, dependency: &str, pg: &PostgresStats) {
        for (state, n) in &pg.connections {
            self.pg_connections
                .get_or_create(&PgStateLabels {
                    dependency: dependency.to_string(),
                    state,
                })
                .set(i64::try_from(*n).unwrap_or(i64::MAX));
        }
        let name = DepNameLabels {
            dependency: dependency.to_string(),
        };
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.pg_max_connections
            .get_or_create(&name)
            .set(count(pg.max_connections));
        self.pg_long_running
            .get_or_create(&name)
            .set(count(pg.long_running_queries));
        match pg.checksum_failures {
            Some(n) => {
                self.pg_checksum_failures.get_or_create(&name).set(count(n));
            }
            None => {
                self.pg_checksum_failures.remove(&name);
            }
        }
    }

    /// Drops every series of a dependency that left the configuration.
    pub fn remove_dependency(&self, dependency: &str, kind: &str) {
        let labels = dep_labels(dependency, kind);
        self.dependency_up.remove(&labels);
        self.dependency_status.remove(&labels);
        self.check_duration.remove(&labels);
        self.check_latency.remove(&labels);
        let name = DepNameLabels {
            dependency: dependency.to_string(),
        };
        self.rate_limit_remaining.remove(&name);
        self.retry_after.remove(&name);
        self.remove_postgres(&name);
    }

    fn remove_postgres(&self, name: &DepNameLabels) {
        for state in CONNECTION_STATES {
            self.pg_connections.remove(&PgStateLabels {
                dependency: name.dependency.clone(),
                state,
            });
        }
        self.pg_max_connections.remove(name);
        self.pg_long_running.remove(name);
        self.pg_checksum_failures.remove(name);
    }

    /// Records a server's view of its dependencies; series of dependencies it no longer
    /// lists are removed.
    pub fn record_server(&self, server: &str, dependencies: &[(&str, &str, HealthStatus)]) {
        self.listed.with(server, |listed| {
            for (dependency, kind) in listed.iter() {
                if !dependencies
                    .iter()
                    .any(|(d, k, _)| d == dependency && k == kind)
                {
                    self.server_dependency_status
                        .remove(&server_dep_labels(server, dependency, kind));
                }
            }
            listed.clear();
            for (dependency, kind, status) in dependencies {
                self.server_dependency_status
                    .get_or_create(&server_dep_labels(server, dependency, kind))
                    .set(status.code());
                listed.push((dependency.to_string(), kind.to_string()));
            }
        });
    }
}

fn server_dep_labels(server: &str, dependency: &str, kind: &str) -> ServerDepLabels {
    ServerDepLabels {
        server: server.to_string(),
        dependency: dependency.to_string(),
        kind: kind.to_string(),
    }
}

fn dep_labels(dependency: &str, kind: &str) -> DepLabels {
    DepLabels {
        dependency: dependency.to_string(),
        kind: kind.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::deps::DependencyFailure;

    #[test]
    fn checks_and_servers_are_recorded_and_removed() {
        let mut registry = MetricsRegistry::default();
        let m = DepMetrics::register(&mut registry);
        m.add_dependency("pg", "postgres");
        let mut c = DependencyCheck::healthy(SystemTime::now());
        c.fail(DependencyFailure::Refused, "connection refused");
        c.rate_limit.retry_after = Some(Duration::from_secs(3));
        c.duration = Duration::from_millis(3);
        c.postgres = Some(PostgresStats {
            connections: CONNECTION_STATES
                .iter()
                .map(|s| (*s, u64::from(*s == "idle") * 7))
                .collect(),
            max_connections: 100,
            long_running_queries: 2,
            checksum_failures: Some(1),
        });
        m.record_check("pg", "postgres", &c);
        m.record_server("s", &[("pg", "postgres", HealthStatus::Unhealthy)]);
        let text = registry.encode();
        for needle in [
            "mcp_dependency_up{dependency=\"pg\",kind=\"postgres\"} 0",
            "mcp_dependency_status{dependency=\"pg\",kind=\"postgres\"} 0",
            "mcp_server_dependency_status{server=\"s\",dependency=\"pg\",kind=\"postgres\"} 0",
            "mcp_dependency_retry_after_seconds{dependency=\"pg\"} 3",
            "mcp_dependency_check_latency_seconds_bucket{dependency=\"pg\",kind=\"postgres\",le=\"0.005\"} 1",
            "mcp_dependency_check_latency_seconds_bucket{dependency=\"pg\",kind=\"postgres\",le=\"0.0025\"} 0",
            "mcp_dependency_postgres_connections{dependency=\"pg\",state=\"idle\"} 7",
            "mcp_dependency_postgres_connections{dependency=\"pg\",state=\"active\"} 0",
            "mcp_dependency_postgres_max_connections{dependency=\"pg\"} 100",
            "mcp_dependency_postgres_long_running_queries{dependency=\"pg\"} 2",
            "mcp_dependency_postgres_checksum_failures{dependency=\"pg\"} 1",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
        let mut down = DependencyCheck::healthy(SystemTime::now());
        down.fail(DependencyFailure::Refused, "connection refused");
        m.record_check("pg", "postgres", &down);
        assert!(
            !registry.encode().contains("dependency_postgres_"),
            "a server that is down has no figures"
        );
        m.record_server("s", &[]);
        let text = registry.encode();
        assert!(!text.contains("mcp_server_dependency_status{"), "{text}");
        m.record_server("s", &[("pg", "postgres", HealthStatus::Healthy)]);
        registry.remove_server("s");
        m.remove_dependency("pg", "postgres");
        let text = registry.encode();
        assert!(!text.contains("pg"), "{text}");
    }
}

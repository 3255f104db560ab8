//! Dependency and health-reason families (issue 4): the state of every dependency check, each
//! server's view of its dependencies, and the reasons behind each server's health.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::deps::DependencyCheck;
use crate::health::{Health, HealthReason, HealthStatus};

type FloatGauge = Gauge<f64, AtomicU64>;

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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    server: String,
    reason: String,
}

/// Series one server created, so they can be replaced and removed.
#[derive(Default)]
struct ServerSeries {
    dependencies: BTreeSet<(String, String)>,
    reasons: BTreeSet<HealthReason>,
}

/// Handles to the dependency families.
pub struct DepMetrics {
    server_dependency_status: Family<ServerDepLabels, Gauge>,
    dependency_up: Family<DepLabels, Gauge>,
    check_duration: Family<DepLabels, FloatGauge>,
    dependency_status: Family<DepLabels, Gauge>,
    rate_limit_remaining: Family<DepNameLabels, Gauge>,
    retry_after: Family<DepNameLabels, FloatGauge>,
    health_reason: Family<ReasonLabels, Gauge>,
    servers: Mutex<HashMap<String, ServerSeries>>,
}

impl DepMetrics {
    /// Registers the families in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = DepMetrics {
            server_dependency_status: Family::default(),
            dependency_up: Family::default(),
            check_duration: Family::default(),
            dependency_status: Family::default(),
            rate_limit_remaining: Family::default(),
            retry_after: Family::default(),
            health_reason: Family::default(),
            servers: Mutex::new(HashMap::new()),
        };
        registry.register(
            "mcp_server_dependency_status",
            "Status of a dependency as the server sees it, on the health scale: 2 healthy, 1 degraded, 0 down, -1 unknown (not checked yet or the check could not run)",
            m.server_dependency_status.clone(),
        );
        registry.register(
            "mcp_dependency_up",
            "1 when the last check of the dependency passed (healthy or degraded), else 0",
            m.dependency_up.clone(),
        );
        registry.register(
            "mcp_dependency_check_duration_seconds",
            "Duration of the last check of the dependency",
            m.check_duration.clone(),
        );
        registry.register(
            "mcp_dependency_status",
            "Status of the dependency check itself: 2 healthy, 1 degraded (low space, rate limited), 0 down, -1 unknown (not checked yet or could not run)",
            m.dependency_status.clone(),
        );
        registry.register(
            "mcp_dependency_rate_limit_remaining",
            "Requests left in the API's rate-limit window, as its last answer said (X-RateLimit-Remaining / RateLimit-Remaining)",
            m.rate_limit_remaining.clone(),
        );
        registry.register(
            "mcp_dependency_retry_after_seconds",
            "Wait the API asked for before the next request (Retry-After or an exhausted rate limit), honoured by the checker; 0 when none",
            m.retry_after.clone(),
        );
        registry.register(
            "mcp_server_health_reason",
            "Why the server is not healthy, one series per current reason (probe_failed, critical_dependency_down, dependency_down, dependency_degraded, slow, warnings, no_observation); value is always 1",
            m.health_reason.clone(),
        );
        m
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
        let name = DepNameLabels {
            dependency: dependency.to_string(),
        };
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

    /// Drops every series of a dependency that left the configuration.
    pub fn remove_dependency(&self, dependency: &str, kind: &str) {
        let labels = dep_labels(dependency, kind);
        self.dependency_up.remove(&labels);
        self.dependency_status.remove(&labels);
        self.check_duration.remove(&labels);
        let name = DepNameLabels {
            dependency: dependency.to_string(),
        };
        self.rate_limit_remaining.remove(&name);
        self.retry_after.remove(&name);
    }

    /// Records a server's view of its dependencies and the reasons of its health; series of
    /// dependencies or reasons that no longer apply are removed.
    pub fn record_server(
        &self,
        server: &str,
        dependencies: &[(&str, &str, HealthStatus)],
        health: &Health,
    ) {
        let mut servers = self.servers.lock().unwrap_or_else(|p| p.into_inner());
        let series = servers.entry(server.to_string()).or_default();
        let now: BTreeSet<(String, String)> = dependencies
            .iter()
            .map(|(d, k, _)| (d.to_string(), k.to_string()))
            .collect();
        for (dependency, kind) in series.dependencies.difference(&now) {
            self.server_dependency_status.remove(&ServerDepLabels {
                server: server.to_string(),
                dependency: dependency.clone(),
                kind: kind.clone(),
            });
        }
        for (dependency, kind, status) in dependencies {
            self.server_dependency_status
                .get_or_create(&ServerDepLabels {
                    server: server.to_string(),
                    dependency: dependency.to_string(),
                    kind: kind.to_string(),
                })
                .set(status.code());
        }
        series.dependencies = now;
        let reasons: BTreeSet<HealthReason> = health.codes.iter().copied().collect();
        for gone in series.reasons.difference(&reasons) {
            self.health_reason.remove(&reason_labels(server, *gone));
        }
        for reason in &reasons {
            self.health_reason
                .get_or_create(&reason_labels(server, *reason))
                .set(1);
        }
        series.reasons = reasons;
    }

    /// Drops every series of a server that left the configuration.
    pub fn remove_server(&self, server: &str) {
        let mut servers = self.servers.lock().unwrap_or_else(|p| p.into_inner());
        let Some(series) = servers.remove(server) else {
            return;
        };
        for (dependency, kind) in series.dependencies {
            self.server_dependency_status.remove(&ServerDepLabels {
                server: server.to_string(),
                dependency,
                kind,
            });
        }
        for reason in series.reasons {
            self.health_reason.remove(&reason_labels(server, reason));
        }
    }
}

fn dep_labels(dependency: &str, kind: &str) -> DepLabels {
    DepLabels {
        dependency: dependency.to_string(),
        kind: kind.to_string(),
    }
}

fn reason_labels(server: &str, reason: HealthReason) -> ReasonLabels {
    ReasonLabels {
        server: server.to_string(),
        reason: reason.as_str().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::deps::DependencyFailure;

    fn encode(m: &DepMetrics, registry: &Registry) -> String {
        let _ = m;
        let mut out = String::new();
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, registry);
        out
    }

    #[test]
    fn checks_servers_and_reasons_are_recorded_and_removed() {
        let mut registry = Registry::default();
        let m = DepMetrics::register(&mut registry);
        m.add_dependency("pg", "postgres");
        let mut c = DependencyCheck::healthy(SystemTime::now());
        c.fail(DependencyFailure::Refused, "connection refused");
        c.rate_limit.retry_after = Some(Duration::from_secs(3));
        m.record_check("pg", "postgres", &c);
        let health = Health {
            status: HealthStatus::Unhealthy,
            reasons: vec!["critical dependency pg is down".into()],
            codes: vec![HealthReason::CriticalDependencyDown],
        };
        m.record_server("s", &[("pg", "postgres", HealthStatus::Unhealthy)], &health);
        let text = encode(&m, &registry);
        for needle in [
            "mcp_dependency_up{dependency=\"pg\",kind=\"postgres\"} 0",
            "mcp_dependency_status{dependency=\"pg\",kind=\"postgres\"} 0",
            "mcp_server_dependency_status{server=\"s\",dependency=\"pg\",kind=\"postgres\"} 0",
            "mcp_server_health_reason{server=\"s\",reason=\"critical_dependency_down\"} 1",
            "mcp_dependency_retry_after_seconds{dependency=\"pg\"} 3",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
        let healthy = Health {
            status: HealthStatus::Healthy,
            reasons: vec![],
            codes: vec![],
        };
        m.record_server("s", &[], &healthy);
        let text = encode(&m, &registry);
        assert!(!text.contains("mcp_server_health_reason{"), "{text}");
        assert!(!text.contains("mcp_server_dependency_status{"), "{text}");
        m.record_server("s", &[("pg", "postgres", HealthStatus::Healthy)], &health);
        m.remove_server("s");
        m.remove_dependency("pg", "postgres");
        let text = encode(&m, &registry);
        assert!(!text.contains("pg"), "{text}");
    }
}

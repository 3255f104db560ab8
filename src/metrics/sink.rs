//! The metrics' sink: counts what an assessment holds (metrics decide nothing).

use std::sync::Arc;

use crate::assessment::{Assessment, Cause, Sink};
use crate::deps::sink::CheckSink;
use crate::deps::{DependencyCheck, DependencyConfig};
use crate::health::HealthStatus;
use crate::mcp::WireCounters;
use crate::probe::ServerConfig;
use crate::probe::catalog_metrics::CatalogObservation;
use crate::process::remediate::RemediationOutcome;

use super::Metrics;

impl Sink for Metrics {
    fn server_added(&self, server: &ServerConfig, counters: &Arc<WireCounters>) {
        self.add_server(&server.name, Arc::clone(counters));
        self.probe
            .set_method_histograms(&server.name, server.method_histograms);
    }

    fn server_removed(&self, server: &str) {
        self.remove_server(server);
    }

    fn assessed(&self, a: &Assessment) {
        if a.cause == Cause::Start {
            // add_server already set the health gauge to UNKNOWN; nothing else exists yet.
            return;
        }
        let dependencies: Vec<(&str, &str, HealthStatus)> = a
            .dependencies
            .iter()
            .map(|d| (d.name.as_str(), d.kind, d.status))
            .collect();
        self.deps.record_server(a.name(), &dependencies);
        match a.new_probe() {
            Some(outcome) => self.record_probe(
                a.name(),
                a.server.transport.kind(),
                outcome,
                &a.health,
                a.catalog_change.is_some(),
            ),
            None => self.record_health(a.name(), &a.health),
        }
        if let Some(process) = &a.process {
            self.process.record(a.name(), process);
        }
        if let Some(known) = &a.catalog.known {
            self.catalog.record(
                a.name(),
                CatalogObservation {
                    definitions: &known.definitions,
                    cost: known.cost(),
                    changes: &a.catalog.changes,
                    lock: a.catalog.lock.as_ref().map(|l| &l.check),
                    token_budget: a.server.tools_token_budget,
                },
            );
        }
    }

    fn remediation_finished(&self, server: &str, outcome: RemediationOutcome) {
        self.process.remediation(server, outcome.as_str());
    }
}

impl CheckSink for Metrics {
    fn dependency_added(&self, dependency: &DependencyConfig) {
        self.deps
            .add_dependency(&dependency.name, dependency.spec.kind());
    }

    fn dependency_removed(&self, dependency: &DependencyConfig) {
        self.deps
            .remove_dependency(&dependency.name, dependency.spec.kind());
        self.tls.remove_dependency(&dependency.name);
    }

    fn checked(&self, dependency: &DependencyConfig, check: &DependencyCheck, _: &[String]) {
        self.deps
            .record_check(&dependency.name, dependency.spec.kind(), check);
        self.tls
            .record_dependency(&dependency.name, check.tls.as_ref());
    }
}

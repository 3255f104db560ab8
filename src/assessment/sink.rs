//! The consumers of assessments, each fed in turn by the server's task.

use std::sync::Arc;

use crate::mcp::WireCounters;
use crate::probe::ServerConfig;
use crate::process::remediate::RemediationOutcome;

use super::Assessment;

/// A consumer of assessments: the status board, the metrics, the history store, the security
/// monitor and the log each implement it. A sink never blocks (the store's writer takes rows
/// over a bounded channel) and never reads another sink's state.
pub trait Sink: Send + Sync {
    /// A server starts being probed; `counters` are its live wire counters.
    fn server_added(&self, _server: &ServerConfig, _counters: &Arc<WireCounters>) {}

    /// A server left the configuration (or changed and is restarted): forget it.
    fn server_removed(&self, _server: &str) {}

    /// A new assessment of a server.
    fn assessed(&self, assessment: &Assessment);

    /// A remediation command of the server finished.
    fn remediation_finished(&self, _server: &str, _outcome: RemediationOutcome) {}
}

/// Every sink, in the order they are fed.
#[derive(Clone, Default)]
pub struct Sinks(Vec<Arc<dyn Sink>>);

impl Sinks {
    /// Sinks fed in the order given.
    pub fn new(sinks: Vec<Arc<dyn Sink>>) -> Self {
        Sinks(sinks)
    }

    /// Adds a sink at the end.
    pub fn push(&mut self, sink: Arc<dyn Sink>) {
        self.0.push(sink);
    }
}

impl Sink for Sinks {
    fn server_added(&self, server: &ServerConfig, counters: &Arc<WireCounters>) {
        for sink in &self.0 {
            sink.server_added(server, counters);
        }
    }

    fn server_removed(&self, server: &str) {
        for sink in &self.0 {
            sink.server_removed(server);
        }
    }

    fn assessed(&self, assessment: &Assessment) {
        for sink in &self.0 {
            sink.assessed(assessment);
        }
    }

    fn remediation_finished(&self, server: &str, outcome: RemediationOutcome) {
        for sink in &self.0 {
            sink.remediation_finished(server, outcome);
        }
    }
}

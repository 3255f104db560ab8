//! Keeps the maintenance windows told which servers are configured, so each has its
//! `mcp_server_maintenance` series from the moment it is added.

use std::sync::Arc;

use super::service::Maintenance;
use crate::assessment::{Assessment, Sink};
use crate::mcp::WireCounters;
use crate::probe::ServerConfig;

/// The [`Sink`] of the maintenance windows (fed after the metrics' sink).
#[derive(Debug, Clone)]
pub struct MaintenanceSink(pub Arc<Maintenance>);

impl Sink for MaintenanceSink {
    fn server_added(&self, server: &ServerConfig, _counters: &Arc<WireCounters>) {
        self.0.server_added(&server.name);
    }

    fn server_removed(&self, server: &str) {
        self.0.server_removed(server);
    }

    fn assessed(&self, _assessment: &Assessment) {}
}

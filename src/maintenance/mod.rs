//! Maintenance windows: planned downtime of one server or of all of them
//! (`mcp-exporter maintenance start|list|end`, src/cli/maintenance.rs, through the daemon's
//! `/api/maintenance`, src/web/maintenance.rs).
//!
//! A window is kept in the history store (src/store/maintenance.rs) so a restarted daemon still
//! knows it; while it holds, `mcp_server_maintenance{server}` is 1 and the bundled alerts are
//! silent for that server by their expressions (`unless on(server) mcp_server_maintenance == 1`);
//! with `[alertmanager] url` configured, a silence is made too ([`alertmanager`]). `history`
//! counts the window as planned downtime, not an outage (src/store/availability.rs).

pub mod alertmanager;
pub mod metrics;
pub mod service;
pub mod sink;
pub mod window;

pub use service::{Maintenance, MaintenanceError, StartRequest};
pub use window::{Scope, Window};

//! mcp-exporter: probes MCP servers (stdio, Streamable HTTP, legacy SSE) on a schedule and
//! serves what it observed as Prometheus metrics and a status page.

pub mod assessment;
pub mod auth;
pub mod bundle;
pub mod cli;
pub mod config;
pub mod credentials;
pub mod daemon;
pub mod deps;
pub mod discovery;
pub mod excerpt;
#[doc(hidden)]
pub mod fuzz_checks;
pub mod health;
pub mod incident;
pub mod logging;
pub mod maintenance;
pub mod mcp;
pub mod metric_registry;
pub mod metrics;
pub mod nodelay;
pub mod otel;
pub mod probe;
pub mod process;
pub mod proxy;
pub mod quantile;
pub mod recent_probes;
pub mod reconcile;
pub mod report;
pub mod scheduler;
pub mod security;
pub mod serde_seconds;
pub mod settings;
pub mod status;
pub mod store;
pub mod tls;
pub mod traffic;
pub mod validate;
pub mod wall_clock;
pub mod web;

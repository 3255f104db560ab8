//! mcp-exporter: probes MCP servers (stdio, Streamable HTTP, legacy SSE) on a schedule and
//! serves what it observed as Prometheus metrics and a status page.

pub mod cli;
pub mod config;
pub mod daemon;
pub mod health;
pub mod http;
pub mod logging;
pub mod mcp;
pub mod metrics;
pub mod probe;
pub mod scheduler;
pub mod store;
pub mod validate;

//! mcp-exporter: probes MCP servers and serves Prometheus metrics.
pub mod mcp;

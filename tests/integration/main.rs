//! The integration tests: one test binary, one module per subject. Tests are named by module
//! path, e.g. `daemon::sigterm_ends_sessions_and_leaves_no_orphan`; run one subject with
//! `cargo nextest run --test integration -E 'test(/^mcp_client::/)'`.
//!
//! One binary links once (the crate and its dependencies are not linked into a dozen test
//! executables), which keeps `target/` small and the build short. The shared harness is
//! [`common`]; the programs a test needs outside the Rust toolchain go through
//! [`common::tools::require`].

mod alerts;
mod alerts_e2e;
mod alerts_support;
mod backup_restore;
mod cli;
mod common;
mod conformance;
mod credentials;
mod daemon;
mod dependency_history;
mod deps;
mod fleet;
mod fuzz_regressions;
mod import_graph;
mod incident;
mod kubernetes;
mod maintenance;
mod mcp_client;
mod mcp_support;
mod metrics_contract;
mod oauth;
mod pages;
mod playbook;
mod probe_endpoint;
mod process;
mod reload;
mod report;
mod security;
mod store;
mod tool_integrity;
mod toolchain_pins;
mod tracing;
mod traffic_clients;
mod traffic_daemon;
mod traffic_proxy;
mod traffic_wrap;

//! Real traffic of HTTP MCP servers: a reverse proxy for Streamable HTTP and legacy SSE that
//! passes every request and response through (every byte and header, hop-by-hop headers
//! excepted; event streams as their chunks come) and accounts the JSON-RPC messages on the
//! side with the stdio wrapper's ledger (src/traffic/ledger.rs), into the same book.
//!
//! - [`config`]: `[[proxies]]` entries; [`upstream`]: where requests go, how a legacy
//!   `endpoint` is rewritten; [`upstream_client`]: the connection pool they go through.
//! - [`forward`]: one request: body, headers, upstream failures; [`relay`]: the response body,
//!   chunk by chunk; [`headers`]: which headers cross.
//! - [`observe`] and [`sse`]: reading responses on the side; [`accounts`]: ledgers per exchange
//!   and per session, summed into deltas.
//! - [`server`]: one running proxy; [`set`]: the daemon's proxies; [`sink`] and [`report`]:
//!   where the deltas go (the daemon's book, or a daemon's traffic socket).
//!
//! docs/traffic.md ("The HTTP proxy") is the operator's guide.

pub mod accounts;
pub mod config;
pub mod forward;
pub mod headers;
pub mod observe;
pub mod relay;
pub mod report;
pub mod server;
pub mod set;
pub mod sink;
pub mod sse;
pub mod upstream;
pub mod upstream_client;

pub use config::{DEFAULT_PROXY_TIMEOUT, ProxyConfig};
pub use server::{ProxyError, ProxyHandle, start};
pub use set::ProxySet;
pub use sink::TrafficSink;

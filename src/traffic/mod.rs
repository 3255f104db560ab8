//! Real traffic: what MCP clients (Claude Desktop, IDEs, agents) experience with their stdio
//! servers, as opposed to what our probes measure.
//!
//! `mcp-exporter wrap -- COMMAND ARGS...` starts in place of a stdio server: it runs the
//! server and forwards every byte both ways untouched, reading a copy of each newline-delimited
//! JSON-RPC frame on the side ([`frame`], [`scan`] as its chunks pass, [`parse`]) into a [`ledger::Ledger`] of counters per
//! method and tool. A [`reporter`] sends those counters as deltas to the daemon over a Unix
//! socket ([`wire`], [`socket_path`]) without ever holding up the forwarded traffic. In the
//! daemon, a [`receiver::Receiver`] takes the reports of many wrappers, joins each wrapper to a
//! configured stdio server by its command line ([`join()`](join::join)) and hands the updates to a
//! [`receiver::TrafficConsumer`], such as the [`book::TrafficBook`] that sums them per server.
//! The daemon's consumer is [`metrics::TrafficMetrics`]: a book plus the `/metrics` families each
//! report is written into (`source="traffic"`); `[traffic]` ([`config`]) says where the socket is
//! and who may connect.
//!
//! docs/traffic.md is the operator's and the integrator's guide.

pub mod book;
pub mod config;
pub mod frame;
pub mod join;
pub mod ledger;
pub mod metrics;
pub mod parse;
pub mod receiver;
pub mod reporter;
pub mod scan;
pub mod socket_path;
pub mod tap;
pub mod totals;
pub mod wire;
pub mod wrapper;

pub use book::{ServerTraffic, TrafficBook};
pub use join::{Join, StdioServer, join, stdio_servers};
pub use receiver::{
    Receiver, ReceiverError, ReceiverHandle, ReceiverOptions, TrafficConsumer, WrapperInfo,
};
pub use socket_path::SocketEnv;
pub use totals::{Peer, RequestKey, RequestStats, TrafficState, TrafficTotals};

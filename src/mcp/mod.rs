//! The probe's own MCP client: JSON-RPC over stdio, Streamable HTTP and legacy HTTP+SSE,
//! dual-era (legacy `initialize` and modern 2026-07-28 `server/discover`).
//!
//! Written by hand (not rmcp) so that every stage can be timed and every malformed byte seen.
//! How each era and transport is probed, and why this client is our own: `docs/probing.md`.

#![warn(missing_docs)]

mod dispatch;
pub mod error;
pub mod framing;
mod handshake;
mod http_auth;
mod http_endpoint;
mod http_io;
pub mod http_phase_metrics;
pub mod http_timing;
pub mod jsonrpc;
pub mod legacy_sse;
pub mod mirrored_headers;
pub mod session;
pub mod sse;
pub mod stdio;
pub mod streamable_http;
#[cfg(test)]
pub(crate) mod test_server;
mod tools;
pub mod wire_metrics;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU64};
use std::time::{Duration, SystemTime};

pub use error::{Heard, McpError};
pub use handshake::Handshake;
pub use http_io::{ClientSettings, HttpClients, IDLE_CONNECTION_TIMEOUT};
pub use http_timing::HttpPhases;
pub use session::{ItemListing, McpSession};
pub use tools::{RejectedTool, ToolCallOutcome, ToolCatalog};

use crate::tls::TlsSettings;

/// Protocol revisions this client accepts from a server (legacy ones from `initialize`).
pub const KNOWN_VERSIONS: [&str; 6] = [
    "2024-10-07",
    "2024-11-05",
    "2025-03-26",
    "2025-06-18",
    "2025-11-25",
    "2026-07-28",
];

/// The protocol version this client asks for in a legacy `initialize`.
pub const LEGACY_REQUEST_VERSION: &str = "2025-11-25";

/// The protocol version of the modern (stateless) era.
pub const MODERN_VERSION: &str = "2026-07-28";

/// Which generation of the protocol a server speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Era {
    /// Revisions up to 2025-11-25: `initialize` handshake, sessions, `ping`.
    Legacy,
    /// Revision 2026-07-28 and later: stateless, `server/discover`, per-request `_meta`.
    Modern,
}

impl fmt::Display for Era {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Era::Legacy => "legacy",
            Era::Modern => "modern",
        })
    }
}

/// How to reach one MCP server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransportSpec {
    /// A child process speaking newline-delimited JSON-RPC on stdin/stdout.
    Stdio {
        /// Program to execute (looked up in `PATH`).
        command: String,
        /// Arguments passed to the program.
        args: Vec<String>,
        /// Variables set on top of the parent environment.
        env: BTreeMap<String, String>,
        /// Working directory of the child; the daemon's own when `None`.
        cwd: Option<PathBuf>,
    },
    /// Streamable HTTP (one endpoint, POST per message).
    Http {
        /// The MCP endpoint, e.g. `http://127.0.0.1:3001/mcp`.
        url: url::Url,
        /// Extra headers sent on every request (values already resolved from env).
        headers: Vec<(String, String)>,
        /// Whom to trust and which name to verify for an `https` URL.
        tls: TlsSettings,
    },
    /// Legacy HTTP+SSE (2024-11-05): GET an event stream, POST to the announced endpoint.
    Sse {
        /// The SSE URL, e.g. `http://127.0.0.1:3001/sse`.
        url: url::Url,
        /// Extra headers sent on every request (values already resolved from env).
        headers: Vec<(String, String)>,
        /// Whom to trust and which name to verify for an `https` URL.
        tls: TlsSettings,
    },
}

impl TransportSpec {
    /// Short name of the transport: `"stdio"`, `"http"` or `"sse"`.
    pub fn kind(&self) -> &'static str {
        match self {
            TransportSpec::Stdio { .. } => "stdio",
            TransportSpec::Http { .. } => "http",
            TransportSpec::Sse { .. } => "sse",
        }
    }
}

/// Size and time bounds applied to one session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest stdout line / HTTP body / SSE event accepted (default 16 MiB).
    pub max_message_bytes: usize,
    /// How much of the child's stderr is kept, newest bytes win (default 64 KiB).
    pub stderr_keep_bytes: usize,
    /// Most `tools/list` pages followed (default 100).
    pub max_tool_pages: usize,
    /// Most tools collected (default 10 000).
    pub max_tools: usize,
    /// Most notifications kept between two `take_notifications` calls (default 256).
    pub max_notifications_kept: usize,
    /// Notifications accepted per second; the rest are dropped and counted (default 100).
    pub max_notifications_per_second: u32,
    /// How long the dual-era probe waits on `server/discover` (default 3 s).
    pub discover_timeout: Duration,
    /// Wait per shutdown step: close stdin -> SIGTERM -> SIGKILL (default 2 s).
    pub shutdown_grace: Duration,
    /// The HTTP clients the sessions share, one per distinct client settings (a fresh
    /// registry by default; the scheduler hands one registry to all its servers).
    pub http_clients: HttpClients,
    /// The server's OAuth client (`auth = { type = "oauth" }`), shared by its sessions so the
    /// token outlives one probe; `None` without one.
    pub auth: Option<crate::auth::Authorizer>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 16 * 1024 * 1024,
            stderr_keep_bytes: 64 * 1024,
            max_tool_pages: 100,
            max_tools: 10_000,
            max_notifications_kept: 256,
            max_notifications_per_second: 100,
            discover_timeout: Duration::from_secs(3),
            shutdown_grace: Duration::from_secs(2),
            http_clients: HttpClients::default(),
            auth: None,
        }
    }
}

/// Live counters shared with the metrics layer (read at scrape time).
#[derive(Debug, Default)]
pub struct WireCounters {
    /// JSON-RPC messages written (requests, notifications, replies to server requests).
    pub sent: AtomicU64,
    /// JSON-RPC messages read.
    pub received: AtomicU64,
    /// Bytes read from the server (stdout, HTTP bodies, SSE streams), complete messages or not.
    pub bytes_received: AtomicU64,
    /// Responses that answered the request being awaited (the rest of `received` is
    /// notifications, server requests and responses with unknown ids).
    pub responses_matched: AtomicU64,
    /// Requests currently waiting for a response.
    pub in_flight: AtomicI64,
    /// stdout lines that were not JSON (stdio only).
    pub stdout_garbage_lines: AtomicU64,
    /// Responses whose id matched no request sent in this session (a protocol violation).
    pub unknown_response_ids: AtomicU64,
    /// Late responses to requests the prober gave up on (e.g. the era probe's
    /// `server/discover` answered after its window by a server slow to start); not violations.
    pub late_responses: AtomicU64,
    /// Lines, bodies or events larger than `Limits::max_message_bytes`.
    pub oversize_messages: AtomicU64,
    /// Server->client requests answered with -32601.
    pub server_requests_refused: AtomicU64,
    /// Server->client `ping` requests answered with `{}`.
    pub server_pings_answered: AtomicU64,
    /// Notifications dropped because the server sent more than `Limits::max_notifications_per_second`.
    pub notifications_dropped: AtomicU64,
    /// stderr and log-notification text not yet scanned for security patterns (bounded).
    pub unscanned: std::sync::Mutex<Vec<u8>>,
}

impl WireCounters {
    /// Counts bytes read from the server.
    pub fn count_bytes(&self, n: usize) {
        self.bytes_received
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
    }

    /// What has arrived so far (bytes, messages other than awaited responses), for telling a
    /// silent server from a trickling or chattering one.
    pub(crate) fn heard_mark(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        let messages = self.received.load(Relaxed);
        let matched = self.responses_matched.load(Relaxed);
        (
            self.bytes_received.load(Relaxed),
            messages.saturating_sub(matched),
        )
    }

    /// Counts a line, body or SSE event that exceeded `Limits::max_message_bytes`.
    pub fn count_oversize(&self) {
        self.oversize_messages
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Appends text for the security pattern scan, keeping at most `cap` bytes (the oldest
    /// unscanned bytes are kept; the excess is dropped).
    pub fn note_unscanned(&self, bytes: &[u8], cap: usize) {
        let mut buf = self.unscanned.lock().unwrap_or_else(|p| p.into_inner());
        let room = cap.saturating_sub(buf.len());
        buf.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    /// Takes the unscanned text (lossy UTF-8).
    pub fn take_unscanned(&self) -> String {
        let mut buf = self.unscanned.lock().unwrap_or_else(|p| p.into_inner());
        let text = String::from_utf8_lossy(&buf).into_owned();
        buf.clear();
        text
    }
}

/// One JSON-RPC request round trip, for the request-duration histogram.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestRecord {
    /// JSON-RPC method, e.g. `tools/list`.
    pub method: String,
    /// Tool name for `tools/call`.
    pub tool: Option<String>,
    /// Time from sending the request to its response (or failure).
    pub duration: Duration,
    /// How it ended.
    pub outcome: RequestOutcome,
}

/// How one request ended: the `outcome` label of `mcp_requests_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestOutcome {
    /// A JSON-RPC result came back (for `tools/call`: a result without `isError`).
    Ok,
    /// Anything else: an error response, a timeout, a broken transport.
    Error,
    /// The era probe's `server/discover`, refused by a legacy server that then completed
    /// `initialize`: the server answered as its era requires, so this is no error of its.
    Unsupported,
}

impl RequestOutcome {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestOutcome::Ok => "ok",
            RequestOutcome::Error => "error",
            RequestOutcome::Unsupported => "unsupported",
        }
    }
}

/// A server->client notification seen while waiting for responses.
#[derive(Clone, Debug, PartialEq)]
pub struct Notification {
    /// Notification method, e.g. `notifications/tools/list_changed`.
    pub method: String,
    /// Its params (`null` when absent).
    pub params: serde_json::Value,
    /// Wall-clock time it was read.
    pub received_at: SystemTime,
}

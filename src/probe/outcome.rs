//! What one probe observed: the result every later stage (health, metrics, status page) reads.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::catalog::CatalogDefinitions;
use crate::credentials::CredentialReport;
use crate::mcp::{Era, HttpPhases, RequestRecord};
use crate::tls::TlsObservation;

/// Why a probe failed, in the words an operator acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// Spawn or connect failed, the server crashed, or it did not answer in time.
    Down,
    /// The server answered 401/403: credentials are missing, wrong or lack a scope.
    AuthRequired,
    /// The server exits at once with a message (e.g. a missing token) or the config cannot work.
    Misconfigured,
    /// The server broke the protocol: garbage, wrong ids, malformed results, unknown version.
    ProtocolError,
    /// The server works but fails the configured check (missing expected tool, tool call failed).
    CheckFailed,
    /// The server wants an OAuth token only a person can obtain: the authorization server
    /// offers the authorization-code grant alone, or no client is configured (docs/auth.md).
    LoginRequired,
    /// The token endpoint refused the prober's client or grant, or the server refused the token
    /// just issued (docs/auth.md).
    CredentialRejected,
    /// The OAuth metadata or token endpoint did not answer or answered 5xx: the server may be
    /// up, its authorization server is not (docs/auth.md).
    AuthServerDown,
}

impl FailureClass {
    /// Every class, for pre-creating label values.
    pub const ALL: [FailureClass; 8] = [
        FailureClass::Down,
        FailureClass::AuthRequired,
        FailureClass::Misconfigured,
        FailureClass::ProtocolError,
        FailureClass::CheckFailed,
        FailureClass::LoginRequired,
        FailureClass::CredentialRejected,
        FailureClass::AuthServerDown,
    ];

    /// The snake_case name used in labels and output.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::Down => "down",
            FailureClass::AuthRequired => "auth_required",
            FailureClass::Misconfigured => "misconfigured",
            FailureClass::ProtocolError => "protocol_error",
            FailureClass::CheckFailed => "check_failed",
            FailureClass::LoginRequired => "login_required",
            FailureClass::CredentialRejected => "credential_rejected",
            FailureClass::AuthServerDown => "auth_server_down",
        }
    }
}

impl fmt::Display for FailureClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A probe stage, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Resolving `${VAR}` references of the server entry.
    Config,
    /// Spawning the child or building the HTTP client.
    Connect,
    /// `initialize` or `server/discover`.
    Handshake,
    /// OAuth discovery and token requests, when the server asked for a token (docs/auth.md);
    /// their time is also inside the stage whose request the server refused.
    Authorize,
    /// `ping` (legacy) or `server/discover` (modern) on the live session.
    Ping,
    /// `tools/list` with pagination.
    ListTools,
    /// Comparing the catalog with `expected_tools`.
    ExpectedTools,
    /// The configured `tools/call`.
    ToolCall,
}

impl Stage {
    /// The snake_case name used in output.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Config => "config",
            Stage::Connect => "connect",
            Stage::Handshake => "handshake",
            Stage::Authorize => "authorize",
            Stage::Ping => "ping",
            Stage::ListTools => "list_tools",
            Stage::ExpectedTools => "expected_tools",
            Stage::ToolCall => "tool_call",
        }
    }
}

/// A failed probe: which stage, what class, and a sentence for the operator.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeFailure {
    /// Failure class.
    pub class: FailureClass,
    /// Stage that failed.
    pub stage: Stage,
    /// Human-readable reason (no secrets).
    pub reason: String,
}

impl fmt::Display for ProbeFailure {
    /// "class at stage: reason", the one wording of a failure in logs, tables and history.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at {}: {}",
            self.class,
            self.stage.as_str(),
            self.reason
        )
    }
}

/// Identity of the server as the handshake reported it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerIdentity {
    /// `serverInfo.name`.
    pub name: String,
    /// `serverInfo.version`.
    pub version: String,
    /// Negotiated protocol revision.
    pub protocol_version: String,
    /// Protocol era.
    #[serde(serialize_with = "serialize_era")]
    pub era: Era,
}

fn serialize_era<S: serde::Serializer>(era: &Era, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(era)
}

/// What `tools/list` returned.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CatalogSummary {
    /// Number of tools listed.
    pub count: usize,
    /// Stable hash of the catalog's content (schema drift detection).
    pub content_hash: u64,
    /// Tool names, as listed.
    pub names: Vec<String>,
    /// Each tool's canonical definition and fingerprint, and the catalog text
    /// (src/probe/catalog.rs); computed once, when the catalog was listed.
    #[serde(skip)]
    pub definitions: Arc<CatalogDefinitions>,
}

/// The result of one probe of one server.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeOutcome {
    /// When the probe started (wall clock).
    #[serde(serialize_with = "serialize_time")]
    pub started_at: SystemTime,
    /// Total probe duration.
    #[serde(serialize_with = "crate::serde_seconds::duration")]
    pub duration: Duration,
    /// The MCP handshake (or ping on the live session) completed in time.
    pub up: bool,
    /// Every stage of the configured check passed.
    pub success: bool,
    /// Set when `success` is false.
    pub failure: Option<ProbeFailure>,
    /// Non-fatal problems that make a successful probe degraded.
    pub warnings: Vec<String>,
    /// Informational remarks from the handshake (era fallback, re-initialized session).
    pub notes: Vec<String>,
    /// Latency an operator compares to thresholds: the ping RTT, or the handshake when
    /// the session was new and no ping ran.
    #[serde(serialize_with = "crate::serde_seconds::option")]
    pub latency: Option<Duration>,
    /// Server identity, once a handshake succeeded on this or an earlier probe of the session.
    pub identity: Option<ServerIdentity>,
    /// Duration of each stage that ran.
    #[serde(serialize_with = "crate::serde_seconds::pairs")]
    pub stages: Vec<(Stage, Duration)>,
    /// The tool catalog, for readiness probes.
    pub catalog: Option<CatalogSummary>,
    /// JSON-RPC round trips made during the probe.
    #[serde(skip)]
    pub requests: Vec<RequestRecord>,
    /// The session was (re)established by this probe (also after the server lost it).
    pub new_session: bool,
    /// Where the time of the probe's HTTP requests went (HTTP transports only).
    pub http_phases: Option<HttpPhases>,
    /// What the TLS of the probe's HTTPS responses showed (certificate expiry, version).
    pub tls: Option<TlsObservation>,
    /// The credentials the probe presented: expiry, refusal (never their contents).
    pub credentials: CredentialReport,
    /// The id of the probe's trace (32 hex digits) when it was traced and sampled
    /// (docs/tracing.md): the exemplar of its histograms and a column of its history row.
    pub trace_id: Option<String>,
}

fn serialize_time<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    s.serialize_f64(secs)
}

impl ProbeOutcome {
    /// An empty outcome started now; stages fill it in.
    pub fn started(now: SystemTime) -> Self {
        ProbeOutcome {
            started_at: now,
            duration: Duration::ZERO,
            up: false,
            success: false,
            failure: None,
            warnings: Vec::new(),
            notes: Vec::new(),
            latency: None,
            identity: None,
            stages: Vec::new(),
            catalog: None,
            requests: Vec::new(),
            new_session: false,
            http_phases: None,
            tls: None,
            credentials: CredentialReport::default(),
            trace_id: None,
        }
    }

    /// Marks the probe failed at `stage`.
    pub fn fail(&mut self, stage: Stage, class: FailureClass, reason: impl Into<String>) {
        self.success = false;
        self.failure = Some(ProbeFailure {
            class,
            stage,
            reason: reason.into(),
        });
    }

    /// One line for logs and tables: "ok", "ok (warnings…)" or "class at stage: reason".
    pub fn summary(&self) -> String {
        match &self.failure {
            Some(failure) => failure.to_string(),
            None if self.warnings.is_empty() => "ok".to_string(),
            None => format!("ok with warnings: {}", self.warnings.join("; ")),
        }
    }
}

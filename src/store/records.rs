//! Rows the daemon writes to the history store.

use super::Level;

/// One row to write.
#[derive(Debug, Clone)]
pub enum Record {
    /// A probe result.
    Probe(ProbeRow),
    /// A dependency check result.
    Dependency(DependencyRow),
    /// A health transition.
    Transition(TransitionRow),
    /// A log line.
    Log(LogRow),
    /// A tool added, removed or modified between two listings.
    DefinitionChange(DefinitionChangeRow),
    /// A sample of a server's process tree (at most one per server per minute).
    ProcessSample(ProcessSampleRow),
}

impl Record {
    /// The `kind` label of `mcp_store_writes_total` / `mcp_store_dropped_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            Record::Probe(_) => "probe",
            Record::Dependency(_) => "dependency",
            Record::Transition(_) => "transition",
            Record::Log(_) => "log",
            Record::DefinitionChange(_) => "definition_change",
            Record::ProcessSample(_) => "process_sample",
        }
    }

    /// Every kind, for pre-creating label values.
    pub const KINDS: [&'static str; 6] = [
        "probe",
        "dependency",
        "transition",
        "log",
        "definition_change",
        "process_sample",
    ];
}

/// One downsampled sample of a server's process tree (src/process/usage.rs).
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessSampleRow {
    /// Unix seconds of the sample.
    pub ts: f64,
    /// Server name.
    pub server: String,
    /// Processes in the tree.
    pub processes: u64,
    /// CPU use, percent of one core; `None` on the first sample.
    pub cpu_percent: Option<f64>,
    /// Resident set size summed over the tree, bytes.
    pub memory_bytes: u64,
    /// Open file descriptors summed over the tree; `None` when not countable.
    pub file_descriptors: Option<u64>,
}

/// A probe result with its stage timings and error.
#[derive(Debug, Clone)]
pub struct ProbeRow {
    /// Unix seconds the probe started.
    pub ts: f64,
    /// Server name.
    pub server: String,
    /// `liveness` or `readiness`.
    pub check_type: String,
    /// The handshake/ping completed.
    pub up: bool,
    /// Every stage passed.
    pub success: bool,
    /// Health word after this probe (HEALTHY, DEGRADED, UNHEALTHY, UNKNOWN).
    pub health: String,
    /// Total duration, ms.
    pub duration_ms: f64,
    /// Ping or handshake latency, ms.
    pub latency_ms: Option<f64>,
    /// Failure class when failed.
    pub failure_class: Option<String>,
    /// Failed stage.
    pub failure_stage: Option<String>,
    /// Reason, warnings or health reasons.
    pub error: Option<String>,
    /// JSON object stage -> ms.
    pub stages: String,
    /// The probe's OpenTelemetry trace id when it was traced and sampled (docs/tracing.md).
    pub trace_id: Option<String>,
}

/// A dependency check result (the checks themselves come with the dependency model).
#[derive(Debug, Clone)]
pub struct DependencyRow {
    /// Unix seconds.
    pub ts: f64,
    /// Server that depends on it, when checked for one server.
    pub server: Option<String>,
    /// Dependency name.
    pub dependency: String,
    /// Kind (postgres, http, ...).
    pub kind: String,
    /// Reachable.
    pub up: bool,
    /// Health word.
    pub status: String,
    /// Check duration, ms.
    pub duration_ms: Option<f64>,
    /// Error, if any.
    pub error: Option<String>,
}

/// A change of a server's health, or a restart.
#[derive(Debug, Clone)]
pub struct TransitionRow {
    /// Unix seconds.
    pub ts: f64,
    /// Server name.
    pub server: String,
    /// `down`, `degraded`, `recovered`, `up`, `unknown` or `restart`.
    pub kind: String,
    /// Previous health word.
    pub from_status: String,
    /// New health word.
    pub to_status: String,
    /// Why.
    pub reason: String,
}

/// Where a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogSource {
    /// A line the stdio child wrote to stderr.
    Stderr,
    /// An MCP `notifications/message`.
    Notification,
    /// An HTTP error answered by a remote server.
    Http,
    /// A security event (auth failures, protocol abuse, matched patterns) with its evidence.
    Security,
}

impl LogSource {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            LogSource::Stderr => "stderr",
            LogSource::Notification => "notification",
            LogSource::Http => "http",
            LogSource::Security => "security",
        }
    }
}

/// A log line of a monitored server.
#[derive(Debug, Clone)]
pub struct LogRow {
    /// Unix seconds it was read.
    pub ts: f64,
    /// Server name.
    pub server: String,
    /// Origin.
    pub source: LogSource,
    /// Level (given by MCP, guessed for stderr, error for HTTP).
    pub level: Level,
    /// MCP `logger`, if any.
    pub logger: Option<String>,
    /// The text.
    pub message: String,
}

/// A tool, prompt or resource template whose definition changed between two listings of a
/// server's catalog.
#[derive(Debug, Clone)]
pub struct DefinitionChangeRow {
    /// Unix seconds of the probe that saw it.
    pub ts: f64,
    /// Server name.
    pub server: String,
    /// `tool`, `prompt` or `resource_template`.
    pub kind: String,
    /// The definition's name (column `tool`, named when only tools were kept).
    pub tool: String,
    /// `added`, `removed` or `modified`.
    pub change: String,
    /// Fingerprint before.
    pub old_sha256: Option<String>,
    /// Fingerprint after.
    pub new_sha256: Option<String>,
    /// JSON array of `{"field", "old", "new"}`.
    pub fields: String,
}

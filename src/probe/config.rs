//! A server entry (`[[servers]]`): its TOML shape and its validation. The probe owns these keys;
//! the process keys of an entry (`pid_file`, `budgets`, `restart`, …) are parsed here and
//! validated by `src/process/config.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::tools_lock::{Approved, LockFile};
use crate::config::{KeyError, SourceText};
use crate::mcp::TransportSpec;
use crate::process::config::{
    ProcessConfig, RawBudgets, RawProcessKeys, RawRemediation, RawRestart,
};
use crate::tls::TlsSettings;
use crate::tls::config::RawTls;

/// What a probe checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckType {
    /// Ping on the live session (handshake first when there is none).
    Liveness,
    /// Handshake, ping and `tools/list` (+ expected tools and the optional tool call).
    Readiness,
}

impl CheckType {
    /// The lowercase name used in config and output.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckType::Liveness => "liveness",
            CheckType::Readiness => "readiness",
        }
    }
}

/// Transport of an MCP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    /// A child process speaking newline-delimited JSON-RPC on stdin/stdout.
    Stdio,
    /// Streamable HTTP (2025-03-26 and later, both eras).
    Http,
    /// The legacy HTTP+SSE transport of 2024-11-05.
    Sse,
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TransportKind::Stdio => "stdio",
            TransportKind::Http => "http",
            TransportKind::Sse => "sse",
        })
    }
}

/// An optional `tools/call` made by readiness probes.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCallCheck {
    /// Tool name.
    pub tool: String,
    /// Arguments object.
    pub arguments: serde_json::Value,
    /// Text the result's text content must contain, if set.
    pub expect_text: Option<String>,
}

/// One monitored MCP server (`[[servers]]`), validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// The `server` label value.
    pub name: String,
    /// How to reach it; header and env values may still hold `${VAR}` references, resolved by
    /// [`ServerConfig::resolve_transport`] at probe time.
    pub transport: TransportSpec,
    /// Probe interval.
    pub interval: Duration,
    /// Deadline of one probe (all stages together).
    pub timeout: Duration,
    /// Liveness or readiness.
    pub check: CheckType,
    /// Tools that must be listed for a readiness probe to pass.
    pub expected_tools: Vec<String>,
    /// Optional tool call of readiness probes.
    pub call: Option<ToolCallCheck>,
    /// Latency above which a successful probe is degraded.
    pub degraded_latency: Duration,
    /// Names of the `[[dependencies]]` this server needs (validated to exist).
    pub depends_on: Vec<String>,
    /// Line of the `[[servers]]` table, for messages.
    pub line: usize,
    /// How the server's process is found, budgets, restart policy, remediation.
    pub process: ProcessConfig,
    /// `tools_lock` and `on_mismatch`: the approved catalog (docs/tool-integrity.md).
    pub tools_lock: Option<ToolsLockConfig>,
    /// `tools_token_budget`: o200k_base tokens of the tool catalog above which the
    /// MCPToolCatalogOverBudget alert fires (`mcp_tools_list_token_budget`).
    pub tools_token_budget: u64,
    /// `auth = { type = "oauth", ... }`: the prober obtains its own tokens (docs/auth.md);
    /// `type = "bearer"` is turned into the `Authorization` header of `transport` instead.
    pub auth: Option<crate::auth::config::OauthConfig>,
    /// `method_histograms`: whether this server's probes fill the per-method and per-tool
    /// histograms, whatever the `[exporter]` profile says (docs/metrics.md#profiles); `None`
    /// follows the profile.
    pub method_histograms: Option<bool>,
}

/// The default `tools_token_budget`: 10 000 tokens, 5% of a 200k-token context window spent
/// before the user has typed anything (docs/tool-integrity.md#context-cost).
pub const DEFAULT_TOOLS_TOKEN_BUDGET: u64 = 10_000;

/// What a catalog that differs from its lock does to the server's health (`on_mismatch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnMismatch {
    /// DEGRADED with reason `tools_unapproved` (the default).
    Degraded,
    /// UNHEALTHY with reason `tools_unapproved`.
    Unhealthy,
    /// Health unchanged; the event, the metrics and the history still record it.
    Record,
}

/// A server's approved catalog: the lock file and what a difference does.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolsLockConfig {
    /// The lock file (relative paths are taken from the config file's directory).
    pub path: PathBuf,
    /// What a difference does to health.
    pub on_mismatch: OnMismatch,
    /// The server's approved tools as read when the configuration was loaded, or why the file
    /// could not be used (then every listed tool is unapproved and the reason says why).
    pub approved: Result<Arc<Approved>, String>,
}

impl ToolsLockConfig {
    /// Reads the approved tools of `server` from `path`.
    pub fn load(server: &str, path: PathBuf, on_mismatch: OnMismatch) -> ToolsLockConfig {
        let approved = LockFile::read(&path)
            .and_then(|lock| lock.approved(server, &path))
            .map(Arc::new)
            .map_err(|e| e.to_string());
        ToolsLockConfig {
            path,
            on_mismatch,
            approved,
        }
    }
}

/// What a server that sets no `interval`, `timeout` or `degraded_latency` gets (the
/// `[exporter]` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerDefaults {
    /// Probe interval.
    pub interval: Duration,
    /// Deadline of one probe.
    pub timeout: Duration,
    /// Latency above which a successful probe is degraded.
    pub degraded_latency: Duration,
}

/// The TOML shape of one `[[servers]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    name: Option<Spanned<String>>,
    transport: Option<Spanned<TransportKind>>,
    command: Option<Spanned<String>>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    cwd: Option<PathBuf>,
    url: Option<Spanned<String>>,
    #[serde(default)]
    headers: Option<Spanned<BTreeMap<String, String>>>,
    auth: Option<Spanned<crate::auth::config::RawAuth>>,
    tls: Option<Spanned<RawTls>>,
    #[serde(default, with = "crate::config::duration::opt_duration")]
    interval: Option<Duration>,
    #[serde(default, with = "crate::config::duration::opt_duration")]
    timeout: Option<Duration>,
    #[serde(default, with = "crate::config::duration::opt_duration")]
    degraded_latency: Option<Duration>,
    check: Option<CheckType>,
    #[serde(default)]
    expected_tools: Vec<String>,
    call: Option<Spanned<RawCall>>,
    depends_on: Option<Spanned<Vec<Spanned<String>>>>,
    // The process keys, validated by `src/process/config.rs`.
    pid_file: Option<Spanned<PathBuf>>,
    systemd_unit: Option<Spanned<String>>,
    process_match: Option<Spanned<String>>,
    budgets: Option<Spanned<RawBudgets>>,
    restart: Option<Spanned<RawRestart>>,
    remediation: Option<Spanned<RawRemediation>>,
    // Tool integrity (docs/tool-integrity.md).
    tools_lock: Option<Spanned<PathBuf>>,
    on_mismatch: Option<Spanned<OnMismatch>>,
    tools_token_budget: Option<Spanned<u64>>,
    // Overrides the metrics profile for this server (docs/metrics.md#profiles).
    method_histograms: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCall {
    tool: String,
    #[serde(default)]
    arguments: Option<toml::Table>,
    expect_text: Option<String>,
}

/// Validates every `[[servers]]` entry, in file order: each entry's keys, `depends_on` against
/// the `declared` dependency names, and unique names; a relative `tools_lock` is taken from
/// `config_dir`.
pub fn validate_servers(
    raw: Vec<Spanned<RawServer>>,
    defaults: &ServerDefaults,
    declared: &[&str],
    config_dir: &Path,
    src: &SourceText<'_>,
) -> Result<Vec<ServerConfig>, KeyError> {
    let mut names = BTreeSet::new();
    let mut servers = Vec::with_capacity(raw.len());
    for (index, spanned) in raw.into_iter().enumerate() {
        let table_start = spanned.span().start;
        let mut raw_server = spanned.into_inner();
        let depends_on = validate_depends_on(raw_server.depends_on.take(), declared, src)
            .map_err(|e| e.within(&format!("servers[{index}]")))?;
        let mut server =
            validate_server(index, table_start, raw_server, defaults, config_dir, src)?;
        server.depends_on = depends_on;
        if !names.insert(server.name.clone()) {
            return Err(src.key_error(
                table_start,
                format!("servers[{index}].name"),
                format!(
                    "duplicate server name {:?}; every server needs a unique name (it is the `server` label)",
                    server.name
                ),
            ));
        }
        servers.push(server);
    }
    Ok(servers)
}

/// Validates a server's `depends_on` against the declared dependency names; the key of an
/// error is `depends_on`.
fn validate_depends_on(
    raw: Option<Spanned<Vec<Spanned<String>>>>,
    declared: &[&str],
    src: &SourceText<'_>,
) -> Result<Vec<String>, KeyError> {
    let mut out: Vec<String> = Vec::new();
    for name in raw.map(Spanned::into_inner).unwrap_or_default() {
        let offset = name.span().start;
        let name = name.into_inner();
        if !declared.contains(&name.as_str()) {
            return Err(src.key_error(
                offset,
                "depends_on",
                format!(
                    "unknown dependency {name:?}; declared [[dependencies]] names: {}",
                    if declared.is_empty() {
                        "none".to_string()
                    } else {
                        declared.join(", ")
                    }
                ),
            ));
        }
        if out.contains(&name) {
            return Err(src.key_error(
                offset,
                "depends_on",
                format!("dependency {name:?} is listed twice"),
            ));
        }
        out.push(name);
    }
    Ok(out)
}

fn validate_server(
    index: usize,
    table_start: usize,
    raw: RawServer,
    defaults: &ServerDefaults,
    config_dir: &Path,
    src: &SourceText<'_>,
) -> Result<ServerConfig, KeyError> {
    let key = |k: &str| format!("servers[{index}].{k}");
    let name = raw.name.ok_or_else(|| {
        src.key_error(
            table_start,
            key("name"),
            "missing; every server needs a name",
        )
    })?;
    let name_span = name.span().start;
    let name = name.into_inner();
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(src.key_error(
            name_span,
            key("name"),
            format!("{name:?} is not a valid name; expected 1-64 characters from [A-Za-z0-9._-]"),
        ));
    }
    let transport_kind = raw.transport.ok_or_else(|| {
        src.key_error(
            table_start,
            key("transport"),
            format!("missing for server {name:?}; expected \"stdio\", \"http\" or \"sse\""),
        )
    })?;
    let transport_span = transport_kind.span().start;
    let mut headers: Vec<(String, String)> = raw
        .headers
        .as_ref()
        .map(|h| {
            h.get_ref()
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    let auth_at = raw.auth.as_ref().map(|a| a.span().start);
    let auth = match raw.auth {
        Some(table) => Some(
            crate::auth::config::validate(table, &name, src)
                .map_err(|e| e.within(&format!("servers[{index}]")))?,
        ),
        None => None,
    };
    let oauth = match auth {
        Some(crate::auth::config::AuthConfig::Bearer { token }) => {
            if let Some(offset) = auth_at
                && headers
                    .iter()
                    .any(|(k, _)| k.eq_ignore_ascii_case("authorization"))
            {
                return Err(src.key_error(
                    offset,
                    key("auth"),
                    format!("server {name:?} sets both `auth` and headers.Authorization; keep one"),
                ));
            }
            headers.push(("Authorization".to_string(), format!("Bearer {token}")));
            None
        }
        Some(crate::auth::config::AuthConfig::Oauth(oauth)) => Some(*oauth),
        None => None,
    };
    let transport = match transport_kind.into_inner() {
        TransportKind::Stdio => {
            if let Some(offset) = auth_at {
                return Err(src.key_error(
                    offset,
                    key("auth"),
                    format!("server {name:?}: auth applies to http and sse servers; pass secrets to a stdio server with `env`"),
                ));
            }
            if let Some(url) = &raw.url {
                return Err(src.key_error(
                    url.span().start,
                    key("url"),
                    "a stdio server has no url; use `command` and `args`, or set transport = \"http\"",
                ));
            }
            if let Some(h) = &raw.headers {
                return Err(src.key_error(
                    h.span().start,
                    key("headers"),
                    "headers apply to http and sse servers; pass secrets to a stdio server with `env`",
                ));
            }
            if let Some(t) = &raw.tls {
                return Err(src.key_error(
                    t.span().start,
                    key("tls"),
                    "tls applies to https servers (transport = \"http\" or \"sse\")",
                ));
            }
            let command = raw.command.ok_or_else(|| {
                src.key_error(
                    transport_span,
                    key("command"),
                    format!("missing for stdio server {name:?}; expected the program to run, e.g. \"npx\""),
                )
            })?;
            if command.get_ref().trim().is_empty() {
                return Err(src.key_error(
                    command.span().start,
                    key("command"),
                    "must not be empty",
                ));
            }
            TransportSpec::Stdio {
                command: command.into_inner(),
                args: raw.args,
                env: raw.env,
                cwd: raw.cwd,
            }
        }
        kind @ (TransportKind::Http | TransportKind::Sse) => {
            if let Some(command) = &raw.command {
                return Err(src.key_error(
                    command.span().start,
                    key("command"),
                    "an http/sse server is reached by `url`; `command` is for transport = \"stdio\"",
                ));
            }
            let url = raw.url.ok_or_else(|| {
                src.key_error(
                    transport_span,
                    key("url"),
                    format!(
                        "missing for {kind} server {name:?}; expected e.g. \"http://127.0.0.1:3001/mcp\""
                    ),
                )
            })?;
            let parsed = url::Url::parse(url.get_ref()).map_err(|err| {
                src.key_error(
                    url.span().start,
                    key("url"),
                    format!(
                        "{:?} is not a URL ({err}); expected http:// or https://",
                        url.get_ref()
                    ),
                )
            })?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(src.key_error(
                    url.span().start,
                    key("url"),
                    format!(
                        "scheme {:?} is not supported; expected http or https",
                        parsed.scheme()
                    ),
                ));
            }
            let tls = match raw.tls {
                Some(raw_tls) => crate::tls::config::validate(raw_tls, &parsed, src)
                    .map_err(|e| e.within(&format!("servers[{index}]")))?,
                None => TlsSettings::default(),
            };
            if kind == TransportKind::Http {
                TransportSpec::Http {
                    url: parsed,
                    headers,
                    tls,
                }
            } else {
                TransportSpec::Sse {
                    url: parsed,
                    headers,
                    tls,
                }
            }
        }
    };
    let process = crate::process::config::validate(
        RawProcessKeys {
            pid_file: raw.pid_file,
            systemd_unit: raw.systemd_unit,
            process_match: raw.process_match,
            budgets: raw.budgets,
            restart: raw.restart,
            remediation: raw.remediation,
        },
        matches!(transport, TransportSpec::Stdio { .. }),
        src,
    )
    .map_err(|e| e.within(&format!("servers[{index}]")))?;
    let call = raw.call.map(|c| {
        let c = c.into_inner();
        ToolCallCheck {
            tool: c.tool,
            arguments: c
                .arguments
                .map(|t| toml_to_json(toml::Value::Table(t)))
                .unwrap_or_else(|| serde_json::Value::Object(Default::default())),
            expect_text: c.expect_text,
        }
    });
    let check = raw.check.unwrap_or(CheckType::Readiness);
    let tools_lock = validate_tools_lock(
        &name,
        check,
        raw.tools_lock,
        raw.on_mismatch,
        config_dir,
        src,
    )
    .map_err(|e| e.within(&format!("servers[{index}]")))?;
    let tools_token_budget = match raw.tools_token_budget {
        Some(b) if *b.get_ref() == 0 => {
            return Err(src.key_error(
                b.span().start,
                key("tools_token_budget"),
                "must be greater than zero",
            ));
        }
        Some(b) => b.into_inner(),
        None => DEFAULT_TOOLS_TOKEN_BUDGET,
    };
    Ok(ServerConfig {
        name,
        transport,
        interval: raw.interval.unwrap_or(defaults.interval),
        timeout: raw.timeout.unwrap_or(defaults.timeout),
        check,
        expected_tools: raw.expected_tools,
        call,
        degraded_latency: raw.degraded_latency.unwrap_or(defaults.degraded_latency),
        depends_on: Vec::new(),
        line: src.line_of(table_start),
        process,
        tools_lock,
        tools_token_budget,
        auth: oauth,
        method_histograms: raw.method_histograms,
    })
}

/// Validates `tools_lock` and `on_mismatch` (keys relative to the server) and reads the lock.
/// A lock file that cannot be read is not a configuration error: the server then has no
/// approved tool, and its health reason says why (so `mcp-exporter pin` can still write it).
fn validate_tools_lock(
    name: &str,
    check: CheckType,
    path: Option<Spanned<PathBuf>>,
    on_mismatch: Option<Spanned<OnMismatch>>,
    config_dir: &Path,
    src: &SourceText<'_>,
) -> Result<Option<ToolsLockConfig>, KeyError> {
    let Some(path) = path else {
        if let Some(m) = on_mismatch {
            return Err(src.key_error(
                m.span().start,
                "on_mismatch",
                "applies only with `tools_lock`; set the lock file written by `mcp-exporter pin`",
            ));
        }
        return Ok(None);
    };
    if check != CheckType::Readiness {
        return Err(src.key_error(
            path.span().start,
            "tools_lock",
            "needs check = \"readiness\": only readiness probes list the tools",
        ));
    }
    let path = path.into_inner();
    let path = if path.is_relative() {
        config_dir.join(path)
    } else {
        path
    };
    let on_mismatch = on_mismatch.map_or(OnMismatch::Degraded, Spanned::into_inner);
    Ok(Some(ToolsLockConfig::load(name, path, on_mismatch)))
}

/// Converts TOML values (tool-call arguments) to JSON.
fn toml_to_json(value: toml::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        toml::Value::String(s) => J::String(s),
        toml::Value::Integer(i) => J::from(i),
        toml::Value::Float(f) => serde_json::Number::from_f64(f)
            .map(J::Number)
            .unwrap_or(J::Null),
        toml::Value::Boolean(b) => J::Bool(b),
        toml::Value::Datetime(d) => J::String(d.to_string()),
        toml::Value::Array(a) => J::Array(a.into_iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => {
            J::Object(t.into_iter().map(|(k, v)| (k, toml_to_json(v))).collect())
        }
    }
}

/// Validates one `[modules.NAME]` table: the keys of an http/sse `[[servers]]` entry without the
/// ones a `/probe` request supplies or that belong to a long-lived server (`name`, `url`, the
/// process and restart keys, `depends_on`, `interval`). Returns the entry as a server named
/// after the module, whose `url` the request replaces (src/probe/module.rs).
pub fn validate_module(
    name: &str,
    spanned: Spanned<RawServer>,
    defaults: &ServerDefaults,
    config_dir: &Path,
    src: &SourceText<'_>,
) -> Result<ServerConfig, KeyError> {
    let table_start = spanned.span().start;
    let mut raw = spanned.into_inner();
    let key = |k: &str| format!("modules.{name}.{k}");
    let refuse = |offset: usize, k: &str, why: &str| src.key_error(offset, key(k), why.to_string());
    if let Some(n) = &raw.name {
        return Err(refuse(
            n.span().start,
            "name",
            "a module has no name key; its table name is its name",
        ));
    }
    if let Some(url) = &raw.url {
        return Err(refuse(
            url.span().start,
            "url",
            "a module has no url; each /probe request names its target (?target=URL)",
        ));
    }
    if raw.interval.is_some() {
        return Err(refuse(
            table_start,
            "interval",
            "a module is probed when /probe is requested, not on an interval",
        ));
    }
    if let Some(d) = &raw.depends_on {
        return Err(refuse(
            d.span().start,
            "depends_on",
            "dependencies apply to [[servers]], not to /probe modules",
        ));
    }
    let process_key = [
        raw.pid_file.as_ref().map(|s| ("pid_file", s.span().start)),
        raw.systemd_unit
            .as_ref()
            .map(|s| ("systemd_unit", s.span().start)),
        raw.process_match
            .as_ref()
            .map(|s| ("process_match", s.span().start)),
        raw.budgets.as_ref().map(|s| ("budgets", s.span().start)),
        raw.restart.as_ref().map(|s| ("restart", s.span().start)),
        raw.remediation
            .as_ref()
            .map(|s| ("remediation", s.span().start)),
    ]
    .into_iter()
    .flatten()
    .next();
    if let Some((k, offset)) = process_key {
        return Err(refuse(
            offset,
            k,
            "process keys apply to [[servers]], not to /probe modules",
        ));
    }
    let transport = raw
        .transport
        .get_or_insert_with(|| Spanned::new(table_start..table_start, TransportKind::Http));
    if *transport.get_ref() == TransportKind::Stdio {
        return Err(refuse(
            transport.span().start,
            "transport",
            "/probe reaches targets by URL: expected \"http\" or \"sse\"",
        ));
    }
    raw.name = Some(Spanned::new(table_start..table_start, name.to_string()));
    // Replaced by each request's target; validated here so the rest of the entry is checked.
    raw.url = Some(Spanned::new(
        table_start..table_start,
        MODULE_URL_PLACEHOLDER.to_string(),
    ));
    validate_server(0, table_start, raw, defaults, config_dir, src).map_err(|e| KeyError {
        key: e
            .key
            .replacen("servers[0].", &format!("modules.{name}."), 1),
        ..e
    })
}

/// The URL a module's server carries until a request supplies its target (https, so a
/// module's `tls` key validates).
pub const MODULE_URL_PLACEHOLDER: &str = "https://module.invalid/";

//! Typed TOML configuration.
//!
//! Parsing happens in two steps: serde turns the text into `Raw*` structs (unknown keys,
//! wrong types and bad durations are reported by `toml` with their line and column), then
//! [`Config::from_toml`] validates what serde cannot (required keys per transport, duplicate
//! names, URL schemes) and reports the key, the line and what is expected.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::mcp::TransportSpec;

/// Default listen address. Prometheus' default-port list has allocated all of 9100-9999,
/// so the default sits outside that range to avoid claiming another exporter's port.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8931";
/// Default probe interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(15);
/// Default deadline of one probe.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default latency above which a successful probe is reported degraded.
pub const DEFAULT_DEGRADED_LATENCY: Duration = Duration::from_secs(2);

/// A configuration error; Display gives `file:line: key: what is wrong (what is expected)`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read configuration: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// TOML syntax or a type error found while parsing.
    #[error("{path}:{line}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line, 0 when unknown.
        line: usize,
        /// The parser's message (names the key and what was expected).
        message: String,
    },
    /// A semantic rule is broken.
    #[error("{path}:{line}: `{key}`: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line of the offending key or table.
        line: usize,
        /// Dotted path of the key, e.g. `servers[1].url`.
        key: String,
        /// What is wrong and what is expected.
        message: String,
    },
}

/// The whole configuration after validation.
#[derive(Debug, Clone)]
pub struct Config {
    /// Daemon-wide settings.
    pub exporter: ExporterConfig,
    /// Monitored MCP servers, in file order.
    pub servers: Vec<ServerConfig>,
    /// Declared dependencies (`[[dependencies]]`), in file order.
    pub dependencies: Vec<crate::deps::DependencyConfig>,
    /// The history store (`[store]`).
    pub store: crate::store::StoreConfig,
    /// `[security]` (patterns matched in stderr and log notifications).
    pub security: SecurityConfig,
}

/// `[security]`: regexes (case-insensitive) matched in servers' stderr and log notifications;
/// each match is a `pattern_match` security event. `None` keeps the built-in defaults.
#[derive(Debug, Clone, Default)]
pub struct SecurityConfig {
    /// The patterns, validated as regexes.
    pub patterns: Option<Vec<String>>,
}

/// Daemon-wide settings (`[exporter]`).
#[derive(Debug, Clone)]
pub struct ExporterConfig {
    /// Address `/metrics` and the status page listen on.
    pub listen: SocketAddr,
    /// Default probe interval for servers that set none.
    pub interval: Duration,
    /// Default probe deadline for servers that set none.
    pub timeout: Duration,
    /// Default latency threshold above which a server is degraded.
    pub degraded_latency: Duration,
}

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
    /// How to reach it; header and env values may still hold `${VAR}` references,
    /// resolved by [`ServerConfig::resolve_transport`] at probe time.
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
    /// How the server's process is found, budgets, restart policy, remediation (issue 3).
    pub process: crate::process::config::ProcessConfig,
}

impl ServerConfig {
    /// Returns the transport with every `${VAR}` in header and env values replaced from the
    /// process environment, or the name of the first variable that is not set.
    pub fn resolve_transport(&self) -> Result<TransportSpec, UnsetVariable> {
        self.resolve_transport_with(|name| match name.strip_prefix("file:") {
            // Issue 7: `${file:/run/secrets/x}` reads a secret file.
            Some(path) => crate::security::read_secret_file(std::path::Path::new(path)),
            None => std::env::var(name).ok(),
        })
    }

    /// [`ServerConfig::resolve_transport`] with an explicit lookup (for tests).
    pub fn resolve_transport_with(
        &self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<TransportSpec, UnsetVariable> {
        let mut spec = self.transport.clone();
        match &mut spec {
            TransportSpec::Stdio { env, .. } => {
                for (key, value) in env.iter_mut() {
                    *value = expand_env(value, &lookup).map_err(|variable| UnsetVariable {
                        variable,
                        key: format!("env.{key}"),
                    })?;
                }
            }
            TransportSpec::Http { headers, .. } | TransportSpec::Sse { headers, .. } => {
                for (key, value) in headers.iter_mut() {
                    *value = expand_env(value, &lookup).map_err(|variable| UnsetVariable {
                        variable,
                        key: format!("headers.{key}"),
                    })?;
                }
            }
        }
        Ok(spec)
    }

    /// Names of the environment variables this server's headers and env refer to.
    pub fn referenced_variables(&self) -> Vec<String> {
        let values: Vec<&String> = match &self.transport {
            TransportSpec::Stdio { env, .. } => env.values().collect(),
            TransportSpec::Http { headers, .. } | TransportSpec::Sse { headers, .. } => {
                headers.iter().map(|(_, v)| v).collect()
            }
        };
        let mut names = Vec::new();
        for value in values {
            let _ = expand_env(value, |name: &str| {
                names.push(name.to_string());
                Some(String::new())
            });
        }
        names
    }
}

/// A `${VAR}` reference whose variable is not set in the environment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} (referenced by `{key}`) is not set", describe_reference(variable))]
pub struct UnsetVariable {
    /// The variable name.
    pub variable: String,
    /// The config key holding the reference, e.g. `headers.Authorization`.
    pub key: String,
}

/// `environment variable `X`` or `secret file `/path`` (issue 7: `${file:PATH}` references).
fn describe_reference(variable: &str) -> String {
    match variable.strip_prefix("file:") {
        Some(path) => format!("secret file `{path}` is unreadable or empty, so it"),
        None => format!("environment variable `{variable}`"),
    }
}

/// Replaces `${NAME}` with the variable's value; `$$` is a literal `$`. Returns the name of
/// the first unset variable as the error.
pub(crate) fn expand_env(
    value: &str,
    mut lookup: impl FnMut(&str) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(inner) = after.strip_prefix('{') {
            match inner.find('}') {
                Some(end) => {
                    let name = &inner[..end];
                    out.push_str(&lookup(name).ok_or_else(|| name.to_string())?);
                    rest = &inner[end + 1..];
                }
                None => {
                    out.push('$');
                    rest = after;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    exporter: RawExporter,
    #[serde(default)]
    servers: Vec<Spanned<RawServer>>,
    #[serde(default)]
    dependencies: Vec<Spanned<crate::deps::config::RawDependency>>,
    #[serde(default)]
    store: crate::store::RawStoreConfig,
    #[serde(default)]
    security: RawSecurity,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecurity {
    patterns: Option<Spanned<Vec<String>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExporter {
    listen: Option<Spanned<String>>,
    #[serde(default, with = "opt_duration")]
    interval: Option<Duration>,
    #[serde(default, with = "opt_duration")]
    timeout: Option<Duration>,
    #[serde(default, with = "opt_duration")]
    degraded_latency: Option<Duration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
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
    #[serde(default, with = "opt_duration")]
    interval: Option<Duration>,
    #[serde(default, with = "opt_duration")]
    timeout: Option<Duration>,
    #[serde(default, with = "opt_duration")]
    degraded_latency: Option<Duration>,
    check: Option<CheckType>,
    #[serde(default)]
    expected_tools: Vec<String>,
    call: Option<Spanned<RawCall>>,
    depends_on: Option<Spanned<Vec<Spanned<String>>>>,
    // --- process keys (issue 3), validated in crate::process::config ---
    pid_file: Option<Spanned<PathBuf>>,
    systemd_unit: Option<Spanned<String>>,
    process_match: Option<Spanned<String>>,
    budgets: Option<Spanned<crate::process::config::RawBudgets>>,
    restart: Option<Spanned<crate::process::config::RawRestart>>,
    remediation: Option<Spanned<crate::process::config::RawRemediation>>,
    // --- end process keys ---
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCall {
    tool: String,
    #[serde(default)]
    arguments: Option<toml::Table>,
    expect_text: Option<String>,
}

/// Serde helpers for optional human durations such as `"15s"`, `"1m30s"`, `"500ms"`.
pub(crate) mod opt_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    /// Deserializes an optional duration string.
    pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<Option<Duration>, D::Error> {
        match toml::Value::deserialize(de)? {
            toml::Value::String(text) => super::parse_duration(&text)
                .map(Some)
                .map_err(serde::de::Error::custom),
            other => Err(serde::de::Error::custom(format!(
                "expected a duration string such as \"10s\" or \"500ms\", found {} `{other}`",
                other.type_str()
            ))),
        }
    }
}

/// Parses a human duration (`"15s"`, `"1m30s"`, `"250ms"`); zero is rejected.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let parsed = humantime::parse_duration(text.trim()).map_err(|err| {
        format!("invalid duration {text:?} ({err}); expected a number with a unit, like \"15s\", \"500ms\" or \"1m\"")
    })?;
    if parsed.is_zero() {
        return Err(format!("duration {text:?} must be greater than zero"));
    }
    Ok(parsed)
}

/// Maps a byte offset in `text` to a 1-based line number.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// The dotted key assigned on `line` (1-based), with its table prefix, e.g. `servers[1].timeout`
/// or `exporter.interval`; `None` when the line assigns no key.
fn key_at_line(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let current = lines.get(line.checked_sub(1)?)?.trim();
    let (key, _) = current.split_once('=')?;
    let key = key.trim().trim_matches('"');
    if key.is_empty() || key.starts_with('[') || key.contains(char::is_whitespace) {
        return None;
    }
    let mut table: Option<String> = None;
    let mut array_counts: BTreeMap<String, usize> = BTreeMap::new();
    for l in &lines[..line - 1] {
        let l = l.trim();
        if let Some(name) = l
            .strip_prefix("[[")
            .and_then(|r| r.split_once("]]"))
            .map(|(n, _)| n.trim())
        {
            let n = array_counts.entry(name.to_string()).or_insert(0);
            table = Some(format!("{name}[{n}]"));
            *n += 1;
        } else if let Some(name) = l
            .strip_prefix('[')
            .and_then(|r| r.split_once(']'))
            .map(|(n, _)| n.trim())
        {
            table = Some(name.to_string());
        }
    }
    Some(match table {
        Some(t) => format!("{t}.{key}"),
        None => key.to_string(),
    })
}

struct Validator<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Validator<'_> {
    fn invalid(
        &self,
        offset: usize,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_path_buf(),
            line: line_of(self.text, offset),
            key: key.into(),
            message: message.into(),
        }
    }
}

impl Config {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::from_toml(&text, path)
    }

    /// Parses and validates TOML text; `path` is only used in messages.
    pub fn from_toml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|err| {
            let line = err.span().map(|s| line_of(text, s.start)).unwrap_or(0);
            let message = err.message().trim().to_string();
            ConfigError::Parse {
                path: path.to_path_buf(),
                line,
                message: match key_at_line(text, line) {
                    Some(key) => format!("`{key}`: {message}"),
                    None => message,
                },
            }
        })?;
        let v = Validator { path, text };

        let listen_text = raw
            .exporter
            .listen
            .as_ref()
            .map(|s| (s.get_ref().clone(), s.span().start))
            .unwrap_or_else(|| (DEFAULT_LISTEN.to_string(), 0));
        let listen: SocketAddr = listen_text.0.parse().map_err(|_| {
            v.invalid(
                listen_text.1,
                "exporter.listen",
                format!(
                    "{:?} is not an address; expected IP:PORT such as \"127.0.0.1:8931\" or \"[::1]:8931\"",
                    listen_text.0
                ),
            )
        })?;
        let exporter = ExporterConfig {
            listen,
            interval: raw.exporter.interval.unwrap_or(DEFAULT_INTERVAL),
            timeout: raw.exporter.timeout.unwrap_or(DEFAULT_TIMEOUT),
            degraded_latency: raw
                .exporter
                .degraded_latency
                .unwrap_or(DEFAULT_DEGRADED_LATENCY),
        };

        let dependencies = validate_dependencies(&v, raw.dependencies)?;
        let mut names = BTreeSet::new();
        let mut servers = Vec::with_capacity(raw.servers.len());
        for (index, spanned) in raw.servers.into_iter().enumerate() {
            let table_start = spanned.span().start;
            let mut raw_server = spanned.into_inner();
            let depends_on =
                validate_depends_on(&v, index, raw_server.depends_on.take(), &dependencies)?;
            let mut server = validate_server(&v, index, table_start, raw_server, &exporter)?;
            server.depends_on = depends_on;
            if !names.insert(server.name.clone()) {
                return Err(v.invalid(
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
        let store =
            crate::store::StoreConfig::from_raw(raw.store, path).map_err(|(key, message)| {
                v.invalid(
                    text.find("[store]").unwrap_or(0),
                    format!("store.{key}"),
                    message,
                )
            })?;
        let mut security = SecurityConfig::default();
        if let Some(patterns) = raw.security.patterns {
            for (i, p) in patterns.get_ref().iter().enumerate() {
                if let Err(e) = regex::RegexBuilder::new(p).size_limit(1 << 20).build() {
                    return Err(v.invalid(
                        patterns.span().start,
                        format!("security.patterns[{i}]"),
                        format!("{p:?} is not a valid regex: {e}"),
                    ));
                }
            }
            security.patterns = Some(patterns.into_inner());
        }
        Ok(Config {
            exporter,
            servers,
            dependencies,
            store,
            security,
        })
    }
}

/// Validates `[[dependencies]]`: each entry (see `deps::config`) and unique names.
fn validate_dependencies(
    v: &Validator<'_>,
    raw: Vec<Spanned<crate::deps::config::RawDependency>>,
) -> Result<Vec<crate::deps::DependencyConfig>, ConfigError> {
    let mut out: Vec<crate::deps::DependencyConfig> = Vec::with_capacity(raw.len());
    for (index, spanned) in raw.into_iter().enumerate() {
        let start = spanned.span().start;
        let dep = crate::deps::config::validate(
            index,
            start,
            spanned.into_inner(),
            line_of(v.text, start),
        )
        .map_err(|(offset, key, message)| v.invalid(offset, key, message))?;
        if out.iter().any(|d| d.name == dep.name) {
            return Err(v.invalid(
                start,
                format!("dependencies[{index}].name"),
                format!(
                    "duplicate dependency name {:?}; every dependency needs a unique name",
                    dep.name
                ),
            ));
        }
        out.push(dep);
    }
    Ok(out)
}

/// Validates a server's `depends_on` against the declared dependency names.
fn validate_depends_on(
    v: &Validator<'_>,
    index: usize,
    raw: Option<Spanned<Vec<Spanned<String>>>>,
    dependencies: &[crate::deps::DependencyConfig],
) -> Result<Vec<String>, ConfigError> {
    let mut out: Vec<String> = Vec::new();
    for name in raw.map(Spanned::into_inner).unwrap_or_default() {
        let offset = name.span().start;
        let name = name.into_inner();
        if !dependencies.iter().any(|d| d.name == name) {
            let declared: Vec<&str> = dependencies.iter().map(|d| d.name.as_str()).collect();
            return Err(v.invalid(
                offset,
                format!("servers[{index}].depends_on"),
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
            return Err(v.invalid(
                offset,
                format!("servers[{index}].depends_on"),
                format!("dependency {name:?} is listed twice"),
            ));
        }
        out.push(name);
    }
    Ok(out)
}

fn validate_server(
    v: &Validator<'_>,
    index: usize,
    table_start: usize,
    raw: RawServer,
    exporter: &ExporterConfig,
) -> Result<ServerConfig, ConfigError> {
    let key = |k: &str| format!("servers[{index}].{k}");
    let name = raw.name.ok_or_else(|| {
        v.invalid(
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
        return Err(v.invalid(
            name_span,
            key("name"),
            format!("{name:?} is not a valid name; expected 1-64 characters from [A-Za-z0-9._-]"),
        ));
    }
    let transport_kind = raw.transport.ok_or_else(|| {
        v.invalid(
            table_start,
            key("transport"),
            format!("missing for server {name:?}; expected \"stdio\", \"http\" or \"sse\""),
        )
    })?;
    let transport_span = transport_kind.span().start;
    let headers: Vec<(String, String)> = raw
        .headers
        .as_ref()
        .map(|h| {
            h.get_ref()
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    let transport = match transport_kind.into_inner() {
        TransportKind::Stdio => {
            if let Some(url) = &raw.url {
                return Err(v.invalid(
                    url.span().start,
                    key("url"),
                    "a stdio server has no url; use `command` and `args`, or set transport = \"http\"",
                ));
            }
            if let Some(h) = &raw.headers {
                return Err(v.invalid(
                    h.span().start,
                    key("headers"),
                    "headers apply to http and sse servers; pass secrets to a stdio server with `env`",
                ));
            }
            let command = raw.command.ok_or_else(|| {
                v.invalid(
                    transport_span,
                    key("command"),
                    format!("missing for stdio server {name:?}; expected the program to run, e.g. \"npx\""),
                )
            })?;
            if command.get_ref().trim().is_empty() {
                return Err(v.invalid(command.span().start, key("command"), "must not be empty"));
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
                return Err(v.invalid(
                    command.span().start,
                    key("command"),
                    "an http/sse server is reached by `url`; `command` is for transport = \"stdio\"",
                ));
            }
            let url = raw.url.ok_or_else(|| {
                v.invalid(
                    transport_span,
                    key("url"),
                    format!(
                        "missing for {} server {name:?}; expected e.g. \"http://127.0.0.1:3001/mcp\"",
                        if kind == TransportKind::Http { "http" } else { "sse" }
                    ),
                )
            })?;
            let parsed = url::Url::parse(url.get_ref()).map_err(|err| {
                v.invalid(
                    url.span().start,
                    key("url"),
                    format!(
                        "{:?} is not a URL ({err}); expected http:// or https://",
                        url.get_ref()
                    ),
                )
            })?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(v.invalid(
                    url.span().start,
                    key("url"),
                    format!(
                        "scheme {:?} is not supported; expected http or https",
                        parsed.scheme()
                    ),
                ));
            }
            if kind == TransportKind::Http {
                TransportSpec::Http {
                    url: parsed,
                    headers,
                }
            } else {
                TransportSpec::Sse {
                    url: parsed,
                    headers,
                }
            }
        }
    };
    let process = crate::process::config::validate(
        crate::process::config::RawProcessKeys {
            pid_file: raw.pid_file,
            systemd_unit: raw.systemd_unit,
            process_match: raw.process_match,
            budgets: raw.budgets,
            restart: raw.restart,
            remediation: raw.remediation,
        },
        matches!(transport, TransportSpec::Stdio { .. }),
    )
    .map_err(|e| v.invalid(e.offset, key(&e.key), e.message))?;
    let interval = raw.interval.unwrap_or(exporter.interval);
    let timeout = raw.timeout.unwrap_or(exporter.timeout);
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
    Ok(ServerConfig {
        name,
        transport,
        interval,
        timeout,
        check: raw.check.unwrap_or(CheckType::Readiness),
        expected_tools: raw.expected_tools,
        call,
        degraded_latency: raw.degraded_latency.unwrap_or(exporter.degraded_latency),
        depends_on: Vec::new(),
        line: line_of(v.text, table_start),
        process,
    })
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

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TransportKind::Stdio => "stdio",
            TransportKind::Http => "http",
            TransportKind::Sse => "sse",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[exporter]
listen = "127.0.0.1:9931"
interval = "15s"
timeout = "10s"

[[servers]]
name = "everything"
transport = "stdio"
command = "npx"
args = ["-y", "@modelcontextprotocol/server-everything"]

[[servers]]
name = "remote"
transport = "http"            # Streamable HTTP; "sse" for the legacy HTTP+SSE transport
url = "http://127.0.0.1:3001/mcp"
"#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text, Path::new("test.toml"))
    }

    fn error_of(text: &str) -> String {
        parse(text)
            .expect_err("config should be rejected")
            .to_string()
    }

    #[test]
    fn the_minimal_file_of_the_issue_parses() {
        let config = parse(MINIMAL).expect("minimal config");
        assert_eq!(config.exporter.listen.to_string(), "127.0.0.1:9931");
        assert_eq!(config.exporter.interval, Duration::from_secs(15));
        assert_eq!(config.servers.len(), 2);
        assert_eq!(config.servers[0].name, "everything");
        assert_eq!(config.servers[0].check, CheckType::Readiness);
        assert_eq!(config.servers[0].timeout, Duration::from_secs(10));
        assert!(matches!(
            config.servers[1].transport,
            TransportSpec::Http { .. }
        ));
        assert_eq!(config.servers[1].line, 13);
    }

    #[test]
    fn defaults_apply_when_exporter_table_is_absent() {
        let config = parse("").expect("empty config");
        assert_eq!(config.exporter.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(config.exporter.interval, DEFAULT_INTERVAL);
        assert!(config.servers.is_empty());
    }

    #[test]
    fn unknown_transport_names_the_line_and_choices() {
        let err = error_of("[[servers]]\nname = \"a\"\ntransport = \"grpc\"\n");
        assert!(err.starts_with("test.toml:3: "), "{err}");
        assert!(
            err.contains("grpc") && err.contains("stdio") && err.contains("sse"),
            "{err}"
        );
    }

    #[test]
    fn missing_url_names_the_key() {
        let err = error_of("[[servers]]\nname = \"a\"\ntransport = \"http\"\n");
        assert_eq!(
            err,
            "test.toml:3: `servers[0].url`: missing for http server \"a\"; expected e.g. \"http://127.0.0.1:3001/mcp\""
        );
    }

    #[test]
    fn missing_command_names_the_key() {
        let err = error_of("\n[[servers]]\nname = \"a\"\ntransport = \"stdio\"\n");
        assert!(
            err.starts_with("test.toml:4: `servers[0].command`: missing"),
            "{err}"
        );
    }

    #[test]
    fn bad_duration_names_the_line_and_the_expected_form() {
        let err = error_of("[exporter]\ninterval = \"soon\"\n");
        assert!(err.starts_with("test.toml:2: "), "{err}");
        assert!(err.contains("invalid duration \"soon\""), "{err}");
        assert!(err.contains("\"15s\""), "{err}");
    }

    #[test]
    fn type_errors_name_the_key_with_its_table() {
        let err = error_of(
            "[[servers]]\nname = \"a\"\ntransport = \"stdio\"\ncommand = \"x\"\n\n[[servers]]\nname = \"b\"\ntransport = \"stdio\"\ncommand = \"x\"\ntimeout = 10\n",
        );
        assert_eq!(
            err,
            "test.toml:10: `servers[1].timeout`: expected a duration string such as \"10s\" or \"500ms\", found integer `10`"
        );
        let err = error_of("[exporter]\ninterval = \"soon\"\n");
        assert!(
            err.starts_with("test.toml:2: `exporter.interval`: invalid duration"),
            "{err}"
        );
    }

    #[test]
    fn zero_duration_is_rejected() {
        let err = error_of("[exporter]\ntimeout = \"0s\"\n");
        assert!(err.contains("greater than zero"), "{err}");
    }

    #[test]
    fn duplicate_names_are_rejected() {
        let text = "[[servers]]\nname = \"a\"\ntransport = \"stdio\"\ncommand = \"x\"\n\n[[servers]]\nname = \"a\"\ntransport = \"stdio\"\ncommand = \"y\"\n";
        let err = error_of(text);
        assert!(
            err.starts_with("test.toml:6: `servers[1].name`: duplicate server name \"a\""),
            "{err}"
        );
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = error_of(
            "[[servers]]\nname = \"a\"\ntransport = \"stdio\"\ncommand = \"x\"\ncomand = \"y\"\n",
        );
        assert!(err.starts_with("test.toml:5: "), "{err}");
        assert!(err.contains("comand"), "{err}");
    }

    #[test]
    fn stdio_server_with_url_is_rejected() {
        let err = error_of(
            "[[servers]]\nname = \"a\"\ntransport = \"stdio\"\ncommand = \"x\"\nurl = \"http://h/\"\n",
        );
        assert!(err.starts_with("test.toml:5: `servers[0].url`"), "{err}");
    }

    #[test]
    fn non_http_url_scheme_is_rejected() {
        let err =
            error_of("[[servers]]\nname = \"a\"\ntransport = \"sse\"\nurl = \"ftp://h/sse\"\n");
        assert!(err.contains("scheme \"ftp\""), "{err}");
    }

    #[test]
    fn bad_listen_address_is_rejected() {
        let err = error_of("[exporter]\nlisten = \"localhost\"\n");
        assert!(err.starts_with("test.toml:2: `exporter.listen`"), "{err}");
    }

    #[test]
    fn bad_server_name_is_rejected() {
        let err = error_of("[[servers]]\nname = \"a b\"\ntransport = \"stdio\"\ncommand = \"x\"\n");
        assert!(err.contains("not a valid name"), "{err}");
    }

    #[test]
    fn syntax_errors_carry_the_line() {
        let err = error_of("[exporter]\nlisten = \n");
        assert!(err.starts_with("test.toml:2: "), "{err}");
    }

    #[test]
    fn tool_call_and_per_server_settings_parse() {
        let text = r#"
[[servers]]
name = "e"
transport = "stdio"
command = "node"
check = "liveness"
interval = "5s"
timeout = "2s"
degraded_latency = "300ms"
expected_tools = ["echo"]
env = { TOKEN = "${MY_TOKEN}" }
call = { tool = "echo", arguments = { message = "hi", n = 2 }, expect_text = "Echo: hi" }
"#;
        let config = parse(text).expect("config");
        let s = &config.servers[0];
        assert_eq!(s.check, CheckType::Liveness);
        assert_eq!(s.interval, Duration::from_secs(5));
        assert_eq!(s.degraded_latency, Duration::from_millis(300));
        let call = s.call.as_ref().expect("call");
        assert_eq!(call.arguments, serde_json::json!({"message": "hi", "n": 2}));
        assert_eq!(s.referenced_variables(), vec!["MY_TOKEN".to_string()]);
        let resolved = s
            .resolve_transport_with(|n| (n == "MY_TOKEN").then(|| "s3cret".to_string()))
            .expect("resolved");
        match resolved {
            TransportSpec::Stdio { env, .. } => assert_eq!(env["TOKEN"], "s3cret"),
            other => panic!("unexpected {other:?}"),
        }
        let unset = s.resolve_transport_with(|_| None).expect_err("unset");
        assert_eq!(unset.variable, "MY_TOKEN");
        assert_eq!(unset.key, "env.TOKEN");
    }

    #[test]
    fn security_patterns_are_validated() {
        let c = parse("[security]\npatterns = [\"denied\"]\n").expect("valid");
        assert_eq!(c.security.patterns, Some(vec!["denied".to_string()]));
        let err = error_of("[security]\npatterns = [\"(\"]\n");
        assert!(
            err.starts_with("test.toml:2: `security.patterns[0]`"),
            "{err}"
        );
    }

    #[test]
    fn env_expansion_handles_literals_and_escapes() {
        let look = |n: &str| (n == "A").then(|| "x".to_string());
        assert_eq!(expand_env("Bearer ${A}", look), Ok("Bearer x".into()));
        assert_eq!(expand_env("$$A ${A}$", look), Ok("$A x$".into()));
        assert_eq!(expand_env("${B}", look), Err("B".into()));
        assert_eq!(
            expand_env("${unterminated", look),
            Ok("${unterminated".into())
        );
    }
}

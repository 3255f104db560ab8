//! `[[dependencies]]` entries: the raw TOML shape and its validation.
//!
//! Secrets never come from the config text: a PostgreSQL DSN or password is read from an
//! environment variable or a file at check time, and HTTP header values may be `${VAR}`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::config::reference;
use crate::config::{KeyError, SecretSource, SourceText};
use crate::tls::TlsSettings;
use crate::tls::config::RawTls;

/// Default interval of a dependency check.
pub const DEFAULT_DEPENDENCY_INTERVAL: Duration = Duration::from_secs(30);
/// Default deadline of one dependency check.
pub const DEFAULT_DEPENDENCY_TIMEOUT: Duration = Duration::from_secs(5);
/// Default `long_query_threshold` of a postgres dependency.
pub const DEFAULT_LONG_QUERY_THRESHOLD: Duration = Duration::from_secs(300);

/// An inclusive range of HTTP status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusRange {
    /// Lowest accepted code.
    pub low: u16,
    /// Highest accepted code.
    pub high: u16,
}

impl StatusRange {
    /// Whether `code` lies in the range.
    pub fn contains(self, code: u16) -> bool {
        (self.low..=self.high).contains(&code)
    }

    /// Parses `"200"`, `"200-299"` or `"2xx"`.
    pub fn parse(text: &str) -> Result<StatusRange, StatusRangeError> {
        let text = text.trim();
        let code = |s: &str| -> Result<u16, StatusRangeError> {
            s.trim()
                .parse::<u16>()
                .ok()
                .filter(|c| (100..=599).contains(c))
                .ok_or_else(|| StatusRangeError::NotACode(s.to_string()))
        };
        let range = if let Some(class) = text.strip_suffix("xx") {
            let digit = code(&format!("{class}00"))?;
            StatusRange {
                low: digit,
                high: digit + 99,
            }
        } else if let Some((low, high)) = text.split_once('-') {
            StatusRange {
                low: code(low)?,
                high: code(high)?,
            }
        } else {
            let c = code(text)?;
            StatusRange { low: c, high: c }
        };
        if range.low > range.high {
            return Err(StatusRangeError::Reversed(text.to_string()));
        }
        Ok(range)
    }
}

/// Why an `expect_status` text is not a range of status codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatusRangeError {
    /// A part is not a code from 100 to 599.
    #[error("{0:?} is not an HTTP status code (100-599)")]
    NotACode(String),
    /// `high-low` instead of `low-high`.
    #[error("{0:?}: the first code is above the second")]
    Reversed(String),
}

/// What a dependency is and how it is checked.
#[derive(Debug, Clone, PartialEq)]
pub enum DependencySpec {
    /// `kind = "postgres"`: connect with sqlx and run `SELECT 1`.
    Postgres {
        /// Where the DSN (`postgres://user@host:port/db`) comes from.
        dsn: SecretSource,
        /// Optional password overriding the DSN's.
        password: Option<SecretSource>,
        /// Active queries running longer than this are counted in
        /// `mcp_dependency_postgres_long_running_queries`.
        long_query_threshold: Duration,
    },
    /// `kind = "http"`: one request, status range and optional body match.
    Http {
        /// Method, e.g. `GET` or `HEAD`.
        method: String,
        /// The URL.
        url: url::Url,
        /// Headers; values may hold `${VAR}`.
        headers: Vec<(String, String)>,
        /// Accepted status codes.
        expect_status: StatusRange,
        /// Text the body must contain.
        body_contains: Option<String>,
        /// Whom to trust and which name to verify for an `https` URL.
        tls: TlsSettings,
    },
    /// `kind = "tcp"`: connect within the timeout.
    Tcp {
        /// `host:port`.
        address: String,
    },
    /// `kind = "filesystem"`: exists, readable, optionally writable, free space and inodes.
    Filesystem {
        /// The path (a directory or a file).
        path: PathBuf,
        /// Create and remove a temporary file in it (or open the file for writing).
        writable: bool,
        /// Free bytes (available to unprivileged users) below this are DEGRADED.
        min_free_bytes: Option<u64>,
        /// Free space below this percentage of the filesystem is DEGRADED.
        min_free_percent: Option<f64>,
        /// Free inodes below this percentage are DEGRADED.
        min_free_inodes_percent: Option<f64>,
    },
}

impl DependencySpec {
    /// The `kind` label value.
    pub fn kind(&self) -> &'static str {
        match self {
            DependencySpec::Postgres { .. } => "postgres",
            DependencySpec::Http { .. } => "http",
            DependencySpec::Tcp { .. } => "tcp",
            DependencySpec::Filesystem { .. } => "filesystem",
        }
    }
}

/// One `[[dependencies]]` entry, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct DependencyConfig {
    /// Unique name; the `dependency` label; what servers' `depends_on` refers to.
    pub name: String,
    /// Kind-specific settings.
    pub spec: DependencySpec,
    /// Time between checks.
    pub interval: Duration,
    /// Deadline of one check.
    pub timeout: Duration,
    /// Minimum time between two checks, whatever `interval` says (rate-limited APIs).
    pub min_interval: Option<Duration>,
    /// When down: servers depending on it are UNHEALTHY (true) or DEGRADED (false).
    pub critical: bool,
    /// Line of the table, for messages.
    pub line: usize,
}

impl DependencyConfig {
    /// The wait between the starts of two checks when nothing asks for more.
    pub fn period(&self) -> Duration {
        self.min_interval
            .map_or(self.interval, |m| m.max(self.interval))
    }
}

impl DependencyConfig {
    /// One line for `validate`: what is checked, how often, how critical.
    pub fn describe(&self) -> String {
        let target = match &self.spec {
            DependencySpec::Postgres { dsn, .. } => match dsn {
                SecretSource::Env(v) => format!("DSN from ${v}"),
                SecretSource::File(p) => format!("DSN from {}", p.display()),
            },
            DependencySpec::Http { method, url, .. } => format!("{method} {url}"),
            DependencySpec::Tcp { address } => address.clone(),
            DependencySpec::Filesystem { path, writable, .. } => format!(
                "{}{}",
                path.display(),
                if *writable { " (writable)" } else { "" }
            ),
        };
        format!(
            "{} ({}{}): every {} (timeout {}): {target}",
            self.name,
            self.spec.kind(),
            if self.critical { ", critical" } else { "" },
            humantime::format_duration(self.period()),
            humantime::format_duration(self.timeout),
        )
    }

    /// Environment variables the check needs that `lookup` does not find.
    pub fn unset_variables(&self, lookup: impl Fn(&str) -> Option<String>) -> Vec<String> {
        let mut unset = Vec::new();
        match &self.spec {
            DependencySpec::Postgres { dsn, password, .. } => {
                for source in std::iter::once(dsn).chain(password.as_ref()) {
                    if let SecretSource::Env(name) = source
                        && lookup(name).is_none()
                    {
                        unset.push(name.clone());
                    }
                }
            }
            DependencySpec::Http { headers, .. } => {
                for (_, value) in headers {
                    let expanded = reference::expand(value, |name| {
                        lookup(name).ok_or_else(|| name.to_string())
                    });
                    if let Err(name) = expanded {
                        unset.push(name);
                    }
                }
            }
            _ => {}
        }
        unset
    }
}

/// The TOML shape of `[[dependencies]]` (every kind's keys; validation rejects the ones that do
/// not apply to the entry's kind).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDependency {
    name: Option<Spanned<String>>,
    kind: Option<Spanned<String>>,
    #[serde(default, with = "crate::config::duration::opt_duration")]
    interval: Option<Duration>,
    #[serde(default, with = "crate::config::duration::opt_duration")]
    timeout: Option<Duration>,
    #[serde(default, with = "crate::config::duration::opt_duration")]
    min_interval: Option<Duration>,
    critical: Option<bool>,
    dsn: Option<Spanned<String>>,
    dsn_env: Option<Spanned<String>>,
    dsn_file: Option<Spanned<PathBuf>>,
    password: Option<Spanned<String>>,
    password_env: Option<Spanned<String>>,
    password_file: Option<Spanned<PathBuf>>,
    long_query_threshold: Option<Spanned<String>>,
    url: Option<Spanned<String>>,
    method: Option<Spanned<String>>,
    headers: Option<Spanned<BTreeMap<String, String>>>,
    expect_status: Option<Spanned<String>>,
    body_contains: Option<Spanned<String>>,
    tls: Option<Spanned<RawTls>>,
    address: Option<Spanned<String>>,
    path: Option<Spanned<PathBuf>>,
    writable: Option<Spanned<bool>>,
    min_free_bytes: Option<Spanned<u64>>,
    min_free_percent: Option<Spanned<f64>>,
    min_free_inodes_percent: Option<Spanned<f64>>,
}

/// The source of the secret `what` (`dsn`, `password`) from its `*_env` / `*_file` keys.
fn secret(
    src: &SourceText<'_>,
    key: &dyn Fn(&str) -> String,
    table_start: usize,
    what: &str,
    env: Option<Spanned<String>>,
    file: Option<Spanned<PathBuf>>,
    required: bool,
) -> Result<Option<SecretSource>, KeyError> {
    match (env, file) {
        (Some(env), None) => {
            let name = env.get_ref().trim();
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(src.key_error(
                    env.span().start,
                    key(&format!("{what}_env")),
                    format!(
                        "{:?} is not an environment variable name; expected e.g. \"PG_DSN\"",
                        env.get_ref()
                    ),
                ));
            }
            Ok(Some(SecretSource::Env(name.to_string())))
        }
        (None, Some(file)) => Ok(Some(SecretSource::File(file.into_inner()))),
        (Some(_), Some(file)) => Err(src.key_error(
            file.span().start,
            key(&format!("{what}_file")),
            format!("set either `{what}_env` or `{what}_file`, not both"),
        )),
        (None, None) if required => Err(src.key_error(
            table_start,
            key(&format!("{what}_env")),
            format!(
                "missing; a postgres dependency reads its DSN from `{what}_env` (an environment variable) or `{what}_file`"
            ),
        )),
        (None, None) => Ok(None),
    }
}

/// Validates every `[[dependencies]]` entry, in file order, and that names are unique.
pub fn validate_all(
    raw: Vec<Spanned<RawDependency>>,
    src: &SourceText<'_>,
) -> Result<Vec<DependencyConfig>, KeyError> {
    let mut out: Vec<DependencyConfig> = Vec::with_capacity(raw.len());
    for (index, spanned) in raw.into_iter().enumerate() {
        let start = spanned.span().start;
        let dep = validate(index, start, spanned.into_inner(), src)?;
        if out.iter().any(|d| d.name == dep.name) {
            return Err(src.key_error(
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

/// Validates entry `index`, whose table starts at byte `table_start`.
fn validate(
    index: usize,
    table_start: usize,
    raw: RawDependency,
    src: &SourceText<'_>,
) -> Result<DependencyConfig, KeyError> {
    let key = |k: &str| format!("dependencies[{index}].{k}");
    let name = raw.name.ok_or_else(|| {
        src.key_error(
            table_start,
            key("name"),
            "missing; every dependency needs a name (servers refer to it in `depends_on`)"
                .to_string(),
        )
    })?;
    let name_text = name.get_ref().clone();
    if name_text.is_empty()
        || name_text.len() > 64
        || !name_text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(src.key_error(
            name.span().start,
            key("name"),
            format!(
                "{name_text:?} is not a valid name; expected 1-64 characters from [A-Za-z0-9._-]"
            ),
        ));
    }
    let kind = raw.kind.ok_or_else(|| {
        src.key_error(
            table_start,
            key("kind"),
            format!("missing for dependency {name_text:?}; expected \"postgres\", \"http\", \"tcp\" or \"filesystem\""),
        )
    })?;
    let kind_span = kind.span().start;
    if let Some(secret) = raw.dsn.as_ref().or(raw.password.as_ref()) {
        let which = if raw.dsn.is_some() { "dsn" } else { "password" };
        return Err(src.key_error(
            secret.span().start,
            key(which),
            format!(
                "secrets are not read from the configuration; use `{which}_env` (an environment variable) or `{which}_file`"
            ),
        ));
    }
    // Keys that belong to one kind only, with the kind they belong to.
    let foreign: Vec<(&str, Option<usize>, &str)> = vec![
        (
            "dsn_env",
            raw.dsn_env.as_ref().map(|s| s.span().start),
            "postgres",
        ),
        (
            "dsn_file",
            raw.dsn_file.as_ref().map(|s| s.span().start),
            "postgres",
        ),
        (
            "password_env",
            raw.password_env.as_ref().map(|s| s.span().start),
            "postgres",
        ),
        (
            "password_file",
            raw.password_file.as_ref().map(|s| s.span().start),
            "postgres",
        ),
        (
            "long_query_threshold",
            raw.long_query_threshold.as_ref().map(|s| s.span().start),
            "postgres",
        ),
        ("url", raw.url.as_ref().map(|s| s.span().start), "http"),
        (
            "method",
            raw.method.as_ref().map(|s| s.span().start),
            "http",
        ),
        (
            "headers",
            raw.headers.as_ref().map(|s| s.span().start),
            "http",
        ),
        (
            "expect_status",
            raw.expect_status.as_ref().map(|s| s.span().start),
            "http",
        ),
        (
            "body_contains",
            raw.body_contains.as_ref().map(|s| s.span().start),
            "http",
        ),
        ("tls", raw.tls.as_ref().map(|s| s.span().start), "http"),
        (
            "address",
            raw.address.as_ref().map(|s| s.span().start),
            "tcp",
        ),
        (
            "path",
            raw.path.as_ref().map(|s| s.span().start),
            "filesystem",
        ),
        (
            "writable",
            raw.writable.as_ref().map(|s| s.span().start),
            "filesystem",
        ),
        (
            "min_free_bytes",
            raw.min_free_bytes.as_ref().map(|s| s.span().start),
            "filesystem",
        ),
        (
            "min_free_percent",
            raw.min_free_percent.as_ref().map(|s| s.span().start),
            "filesystem",
        ),
        (
            "min_free_inodes_percent",
            raw.min_free_inodes_percent.as_ref().map(|s| s.span().start),
            "filesystem",
        ),
    ];
    let kind_text = kind.get_ref().as_str();
    if !matches!(kind_text, "postgres" | "http" | "tcp" | "filesystem") {
        return Err(src.key_error(
            kind_span,
            key("kind"),
            format!(
                "unknown kind {kind_text:?}; expected \"postgres\", \"http\", \"tcp\" or \"filesystem\""
            ),
        ));
    }
    for (k, span, owner) in &foreign {
        if let Some(span) = span
            && *owner != kind_text
        {
            return Err(src.key_error(
                *span,
                key(k),
                format!("`{k}` applies to kind = \"{owner}\", not to this {kind_text} dependency"),
            ));
        }
    }
    let spec = match kind_text {
        "postgres" => {
            let dsn = secret(src, &key, kind_span, "dsn", raw.dsn_env, raw.dsn_file, true)?
                .ok_or_else(|| src.key_error(kind_span, key("dsn_env"), "missing"))?;
            let password = secret(
                src,
                &key,
                kind_span,
                "password",
                raw.password_env,
                raw.password_file,
                false,
            )?;
            let long_query_threshold = match raw.long_query_threshold {
                None => DEFAULT_LONG_QUERY_THRESHOLD,
                Some(text) => crate::config::parse_duration(text.get_ref()).map_err(|e| {
                    src.key_error(
                        text.span().start,
                        key("long_query_threshold"),
                        e.to_string(),
                    )
                })?,
            };
            DependencySpec::Postgres {
                dsn,
                password,
                long_query_threshold,
            }
        }
        "http" => {
            let url = raw.url.ok_or_else(|| {
                src.key_error(
                    kind_span,
                    key("url"),
                    format!("missing for http dependency {name_text:?}; expected e.g. \"https://api.github.com\""),
                )
            })?;
            let parsed = url::Url::parse(url.get_ref())
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https"))
                .ok_or_else(|| {
                    src.key_error(
                        url.span().start,
                        key("url"),
                        format!("{:?} is not an http:// or https:// URL", url.get_ref()),
                    )
                })?;
            let method = match raw.method {
                None => "GET".to_string(),
                Some(m) => {
                    let upper = m.get_ref().to_ascii_uppercase();
                    if !matches!(upper.as_str(), "GET" | "HEAD" | "POST" | "OPTIONS") {
                        return Err(src.key_error(
                            m.span().start,
                            key("method"),
                            format!(
                                "{:?} is not supported; expected GET, HEAD, POST or OPTIONS",
                                m.get_ref()
                            ),
                        ));
                    }
                    upper
                }
            };
            let expect_status = match raw.expect_status {
                None => StatusRange {
                    low: 200,
                    high: 299,
                },
                Some(s) => StatusRange::parse(s.get_ref()).map_err(|e| {
                    src.key_error(
                        s.span().start,
                        key("expect_status"),
                        format!("{e}; expected \"200\", \"200-299\" or \"2xx\""),
                    )
                })?,
            };
            let headers = raw
                .headers
                .map(|h| h.into_inner().into_iter().collect())
                .unwrap_or_default();
            let tls = match raw.tls {
                Some(raw_tls) => crate::tls::config::validate(raw_tls, &parsed, src)
                    .map_err(|e| e.within(&format!("dependencies[{index}]")))?,
                None => TlsSettings::default(),
            };
            DependencySpec::Http {
                method,
                url: parsed,
                headers,
                expect_status,
                body_contains: raw.body_contains.map(Spanned::into_inner),
                tls,
            }
        }
        "tcp" => {
            let address = raw.address.ok_or_else(|| {
                src.key_error(
                    kind_span,
                    key("address"),
                    format!("missing for tcp dependency {name_text:?}; expected \"host:port\""),
                )
            })?;
            let text = address.get_ref();
            let port_ok = text.rsplit_once(':').is_some_and(|(host, port)| {
                !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
            });
            if !port_ok {
                return Err(src.key_error(
                    address.span().start,
                    key("address"),
                    format!(
                        "{text:?} is not host:port; expected e.g. \"127.0.0.1:5432\" or \"[::1]:6379\""
                    ),
                ));
            }
            DependencySpec::Tcp {
                address: address.into_inner(),
            }
        }
        _ => {
            let path = raw.path.ok_or_else(|| {
                src.key_error(
                    kind_span,
                    key("path"),
                    format!("missing for filesystem dependency {name_text:?}; expected e.g. \"/var/log/mcp-servers\""),
                )
            })?;
            if !path.get_ref().is_absolute() {
                return Err(src.key_error(
                    path.span().start,
                    key("path"),
                    format!(
                        "{:?} is relative; expected an absolute path",
                        path.get_ref()
                    ),
                ));
            }
            for (k, value) in [
                ("min_free_percent", raw.min_free_percent.as_ref()),
                (
                    "min_free_inodes_percent",
                    raw.min_free_inodes_percent.as_ref(),
                ),
            ] {
                if let Some(v) = value
                    && !(0.0..=100.0).contains(v.get_ref())
                {
                    return Err(src.key_error(
                        v.span().start,
                        key(k),
                        format!("{} is not a percentage; expected 0 to 100", v.get_ref()),
                    ));
                }
            }
            DependencySpec::Filesystem {
                path: path.into_inner(),
                writable: raw.writable.is_some_and(Spanned::into_inner),
                min_free_bytes: raw.min_free_bytes.map(Spanned::into_inner),
                min_free_percent: raw.min_free_percent.map(Spanned::into_inner),
                min_free_inodes_percent: raw.min_free_inodes_percent.map(Spanned::into_inner),
            }
        }
    };
    Ok(DependencyConfig {
        name: name_text,
        spec,
        interval: raw.interval.unwrap_or(DEFAULT_DEPENDENCY_INTERVAL),
        timeout: raw.timeout.unwrap_or(DEFAULT_DEPENDENCY_TIMEOUT),
        min_interval: raw.min_interval,
        critical: raw.critical.unwrap_or(true),
        line: src.line_of(table_start),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUE_SHAPE: &str = r#"
[[dependencies]]
name = "pg"
kind = "postgres"
dsn_env = "PG_DSN"

[[dependencies]]
name = "logs-dir"
kind = "filesystem"
path = "/var/log/mcp-servers"
writable = true
min_free_percent = 10
critical = false
"#;

    /// Validates the `[[dependencies]]` of `text`.
    fn validated(text: &str) -> Result<Vec<DependencyConfig>, KeyError> {
        #[derive(Deserialize)]
        struct File {
            #[serde(default)]
            dependencies: Vec<Spanned<RawDependency>>,
        }
        let file: File = toml::from_str(text).expect("dependencies parse");
        validate_all(file.dependencies, &SourceText::new(text))
    }

    fn error_of(text: &str) -> String {
        validated(text).expect_err("should be rejected").to_string()
    }

    #[test]
    fn the_shape_of_the_issue_parses() {
        let deps = validated(ISSUE_SHAPE).expect("valid");
        assert_eq!(deps.len(), 2);
        let pg = &deps[0];
        assert_eq!(
            pg.spec,
            DependencySpec::Postgres {
                dsn: SecretSource::Env("PG_DSN".into()),
                password: None,
                long_query_threshold: DEFAULT_LONG_QUERY_THRESHOLD,
            }
        );
        assert!(pg.critical);
        assert_eq!(pg.line, 2);
        assert_eq!(pg.interval, DEFAULT_DEPENDENCY_INTERVAL);
        let logs = &deps[1];
        assert!(!logs.critical);
        assert!(
            matches!(&logs.spec, DependencySpec::Filesystem { writable: true, min_free_percent: Some(p), .. } if *p == 10.0)
        );
    }

    #[test]
    fn long_query_threshold_belongs_to_postgres() {
        let deps = validated(
            "[[dependencies]]\nname = \"pg\"\nkind = \"postgres\"\ndsn_env = \"PG_DSN\"\nlong_query_threshold = \"30s\"\n",
        )
        .expect("valid");
        assert!(matches!(
            deps[0].spec,
            DependencySpec::Postgres { long_query_threshold, .. } if long_query_threshold == Duration::from_secs(30)
        ));
        let err = error_of(
            "[[dependencies]]\nname = \"pg\"\nkind = \"postgres\"\ndsn_env = \"PG_DSN\"\nlong_query_threshold = \"soon\"\n",
        );
        assert!(
            err.starts_with("5: `dependencies[0].long_query_threshold`"),
            "{err}"
        );
        let err = error_of(
            "[[dependencies]]\nname = \"t\"\nkind = \"tcp\"\naddress = \"h:1\"\nlong_query_threshold = \"1m\"\n",
        );
        assert!(err.contains("applies to kind = \"postgres\""), "{err}");
    }

    #[test]
    fn secrets_in_the_text_and_keys_of_other_kinds_are_rejected() {
        let err = error_of(
            "[[dependencies]]\nname = \"pg\"\nkind = \"postgres\"\ndsn = \"postgres://u:pw@h/db\"\n",
        );
        assert!(
            err.starts_with("4: `dependencies[0].dsn`: secrets are not read"),
            "{err}"
        );
        assert!(!err.contains("pw@"), "{err}");
        let err = error_of(
            "[[dependencies]]\nname = \"api\"\nkind = \"http\"\nurl = \"https://x/\"\npath = \"/tmp\"\n",
        );
        assert!(
            err.starts_with("5: `dependencies[0].path`: `path` applies to kind = \"filesystem\""),
            "{err}"
        );
        let err = error_of("[[dependencies]]\nname = \"pg\"\nkind = \"postgres\"\n");
        assert!(err.contains("`dependencies[0].dsn_env`: missing"), "{err}");
        let err = error_of(
            "[[dependencies]]\nname = \"pg\"\nkind = \"postgres\"\ndsn_env = \"PG_DSN\"\ndsn_file = \"/run/dsn\"\n",
        );
        assert!(
            err.starts_with("5: `dependencies[0].dsn_file`: set either `dsn_env` or `dsn_file`"),
            "{err}"
        );
        let err = error_of("[[dependencies]]\nname = \"x\"\nkind = \"redis\"\n");
        assert!(
            err.starts_with("3: `dependencies[0].kind`: unknown kind \"redis\""),
            "{err}"
        );
        let err =
            error_of("[[dependencies]]\nname = \"t\"\nkind = \"tcp\"\naddress = \"localhost\"\n");
        assert!(err.contains("is not host:port"), "{err}");
        let err = error_of(
            "[[dependencies]]\nname = \"t\"\nkind = \"tcp\"\naddress = \"h:1\"\n\n[[dependencies]]\nname = \"t\"\nkind = \"tcp\"\naddress = \"h:2\"\n",
        );
        assert!(
            err.starts_with("6: `dependencies[1].name`: duplicate"),
            "{err}"
        );
    }

    #[test]
    fn http_settings_parse() {
        let text = "[[dependencies]]\nname = \"brave\"\nkind = \"http\"\nurl = \"https://api.search.brave.com/res/v1/web/search?q=mcp\"\nheaders = { X-Subscription-Token = \"${BRAVE_API_KEY}\" }\nexpect_status = \"200-299\"\nmin_interval = \"5m\"\ninterval = \"1m\"\ntimeout = \"3s\"\n";
        let deps = validated(text).expect("valid");
        let d = &deps[0];
        assert_eq!(d.period(), Duration::from_secs(300));
        assert_eq!(d.timeout, Duration::from_secs(3));
        match &d.spec {
            DependencySpec::Http {
                method, headers, ..
            } => {
                assert_eq!(method, "GET");
                assert_eq!(
                    headers[0],
                    (
                        "X-Subscription-Token".to_string(),
                        "${BRAVE_API_KEY}".to_string()
                    )
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(d.unset_variables(|_| None), ["BRAVE_API_KEY"]);
        assert!(d.unset_variables(|_| Some("k".into())).is_empty());
        let err = error_of(
            "[[dependencies]]\nname = \"a\"\nkind = \"http\"\nurl = \"https://x/\"\nexpect_status = \"9xx\"\n",
        );
        assert_eq!(
            err,
            "5: `dependencies[0].expect_status`: \"900\" is not an HTTP status code (100-599); expected \"200\", \"200-299\" or \"2xx\""
        );
    }

    #[test]
    fn status_ranges_parse() {
        assert_eq!(
            StatusRange::parse("2xx"),
            Ok(StatusRange {
                low: 200,
                high: 299
            })
        );
        assert_eq!(
            StatusRange::parse("200-204"),
            Ok(StatusRange {
                low: 200,
                high: 204
            })
        );
        assert_eq!(
            StatusRange::parse("401"),
            Ok(StatusRange {
                low: 401,
                high: 401
            })
        );
        assert_eq!(
            StatusRange::parse("299-200"),
            Err(StatusRangeError::Reversed("299-200".into()))
        );
        assert_eq!(
            StatusRange::parse("ok"),
            Err(StatusRangeError::NotACode("ok".into()))
        );
        assert_eq!(
            StatusRange::parse("9xx"),
            Err(StatusRangeError::NotACode("900".into()))
        );
    }
}

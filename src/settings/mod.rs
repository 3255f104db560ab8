//! The configuration file: parsed once, each part validated by the component that owns its keys,
//! and assembled into a [`Config`].
//!
//! Parsing happens in two steps: serde turns the text into the components' raw shapes (unknown
//! keys, wrong types and bad durations are reported by `toml` with their line), then each
//! component validates what serde cannot (`[exporter]` in exporter.rs, `[[dependencies]]` in
//! src/deps/config.rs, `[[servers]]` in src/probe/config.rs with their process keys in
//! src/process/config.rs, `[store]` in src/store/config.rs, `[security]` in
//! src/security/config.rs, `[alertmanager]` in alertmanager.rs, `[traffic]` in
//! src/traffic/config.rs, `[modules.NAME]` in src/probe/module.rs, `[otlp]` in src/otel/config.rs) and returns a [`KeyError`]
//! naming the key, its line and what is expected. The first error in file order is reported.

mod alertmanager;
mod exporter;
mod prometheus;
mod secrets;

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::config::position::{key_at_line, line_of};
use crate::config::{KeyError, SourceText};
use crate::deps::DependencyConfig;
use crate::deps::config::RawDependency;
use crate::otel::config::{OtlpConfig, RawOtlp};
use crate::probe::ServerConfig;
use crate::probe::config::RawServer;
use crate::probe::module::Modules;
use crate::proxy::ProxyConfig;
use crate::proxy::config::RawProxy;
use crate::security::config::{RawSecurity, SecurityConfig};
use crate::store::{RawStoreConfig, StoreConfig};
use crate::traffic::config::{RawTrafficConfig, TrafficConfig};

pub use alertmanager::{AlertmanagerConfig, DEFAULT_ALERTMANAGER_TIMEOUT};
pub use exporter::{
    DEFAULT_DEGRADED_LATENCY, DEFAULT_INTERVAL, DEFAULT_LISTEN, DEFAULT_TIMEOUT, ExporterConfig,
};
pub use prometheus::{DEFAULT_PROMETHEUS_TIMEOUT, PrometheusConfig};

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
    /// A component rejected a key.
    #[error("{path}:{error}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The key, its line and what is wrong.
        error: KeyError,
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
    pub dependencies: Vec<DependencyConfig>,
    /// The history store (`[store]`).
    pub store: StoreConfig,
    /// `[security]` (patterns matched in stderr and log notifications).
    pub security: SecurityConfig,
    /// `[modules.NAME]`: how `/probe?target=URL&module=NAME` probes (src/probe/module.rs).
    pub modules: Modules,
    /// `[alertmanager]`: where maintenance windows create silences; `None` when not set.
    pub alertmanager: Option<AlertmanagerConfig>,
    /// `[prometheus]`: where `report` reads resource trends and alerts; `None` when not set.
    pub prometheus: Option<PrometheusConfig>,
    /// `[traffic]`: the socket wrappers report to (src/traffic/config.rs).
    pub traffic: TrafficConfig,
    /// `[[proxies]]`: reverse proxies accounting HTTP servers' real traffic (src/proxy/).
    pub proxies: Vec<ProxyConfig>,
    /// `[otlp]`: where probe traces are exported (src/otel/config.rs); off by default.
    pub otlp: OtlpConfig,
}

/// The file as serde parses it: each table in the shape of the component that owns it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    exporter: exporter::RawExporter,
    #[serde(default)]
    servers: Vec<Spanned<RawServer>>,
    #[serde(default)]
    dependencies: Vec<Spanned<RawDependency>>,
    #[serde(default)]
    store: RawStoreConfig,
    #[serde(default)]
    security: RawSecurity,
    #[serde(default)]
    modules: std::collections::BTreeMap<String, Spanned<RawServer>>,
    #[serde(default)]
    alertmanager: alertmanager::RawAlertmanager,
    #[serde(default)]
    prometheus: prometheus::RawPrometheus,
    #[serde(default)]
    traffic: RawTrafficConfig,
    #[serde(default)]
    proxies: Vec<Spanned<RawProxy>>,
    #[serde(default)]
    otlp: RawOtlp,
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

    /// Parses and validates TOML text; `path` is used in messages and to place a relative
    /// `[store] path`.
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
        let src = SourceText::new(text);
        Config::assemble(raw, path, &src).map_err(|error| ConfigError::Invalid {
            path: path.to_path_buf(),
            error,
        })
    }

    /// Validates each part with its component, in the order they depend on each other:
    /// `[exporter]` (servers take its defaults), `[[dependencies]]` (servers refer to them),
    /// `[[servers]]`, then `[store]`, `[security]`, `[modules]`, `[alertmanager]` and `[traffic]`.
    fn assemble(raw: RawConfig, path: &Path, src: &SourceText<'_>) -> Result<Config, KeyError> {
        let exporter = ExporterConfig::from_raw(raw.exporter, src)?;
        let dependencies = crate::deps::config::validate_all(raw.dependencies, src)?;
        let declared: Vec<&str> = dependencies.iter().map(|d| d.name.as_str()).collect();
        let mut servers = crate::probe::config::validate_servers(
            raw.servers,
            &exporter.server_defaults(),
            &declared,
            path.parent().unwrap_or(Path::new("")),
            src,
        )?;
        let store = StoreConfig::from_raw(raw.store, path, src)?;
        // `mcp-exporter login` keeps refresh tokens beside the history store (docs/auth.md).
        let login_dir = store
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        for server in &mut servers {
            if let Some(oauth) = server.auth.as_mut() {
                oauth.keep_login_in(login_dir, &server.name);
            }
        }
        let security = SecurityConfig::from_raw(raw.security, src)?;
        let modules = crate::probe::module::validate_modules(
            raw.modules,
            &exporter.server_defaults(),
            path.parent().unwrap_or(Path::new("")),
            src,
        )?;
        let alertmanager = AlertmanagerConfig::from_raw(raw.alertmanager, src)?;
        let prometheus = PrometheusConfig::from_raw(raw.prometheus, src)?;
        let traffic = TrafficConfig::from_raw(raw.traffic, src)?;
        let proxies = crate::proxy::config::validate_all(raw.proxies, src)?;
        let otlp = OtlpConfig::from_raw(raw.otlp, src)?;
        Ok(Config {
            exporter,
            servers,
            dependencies,
            store,
            security,
            modules,
            alertmanager,
            prometheus,
            traffic,
            proxies,
            otlp,
        })
    }
}

#[cfg(test)]
mod tests;

//! `[modules.NAME]`: how `/probe?target=URL&module=NAME` probes a target it was not configured
//! with (src/web/probe_endpoint.rs), as blackbox_exporter's modules do. A module is an http or
//! sse server entry without its URL; each request makes a one-off [`ServerConfig`] from it.

use std::collections::BTreeMap;
use std::time::Duration;

use toml::Spanned;

use crate::config::{KeyError, SourceText};
use crate::mcp::TransportSpec;

use super::ServerConfig;
use super::config::{RawServer, ServerDefaults, validate_module};

/// The configured modules by name.
pub type Modules = BTreeMap<String, ProbeModule>;

/// One `[modules.NAME]` table, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeModule {
    /// The entry every request starts from (its URL is a placeholder).
    template: ServerConfig,
}

/// Why a request's target cannot be probed with a module.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetError {
    /// The target is not a URL.
    #[error("target {target:?} is not a URL ({reason}); expected e.g. http://127.0.0.1:3001/mcp")]
    NotAUrl {
        /// What the request said.
        target: String,
        /// The parser's words.
        reason: String,
    },
    /// A scheme other than http or https.
    #[error("target {target:?} has scheme {scheme:?}; expected http or https")]
    Scheme {
        /// What the request said.
        target: String,
        /// Its scheme.
        scheme: String,
    },
}

impl ProbeModule {
    /// The server a request for `target` probes: the module's entry with `target` as its URL
    /// and as its `server` label, and a deadline no later than `deadline` (the scrape's
    /// timeout less a margin) when one is given.
    pub fn server_for(
        &self,
        target: &str,
        deadline: Option<Duration>,
    ) -> Result<ServerConfig, TargetError> {
        let url = url::Url::parse(target).map_err(|e| TargetError::NotAUrl {
            target: target.to_string(),
            reason: e.to_string(),
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(TargetError::Scheme {
                target: target.to_string(),
                scheme: url.scheme().to_string(),
            });
        }
        let mut server = self.template.clone();
        server.name = target.to_string();
        server.transport = match server.transport {
            TransportSpec::Sse { headers, tls, .. } => TransportSpec::Sse { url, headers, tls },
            TransportSpec::Http { headers, tls, .. } => TransportSpec::Http { url, headers, tls },
            // validate_module refuses stdio modules.
            stdio @ TransportSpec::Stdio { .. } => stdio,
        };
        if let Some(deadline) = deadline {
            server.timeout = server.timeout.min(deadline);
        }
        Ok(server)
    }

    /// The module's deadline of one probe.
    pub fn timeout(&self) -> Duration {
        self.template.timeout
    }

    /// One line for `validate`: transport, check and deadline, e.g.
    /// `/probe over http, readiness (timeout 10s)`.
    pub fn describe(&self) -> String {
        format!(
            "/probe over {}, {} (timeout {})",
            self.template.transport.kind(),
            self.template.check.as_str(),
            humantime::format_duration(self.template.timeout)
        )
    }
}

/// Validates every `[modules.NAME]` table; relative paths in them (`tools_lock`, `tls`
/// files) are relative to `config_dir`.
pub fn validate_modules(
    raw: BTreeMap<String, Spanned<RawServer>>,
    defaults: &ServerDefaults,
    config_dir: &std::path::Path,
    src: &SourceText<'_>,
) -> Result<Modules, KeyError> {
    raw.into_iter()
        .map(|(name, table)| {
            let template = validate_module(&name, table, defaults, config_dir, src)?;
            Ok((name, ProbeModule { template }))
        })
        .collect()
}

/// The modules the running daemon serves `/probe` with; replaced whole at each reload.
#[derive(Debug, Clone, Default)]
pub struct ModuleTable(std::sync::Arc<std::sync::RwLock<std::sync::Arc<Modules>>>);

impl ModuleTable {
    /// A table holding `modules`.
    pub fn new(modules: Modules) -> Self {
        ModuleTable(std::sync::Arc::new(std::sync::RwLock::new(
            std::sync::Arc::new(modules),
        )))
    }

    /// Replaces the modules (a reload).
    pub fn replace(&self, modules: Modules) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = std::sync::Arc::new(modules);
    }

    /// The modules as they are now.
    pub fn current(&self) -> std::sync::Arc<Modules> {
        std::sync::Arc::clone(&self.0.read().unwrap_or_else(|p| p.into_inner()))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use crate::mcp::TransportSpec;
    use crate::settings::Config;

    fn load(text: &str) -> Result<Config, String> {
        Config::from_toml(text, Path::new("m.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn a_module_makes_a_server_per_target_within_the_scrape_deadline() {
        let config = load(
            "[modules.sse]\ntransport = \"sse\"\ncheck = \"liveness\"\ntimeout = \"8s\"\nheaders = { X-Team = \"a\" }\n",
        )
        .expect("valid");
        let module = &config.modules["sse"];
        let server = module
            .server_for("http://127.0.0.1:3001/sse", Some(Duration::from_secs(3)))
            .expect("target");
        assert_eq!(server.name, "http://127.0.0.1:3001/sse");
        assert_eq!(server.timeout, Duration::from_secs(3));
        match &server.transport {
            TransportSpec::Sse { url, headers, .. } => {
                assert_eq!(url.as_str(), "http://127.0.0.1:3001/sse");
                assert_eq!(headers, &[("X-Team".to_string(), "a".to_string())]);
            }
            other => panic!("{other:?}"),
        }
        let longer = module
            .server_for("https://mcp.example/mcp", Some(Duration::from_secs(30)))
            .expect("target");
        assert_eq!(
            longer.timeout,
            Duration::from_secs(8),
            "never past the module's"
        );
        assert!(module.server_for("mcp.example", None).is_err());
        assert!(module.server_for("file:///etc/passwd", None).is_err());
    }

    #[test]
    fn keys_a_request_supplies_or_a_module_cannot_use_are_refused_with_their_line() {
        for (text, expect) in [
            (
                "[modules.a]\nurl = \"http://x/mcp\"\n",
                "m.toml:2: `modules.a.url`: a module has no url",
            ),
            (
                "[modules.a]\ntransport = \"stdio\"\ncommand = \"node\"\n",
                "`modules.a.transport`: /probe reaches targets by URL",
            ),
            (
                "[modules.a]\nprocess_match = \"node\"\n",
                "`modules.a.process_match`: process keys apply to [[servers]]",
            ),
            ("[modules.a]\ninterval = \"1m\"\n", "modules.a.interval"),
            (
                "[modules.a]\nchek = \"readiness\"\n",
                "unknown field `chek`",
            ),
        ] {
            let err = load(text).expect_err(text);
            assert!(err.contains(expect), "{text}: {err}");
        }
    }
}

//! `validate`: checks a configuration file and prints what is wrong, or what it will probe.

use std::fmt::Write;
use std::path::Path;

use crate::mcp::TransportSpec;
use crate::settings::{Config, ConfigError};

/// The report of a valid file: one line per server, then warnings.
pub fn report(path: &Path) -> Result<String, ConfigError> {
    let config = Config::load(path)?;
    config.register_secrets();
    Ok(describe(path, &config))
}

/// The report of a loaded `config` read from `path`: what `validate` prints and `/config` shows
/// for the running configuration (defaults applied, secrets redacted).
pub fn describe(path: &Path, config: &Config) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: OK: listen {}, {} server(s)",
        path.display(),
        config.exporter.listen,
        config.servers.len()
    );
    for s in &config.servers {
        let target = match &s.transport {
            TransportSpec::Stdio { command, args, .. } => format!("{} {}", command, args.join(" "))
                .trim_end()
                .to_string(),
            TransportSpec::Http { url, .. } | TransportSpec::Sse { url, .. } => {
                match &s.auth {
                    // The client id is no secret; the secret and tokens are never shown.
                    Some(oauth) => format!(
                        "{url} (oauth client {})",
                        oauth.client_id.as_deref().unwrap_or("none")
                    ),
                    None => url.to_string(),
                }
            }
        };
        let _ = writeln!(
            out,
            "  {} ({}): {} every {} (timeout {}): {}",
            s.name,
            s.transport.kind(),
            s.check.as_str(),
            humantime::format_duration(s.interval),
            humantime::format_duration(s.timeout),
            target
        );
    }
    // Dependencies (README.md#dependencies-and-the-health-model).
    for d in &config.dependencies {
        let _ = writeln!(out, "  dependency {}", d.describe());
    }
    for (name, module) in config.modules.iter() {
        let _ = writeln!(out, "  module {name}: {}", module.describe());
    }
    for d in &config.dependencies {
        for variable in d.unset_variables(|name| std::env::var(name).ok()) {
            let _ = writeln!(
                out,
                "warning: {}:{}: dependency {:?}: environment variable `{variable}` is not set; the dependency will be reported UNKNOWN until it is set",
                path.display(),
                d.line,
                d.name
            );
        }
    }
    for s in &config.servers {
        if let Err(unset) = s.resolve_transport() {
            let _ = writeln!(
                out,
                "warning: {}:{}: server {:?}: {}; the server will be reported misconfigured until it is set",
                path.display(),
                s.line,
                s.name,
                unset
            );
        }
    }
    for warning in config.literal_secret_warnings() {
        let _ = writeln!(out, "warning: {}: {warning}", path.display());
    }
    // A secret written literally into args never reaches the terminal (README.md#security).
    crate::security::redact::redact(&out)
}

/// Checks a `--web.config.file` (certificates and keys are loaded, hashes parsed).
pub fn report_web(path: &Path) -> Result<String, crate::web::config::WebConfigError> {
    let web = crate::web::config::WebConfig::load(path)?;
    let mut out = format!(
        "{}: OK: TLS {}, {} basic-auth user(s)\n",
        path.display(),
        if web.tls.is_some() { "on" } else { "off" },
        web.users.len()
    );
    for key in &web.ignored {
        let _ = writeln!(
            out,
            "warning: {}: `{key}` is ignored (rustls chooses its own modern cipher suites and curves)",
            path.display()
        );
    }
    Ok(out)
}

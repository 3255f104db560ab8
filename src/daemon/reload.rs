//! Re-reading the configuration while running (SIGHUP, `POST /-/reload`): the new file is
//! validated whole before anything changes; a bad file keeps the running configuration and says
//! why. Servers and dependencies whose entry did not change keep their tasks, sessions and
//! children (src/reconcile.rs); a changed `[otlp]` replaces the trace exporter (src/otel/mod.rs).
//! Counted as Prometheus counts its own reloads.

use std::path::Path;

use super::fleet::Fleet;
use crate::deps::DependencyRunner;
use crate::metrics::reload::ReloadMetrics;
use crate::scheduler::Scheduler;
use crate::security::Monitor;
use crate::settings::{Config, ConfigError};

/// What a reload changes: the parts of the daemon that follow the configuration.
pub struct Reloadable<'a> {
    /// The configuration file.
    pub path: &'a Path,
    /// Applies `[security]` patterns.
    pub monitor: &'a Monitor,
    /// Dependency tasks.
    pub dependencies: &'a mut DependencyRunner,
    /// Server tasks.
    pub scheduler: &'a mut Scheduler,
    /// The `/probe` modules.
    pub modules: &'a crate::probe::module::ModuleTable,
    /// What `/config` shows.
    pub running_config: &'a crate::web::RunningConfig,
    /// The traffic socket: wrappers join the reloaded stdio servers.
    pub traffic: &'a super::traffic::TrafficSocket,
    /// `[[proxies]]`.
    pub proxies: &'a mut crate::proxy::ProxySet,
    /// Counts the outcome.
    pub metrics: &'a ReloadMetrics,
    /// The servers beside the file's (discovered) and this instance's shard.
    pub fleet: &'a mut Fleet,
}

/// Re-reads the file and applies it; `Err` leaves everything as it was. `trigger` names what
/// asked (for the log).
pub async fn reload(target: Reloadable<'_>, trigger: &str) -> Result<String, ConfigError> {
    let config = match Config::load(target.path) {
        Ok(config) => config,
        Err(err) => {
            target.metrics.failed();
            tracing::error!(error = %err, "{trigger}: configuration rejected; keeping the running one");
            return Err(err);
        }
    };
    // `[otlp]` merged with the environment and its exporter built before anything changes.
    let traces = match crate::otel::prepare(&config.otlp) {
        Ok(traces) => traces,
        Err(err) => {
            target.metrics.failed();
            let err = ConfigError::Invalid {
                path: target.path.to_path_buf(),
                error: err.key_error(),
            };
            tracing::error!(error = %err, "{trigger}: configuration rejected; keeping the running one");
            return Err(err);
        }
    };
    config.register_secrets();
    crate::security::apply_config(target.monitor, &config.security);
    target.dependencies.set_dependents(&config.servers);
    target.dependencies.apply(&config.dependencies).await;
    target.fleet.configured = config.servers.clone();
    let wanted = target.fleet.wanted();
    target.scheduler.apply(&wanted).await;
    target.fleet.publish(&wanted);
    target
        .running_config
        .set(crate::validate::describe(target.path, &config));
    target.modules.replace(config.modules);
    target.traffic.reload(&config.traffic, &config.servers);
    target.proxies.apply(&config.proxies).await;
    traces.apply();
    target.metrics.succeeded();
    let summary = format!(
        "configuration reloaded: {} servers, {} dependencies",
        config.servers.len(),
        config.dependencies.len()
    );
    tracing::info!(
        servers = config.servers.len(),
        dependencies = config.dependencies.len(),
        "{trigger}: configuration reloaded"
    );
    Ok(summary)
}

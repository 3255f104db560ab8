//! Re-reading the configuration while running (SIGHUP, `POST /-/reload`): the new file is
//! validated whole before anything changes; a bad file keeps the running configuration and says
//! why. Servers and dependencies whose entry did not change keep their tasks, sessions and
//! children (src/reconcile.rs); a changed `[otlp]` replaces the trace exporter (src/otel/mod.rs).
//! Counted as Prometheus counts its own reloads. The metrics profile is not reloadable: a file
//! that changes it is refused (docs/metrics.md#profiles).

use std::path::Path;

use super::fleet::Fleet;
use crate::config::KeyError;
use crate::deps::DependencyRunner;
use crate::metric_registry::FamilySwitches;
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
    let loaded = Config::load(target.path).and_then(|config| {
        profile_kept(target.metrics.registered_families(), &config, target.path).map(|()| config)
    });
    let config = match loaded {
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

/// `Err` when `config` asks for other metric families than the running registry has
/// (`[exporter] metrics`, `method_histograms`, `semconv_histograms`): families are registered
/// by each component when the daemon starts, and a registry rebuilt under running probes would
/// lose or mix their series, so changing the profile takes a restart.
fn profile_kept(running: FamilySwitches, config: &Config, path: &Path) -> Result<(), ConfigError> {
    let wanted = config.exporter.families;
    let changed: Vec<String> = [
        (
            "semconv_histograms",
            running.semconv_histograms,
            wanted.semconv_histograms,
        ),
        (
            "probe_method_histograms",
            running.probe_method_histograms,
            wanted.probe_method_histograms,
        ),
        (
            "zero_violation_series",
            running.zero_violation_series,
            wanted.zero_violation_series,
        ),
        (
            "probe_http_phases",
            running.probe_http_phases,
            wanted.probe_http_phases,
        ),
        (
            "zero_maintenance_series",
            running.zero_maintenance_series,
            wanted.zero_maintenance_series,
        ),
    ]
    .into_iter()
    .filter(|(_, now, then)| now != then)
    .map(|(name, now, then)| format!("{name} {now} -> {then}"))
    .collect();
    if changed.is_empty() {
        return Ok(());
    }
    Err(ConfigError::Invalid {
        path: path.to_path_buf(),
        error: KeyError::new(
            0,
            "exporter.metrics",
            format!(
                "the metrics profile would change the registered families ({}); they are registered at start only: restart the exporter to apply it (docs/metrics.md#profiles)",
                changed.join(", ")
            ),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metric_registry::MetricsProfile;

    fn config(exporter: &str) -> Config {
        Config::from_toml(exporter, Path::new("t.toml")).expect("valid config")
    }

    #[test]
    fn a_reload_keeps_the_profile_or_is_refused() {
        let full = MetricsProfile::Full.switches();
        let path = Path::new("t.toml");
        assert!(profile_kept(full, &config(""), path).is_ok());
        assert!(profile_kept(full, &config("[exporter]\nmetrics = \"full\"\n"), path).is_ok());
        let refused = profile_kept(full, &config("[exporter]\nmetrics = \"fleet\"\n"), path)
            .expect_err("full to fleet")
            .to_string();
        assert!(
            refused.contains("exporter.metrics")
                && refused.contains("probe_method_histograms true -> false"),
            "{refused}"
        );
        // A per-family key that changes a switch is a change of profile too.
        let fleet = MetricsProfile::Fleet.switches();
        assert!(
            profile_kept(
                fleet,
                &config("[exporter]\nmetrics = \"fleet\"\nmethod_histograms = true\n"),
                path
            )
            .is_err()
        );
    }
}

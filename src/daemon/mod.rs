//! `serve`: runs the scheduler, the traffic socket (src/daemon/traffic.rs) and the HTTP server
//! until SIGTERM/SIGINT; SIGHUP and `POST /-/reload` reload the configuration
//! (src/daemon/reload.rs).

pub mod fleet;
pub mod reload;
pub mod shard;
pub mod traffic;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

use crate::assessment::{LogSink, Sinks};
use crate::deps::sink::CheckSinks;
use crate::maintenance::Maintenance;
use crate::maintenance::alertmanager::Alertmanager;
use crate::maintenance::sink::MaintenanceSink;
use crate::mcp::Limits;
use crate::metrics::Metrics;
use crate::scheduler::Scheduler;
use crate::security::Monitor;
use crate::settings::{Config, ConfigError};
use crate::status::StatusBoard;
use crate::store::observe::HistorySink;
use crate::web::maintenance::MaintenanceApi;
use crate::web::sd::SdTargets;
use crate::web::write_access::WriteAccess;
use crate::web::{AppState, router};

use self::fleet::Fleet;
use self::reload::Reloadable;
use self::traffic::TrafficSocket;

/// Why the daemon could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The listen address could not be bound.
    #[error(
        "cannot listen on {addr}: {source} (is another process using the port? change `exporter.listen` or pass --listen)"
    )]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// A signal handler could not be installed or the server failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The `--web.config.file` is invalid.
    #[error(transparent)]
    WebConfig(#[from] crate::web::config::WebConfigError),
}

/// Options of `serve` beyond the config file.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Config file.
    pub config_path: PathBuf,
    /// Overrides `exporter.listen`.
    pub listen: Option<SocketAddr>,
    /// `--web.config.file`: TLS and basic auth of the endpoint (exporter-toolkit format).
    pub web_config: Option<PathBuf>,
    /// `--web.telemetry-path`: where the metrics are served.
    pub telemetry_path: String,
    /// `--web.enable-lifecycle`: serve `POST /-/reload`.
    pub enable_lifecycle: bool,
    /// `--shard K/N`: probe only the servers of shard K of N (src/daemon/shard.rs).
    pub shard: shard::Shard,
    /// `--discovery.dir`: a directory of file_sd and MCP client files to follow
    /// (src/discovery/).
    pub discovery_dir: Option<PathBuf>,
}

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn serve(options: ServeOptions) -> Result<(), ServeError> {
    let config = Config::load(&options.config_path)?;
    config.register_secrets();
    let addr = options.listen.unwrap_or(config.exporter.listen);
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let local = listener.local_addr()?;

    let metrics = Arc::new(Metrics::with_switches(config.exporter.families));
    start_traces(&config, &metrics);
    let monitor = Arc::new(Monitor::new(metrics.security.clone()));
    crate::security::apply_config(&monitor, &config.security);
    let web = crate::web::server::WebServer::load(
        options.web_config.as_ref(),
        metrics.security.http_unauthorized.clone(),
    )?;
    let board = StatusBoard::default();
    let history = crate::store::daemon::start(&config.store, &metrics.store).await;
    let history_handle = history.as_ref().map(|(handle, _)| handle.clone());
    let security_to_store = history_handle.clone().map(|store| {
        crate::store::daemon::forward_security_events(monitor.sink.subscribe(), store)
    });
    // Each dependency check and each assessment go to these sinks, in this order (see
    // src/deps/sink.rs and src/assessment/mod.rs).
    let history_store = history.as_ref().map(|(_, writer)| writer.store().clone());
    let integrity = history_store.clone().map(|store| {
        crate::store::integrity::spawn_periodic(
            store,
            crate::store::integrity::CHECK_INTERVAL,
            metrics.integrity.clone(),
        )
    });
    let maintenance = Arc::new(start_maintenance(&config, history_store.clone(), &metrics).await);
    let history_sink = history_handle.map(HistorySink::new).map(Arc::new);
    let mut check_sinks = CheckSinks::new(vec![metrics.clone()]);
    let recent = crate::recent_probes::RecentProbes::default();
    let mut sinks = Sinks::new(vec![
        Arc::new(board.clone()),
        Arc::new(recent.clone()),
        metrics.clone(),
    ]);
    if let Some(history) = &history_sink {
        check_sinks.push(history.clone());
        sinks.push(history.clone());
    }
    check_sinks.push(monitor.clone());
    sinks.push(monitor.clone());
    sinks.push(Arc::new(LogSink));
    sinks.push(Arc::new(MaintenanceSink(Arc::clone(&maintenance))));
    let mut dependencies = crate::deps::DependencyRunner::new(Default::default(), check_sinks);
    dependencies.set_dependents(&config.servers);
    dependencies.apply(&config.dependencies).await;
    let mut scheduler = Scheduler::new(sinks, Limits::default())
        .with_dependencies(dependencies.board(), dependencies.changes());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (mut discovered, discovery_task) = match &options.discovery_dir {
        Some(dir) => {
            let defaults = config.exporter.server_defaults();
            let directory = crate::discovery::Directory::new(dir.clone(), defaults);
            let (rx, task) = crate::discovery::spawn(
                directory,
                crate::discovery::poll_interval(&defaults),
                metrics.discovery.clone(),
                stop_rx.clone(),
            );
            (Some(rx), Some(task))
        }
        None => (None, None),
    };
    let mut fleet = Fleet {
        shard: options.shard,
        configured: config.servers.clone(),
        discovered: discovered
            .as_mut()
            .map(|rx| Arc::clone(&rx.borrow_and_update()))
            .unwrap_or_default(),
        sd: SdTargets::default(),
    };
    // The scheduler keeps its own (shared) copy of each entry: this list is not kept for the
    // daemon's life (at thousands of servers it is megabytes).
    let servers_probed = {
        let wanted = fleet.wanted();
        scheduler.apply(&wanted).await;
        fleet.publish(&wanted);
        wanted.len()
    };
    // Wrappers' reports (docs/traffic.md); a socket that cannot be bound is logged and counted.
    let traffic = TrafficSocket::start(&config.traffic, &config.servers, metrics.traffic.clone());
    // `[[proxies]]`: HTTP servers' real traffic, into the traffic book (src/proxy/set.rs).
    let mut proxies = crate::proxy::ProxySet::new(metrics.traffic.clone());
    proxies.apply(&config.proxies).await;

    // `POST /-/reload` asks the loop below, which owns the scheduler, to reload.
    let (reload_tx, mut reload_rx) = tokio::sync::mpsc::channel(4);
    let reload_metrics = metrics.reload.clone();
    let modules = crate::probe::module::ModuleTable::new(config.modules.clone());
    let running_config = crate::web::RunningConfig::default();
    running_config.set(crate::validate::describe(&options.config_path, &config));
    let state = AppState {
        metrics,
        board,
        started: Instant::now(),
        dependencies: dependencies.board(),
        dependents: dependencies.dependents(),
        reload: options.enable_lifecycle.then_some(reload_tx),
        modules: modules.clone(),
        probe_slots: crate::web::probe_endpoint::probe_slots(),
        recent,
        store: history_store.clone(),
        report_sources: crate::report::Sources {
            max_bytes: config.store.max_size,
            prometheus: config.prometheus.clone(),
        },
        running_config: running_config.clone(),
        maintenance: Some(MaintenanceApi {
            windows: Arc::clone(&maintenance),
            access: WriteAccess {
                listen: local,
                web: web.clone(),
            },
        }),
        sd: fleet.sd.clone(),
    };
    let maintenance_refresh = Arc::clone(&maintenance).spawn_refresh(stop_rx.clone());
    let http = web.spawn(
        listener,
        router(state, &options.telemetry_path),
        stop_rx.clone(),
    )?;
    tracing::info!(
        servers = servers_probed,
        shard = %options.shard,
        config = %options.config_path.display(),
        "mcp-exporter {} listening on {}://{local}",
        env!("CARGO_PKG_VERSION"),
        if web.is_tls() { "https" } else { "http" }
    );

    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut hangup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = terminate.recv() => { tracing::info!("SIGTERM received; shutting down"); break; }
            _ = interrupt.recv() => { tracing::info!("SIGINT received; shutting down"); break; }
            _ = hangup.recv() => {
                let target = Reloadable {
                    path: &options.config_path,
                    monitor: &monitor,
                    dependencies: &mut dependencies,
                    scheduler: &mut scheduler,
                    modules: &modules,
                    running_config: &running_config,
                    traffic: &traffic,
                    proxies: &mut proxies,
                    metrics: &reload_metrics,
                    fleet: &mut fleet,
                };
                // The outcome is logged and counted by reload().
                let _ = reload::reload(target, "SIGHUP").await;
                web.reload();
            }
            Some(reply) = reload_rx.recv() => {
                let target = Reloadable {
                    path: &options.config_path,
                    monitor: &monitor,
                    dependencies: &mut dependencies,
                    scheduler: &mut scheduler,
                    modules: &modules,
                    running_config: &running_config,
                    traffic: &traffic,
                    proxies: &mut proxies,
                    metrics: &reload_metrics,
                    fleet: &mut fleet,
                };
                let outcome = reload::reload(target, "POST /-/reload").await;
                web.reload();
                let _ = reply.send(outcome.map_err(|err| err.to_string()));
            }
            Some(found) = discovery_changed(&mut discovered) => {
                fleet.discovered = found;
                let wanted = fleet.wanted();
                scheduler.apply(&wanted).await;
                fleet.publish(&wanted);
            }
        }
    }
    let _ = stop_tx.send(true);
    drop(stop_rx);
    traffic.stop().await;
    if let Some(task) = discovery_task {
        let _ = task.await;
    }
    scheduler.shutdown().await;
    proxies.shutdown().await;
    dependencies.shutdown().await;
    if let Some(task) = security_to_store {
        task.abort();
    }
    if let Some(task) = integrity {
        task.abort();
    }
    maintenance_refresh.abort();
    drop(maintenance);
    if let Some((handle, writer)) = history {
        drop(handle);
        writer.shutdown(std::time::Duration::from_secs(5)).await;
    }
    match http.await {
        Ok(result) => result?,
        Err(err) => tracing::error!(error = %err, "HTTP server task failed"),
    }
    crate::otel::flush(std::time::Duration::from_secs(5)).await;
    tracing::info!("stopped");
    Ok(())
}

/// Starts exporting probe traces when `[otlp]` or the `OTEL_*` variables say so
/// (docs/tracing.md). A setting that cannot be used leaves traces off, logged: probes and
/// metrics do not depend on the collector. A reload applies `[otlp]` again
/// (src/daemon/reload.rs).
fn start_traces(config: &Config, metrics: &Metrics) {
    crate::otel::init(
        crate::otel::BatchLimits::default(),
        metrics.otel.spans_dropped.clone(),
    );
    match crate::otel::prepare(&config.otlp) {
        Ok(change) => change.apply(),
        Err(err) => tracing::error!(error = %err, "traces stay off"),
    }
}

/// The maintenance windows: restored from the history store when there is one, silenced in
/// the Alertmanager of `[alertmanager]` when configured.
async fn start_maintenance(
    config: &Config,
    store: Option<crate::store::Store>,
    metrics: &Metrics,
) -> Maintenance {
    let alertmanager = config
        .alertmanager
        .as_ref()
        .and_then(|am| match Alertmanager::new(am) {
            Ok(client) => Some(client),
            Err(err) => {
                tracing::error!(error = %err, "cannot build the Alertmanager client; maintenance windows make no silences");
                None
            }
        });
    if store.is_none() {
        tracing::info!("maintenance windows are kept in memory only (no history store)");
    }
    Maintenance::open(store, metrics.maintenance.clone(), alertmanager).await
}

/// The next set of discovered servers; never resolves without a discovery directory.
async fn discovery_changed(
    discovered: &mut Option<tokio::sync::watch::Receiver<Arc<Vec<crate::probe::ServerConfig>>>>,
) -> Option<Arc<Vec<crate::probe::ServerConfig>>> {
    if let Some(rx) = discovered
        && rx.changed().await.is_ok()
    {
        return Some(Arc::clone(&rx.borrow_and_update()));
    }
    std::future::pending().await
}

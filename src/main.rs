//! The `mcp-exporter` binary: parses arguments and calls into the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mcp_exporter::cli;
use mcp_exporter::daemon::{ServeError, ServeOptions, serve};
use mcp_exporter::logging::LogArgs;

/// Exit status for an invalid configuration or invalid arguments.
const EXIT_CONFIG: u8 = 2;

#[derive(Parser)]
#[command(
    name = "mcp-exporter",
    version,
    about = "Probes MCP servers and serves Prometheus metrics"
)]
struct Cli {
    #[command(flatten)]
    log: LogArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: probe every configured server and serve /metrics.
    Serve {
        /// Configuration file; also `--config.file`.
        #[arg(
            long,
            short,
            visible_alias = "config.file",
            env = "MCP_EXPORTER_CONFIG",
            default_value = "mcp-exporter.toml"
        )]
        config: PathBuf,
        /// Listen address, overriding `exporter.listen` (e.g. 127.0.0.1:8931, or port 0 for any
        /// free port); also `--web.listen-address`.
        #[arg(long, visible_alias = "web.listen-address")]
        listen: Option<SocketAddr>,
        /// Path under which the metrics are served.
        #[arg(long = "web.telemetry-path", value_name = "PATH", default_value = mcp_exporter::web::DEFAULT_TELEMETRY_PATH, value_parser = telemetry_path)]
        telemetry_path: String,
        /// Serve `POST /-/reload` (re-read the configuration), as Prometheus' flag of the same
        /// name does; off by default.
        #[arg(long = "web.enable-lifecycle")]
        enable_lifecycle: bool,
        /// Web configuration file (Prometheus exporter-toolkit format): TLS, client
        /// certificates and basic auth for every endpoint; re-read on SIGHUP and on change.
        #[arg(long = "web.config.file", value_name = "FILE")]
        web_config: Option<PathBuf>,
        /// Probe only shard K of N (e.g. 2/3) of the servers, by a stable hash of their names,
        /// so N instances with the same configuration split the fleet; K may be a StatefulSet
        /// pod name ending in its ordinal (`$(POD_NAME)/3`). See docs/probing.md#sharding.
        #[arg(
            long,
            env = "MCP_EXPORTER_SHARD",
            value_name = "K/N",
            default_value = "1/1"
        )]
        shard: mcp_exporter::daemon::shard::Shard,
        /// A directory of Prometheus file_sd target files (JSON/YAML) and MCP client
        /// configuration files whose servers are probed beside the configuration's, followed
        /// without restarts. See docs/probing.md#discovery.
        #[arg(
            long = "discovery.dir",
            env = "MCP_EXPORTER_DISCOVERY_DIR",
            value_name = "DIR"
        )]
        discovery_dir: Option<PathBuf>,
    },
    /// Check a configuration file; exit 2 and say what is wrong if it is invalid.
    Validate {
        /// Configuration file.
        config: PathBuf,
        /// Also check this web configuration file (TLS, basic auth).
        #[arg(long = "web.config.file", value_name = "FILE")]
        web_config: Option<PathBuf>,
    },
    /// Write the monitoring bundle (Prometheus rules, Grafana dashboards, runbooks, Kubernetes
    /// PrometheusRule) into DIR.
    Bundle {
        /// Output directory (created if missing; files in it are replaced).
        dir: PathBuf,
    },
    /// Probe the configured servers now (no daemon); exit 0 healthy, 1 degraded, 2 unhealthy, 3 unknown.
    Check(cli::check::CheckArgs),
    /// Summarize a running daemon's /metrics per server (percentiles, error rates, resources).
    Metrics(cli::metrics::MetricsArgs),
    /// Search the servers' logs in the history store (stderr, notifications/message, HTTP errors).
    Logs(cli::logs::LogsArgs),
    /// A server's health transitions and availability from the history store.
    History(cli::history::HistoryArgs),
    /// The review of a period for every server (or one): availability, outages, latency against
    /// the previous period, security events, store capacity; Markdown, HTML or JSON.
    Report(cli::report::ReportArgs),
    /// Planned downtime through the running daemon: `maintenance start --server NAME --for 1h
    /// --reason TEXT` (or `--all`), `maintenance list`, `maintenance end ID`. Alerts of the
    /// server stay silent, `history` counts the window as planned downtime.
    Maintenance(cli::maintenance::MaintenanceArgs),
    /// Print a configuration for the servers of an MCP client's JSON file (Claude Desktop,
    /// Claude Code, Cursor, VS Code, ...); secrets become ${VAR} references.
    Import(cli::import::ImportArgs),
    /// Run a stdio MCP server, passing its traffic through unchanged, and report what real
    /// clients experience to the daemon: put `mcp-exporter wrap --` before the server's
    /// command in the client's configuration.
    Wrap(cli::wrap::WrapArgs),
    /// Write a consistent, checked copy of the history store (safe while the daemon runs).
    Backup(cli::backup::BackupArgs),
    /// Replace the history store with a backup (checked first; the daemon must be stopped).
    Restore(cli::restore::RestoreArgs),
    /// Collect the evidence of an incident (history, processes, metrics, config, timeline) into
    /// one redacted tar.gz with a SHA256SUMS manifest.
    Incident(cli::incident::IncidentArgs),
    /// Run a reverse proxy in front of an HTTP MCP server (Streamable HTTP or legacy SSE),
    /// passing its traffic through unchanged, and report what real clients experience to the
    /// daemon, as `wrap` does for stdio servers.
    Proxy(cli::proxy::ProxyArgs),
    /// List servers' tools now and write their fingerprints to a lock file (approved catalogs,
    /// `tools_lock`; docs/tool-integrity.md).
    Pin(cli::pin::PinArgs),
    /// List a server's tools now and print what differs from its approved lock, with the old
    /// and new text; exit 0 same, 1 differs, 2 could not compare.
    Diff(cli::diff::DiffArgs),
    /// Authorize the prober at an OAuth-protected server as a person (authorization code with
    /// PKCE, a loopback redirect) and store the refresh token the daemon then uses.
    Login(cli::login::LoginArgs),
}

/// `--web.telemetry-path`: an absolute path that is not one of the other endpoints.
fn telemetry_path(value: &str) -> Result<String, String> {
    const TAKEN: [&str; 6] = [
        "/",
        "/health",
        "/api/servers",
        "/api/dependencies",
        "/api/maintenance",
        "/-/reload",
    ];
    if !value.starts_with('/') || value.contains(['?', '#', '{', '}', ' ']) {
        return Err(format!(
            "`{value}` is not a URL path; expected e.g. /metrics"
        ));
    }
    if TAKEN.contains(&value) {
        return Err(format!(
            "`{value}` is already another endpoint of the exporter"
        ));
    }
    Ok(value.to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Bundle { dir } => match mcp_exporter::bundle::write(&dir) {
            Ok(paths) => {
                for path in paths {
                    println!("{}", path.display());
                }
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("error: {err}");
                ExitCode::FAILURE
            }
        },
        Command::Check(args) => ExitCode::from(cli::check::run(args)),
        Command::Metrics(args) => ExitCode::from(cli::metrics::run(args)),
        Command::Logs(args) => ExitCode::from(cli::logs::run(args)),
        Command::History(args) => ExitCode::from(cli::history::run(args)),
        Command::Report(args) => ExitCode::from(cli::report::run(args)),
        Command::Maintenance(args) => ExitCode::from(cli::maintenance::run(args)),
        Command::Import(args) => ExitCode::from(cli::import::run(args)),
        Command::Backup(args) => ExitCode::from(cli::backup::run(args)),
        Command::Restore(args) => ExitCode::from(cli::restore::run(args)),
        Command::Incident(args) => ExitCode::from(cli::incident::run(args)),
        Command::Pin(args) => ExitCode::from(cli::pin::run(args)),
        Command::Diff(args) => ExitCode::from(cli::diff::run(args)),
        Command::Login(args) => ExitCode::from(cli::login::run(args)),
        Command::Wrap(args) => {
            // The wrapper's own small executable, when it is installed beside this one, takes
            // over this process (src/cli/wrap.rs, docs/traffic.md#the-wrappers-own-executable);
            // without it the wrapper runs here, the same.
            let wrapper = cli::wrap::CompanionCli {
                log: cli.log,
                wrap: args,
            };
            let not_run = cli::wrap::exec_companion(&wrapper);
            if not_run.is_worth_a_warning() {
                eprintln!("mcp-exporter wrap: {not_run}; wrapping in this process");
            }
            wrapper.log.init();
            ExitCode::from(cli::wrap::run(wrapper.wrap))
        }
        Command::Proxy(args) => {
            cli.log.init();
            ExitCode::from(cli::proxy::run(args))
        }
        Command::Validate { config, web_config } => match mcp_exporter::validate::report(&config) {
            Ok(report) => {
                print!("{report}");
                if let Some(web) = web_config {
                    match mcp_exporter::validate::report_web(&web) {
                        Ok(line) => print!("{line}"),
                        Err(err) => {
                            eprintln!("error: {err}");
                            return ExitCode::from(EXIT_CONFIG);
                        }
                    }
                }
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("error: {err}");
                ExitCode::from(EXIT_CONFIG)
            }
        },
        Command::Serve {
            config,
            listen,
            web_config,
            telemetry_path,
            enable_lifecycle,
            shard,
            discovery_dir,
        } => {
            cli.log.init();
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("mcp-exporter")
                .build()
            {
                Ok(rt) => rt,
                Err(err) => {
                    eprintln!("error: cannot start the async runtime: {err}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(serve(ServeOptions {
                config_path: config,
                listen,
                web_config,
                telemetry_path,
                enable_lifecycle,
                shard,
                discovery_dir,
            })) {
                Ok(()) => ExitCode::SUCCESS,
                Err(ServeError::WebConfig(err)) => {
                    eprintln!("error: {err}");
                    ExitCode::from(EXIT_CONFIG)
                }
                Err(ServeError::Config(err)) => {
                    eprintln!("error: {err}");
                    ExitCode::from(EXIT_CONFIG)
                }
                Err(err) => {
                    eprintln!("error: {err}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

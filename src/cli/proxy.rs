//! `mcp-exporter proxy --listen ADDR --upstream URL [--name NAME]`: a reverse proxy in front
//! of a Streamable HTTP or legacy SSE MCP server that passes its traffic through and reports
//! what real clients experience to a running daemon over the traffic socket, as `wrap` does for
//! stdio servers (src/proxy/, docs/traffic.md). The daemon runs the same proxy for each
//! `[[proxies]]` entry of its configuration.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};

use crate::proxy::report::SocketReporter;
use crate::proxy::upstream::Upstream;
use crate::proxy::{ProxyConfig, TrafficSink};
use crate::traffic::SocketEnv;

/// Arguments of `proxy`.
#[derive(Debug, Clone, clap::Args)]
pub struct ProxyArgs {
    /// Address the clients connect to (port 0 picks a free port, printed at start).
    #[arg(long, value_name = "ADDR")]
    pub listen: SocketAddr,
    /// The MCP server's URL: scheme, host, port and an optional path prefix; requests keep
    /// their path and query under it.
    #[arg(long, value_name = "URL", value_parser = parse_upstream)]
    pub upstream: Upstream,
    /// The `server` label of the traffic (default: the upstream's host:port).
    #[arg(long)]
    pub name: Option<String>,
    /// Longest wait for the upstream's response headers before answering 504.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = crate::cli::parse_duration_arg)]
    pub timeout: Duration,
    /// The daemon's traffic socket (default: $XDG_RUNTIME_DIR/mcp-exporter/traffic.sock, then
    /// /run/mcp-exporter/traffic.sock).
    #[arg(long, value_name = "SOCKET", env = crate::traffic::socket_path::SOCKET_ENV)]
    pub exporter: Option<PathBuf>,
}

fn parse_upstream(text: &str) -> Result<Upstream, String> {
    Upstream::parse(text).map_err(|e| e.to_string())
}

/// Runs `proxy` until SIGINT or SIGTERM; returns the exit status (0 after a signal, 1 when it
/// cannot start).
pub fn run(args: ProxyArgs) -> u8 {
    let name = args.name.clone().unwrap_or_else(|| {
        let url = args.upstream.url();
        match (url.host_str(), url.port_or_known_default()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            _ => url.to_string(),
        }
    });
    let config = ProxyConfig {
        name: name.clone(),
        listen: args.listen,
        upstream: args.upstream.clone(),
        timeout: args.timeout,
    };
    let runtime = match crate::cli::runtime() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("mcp-exporter proxy: {err}");
            return 1;
        }
    };
    runtime.block_on(async move {
        let candidates = SocketEnv::from_process(args.exporter).wrapper_candidates();
        let reporter = SocketReporter::new(candidates, &name, args.upstream.url().as_str());
        let handle =
            match crate::proxy::start(&config, TrafficSink::Socket(Box::new(reporter))).await {
                Ok(handle) => handle,
                Err(err) => {
                    eprintln!("mcp-exporter proxy: {err}");
                    return 1;
                }
            };
        let (mut terminate, mut interrupt) = match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(t), Ok(i)) => (t, i),
            (Err(err), _) | (_, Err(err)) => {
                eprintln!("mcp-exporter proxy: cannot handle signals: {err}");
                return 1;
            }
        };
        eprintln!(
            "mcp-exporter proxy: listening on http://{}, forwarding to {}",
            handle.local_addr(),
            config.upstream.url()
        );
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
        handle.stop().await;
        0
    })
}

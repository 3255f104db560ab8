//! `mcp-exporter incident --since 1h [--server NAME] --out FILE.tar.gz`: the evidence of an
//! incident in one redacted, checksummed bundle (src/incident/).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use crate::incident::{self, DaemonView, Request};
use crate::settings::Config;

/// Arguments of `incident`.
#[derive(Debug, Clone, clap::Args)]
pub struct IncidentArgs {
    /// Configuration file of the daemon (servers, `[store] path`).
    #[arg(long, short, env = "MCP_EXPORTER_CONFIG", default_value = super::DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// History database, overriding the config's `[store] path`.
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// Period before now (e.g. 30m, 1h, 24h).
    #[arg(long, default_value = "1h", value_parser = super::parse_duration_arg)]
    pub since: Duration,
    /// Only this server (with the dependencies it lists).
    #[arg(long)]
    pub server: Option<String>,
    /// The bundle to write (a .tar.gz; replaced if present).
    #[arg(long)]
    pub out: PathBuf,
    /// The running daemon's metrics URL; default: `exporter.listen` of the config, on
    /// 127.0.0.1 when it listens on every address.
    #[arg(long, env = "MCP_EXPORTER_URL")]
    pub url: Option<String>,
}

/// Runs `incident`; returns the exit status (0 written, 1 not written, 2 invalid configuration
/// or unknown server).
pub fn run(args: IncidentArgs) -> u8 {
    let config = match Config::load(&args.config) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("error: {err}");
            return 2;
        }
    };
    if let Some(name) = &args.server
        && !config.servers.iter().any(|s| &s.name == name)
    {
        let known: Vec<&str> = config.servers.iter().map(|s| s.name.as_str()).collect();
        eprintln!(
            "error: no server {name:?} in {} (servers: {})",
            args.config.display(),
            known.join(", ")
        );
        return 2;
    }
    // The same secrets the daemon masks: resolved from this environment and the secret files.
    config.register_secrets();
    let store_path = args.db.clone().unwrap_or_else(|| config.store.path.clone());
    let metrics_url = args
        .url
        .clone()
        .unwrap_or_else(|| default_metrics_url(config.exporter.listen));
    let runtime = match super::runtime() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: {err}");
            return 1;
        }
    };
    let request = Request {
        since: args.since,
        server: args.server.clone(),
        config_path: args.config.clone(),
        config,
        store_path,
    };
    let now = SystemTime::now();
    let files = runtime.block_on(async {
        let metrics = super::metrics::fetch(&metrics_url)
            .await
            .map_err(|e| e.to_string());
        let servers = match api_servers_url(&metrics_url) {
            Some(url) => super::metrics::fetch(&url)
                .await
                .map_err(|e| e.to_string())
                .and_then(|text| {
                    serde_json::from_str(&text).map_err(|e| format!("{url}: not JSON: {e}"))
                }),
            None => Err(format!("{metrics_url} is not a URL")),
        };
        let daemon = DaemonView {
            metrics_url: metrics_url.clone(),
            metrics,
            servers,
        };
        if let Err(why) = &daemon.metrics {
            eprintln!("warning: no current metrics in the bundle: {why}");
        }
        incident::collect(&request, &daemon, now).await
    });
    let top = format!(
        "incident-{}",
        humantime::format_rfc3339_seconds(now)
            .to_string()
            .replace([':', '-'], "")
    );
    match incident::archive::write(&args.out, &top, &files, now) {
        Ok(()) => {
            println!(
                "wrote {} ({} files under {top}/; check with: tar xzf {} && cd {top} && sha256sum -c {})",
                args.out.display(),
                files.len() + 1,
                args.out.display(),
                incident::archive::MANIFEST
            );
            0
        }
        Err(err) => {
            eprintln!("error: {err}");
            1
        }
    }
}

/// `http://ADDR/metrics` for the daemon's listen address (loopback for an unspecified one).
fn default_metrics_url(listen: SocketAddr) -> String {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}/metrics", SocketAddr::new(ip, listen.port()))
}

/// `/api/servers` on the same host as the metrics URL.
fn api_servers_url(metrics_url: &str) -> Option<String> {
    url::Url::parse(metrics_url)
        .ok()?
        .join("/api/servers")
        .ok()
        .map(String::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_daemon_is_asked_on_loopback_when_it_listens_everywhere() {
        assert_eq!(
            default_metrics_url("0.0.0.0:8931".parse().unwrap()),
            "http://127.0.0.1:8931/metrics"
        );
        assert_eq!(
            default_metrics_url("[::1]:9000".parse().unwrap()),
            "http://[::1]:9000/metrics"
        );
        assert_eq!(
            api_servers_url("http://127.0.0.1:8931/custom/metrics").as_deref(),
            Some("http://127.0.0.1:8931/api/servers")
        );
    }
}

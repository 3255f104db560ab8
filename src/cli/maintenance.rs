//! `mcp-exporter maintenance start|list|end`: planned downtime through the running daemon's
//! `/api/maintenance` (src/web/maintenance.rs). The daemon is found at `--url`, else at the
//! config file's `exporter.listen` (a wildcard address is reached on loopback).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use super::logs::TextOrJson;
use crate::maintenance::Window;
use crate::settings::{Config, DEFAULT_LISTEN};

/// Longest wait for the daemon's answer (starting a window may wait for Alertmanager).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Environment variable holding the password of `--user`.
pub const PASSWORD_ENV: &str = "MCP_EXPORTER_WEB_PASSWORD";

/// Arguments of `maintenance`.
#[derive(Debug, Clone, clap::Args)]
pub struct MaintenanceArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: Action,
    /// Configuration file; its `exporter.listen` says where the daemon is.
    #[arg(long, short, global = true, env = "MCP_EXPORTER_CONFIG", default_value = super::DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// The daemon's base URL (e.g. http://127.0.0.1:8931), overriding the config's listen address.
    #[arg(long, global = true, env = "MCP_EXPORTER_DAEMON_URL")]
    pub url: Option<String>,
    /// User for basic authentication, when `--web.config.file` sets `basic_auth_users`; the
    /// password is read from MCP_EXPORTER_WEB_PASSWORD.
    #[arg(long, global = true)]
    pub user: Option<String>,
}

/// The subcommands of `maintenance`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Action {
    /// Start a maintenance window now: the server's alerts stay silent and `history` counts the
    /// time as planned downtime. Changes are accepted from loopback when the daemon listens on
    /// loopback only, otherwise only with basic authentication.
    Start {
        /// The server (its configured name).
        #[arg(long, required_unless_present = "all", conflicts_with = "all")]
        server: Option<String>,
        /// Every server.
        #[arg(long)]
        all: bool,
        /// How long, from now (e.g. 30m, 1h, 2h30m).
        #[arg(long = "for", value_name = "DURATION", value_parser = super::parse_duration_arg)]
        duration: Duration,
        /// Why (shown by `list`, in the Alertmanager silence and in `history`).
        #[arg(long)]
        reason: String,
    },
    /// List the windows not yet ended.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t = TextOrJson::Text)]
        output: TextOrJson,
    },
    /// End a window now (its Alertmanager silence is expired).
    End {
        /// The window's id (from `start` or `list`).
        id: i64,
    },
}

/// The daemon's base URL: `url`, else `http://` + the config's listen address (wildcards become
/// loopback). Errors name the config problem.
pub fn daemon_url(config: &std::path::Path, url: Option<&str>) -> Result<String, String> {
    if let Some(url) = url {
        return Ok(url.trim_end_matches('/').to_string());
    }
    let listen: SocketAddr = if config.is_file() {
        Config::load(config)
            .map_err(|e| e.to_string())?
            .exporter
            .listen
    } else {
        DEFAULT_LISTEN
            .parse()
            .map_err(|e| format!("default listen address: {e}"))?
    };
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    Ok(format!("http://{}", SocketAddr::new(ip, listen.port())))
}

/// One line per window.
pub fn render(windows: &[Window]) -> String {
    if windows.is_empty() {
        return "no maintenance window\n".into();
    }
    let mut out = String::from(
        "ID  SERVER         FROM                  UNTIL                 SILENCE   REASON\n",
    );
    for w in windows {
        out.push_str(&format!(
            "{:<3} {:<14} {:<21} {:<21} {:<9} {}\n",
            w.id,
            w.scope().to_string(),
            super::format_ts(w.starts_at),
            super::format_ts(w.ends_at),
            w.silence_id
                .as_deref()
                .map_or("-".to_string(), |s| s.chars().take(8).collect()),
            w.reason
        ));
    }
    out
}

/// A request to the daemon and its answer, or the error to print.
async fn call(
    args: &MaintenanceArgs,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> Result<(u16, String), String> {
    let base = daemon_url(&args.config, args.url.as_deref())?;
    let url = format!("{base}{path}");
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(|e| e.to_string())?;
    let mut request = client.request(method, &url);
    if let Some(user) = &args.user {
        let password = std::env::var(PASSWORD_ENV).map_err(|_| {
            format!("--user {user} needs the password in the environment variable {PASSWORD_ENV}")
        })?;
        request = request.basic_auth(user, Some(password));
    }
    if let Some(body) = body {
        request = request
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
    }
    let response = request.send().await.map_err(|e| {
        format!(
            "cannot reach the daemon at {url}: {e} (is `mcp-exporter serve` running? pass --url)"
        )
    })?;
    let status = response.status().as_u16();
    let text = response.text().await.map_err(|e| e.to_string())?;
    Ok((status, text))
}

fn parse<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
    serde_json::from_str(text)
        .map_err(|e| format!("unexpected answer from the daemon ({e}): {text}"))
}

/// Runs `maintenance`; returns the exit status (0 done, 1 refused or failed, 2 bad config).
pub fn run(args: MaintenanceArgs) -> u8 {
    let runtime = match super::runtime() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: {err}");
            return 1;
        }
    };
    if let Err(err) = daemon_url(&args.config, args.url.as_deref()) {
        eprintln!("error: {err}");
        return 2;
    }
    let outcome = runtime.block_on(async {
        match &args.action {
            Action::Start {
                server,
                all,
                duration,
                reason,
            } => {
                let body = match (server, all) {
                    (Some(name), _) => serde_json::json!({"server": name, "duration_seconds": duration.as_secs_f64(), "reason": reason}),
                    (None, _) => serde_json::json!({"all": true, "duration_seconds": duration.as_secs_f64(), "reason": reason}),
                };
                let (status, text) =
                    call(&args, reqwest::Method::POST, "/api/maintenance", Some(body)).await?;
                if status != 201 {
                    return Err(text.trim().to_string());
                }
                let w: Window = parse(&text)?;
                let silence = match &w.silence_id {
                    Some(id) => format!("; Alertmanager silence {id}"),
                    None => String::new(),
                };
                Ok(format!(
                    "maintenance window {} started for {} until {}{silence}\n",
                    w.id,
                    w.scope(),
                    super::format_ts(w.ends_at)
                ))
            }
            Action::List { output } => {
                let (status, text) =
                    call(&args, reqwest::Method::GET, "/api/maintenance", None).await?;
                if status != 200 {
                    return Err(text.trim().to_string());
                }
                let windows: Vec<Window> = parse(&text)?;
                Ok(match output {
                    TextOrJson::Json => format!(
                        "{}\n",
                        serde_json::to_string_pretty(&windows).unwrap_or_default()
                    ),
                    TextOrJson::Text => render(&windows),
                })
            }
            Action::End { id } => {
                let path = format!("/api/maintenance/{id}");
                let (status, text) = call(&args, reqwest::Method::DELETE, &path, None).await?;
                if status != 200 {
                    return Err(text.trim().to_string());
                }
                let w: Window = parse(&text)?;
                Ok(format!(
                    "maintenance window {} for {} ended at {}\n",
                    w.id,
                    w.scope(),
                    super::format_ts(w.ends_at)
                ))
            }
        }
    });
    match outcome {
        Ok(text) => {
            print!("{text}");
            0
        }
        Err(err) => {
            eprintln!("error: {err}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_daemon_is_found_from_the_config_or_the_url() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("c.toml");
        std::fs::write(&config, "[exporter]\nlisten = \"0.0.0.0:9999\"\n").unwrap();
        assert_eq!(daemon_url(&config, None).unwrap(), "http://127.0.0.1:9999");
        std::fs::write(&config, "[exporter]\nlisten = \"[::]:9999\"\n").unwrap();
        assert_eq!(daemon_url(&config, None).unwrap(), "http://[::1]:9999");
        assert_eq!(
            daemon_url(&config, Some("https://exp:1/")).unwrap(),
            "https://exp:1"
        );
        assert_eq!(
            daemon_url(&dir.path().join("none.toml"), None).unwrap(),
            format!("http://{DEFAULT_LISTEN}")
        );
        std::fs::write(&config, "[exporter]\nlisten = \"nowhere\"\n").unwrap();
        assert!(
            daemon_url(&config, None)
                .unwrap_err()
                .contains("exporter.listen")
        );
    }

    #[test]
    fn windows_render_one_per_line() {
        let w = Window {
            id: 3,
            server: Some("db".into()),
            starts_at: 1_800_000_000.0,
            ends_at: 1_800_003_600.0,
            reason: "kernel upgrade".into(),
            ended_early: false,
            silence_id: Some("0f1e2d3c-aaaa".into()),
        };
        let text = render(&[w]);
        assert!(
            text.lines()
                .nth(1)
                .unwrap()
                .starts_with("3   db             2027-01-15T08:00:00Z"),
            "{text}"
        );
        assert!(text.contains("0f1e2d3c  kernel upgrade"), "{text}");
        assert_eq!(render(&[]), "no maintenance window\n");
    }
}

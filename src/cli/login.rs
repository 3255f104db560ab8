//! `mcp-exporter login SERVER`: a person authorizes the prober at an `http`/`sse` server's
//! authorization server (authorization code with PKCE, loopback redirect), and the refresh
//! token (with the client registered, if any) is stored for the daemon (docs/auth.md#login).
//!
//! It runs the probe of that one server, as `check` does, with its OAuth client allowed to ask
//! a person (src/auth/login.rs): discovery, scope selection, step-up and the retry limit are
//! the probe's own, and the readiness check at the end shows the token works.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::auth::login::LoginSettings;
use crate::mcp::{Limits, WireCounters};
use crate::probe::ServerProbe;
use crate::settings::Config;

/// Exit status: logged in and the server answered.
pub const EXIT_OK: u8 = 0;
/// Exit status: the login or the check after it failed.
pub const EXIT_FAILED: u8 = 1;
/// Exit status: usage or configuration error.
pub const EXIT_USAGE: u8 = 2;

/// Arguments of `login`.
#[derive(Debug, Clone, clap::Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["server", "server_option"])))]
pub struct LoginArgs {
    /// The server's name in the configuration (an `http` or `sse` server with
    /// `auth = { type = "oauth", ... }`).
    #[arg(value_name = "SERVER")]
    server: Option<String>,
    /// The server's name, as an option (`--server NAME`, the same as the argument).
    #[arg(long = "server", value_name = "NAME")]
    server_option: Option<String>,
    /// Configuration file (same as `serve`).
    #[arg(long, short, env = "MCP_EXPORTER_CONFIG", default_value = super::DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// Print the authorization URL only; do not start a browser.
    #[arg(long)]
    pub no_browser: bool,
    /// Hand the authorization URL to this command instead of `xdg-open` (words split on
    /// spaces; the URL is its last argument).
    #[arg(long, value_name = "COMMAND", env = "MCP_EXPORTER_LOGIN_OPENER")]
    pub open_with: Option<String>,
    /// How long to wait for the browser's redirect.
    #[arg(long, default_value = "5m", value_parser = super::parse_duration_arg)]
    pub wait: Duration,
    /// Print the client ID metadata document to host at the server's
    /// `auth.client_metadata_url`, and exit.
    #[arg(long)]
    pub print_client_metadata: bool,
}

impl LoginArgs {
    /// The server named, by argument or by `--server`.
    pub fn server(&self) -> &str {
        self.server
            .as_deref()
            .or(self.server_option.as_deref())
            .unwrap_or_default()
    }
}

/// Runs `login`; returns the exit status.
pub fn run(args: LoginArgs) -> u8 {
    let config = match Config::load(&args.config) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("error: {err}");
            return EXIT_USAGE;
        }
    };
    let Some(server) = config.servers.iter().find(|s| s.name == args.server()) else {
        eprintln!(
            "error: {} configures no server named {:?}",
            args.config.display(),
            args.server()
        );
        return EXIT_USAGE;
    };
    let Some(oauth) = server.auth.as_ref() else {
        eprintln!(
            "error: server {:?} has no auth = {{ type = \"oauth\", ... }}: there is nothing to log in to",
            args.server()
        );
        return EXIT_USAGE;
    };
    if args.print_client_metadata {
        let Some(url) = &oauth.client_metadata_url else {
            eprintln!(
                "error: server {:?} sets no auth.client_metadata_url",
                args.server()
            );
            return EXIT_USAGE;
        };
        let doc = crate::auth::registration::metadata_document(url);
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        return EXIT_OK;
    }
    let opener = opener(args.no_browser, args.open_with.as_deref());
    let mut server = server.clone();
    // The person's time is not the probe's: the probe may wait as long as the login does.
    server.timeout += args.wait;
    let runtime = match super::runtime() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: {err}");
            return EXIT_FAILED;
        }
    };
    let settings = LoginSettings {
        opener,
        wait: args.wait,
    };
    runtime.block_on(async move {
        let mut probe = ServerProbe::new(
            Arc::new(server),
            Limits::default(),
            Arc::new(WireCounters::default()),
        );
        if let Some(auth) = probe.authorizer() {
            auth.allow_login(settings);
        }
        let outcome = probe.probe().await;
        let stored = probe.authorizer().and_then(|a| a.stored_login());
        probe.shutdown().await;
        let file = probe
            .config()
            .auth
            .as_ref()
            .and_then(|a| a.login.as_ref())
            .map(|f| f.path.display().to_string())
            .unwrap_or_default();
        match &stored {
            Some((issuer, true)) => {
                println!("Logged in at {issuer}; the refresh token is stored in {file}")
            }
            Some((issuer, false)) => println!(
                "Logged in at {issuer}, which issued no refresh token: the daemon uses the access token stored in {file} until it expires, then reports login_required again"
            ),
            None => {}
        }
        match outcome.failure {
            None => {
                println!("{}: the server accepted the token (HEALTHY)", args.server());
                if stored.is_none() {
                    println!(
                        "{}: no login was needed (the prober obtains its tokens without a person)",
                        args.server()
                    );
                }
                EXIT_OK
            }
            Some(failure) => {
                eprintln!("error: {}: {failure}", args.server());
                EXIT_FAILED
            }
        }
    })
}

/// The command the URL is handed to: none with `--no-browser` unless `--open-with` names one;
/// `--open-with`; else `xdg-open` when it is on `PATH`.
fn opener(no_browser: bool, open_with: Option<&str>) -> Option<Vec<String>> {
    if let Some(command) = open_with {
        let words: Vec<String> = command.split_whitespace().map(str::to_string).collect();
        return (!words.is_empty()).then_some(words);
    }
    if no_browser {
        return None;
    }
    let on_path = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("xdg-open").is_file()));
    on_path.then(|| vec!["xdg-open".to_string()])
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Command {
        #[command(flatten)]
        login: LoginArgs,
    }

    #[test]
    fn the_server_is_named_by_argument_or_by_option_and_required() {
        let by_argument = Command::try_parse_from(["login", "api"]).unwrap();
        assert_eq!(by_argument.login.server(), "api");
        let by_option = Command::try_parse_from(["login", "--server", "api"]).unwrap();
        assert_eq!(by_option.login.server(), "api");
        assert!(Command::try_parse_from(["login"]).is_err());
        assert!(Command::try_parse_from(["login", "a", "--server", "b"]).is_err());
    }

    #[test]
    fn open_with_wins_and_no_browser_prints_only() {
        assert_eq!(
            opener(true, Some("curl -s -L")),
            Some(vec!["curl".into(), "-s".into(), "-L".into()])
        );
        assert_eq!(opener(true, None), None);
        assert_eq!(opener(false, Some("  ")), None);
    }
}

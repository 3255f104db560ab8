//! `mcp-exporter wrap [--name NAME] [--exporter SOCKET] -- COMMAND [ARGS...]`: what an MCP
//! client starts in place of a stdio server. Runs the server with every byte passed through
//! unchanged and reports the traffic it sees to the daemon (see src/traffic/ and
//! docs/traffic.md). Nothing but the server's own output ever reaches stdout.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use crate::traffic::SocketEnv;
use crate::traffic::reporter::ReporterOptions;
use crate::traffic::wrapper::{WrapOptions, wrap};

/// Arguments of `wrap`.
#[derive(Debug, Clone, clap::Args)]
pub struct WrapArgs {
    /// Name the traffic is reported under when the command line matches no configured stdio
    /// server (default: the command's file name).
    #[arg(long)]
    pub name: Option<String>,
    /// The daemon's traffic socket (default: $XDG_RUNTIME_DIR/mcp-exporter/traffic.sock, then
    /// /run/mcp-exporter/traffic.sock).
    #[arg(long, value_name = "SOCKET", env = crate::traffic::socket_path::SOCKET_ENV)]
    pub exporter: Option<PathBuf>,
    /// Time between reports to the daemon (e.g. 1s, 500ms); 0 reports after every message.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_interval)]
    pub report_interval: Duration,
    /// The stdio server's command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

fn parse_interval(text: &str) -> Result<Duration, String> {
    if text.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(text.trim()).map_err(|e| e.to_string())
}

/// Runs `wrap`; returns the exit status: the server's, 128 + the signal that killed it, or
/// 125/126/127 when the wrapper could not run it (as a shell would).
pub fn run(args: WrapArgs) -> u8 {
    let mut words = args.command.into_iter();
    let Some(command) = words.next() else {
        eprintln!("mcp-exporter wrap: no command given after --");
        return 125;
    };
    let mut reporter =
        ReporterOptions::new(SocketEnv::from_process(args.exporter).wrapper_candidates());
    reporter.interval = args.report_interval;
    let options = WrapOptions {
        command,
        args: words.collect(),
        name: args.name,
        reporter,
    };
    // One thread drives the child, the signals and the reporter; the bytes themselves move on
    // two dedicated threads (src/traffic/wrapper.rs).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("mcp-exporter wrap: cannot start the async runtime: {err}");
            return 125;
        }
    };
    match runtime.block_on(wrap(options)) {
        Ok(status) => u8::try_from(status).unwrap_or(1),
        Err(err) => {
            eprintln!("mcp-exporter wrap: {err}");
            err.exit_status()
        }
    }
}

//! `mcp-exporter wrap [--name NAME] [--exporter SOCKET] -- COMMAND [ARGS...]`: what an MCP
//! client starts in place of a stdio server. Runs the server with every byte passed through
//! unchanged and reports the traffic it sees to the daemon (see src/traffic/ and
//! docs/traffic.md). Nothing but the server's own output ever reaches stdout.
//!
//! The wrapper also has its own small executable, [`COMPANION`] (src/bin/mcp-exporter-wrap.rs,
//! parsing [`CompanionCli`]): `mcp-exporter wrap` replaces itself with it ([`exec_companion`])
//! when it is installed beside `mcp-exporter`, so a long-running wrapper does not keep the
//! daemon's 40 MB executable's pages resident (docs/traffic.md#the-wrappers-own-executable).

use std::ffi::OsString;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::logging::LogArgs;
use crate::traffic::SocketEnv;
use crate::traffic::reporter::ReporterOptions;
use crate::traffic::wrapper::{WrapOptions, wrap};

/// File name of the wrapper's own executable, installed in the same directory as
/// `mcp-exporter`.
pub const COMPANION: &str = "mcp-exporter-wrap";

/// Arguments of `wrap`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
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

/// The command line of [`COMPANION`]: the log flags and `wrap`'s arguments, exactly as
/// `mcp-exporter [--log-format F] [--log-level L] wrap ...` takes them.
#[derive(Debug, Clone, PartialEq, Eq, clap::Parser)]
#[command(
    name = "mcp-exporter-wrap",
    version,
    about = "Runs a stdio MCP server, passing its traffic through unchanged, and reports what \
             real clients experience to the daemon; the same as `mcp-exporter wrap`"
)]
pub struct CompanionCli {
    /// Where the wrapper's own logs go and how much of them.
    #[command(flatten)]
    pub log: LogArgs,
    /// What to run and where to report.
    #[command(flatten)]
    pub wrap: WrapArgs,
}

impl CompanionCli {
    /// The arguments (without the program name) that [`CompanionCli`] parses back into `self`:
    /// every value in `--flag=VALUE` form (a value starting with `-` stays a value), the report
    /// interval in nanoseconds, then `--` and the command unchanged.
    pub fn to_args(&self) -> Vec<OsString> {
        use clap::ValueEnum;
        let mut args: Vec<OsString> = Vec::new();
        if let Some(format) = self.log.log_format.to_possible_value() {
            args.push(format!("--log-format={}", format.get_name()).into());
        }
        args.push(format!("--log-level={}", self.log.log_level).into());
        if let Some(name) = &self.wrap.name {
            args.push(format!("--name={name}").into());
        }
        // An empty socket path is no path (as `SocketEnv` reads an empty variable).
        if let Some(exporter) = self
            .wrap
            .exporter
            .as_ref()
            .filter(|p| !p.as_os_str().is_empty())
        {
            let mut flag = OsString::from("--exporter=");
            flag.push(exporter.as_os_str());
            args.push(flag);
        }
        args.push(
            format!(
                "--report-interval={}ns",
                self.wrap.report_interval.as_nanos()
            )
            .into(),
        );
        args.push("--".into());
        args.extend(self.wrap.command.iter().cloned());
        args
    }
}

/// The companion in `exe`'s directory, if a file of that name is there.
pub fn companion_beside(exe: &Path) -> Option<PathBuf> {
    let path = exe.parent()?.join(COMPANION);
    path.is_file().then_some(path)
}

/// Why `mcp-exporter wrap` runs the wrapper in its own process.
#[derive(Debug, thiserror::Error)]
pub enum CompanionError {
    /// The running executable's path is unknown (no /proc), so nothing is beside it.
    #[error("cannot find the running executable: {0}")]
    NoExecutable(io::Error),
    /// No companion is installed beside the running executable.
    #[error("no {COMPANION} beside {0}")]
    Absent(PathBuf),
    /// The companion is there but could not be executed.
    #[error("cannot run {path}: {source}")]
    Exec {
        /// The companion.
        path: PathBuf,
        /// Why `execve` failed.
        source: io::Error,
    },
}

impl CompanionError {
    /// Whether the operator should hear of it: the companion is installed but unusable. A
    /// missing one is a supported install (`cargo install` of an older version, a copied
    /// binary), and the wrapper works the same without it.
    pub fn is_worth_a_warning(&self) -> bool {
        matches!(self, CompanionError::Exec { .. })
    }
}

/// Replaces this process with the [`COMPANION`] beside the running executable (Unix `exec`:
/// the same PID, stdio, environment, working directory and parent, so the client sees no
/// difference, and the peak RSS starts anew with the small executable), passing it `cli`.
/// Returns only when there is no companion or it could not be executed; the caller then wraps
/// in its own process.
pub fn exec_companion(cli: &CompanionCli) -> CompanionError {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(err) => return CompanionError::NoExecutable(err),
    };
    let Some(path) = companion_beside(&exe) else {
        return CompanionError::Absent(exe);
    };
    let source = std::process::Command::new(&path).args(cli.to_args()).exec();
    CompanionError::Exec { path, source }
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

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::logging::LogFormat;

    fn companion(
        format: LogFormat,
        name: Option<&str>,
        exporter: Option<&str>,
        interval: Duration,
        command: &[&str],
    ) -> CompanionCli {
        CompanionCli {
            log: LogArgs {
                log_format: format,
                log_level: "debug,mcp_exporter::traffic=trace".into(),
            },
            wrap: WrapArgs {
                name: name.map(str::to_string),
                exporter: exporter.map(PathBuf::from),
                report_interval: interval,
                command: command.iter().map(OsString::from).collect(),
            },
        }
    }

    #[test]
    fn the_companions_arguments_parse_back_into_the_same_command_line() {
        let cases = [
            companion(
                LogFormat::Json,
                Some("-looks-like-a-flag"),
                Some("/tmp/a dir/traffic.sock"),
                Duration::from_millis(1500),
                &[
                    "npx",
                    "-y",
                    "@modelcontextprotocol/server-memory",
                    "--",
                    "--name",
                ],
            ),
            companion(
                LogFormat::Human,
                None,
                Some("--exporter"),
                Duration::ZERO,
                &["/usr/bin/env", "--report-interval=9s"],
            ),
            companion(
                LogFormat::Human,
                Some(""),
                Some("relative.sock"),
                Duration::from_nanos(1_000_000_007),
                &["cat"],
            ),
        ];
        for cli in cases {
            let argv = std::iter::once(OsString::from(COMPANION)).chain(cli.to_args());
            let parsed = CompanionCli::try_parse_from(argv).expect("the companion parses them");
            assert_eq!(parsed, cli);
        }
    }

    #[test]
    fn no_socket_and_an_empty_one_pass_no_exporter_flag() {
        for exporter in [None, Some("")] {
            let cli = companion(LogFormat::Human, None, exporter, Duration::ZERO, &["cat"]);
            let args = cli.to_args();
            assert!(
                !args
                    .iter()
                    .any(|a| a.to_string_lossy().starts_with("--exporter")),
                "{args:?}"
            );
        }
    }

    #[test]
    fn the_companion_is_found_only_as_a_file_beside_the_executable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let exe = dir.path().join("mcp-exporter");
        assert!(companion_beside(&exe).is_none());
        std::fs::create_dir(dir.path().join(COMPANION)).expect("mkdir");
        assert!(
            companion_beside(&exe).is_none(),
            "a directory is no companion"
        );
        let other = tempfile::tempdir().expect("tempdir");
        std::fs::write(other.path().join(COMPANION), b"").expect("write");
        let exe = other.path().join("mcp-exporter");
        assert_eq!(companion_beside(&exe), Some(other.path().join(COMPANION)));
    }
}

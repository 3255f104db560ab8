//! `mcp-exporter-wrap`: the wrapper alone (`mcp-exporter wrap`, src/cli/wrap.rs), in an
//! executable that links only what the wrapper uses. `mcp-exporter wrap` replaces itself with
//! this program when it is installed beside it, so each wrapped stdio server costs the client's
//! machine the wrapper's own memory, not the daemon's executable (docs/traffic.md).

use std::process::ExitCode;

use clap::Parser;
use mcp_exporter::cli::wrap::{CompanionCli, run};

fn main() -> ExitCode {
    let cli = CompanionCli::parse();
    cli.log.init();
    ExitCode::from(run(cli.wrap))
}

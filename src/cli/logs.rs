//! `mcp-exporter logs`: searches the log lines of the history store (stderr, MCP
//! `notifications/message`, HTTP errors). Each line shows the trace id of the probe it came
//! with (as `history` shows those of failed probes; docs/tracing.md), and `--trace-id` keeps
//! the lines of one probe.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use crate::store::query::{self, LogEntry, LogQuery};
use crate::store::{Level, Store};

/// How often `--follow` looks for new lines.
const FOLLOW_POLL: Duration = Duration::from_millis(500);

/// `--output` of `logs` and `history`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TextOrJson {
    /// Human-readable lines.
    Text,
    /// JSON (one object per line for logs).
    Json,
}

/// Arguments of `logs`.
#[derive(Debug, Clone, clap::Args)]
pub struct LogsArgs {
    /// Configuration file; its `[store] path` names the database.
    #[arg(long, short, env = "MCP_EXPORTER_CONFIG", default_value = super::DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// History database, overriding the config's `[store] path`.
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// Full-text search: lines containing every word.
    #[arg(long)]
    pub search: Option<String>,
    /// This level and above: debug, info, notice, warning, error, critical, alert, emergency.
    #[arg(long)]
    pub level: Option<Level>,
    /// Only this server.
    #[arg(long)]
    pub server: Option<String>,
    /// Only lines of this recent period (e.g. 1h, 30m, 7d).
    #[arg(long, value_parser = super::parse_duration_arg)]
    pub since: Option<Duration>,
    /// Only the lines of the probe with this trace id (32 hex digits, as `history` and the
    /// tracing backend show it).
    #[arg(long, value_parser = parse_trace_id)]
    pub trace_id: Option<String>,
    /// Most lines printed (the newest).
    #[arg(long, default_value_t = 100)]
    pub limit: i64,
    /// Keep printing new matching lines until interrupted.
    #[arg(long, short)]
    pub follow: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = TextOrJson::Text)]
    pub output: TextOrJson,
}

/// Runs `logs`; returns the exit status (0, or 1 when the store cannot be read).
pub fn run(args: LogsArgs) -> u8 {
    let (path, runtime) = match super::store_and_runtime(&args.config, args.db.as_ref()) {
        Ok(ready) => ready,
        Err(status) => return status,
    };
    runtime.block_on(async move {
        match run_async(args, path).await {
            Ok(()) => 0,
            Err(err) => {
                eprintln!("error: {err}");
                1
            }
        }
    })
}

async fn run_async(args: LogsArgs, path: PathBuf) -> Result<(), crate::store::StoreError> {
    let store = Store::open_existing(&path).await?;
    let mut q = LogQuery {
        search: args.search.clone(),
        min_level: args.level,
        server: args.server.clone(),
        since: args.since.map(super::unix_ago),
        after_id: None,
        trace_id: args.trace_id.clone(),
        limit: args.limit,
    };
    loop {
        let entries = query::logs(&store, &q).await?;
        if let Some(last) = entries.last() {
            q.after_id = Some(last.id);
        }
        print(&entries, args.output);
        if !args.follow {
            break;
        }
        q.limit = 1000;
        tokio::select! {
            _ = tokio::time::sleep(FOLLOW_POLL) => {}
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    store.close().await;
    Ok(())
}

/// A trace id as OpenTelemetry writes it: 32 hex digits, not all zero (lowercased).
fn parse_trace_id(text: &str) -> Result<String, String> {
    let id = text.trim().to_ascii_lowercase();
    if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) && id.bytes().any(|b| b != b'0')
    {
        Ok(id)
    } else {
        Err(format!(
            "{text:?} is not a trace id; expected 32 hex digits, e.g. 4bf92f3577b34da6a3ce929d0e0e4736"
        ))
    }
}

/// The text line of `e`: ` [trace ID]` ends the lines of traced probes, as in `history`.
fn text_line(e: &LogEntry) -> String {
    format!(
        "{} {:<9} {} [{}{}] {}{}",
        super::format_ts(e.ts),
        e.level.to_uppercase(),
        e.server,
        e.source,
        e.logger
            .as_ref()
            .map(|l| format!(" {l}"))
            .unwrap_or_default(),
        e.message,
        trace_suffix(e.trace_id.as_deref())
    )
}

fn print(entries: &[LogEntry], output: TextOrJson) {
    let mut out = std::io::stdout().lock();
    for e in entries {
        let line = match output {
            TextOrJson::Json => serde_json::to_string(e).unwrap_or_default(),
            TextOrJson::Text => text_line(e),
        };
        if writeln!(out, "{line}").is_err() {
            return;
        }
    }
    let _ = out.flush();
}

/// ` [trace ID]`, how `history` and `logs` end the line of a traced probe (empty without one).
pub fn trace_suffix(trace_id: Option<&str>) -> String {
    trace_id.map_or_else(String::new, |id| format!(" [trace {id}]"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_ids_are_32_hex_digits_not_all_zero() {
        assert_eq!(
            parse_trace_id(" 4BF92F3577B34DA6A3CE929D0E0E4736 "),
            Ok("4bf92f3577b34da6a3ce929d0e0e4736".to_string())
        );
        for bad in [
            "",
            "4bf92f3577b34da6",
            "00000000000000000000000000000000",
            "4bf92f3577b34da6a3ce929d0e0e473g",
        ] {
            assert!(parse_trace_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_traced_line_ends_with_its_trace_as_in_history() {
        let mut entry = LogEntry {
            id: 1,
            ts: 0.0,
            server: "s".into(),
            source: "stderr".into(),
            level: "info".into(),
            logger: None,
            message: "hello".into(),
            trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".into()),
        };
        assert!(
            text_line(&entry)
                .ends_with("s [stderr] hello [trace 4bf92f3577b34da6a3ce929d0e0e4736]"),
            "{}",
            text_line(&entry)
        );
        let json: serde_json::Value =
            serde_json::from_str(&serde_json::to_string(&entry).expect("json")).expect("parses");
        assert_eq!(json["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        entry.trace_id = None;
        assert!(text_line(&entry).ends_with("s [stderr] hello"));
        let json: serde_json::Value =
            serde_json::from_str(&serde_json::to_string(&entry).expect("json")).expect("parses");
        assert!(json["trace_id"].is_null() && json.get("trace_id").is_some());
    }
}

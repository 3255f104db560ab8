//! `mcp-exporter history`: a server's health transitions and availability over a period.

use std::path::PathBuf;
use std::time::Duration;

use super::logs::{TextOrJson, trace_suffix};
use crate::store::{Store, query};

/// Arguments of `history`.
#[derive(Debug, Clone, clap::Args)]
pub struct HistoryArgs {
    /// Configuration file; its `[store] path` names the database.
    #[arg(long, short, env = "MCP_EXPORTER_CONFIG", default_value = super::DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// History database, overriding the config's `[store] path`.
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// Server name.
    #[arg(long)]
    pub server: String,
    /// Period (e.g. 24h, 7d).
    #[arg(long, default_value = "24h", value_parser = super::parse_duration_arg)]
    pub since: Duration,
    /// Output format.
    #[arg(long, value_enum, default_value_t = TextOrJson::Text)]
    pub output: TextOrJson,
}

/// Runs `history`; returns the exit status.
pub fn run(args: HistoryArgs) -> u8 {
    let (path, runtime) = match super::store_and_runtime(&args.config, args.db.as_ref()) {
        Ok(ready) => ready,
        Err(status) => return status,
    };
    runtime.block_on(async move {
        let result = async {
            let store = Store::open_existing(&path).await?;
            let h = query::history(&store, &args.server, super::unix_ago(args.since)).await?;
            let known = query::servers(&store).await?;
            store.close().await;
            Ok::<_, crate::store::StoreError>((h, known))
        }
        .await;
        match result {
            Ok((h, known)) => {
                if h.probes == 0 && !known.contains(&args.server) {
                    eprintln!(
                        "error: no history for server {:?} (servers in the store: {})",
                        args.server,
                        known.join(", ")
                    );
                    return 1;
                }
                match args.output {
                    TextOrJson::Json => {
                        println!("{}", serde_json::to_string_pretty(&h).unwrap_or_default())
                    }
                    TextOrJson::Text => print!("{}", text(&h, args.since)),
                }
                0
            }
            Err(err) => {
                eprintln!("error: {err}");
                1
            }
        }
    })
}

fn text(h: &query::History, since: Duration) -> String {
    let pct = |p: Option<f64>| {
        p.map(|v| format!("{v:.2}%"))
            .unwrap_or_else(|| "n/a".into())
    };
    let observed = h.availability.map_or_else(String::new, |a| {
        let secs = Duration::from_secs(a.observed_seconds.round() as u64);
        let planned = if a.planned_seconds > 0.0 {
            let planned = Duration::from_secs(a.planned_seconds.round() as u64);
            format!(
                ", {} of planned downtime left out",
                humantime::format_duration(planned)
            )
        } else {
            String::new()
        };
        format!(" of {} observed{planned}", humantime::format_duration(secs))
    });
    let mut out = format!(
        "{} over the last {} (since {})\n  availability {}{} (by time); {} of {} probes up ({}), checks passed {}, restarts {}\n",
        h.server,
        humantime::format_duration(since),
        super::format_ts(h.since),
        pct(h.availability.map(|a| a.percent)),
        observed,
        h.probes_up,
        h.probes,
        pct(h.uptime_percent),
        pct(h.success_percent),
        h.restarts
    );
    for w in &h.maintenance {
        out.push_str(&format!(
            "  maintenance {} -> {} (window {}{}): planned downtime, not an outage: {}\n",
            super::format_ts(w.starts_at),
            super::format_ts(w.ends_at),
            w.id,
            if w.ended_early { ", ended early" } else { "" },
            w.reason
        ));
    }
    if h.transitions.is_empty() {
        out.push_str("  no transitions\n");
    }
    for failed in &h.failed_probes {
        out.push_str(&format!(
            "  {} failed    {}{}\n",
            super::format_ts(failed.ts),
            failed.failure,
            trace_suffix(failed.trace_id.as_deref())
        ));
    }
    for t in &h.transitions {
        out.push_str(&format!(
            "  {} {:<9} {} -> {}{}{}\n",
            super::format_ts(t.ts),
            t.kind,
            t.from,
            t.to,
            if t.reason.is_empty() {
                String::new()
            } else {
                format!(": {}", t.reason)
            },
            match h.planned_at(t.ts) {
                Some(w) => format!(" [planned: maintenance window {}]", w.id),
                None => String::new(),
            }
        ));
    }
    out
}

//! The timeline of an incident: one line per thing that happened, oldest first, built from the
//! store's rows: health transitions, security events, warning-or-worse log lines, the first probe
//! failure of each run of failures (and each change of error within it), dependency status
//! changes and backup runs.

use std::collections::HashMap;

use super::history::History;

/// Most entries in the timeline; the summary says how many were left out.
pub const MAX_ENTRIES: usize = 2000;
/// Longest text of one entry, in characters.
const MAX_TEXT: usize = 300;

/// One timeline entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Unix seconds.
    pub ts: f64,
    /// The server, or `dependency NAME`, or `store`.
    pub subject: String,
    /// What happened.
    pub what: String,
}

/// The timeline of `history`, oldest first, cut to [`MAX_ENTRIES`]; returns the entries and how
/// many were left out.
pub fn build(history: &History) -> (Vec<Entry>, usize) {
    let mut entries = Vec::new();
    for t in &history.transitions {
        let reason = if t.reason.is_empty() {
            String::new()
        } else {
            format!(": {}", t.reason)
        };
        entries.push(entry(
            t.ts,
            &t.server,
            format!("{} ({} -> {}){reason}", t.kind, t.from_status, t.to_status),
        ));
    }
    for l in &history.logs {
        let worse_than_info = matches!(
            l.level.as_str(),
            "warning" | "error" | "critical" | "alert" | "emergency"
        );
        if l.source == "security" {
            entries.push(entry(l.ts, &l.server, l.message.clone()));
        } else if worse_than_info {
            entries.push(entry(
                l.ts,
                &l.server,
                format!("{} {}: {}", l.source, l.level, l.message),
            ));
        }
    }
    let mut failing: HashMap<&str, Option<&str>> = HashMap::new();
    for p in &history.probes {
        let previous = failing.get(p.server.as_str()).copied().flatten();
        if p.success {
            if previous.is_some() {
                entries.push(entry(p.ts, &p.server, "probe passed again".to_string()));
            }
            failing.insert(&p.server, None);
            continue;
        }
        let error = p.error.as_deref().unwrap_or("failed");
        if previous != Some(error) {
            entries.push(entry(
                p.ts,
                &p.server,
                format!(
                    "probe failed ({}): {error}",
                    p.failure_class.as_deref().unwrap_or("unclassified")
                ),
            ));
        }
        failing.insert(&p.server, Some(error));
    }
    let mut statuses: HashMap<&str, &str> = HashMap::new();
    for d in &history.dependencies {
        let previous = statuses.insert(&d.dependency, &d.status);
        let changed = previous.is_some_and(|p| p != d.status);
        if changed || (previous.is_none() && !d.up) {
            let why = d
                .error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default();
            entries.push(entry(
                d.ts,
                &format!("dependency {}", d.dependency),
                format!("{} ({}){why}", d.status, d.kind),
            ));
        }
    }
    for b in &history.backups {
        let what = if b.ok {
            format!("backup ({}) written to {}", b.trigger, b.file)
        } else {
            format!(
                "backup ({}) to {} failed: {}",
                b.trigger,
                b.file,
                b.error.as_deref().unwrap_or("unknown error")
            )
        };
        entries.push(entry(b.ts, "store", what));
    }
    entries.sort_by(|a, b| a.ts.total_cmp(&b.ts));
    let left_out = entries.len().saturating_sub(MAX_ENTRIES);
    entries.truncate(MAX_ENTRIES);
    (entries, left_out)
}

fn entry(ts: f64, subject: &str, what: String) -> Entry {
    let what: String = what
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_TEXT)
        .collect();
    Entry {
        ts,
        subject: subject.to_string(),
        what,
    }
}

/// The timeline as a Markdown table (`|` escaped).
pub fn markdown(entries: &[Entry], format_ts: impl Fn(f64) -> String) -> String {
    let cell = |text: &str| text.replace('|', "\\|");
    let mut out = String::from("| time (UTC) | subject | what happened |\n|---|---|---|\n");
    for e in entries {
        out.push_str(&format!(
            "| {} | {} | {} |\n",
            format_ts(e.ts),
            cell(&e.subject),
            cell(&e.what)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incident::history::{LogLine, Probe, Transition};

    fn probe(ts: f64, success: bool, error: Option<&str>) -> Probe {
        Probe {
            ts,
            server: "s".into(),
            check_type: "liveness".into(),
            up: success,
            success,
            health: if success { "HEALTHY" } else { "UNHEALTHY" }.into(),
            duration_ms: 1.0,
            failure_class: error.map(|_| "down".into()),
            error: error.map(Into::into),
        }
    }

    #[test]
    fn the_timeline_orders_and_condenses_what_happened() {
        let history = History {
            probes: vec![
                probe(1.0, true, None),
                probe(2.0, false, Some("process exited")),
                probe(3.0, false, Some("process exited")),
                probe(4.0, false, Some("spawn failed")),
                probe(6.0, true, None),
            ],
            transitions: vec![Transition {
                ts: 2.5,
                server: "s".into(),
                kind: "down".into(),
                from_status: "HEALTHY".into(),
                to_status: "UNHEALTHY".into(),
                reason: "probe_failed".into(),
            }],
            logs: vec![
                LogLine {
                    id: 1,
                    ts: 5.0,
                    server: "s".into(),
                    source: "security".into(),
                    level: "error".into(),
                    logger: Some("pattern_match".into()),
                    trace_id: None,
                    message: "security event pattern_match: a|b".into(),
                },
                LogLine {
                    id: 2,
                    ts: 5.5,
                    server: "s".into(),
                    source: "stderr".into(),
                    level: "info".into(),
                    logger: None,
                    trace_id: None,
                    message: "chatter".into(),
                },
            ],
            ..History::default()
        };
        let (entries, left_out) = build(&history);
        assert_eq!(left_out, 0);
        let whats: Vec<&str> = entries.iter().map(|e| e.what.as_str()).collect();
        assert_eq!(
            whats,
            [
                "probe failed (down): process exited",
                "down (HEALTHY -> UNHEALTHY): probe_failed",
                "probe failed (down): spawn failed",
                "security event pattern_match: a|b",
                "probe passed again",
            ]
        );
        let md = markdown(&entries, |ts| format!("t{ts}"));
        assert!(
            md.contains("| t5 | s | security event pattern_match: a\\|b |"),
            "{md}"
        );
    }
}

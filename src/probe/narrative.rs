//! A probe told step by step, for people: what ran in which order, how long each step and each
//! request took, what the server said it is, and where it failed. `/probe?debug=true` returns it
//! (src/web/probe_endpoint.rs); it is built from the [`ProbeOutcome`] alone, so it tells exactly
//! what the metrics of the same probe count.

use std::fmt::Write;
use std::time::Duration;

use super::{ProbeOutcome, ServerConfig};

fn ms(d: Duration) -> String {
    format!("{:.1}ms", d.as_secs_f64() * 1e3)
}

/// The lines of `outcome`, a probe of `server`.
pub fn narrate(server: &ServerConfig, outcome: &ProbeOutcome) -> Vec<String> {
    let mut lines = Vec::new();
    lines.push(format!(
        "probe of {} ({} {}, deadline {})",
        server.name,
        server.transport.kind(),
        server.check.as_str(),
        ms(server.timeout)
    ));
    for note in &outcome.notes {
        lines.push(format!("note: {note}"));
    }
    for (stage, took) in &outcome.stages {
        lines.push(format!("stage {}: {}", stage.as_str(), ms(*took)));
    }
    for request in &outcome.requests {
        let mut line = format!("request {}", request.method);
        if let Some(tool) = &request.tool {
            let _ = write!(line, " ({tool})");
        }
        let _ = write!(
            line,
            ": {} after {}",
            request.outcome.as_str(),
            ms(request.duration)
        );
        lines.push(line);
    }
    if let Some(identity) = &outcome.identity {
        lines.push(format!(
            "server: {} {}, protocol {} ({} era)",
            identity.name, identity.version, identity.protocol_version, identity.era
        ));
    }
    if let Some(catalog) = &outcome.catalog {
        lines.push(format!(
            "tools/list: {} tools: {}",
            catalog.count,
            catalog.names.join(", ")
        ));
    }
    if let Some(phases) = &outcome.http_phases {
        lines.push(format!(
            "http: resolve {}, connect {}, processing {}, transfer {}, {} connection(s) opened",
            ms(phases.resolve),
            ms(phases.connect),
            ms(phases.processing),
            ms(phases.transfer),
            phases.connections_opened
        ));
    }
    for warning in &outcome.warnings {
        lines.push(format!("warning: {warning}"));
    }
    lines.push(match &outcome.failure {
        Some(failure) => format!("FAILED: {failure} (after {})", ms(outcome.duration)),
        None => format!(
            "succeeded in {}{}",
            ms(outcome.duration),
            outcome
                .latency
                .map(|l| format!(", latency {}", ms(l)))
                .unwrap_or_default()
        ),
    });
    lines
}

//! The official MCP conformance suite's client scenarios against the prober: for each protocol
//! revision the suite has a requirement set for, `scripts/conformance.sh` runs every client
//! scenario (the scored ones and those run without scoring) through the one adapter,
//! `scripts/conformance-client.py` (`mcp-exporter check` on the scenario's URL), and judges it
//! against the revision's checked-in baseline, tests/fixtures/conformance/
//! expected-failures-REVISION.yaml: a failure not listed fails the test, and so does a listed
//! entry that passes. docs/conformance.md has the results and the command.

use std::process::Command;
use std::time::Instant;

use crate::common::paths::repo_root;
use crate::common::tools::{Tool, located, require_all};

/// The revisions the pinned suite has requirement sets for.
const REVISIONS: [&str; 2] = ["2026-07-28", "2025-11-25"];

/// What one revision's run printed and whether it passed.
struct Run {
    revision: &'static str,
    passed: bool,
    output: String,
    seconds: f64,
}

fn run(revision: &'static str) -> Run {
    let started = Instant::now();
    let out = Command::new("bash")
        .arg(repo_root().join("scripts/conformance.sh"))
        .arg(revision)
        .env("MCP_EXPORTER_BIN", env!("CARGO_BIN_EXE_mcp-exporter"))
        .env("MCP_CONFORMANCE_NODE", located(Tool::Conformance))
        .output()
        .expect("run scripts/conformance.sh");
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = format!("{revision}: ");
    Run {
        revision,
        // The exit status is the verdict; the summary line proves the run got to the end.
        passed: out.status.success()
            && output
                .lines()
                .any(|l| l.starts_with(&summary) && l.ends_with("0 unexpected, 0 stale")),
        output,
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// Both revisions in one test, one after the other: the suite's timing checks (the reconnect
/// delay of sse-retry) are kinder to a machine not running the other revision at the same time.
#[test]
fn the_prober_fails_only_the_scenarios_its_baselines_expect() {
    if !require_all(&[Tool::Conformance, Tool::Python3]) {
        return;
    }
    let runs: Vec<Run> = REVISIONS.into_iter().map(run).collect();
    for r in &runs {
        eprintln!(
            "=== conformance {} ({:.1}s)\n{}",
            r.revision, r.seconds, r.output
        );
    }
    let failed: Vec<&str> = runs
        .iter()
        .filter(|r| !r.passed)
        .map(|r| r.revision)
        .collect();
    assert!(
        failed.is_empty(),
        "conformance runs failed for {failed:?}: a scenario failed that its baseline does not \
         list, or a listed one now passes (see the output above; docs/conformance.md)"
    );
}

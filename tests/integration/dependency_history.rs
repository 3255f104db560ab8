//! A transition caused by a dependency between two probes reaches the history store: a server
//! probed once an hour depends on a TCP listener the test owns; the listener is closed and
//! reopened between probes, and `mcp-exporter history` reads back the server going down and
//! recovering, with the dependency named as the reason.

use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use crate::common::daemon::{Daemon, daemon_bin};
use crate::common::processes::run_bounded;
use crate::common::servers::everything_stdio_entry;
use crate::common::tools::{Tool, require};
use crate::common::wait::eventually;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(250);

/// `history --output json`, or what it said instead (e.g. before the first probe is stored).
fn history(daemon: &Daemon, server: &str) -> Result<Value, String> {
    let out = run_bounded(
        Command::new(daemon_bin()).args([
            "history",
            "--config",
            &daemon.config_path().to_string_lossy(),
            "--server",
            server,
            "--output",
            "json",
        ]),
        Duration::from_secs(30),
    )
    .unwrap_or_else(|e| panic!("mcp-exporter history: {e}"));
    serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "history gave no JSON ({e}): {} {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn transitions(h: &Value) -> Vec<(String, String)> {
    h["transitions"]
        .as_array()
        .map(|all| {
            all.iter()
                .map(|t| {
                    (
                        t["kind"].as_str().unwrap_or("").to_string(),
                        t["reason"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_dependency_going_down_between_probes_is_in_the_history() {
    if require(Tool::Node).is_none() {
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback listener");
    let address = listener.local_addr().expect("listener address");
    let daemon = Daemon::start(&format!(
        r#"
[[dependencies]]
name = "gate"
kind = "tcp"
address = "{address}"
interval = "1s"
timeout = "1s"
{}"#,
        everything_stdio_entry("rare", "1h", r#"depends_on = ["gate"]"#)
    ));

    // The one probe of the hour: up.
    eventually(WAIT, POLL, || {
        let seen = transitions(&history(&daemon, "rare")?);
        if seen.iter().any(|(kind, _)| kind == "up") {
            Ok(())
        } else {
            Err(format!("no 'up' transition yet: {seen:?}"))
        }
    });

    // The dependency goes away: the server is down without being probed again.
    drop(listener);
    let down = eventually(WAIT, POLL, || {
        let seen = transitions(&history(&daemon, "rare")?);
        match seen.iter().find(|(kind, _)| kind == "down") {
            Some((_, reason)) => Ok(reason.clone()),
            None => Err(format!("no 'down' transition yet: {seen:?}")),
        }
    });
    assert!(
        down.contains("critical dependency gate is down"),
        "the reason names the dependency: {down}"
    );

    // It comes back on the same address: recovered, still from the same single probe.
    let _listener = TcpListener::bind(address).expect("re-bind the listener");
    eventually(WAIT, POLL, || {
        let seen = transitions(&history(&daemon, "rare")?);
        if seen.iter().any(|(kind, _)| kind == "recovered") {
            Ok(())
        } else {
            Err(format!("no 'recovered' transition yet: {seen:?}"))
        }
    });
    let h = history(&daemon, "rare").expect("history");
    assert_eq!(h["probes"], 1, "only one probe ran: {h}");
}

//! Tests of the `Daemon` harness against a stand-in daemon (`tests/fixtures/fake_daemon.py`),
//! so the harness is known to work before and independently of the real binary.

mod common;

use common::*;
use std::path::Path;
use std::time::Duration;

fn start_fake(config: &str) -> Daemon {
    let script = fixture("fake_daemon.py");
    let script = script.to_str().expect("fixture path is UTF-8");
    Daemon::start_program(Path::new("python3"), &[script], config, &[], &[])
}

#[test]
fn daemon_harness_learns_the_address_and_scrapes() {
    let daemon = start_fake("# config for {dir}\n");
    assert!(daemon.addr().starts_with("127.0.0.1:"), "{}", daemon.addr());
    assert_eq!(
        daemon.url("/metrics"),
        format!("http://{}/metrics", daemon.addr())
    );

    let expected_config = format!("# config for {}\n", daemon.dir().display());
    assert_eq!(daemon.config_text(), expected_config);

    let scrape = daemon.scrape();
    assert_eq!(scrape.value("fake_up", &[("server", "x")]), Some(1.0));
    assert_eq!(
        scrape.value("fake_config_bytes", &[]),
        Some(expected_config.len() as f64)
    );
    promtool_check_metrics(scrape.text()).expect("fake metrics pass promtool");

    eventually(Duration::from_secs(5), Duration::from_millis(20), || {
        let n = daemon
            .scrape()
            .value("fake_scrapes_total", &[])
            .unwrap_or(0.0);
        if n >= 3.0 {
            Ok(())
        } else {
            Err(format!("{n} scrapes"))
        }
    });

    assert_eq!(daemon.get("/health"), (200, "ok\n".to_string()));
    assert_eq!(daemon.get("/nope").0, 404);
    assert!(daemon.stderr().contains("listening on http://"));
}

#[test]
fn daemon_harness_sees_children_and_stops_cleanly() {
    let mut daemon = start_fake("");
    let children = eventually(Duration::from_secs(5), Duration::from_millis(10), || {
        let pids = daemon.child_pids();
        if pids.is_empty() {
            Err("no child yet".to_string())
        } else {
            Ok(pids)
        }
    });
    assert!(pid_alive(daemon.pid()));
    let status = daemon.stop();
    assert!(status.success(), "fake daemon exited with {status}");
    assert!(!pid_alive(daemon.pid()));
    for pid in children {
        assert!(!pid_alive(pid), "child {pid} outlived the daemon");
    }
}

#[test]
fn daemon_drop_kills_the_process_group() {
    let daemon = start_fake("");
    let pid = daemon.pid();
    let children = eventually(Duration::from_secs(5), Duration::from_millis(10), || {
        let pids = daemon.child_pids();
        if pids.is_empty() {
            Err("no child yet".to_string())
        } else {
            Ok(pids)
        }
    });
    drop(daemon);
    assert!(!pid_alive(pid));
    eventually(
        Duration::from_secs(5),
        Duration::from_millis(20),
        || match children.iter().find(|p| pid_alive(**p)) {
            Some(p) => Err(format!("child {p} still alive")),
            None => Ok(()),
        },
    );
}

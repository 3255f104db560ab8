//! Scans of a real directory: added, changed, removed and malformed files.

use std::collections::BTreeSet;
use std::time::Duration;

use super::*;

/// The TOML document shape, for file_sd's own tests.
#[derive(serde::Serialize)]
pub(crate) struct Document<E> {
    pub servers: Vec<E>,
}

fn defaults() -> ServerDefaults {
    ServerDefaults {
        interval: Duration::from_secs(15),
        timeout: Duration::from_secs(10),
        degraded_latency: Duration::from_secs(2),
    }
}

fn names(directory: &Directory) -> Vec<String> {
    let (servers, _) = directory.servers(&BTreeSet::new());
    servers.into_iter().map(|s| s.name).collect()
}

#[test]
fn file_sd_and_client_files_become_servers_and_follow_their_changes() {
    let dir = tempfile::tempdir().unwrap();
    let mut directory = Directory::new(dir.path().to_path_buf(), defaults());
    assert_eq!(directory.scan().unwrap(), ScanReport::default());

    std::fs::write(
        dir.path().join("a.json"),
        r#"[{"targets": ["127.0.0.1:3001", "127.0.0.1:3002"], "labels": {"interval": "30s"}}]"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("b.yaml"),
        "- targets: ['127.0.0.1:4001']\n  labels: {name: yaml-one, check: readiness}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("c.json"),
        r#"{"mcpServers": {"remote": {"type": "http", "url": "http://127.0.0.1:5001/mcp"}}}"#,
    )
    .unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a discovery file").unwrap();
    let report = directory.scan().unwrap();
    assert!(report.changed && report.refused.is_empty(), "{report:?}");
    assert_eq!(
        names(&directory),
        ["127.0.0.1-3001", "127.0.0.1-3002", "yaml-one", "remote"]
    );
    let (servers, _) = directory.servers(&BTreeSet::new());
    assert_eq!(servers[0].interval, Duration::from_secs(30));
    assert_eq!(
        servers[1].timeout,
        Duration::from_secs(10),
        "[exporter] default"
    );
    assert_eq!(servers[2].check.as_str(), "readiness");
    assert_eq!(servers[3].check.as_str(), "liveness");

    // Nothing changed: nothing to apply.
    assert!(!directory.scan().unwrap().changed);

    // A file removed takes its servers with it; a changed file replaces its own.
    std::fs::remove_file(dir.path().join("c.json")).unwrap();
    std::fs::write(
        dir.path().join("a.json"),
        r#"[{"targets": ["127.0.0.1:3001"]}]"#,
    )
    .unwrap();
    assert!(directory.scan().unwrap().changed);
    assert_eq!(names(&directory), ["127.0.0.1-3001", "yaml-one"]);
}

#[test]
fn a_malformed_file_keeps_its_last_good_servers_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fleet.json");
    std::fs::write(&path, r#"[{"targets": ["127.0.0.1:3001"]}]"#).unwrap();
    let mut directory = Directory::new(dir.path().to_path_buf(), defaults());
    directory.scan().unwrap();

    for (bad, why) in [
        (r#"[{"targets": ["127.0.0.1:3001"]"#, "EOF"),
        (r#"[{"targets": ["h:1"], "labels": {"chek": "x"}}]"#, "chek"),
        (
            r#"[{"targets": ["h:1"], "labels": {"interval": "soon"}}]"#,
            "soon",
        ),
        (r#"{"something": 1}"#, "mcpServers"),
    ] {
        std::fs::write(&path, bad).unwrap();
        let report = directory.scan().unwrap();
        assert!(!report.changed, "{bad}");
        assert_eq!(report.refused.len(), 1, "{bad}");
        assert!(
            report.refused[0].1.contains(why),
            "{bad}: {:?}",
            report.refused
        );
        assert_eq!(names(&directory), ["127.0.0.1-3001"], "{bad}");
        assert_eq!(directory.refused().count(), 1);
        // The same bad content is not refused (nor counted) again at every poll.
        assert_eq!(directory.scan().unwrap(), ScanReport::default());
    }
    std::fs::write(&path, r#"[{"targets": ["127.0.0.1:3009"]}]"#).unwrap();
    assert!(directory.scan().unwrap().changed);
    assert_eq!(names(&directory), ["127.0.0.1-3009"]);
    assert_eq!(directory.refused().count(), 0);
}

#[test]
fn names_taken_by_the_configuration_or_an_earlier_file_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("1.json"),
        r#"[{"targets": ["h:1"], "labels": {"name": "dup"}}, {"targets": ["h:2"], "labels": {"name": "static"}}]"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("2.json"),
        r#"[{"targets": ["h:3"], "labels": {"name": "dup"}}]"#,
    )
    .unwrap();
    let mut directory = Directory::new(dir.path().to_path_buf(), defaults());
    directory.scan().unwrap();
    let (servers, clashes) = directory.servers(&BTreeSet::from(["static"]));
    assert_eq!(servers.len(), 1);
    assert_eq!(servers[0].name, "dup");
    assert_eq!(clashes.len(), 2, "{clashes:?}");
}

#[test]
fn an_unreadable_directory_is_an_error() {
    let mut directory = Directory::new("/nonexistent/discovery".into(), defaults());
    assert!(matches!(directory.scan(), Err(DiscoveryError::Read { .. })));
}

//! Prometheus `file_sd` target files (JSON or YAML: a list of `{targets, labels}` groups) read
//! as `[[servers]]` entries: each target becomes one server whose URL is
//! `{__scheme__}://{target}{__path__}` (defaults `http` and `/mcp`), and the group's labels
//! become the entry's keys.
//!
//! Labels that name a key of a server entry taking a string (`transport`, `check`, `interval`,
//! `timeout`, `degraded_latency`) set that key; `name` names the server of a one-target group
//! (otherwise a server is named after its target, `host-port`); `__`-prefixed labels other than
//! `__scheme__` and `__path__` are ignored, as Prometheus drops them after relabelling; any
//! other label is refused, so a misspelt key is an error rather than a silently default probe.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::DiscoveryError;

/// Label keys copied into the server entry as they are.
const ENTRY_KEYS: [&str; 5] = [
    "transport",
    "check",
    "interval",
    "timeout",
    "degraded_latency",
];

/// One target group of a file_sd file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetGroup {
    /// `host:port` targets.
    pub targets: Vec<String>,
    /// Labels of every target of the group.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// A server entry in the shape of the configuration file's `[[servers]]`.
#[derive(Debug, Serialize)]
pub struct Entry {
    name: String,
    url: String,
    #[serde(flatten)]
    keys: BTreeMap<String, String>,
}

/// The server entries of `groups`.
pub fn entries(groups: Vec<TargetGroup>) -> Result<Vec<Entry>, DiscoveryError> {
    let mut out = Vec::new();
    for group in groups {
        let mut keys = BTreeMap::from([("transport".to_string(), "http".to_string())]);
        let mut scheme = "http".to_string();
        let mut path = "/mcp".to_string();
        let mut name = None;
        for (label, value) in group.labels {
            match label.as_str() {
                "__scheme__" => scheme = value,
                "__path__" => path = value,
                "name" => name = Some(value),
                _ if label.starts_with("__") => {}
                _ if ENTRY_KEYS.contains(&label.as_str()) => {
                    keys.insert(label, value);
                }
                _ => {
                    return Err(DiscoveryError::Entry(format!(
                        "label {label:?} is not a server key; use one of name, {}, __scheme__ or __path__",
                        ENTRY_KEYS.join(", ")
                    )));
                }
            }
        }
        if !matches!(scheme.as_str(), "http" | "https") {
            return Err(DiscoveryError::Entry(format!(
                "__scheme__ {scheme:?} is neither http nor https"
            )));
        }
        if !path.starts_with('/') {
            path.insert(0, '/');
        }
        if name.is_some() && group.targets.len() != 1 {
            return Err(DiscoveryError::Entry(format!(
                "label name {:?} is set on a group of {} targets; it names one server",
                name.unwrap_or_default(),
                group.targets.len()
            )));
        }
        for target in &group.targets {
            if target.is_empty() || target.contains(['/', '?', '#', '@']) {
                return Err(DiscoveryError::Entry(format!(
                    "target {target:?} is not host:port"
                )));
            }
            out.push(Entry {
                name: name.clone().unwrap_or_else(|| name_of(target)),
                url: format!("{scheme}://{target}{path}"),
                keys: keys.clone(),
            });
        }
    }
    Ok(out)
}

/// `host:port` as a server name: `host-port`, brackets dropped, other characters `_`.
fn name_of(target: &str) -> String {
    target
        .trim_start_matches('[')
        .replace("]:", "-")
        .replace(':', "-")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Vec<Entry>, DiscoveryError> {
        entries(serde_json::from_str(json).expect("file_sd json"))
    }

    #[test]
    fn targets_become_urls_and_labels_become_keys() {
        let entries = parse(
            r#"[{"targets": ["127.0.0.1:3001", "[::1]:3002"],
                 "labels": {"check": "readiness", "__path__": "/v1/mcp", "__meta_x": "y"}},
                {"targets": ["a.example:443"], "labels": {"name": "alpha", "__scheme__": "https",
                 "interval": "30s"}}]"#,
        )
        .expect("valid");
        let toml =
            toml::to_string(&super::super::tests::Document { servers: entries }).expect("toml");
        assert!(toml.contains("name = \"127.0.0.1-3001\""), "{toml}");
        assert!(
            toml.contains("url = \"http://127.0.0.1:3001/v1/mcp\""),
            "{toml}"
        );
        assert!(toml.contains("name = \"--1-3002\""), "{toml}");
        assert!(
            toml.contains("url = \"http://[::1]:3002/v1/mcp\""),
            "{toml}"
        );
        assert!(toml.contains("check = \"readiness\""), "{toml}");
        assert!(toml.contains("name = \"alpha\""), "{toml}");
        assert!(
            toml.contains("url = \"https://a.example:443/mcp\""),
            "{toml}"
        );
        assert!(toml.contains("interval = \"30s\""), "{toml}");
        assert!(!toml.contains("__meta_x"), "{toml}");
    }

    #[test]
    fn unknown_labels_and_bad_targets_are_refused() {
        for bad in [
            r#"[{"targets": ["h:1"], "labels": {"chek": "readiness"}}]"#,
            r#"[{"targets": ["h:1/x"]}]"#,
            r#"[{"targets": ["h:1"], "labels": {"__scheme__": "ftp"}}]"#,
            r#"[{"targets": ["h:1", "h:2"], "labels": {"name": "one"}}]"#,
        ] {
            assert!(matches!(parse(bad), Err(DiscoveryError::Entry(_))), "{bad}");
        }
    }
}

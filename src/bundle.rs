//! The monitoring bundle compiled into the binary: the Prometheus rules, the Grafana dashboards,
//! the runbooks the alerts link to, and the Prometheus Operator `PrometheusRule` made from the
//! same rules file. Served by `src/web/assets.rs`; written out by `mcp-exporter bundle DIR`.

use std::path::{Path, PathBuf};

/// The rules file (recording and alerting rules), as in `alerts/mcp-exporter.rules.yml`.
pub const RULES_YML: &str = include_str!("../alerts/mcp-exporter.rules.yml");

/// File name of the rules file, under `alerts/`.
pub const RULES_FILE_NAME: &str = "mcp-exporter.rules.yml";

/// The dashboards: (name without `.json`, JSON text). Names are the dashboards' Grafana uids.
pub const DASHBOARDS: &[(&str, &str)] = &[
    (
        "mcp-overview",
        include_str!("../dashboards/mcp-overview.json"),
    ),
    (
        "mcp-performance",
        include_str!("../dashboards/mcp-performance.json"),
    ),
    (
        "system-resources",
        include_str!("../dashboards/system-resources.json"),
    ),
    (
        "mcp-traffic",
        include_str!("../dashboards/mcp-traffic.json"),
    ),
];

/// The runbooks: (alert name, Markdown text), one per alert of the rules file.
pub const RUNBOOKS: &[(&str, &str)] = &[
    (
        "MCPServerDown",
        include_str!("../docs/runbooks/MCPServerDown.md"),
    ),
    (
        "MCPSecurityIncident",
        include_str!("../docs/runbooks/MCPSecurityIncident.md"),
    ),
    (
        "MCPToolDefinitionChanged",
        include_str!("../docs/runbooks/MCPToolDefinitionChanged.md"),
    ),
    (
        "MCPToolCatalogOverBudget",
        include_str!("../docs/runbooks/MCPToolCatalogOverBudget.md"),
    ),
    (
        "MCPSlowResponseTime",
        include_str!("../docs/runbooks/MCPSlowResponseTime.md"),
    ),
    (
        "MCPHighMemoryUsage",
        include_str!("../docs/runbooks/MCPHighMemoryUsage.md"),
    ),
    (
        "MCPServerDegraded",
        include_str!("../docs/runbooks/MCPServerDegraded.md"),
    ),
    (
        "MCPDependencyDown",
        include_str!("../docs/runbooks/MCPDependencyDown.md"),
    ),
    (
        "MCPHighCPUUsage",
        include_str!("../docs/runbooks/MCPHighCPUUsage.md"),
    ),
    (
        "MCPFileDescriptorsNearLimit",
        include_str!("../docs/runbooks/MCPFileDescriptorsNearLimit.md"),
    ),
    (
        "MCPServerCrashLooping",
        include_str!("../docs/runbooks/MCPServerCrashLooping.md"),
    ),
    (
        "MCPSessionChurn",
        include_str!("../docs/runbooks/MCPSessionChurn.md"),
    ),
    (
        "MCPProbesNotRunning",
        include_str!("../docs/runbooks/MCPProbesNotRunning.md"),
    ),
    (
        "MCPCertificateExpiringSoon",
        include_str!("../docs/runbooks/MCPCertificateExpiringSoon.md"),
    ),
    (
        "MCPDependencyCertificateExpiringSoon",
        include_str!("../docs/runbooks/MCPDependencyCertificateExpiringSoon.md"),
    ),
    (
        "MCPCredentialExpiringSoon",
        include_str!("../docs/runbooks/MCPCredentialExpiringSoon.md"),
    ),
    (
        "MCPAuthRefreshFailing",
        include_str!("../docs/runbooks/MCPAuthRefreshFailing.md"),
    ),
    (
        "MCPToolHighErrorRatio",
        include_str!("../docs/runbooks/MCPToolHighErrorRatio.md"),
    ),
    (
        "MCPToolSlowResponseTime",
        include_str!("../docs/runbooks/MCPToolSlowResponseTime.md"),
    ),
    (
        "MCPExporterAbsent",
        include_str!("../docs/runbooks/MCPExporterAbsent.md"),
    ),
    (
        "MCPServerMemoryLeak",
        include_str!("../docs/runbooks/MCPServerMemoryLeak.md"),
    ),
    (
        "MCPServerProcessGrowth",
        include_str!("../docs/runbooks/MCPServerProcessGrowth.md"),
    ),
    (
        "MCPStoreBackupTooOld",
        include_str!("../docs/runbooks/MCPStoreBackupTooOld.md"),
    ),
    (
        "MCPMultipleServersDown",
        include_str!("../docs/runbooks/MCPMultipleServersDown.md"),
    ),
    (
        "MCPServerDownFor30m",
        include_str!("../docs/runbooks/MCPServerDownFor30m.md"),
    ),
    (
        "MCPServerDownFor2h",
        include_str!("../docs/runbooks/MCPServerDownFor2h.md"),
    ),
    (
        "MCPServerDownFor4h",
        include_str!("../docs/runbooks/MCPServerDownFor4h.md"),
    ),
    (
        "MCPStoreCorrupted",
        include_str!("../docs/runbooks/MCPStoreCorrupted.md"),
    ),
    (
        "MCPDependencyDataCorrupted",
        include_str!("../docs/runbooks/MCPDependencyDataCorrupted.md"),
    ),
    (
        "MCPMajorSecurityIncident",
        include_str!("../docs/runbooks/MCPMajorSecurityIncident.md"),
    ),
];

/// Header of the generated `PrometheusRule`; the rules file follows under `spec:`.
const PROMETHEUS_RULE_HEADER: &str = "\
# Generated from alerts/mcp-exporter.rules.yml by `mcp-exporter bundle DIR` (kubernetes/prometheusrule.yaml).
# Do not edit: edit the rules file and regenerate; a test fails when the two differ.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: mcp-exporter
  namespace: monitoring
  labels:
    app.kubernetes.io/name: mcp-exporter
    release: prometheus
spec:
";

/// The dashboard JSON named `name` (without `.json`), if there is one.
pub fn dashboard(name: &str) -> Option<&'static str> {
    DASHBOARDS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, json)| *json)
}

/// The runbook of `alert`, if there is one.
pub fn runbook(alert: &str) -> Option<&'static str> {
    RUNBOOKS
        .iter()
        .find(|(n, _)| *n == alert)
        .map(|(_, md)| *md)
}

/// The Prometheus Operator `PrometheusRule` manifest carrying the rules file unchanged (its
/// lines indented under `spec:`; comment lines of the rules file are left out).
pub fn prometheus_rule() -> String {
    let mut out = String::from(PROMETHEUS_RULE_HEADER);
    for line in RULES_YML.lines() {
        if line.starts_with('#') {
            continue;
        }
        if line.is_empty() {
            out.push('\n');
        } else {
            out.push_str("  ");
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Header of the generated dashboards ConfigMap; one key per dashboard follows under `data:`.
const DASHBOARDS_CONFIGMAP_HEADER: &str = "\
# Generated from dashboards/*.json by `mcp-exporter bundle DIR` (kubernetes/grafana-dashboards.yaml).
# Do not edit. Grafana's dashboard sidecar (kube-prometheus-stack) loads ConfigMaps labelled
# grafana_dashboard=\"1\".
apiVersion: v1
kind: ConfigMap
metadata:
  name: mcp-exporter-dashboards
  namespace: monitoring
  labels:
    app.kubernetes.io/name: mcp-exporter
    grafana_dashboard: \"1\"
data:
";

/// A ConfigMap carrying the dashboards for Grafana's sidecar (each JSON as a block scalar).
pub fn grafana_dashboards_configmap() -> String {
    let mut out = String::from(DASHBOARDS_CONFIGMAP_HEADER);
    for (name, json) in DASHBOARDS {
        out.push_str(&format!("  {name}.json: |\n"));
        for line in json.lines() {
            out.push_str("    ");
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Every file of the bundle: (path relative to the bundle directory, contents).
pub fn files() -> Vec<(PathBuf, String)> {
    let mut files = vec![(
        Path::new("alerts").join(RULES_FILE_NAME),
        RULES_YML.to_string(),
    )];
    for (name, json) in DASHBOARDS {
        files.push((
            Path::new("dashboards").join(format!("{name}.json")),
            (*json).to_string(),
        ));
    }
    for (alert, md) in RUNBOOKS {
        files.push((
            Path::new("runbooks").join(format!("{alert}.md")),
            (*md).to_string(),
        ));
    }
    files.push((
        Path::new("kubernetes").join("prometheusrule.yaml"),
        prometheus_rule(),
    ));
    files.push((
        Path::new("kubernetes").join("grafana-dashboards.yaml"),
        grafana_dashboards_configmap(),
    ));
    files
}

/// Why the bundle could not be written.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// A directory or file could not be created or written.
    #[error("cannot write {path}: {source} (check that the directory is writable)")]
    Write {
        /// The path that failed.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Writes every file of the bundle under `dir` (created if missing; existing files replaced).
/// Returns the paths written.
pub fn write(dir: &Path) -> Result<Vec<PathBuf>, BundleError> {
    let mut written = Vec::new();
    for (rel, contents) in files() {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| BundleError::Write {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        std::fs::write(&path, contents).map_err(|source| BundleError::Write {
            path: path.clone(),
            source,
        })?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_alert_of_the_rules_file_has_a_runbook_and_its_url_points_at_it() {
        let alerts: Vec<&str> = RULES_YML
            .lines()
            .filter_map(|l| l.trim().strip_prefix("- alert: "))
            .collect();
        assert_eq!(alerts.len(), RUNBOOKS.len(), "alerts: {alerts:?}");
        for alert in alerts {
            assert!(runbook(alert).is_some(), "no runbook for {alert}");
            let url = format!("runbook_url: \"docs/runbooks/{alert}.md\"");
            assert!(RULES_YML.contains(&url), "{alert} has no {url}");
        }
    }

    #[test]
    fn dashboards_are_json_with_their_name_as_uid() {
        for (name, json) in DASHBOARDS {
            let value: serde_json::Value = serde_json::from_str(json).expect("dashboard is JSON");
            assert_eq!(value["uid"], *name);
        }
    }

    #[test]
    fn write_names_the_path_it_cannot_create() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("a-file");
        std::fs::write(&file, "x").expect("write");
        let err = write(&file.join("bundle")).expect_err("a file is in the way");
        assert!(err.to_string().contains("a-file"), "{err}");
    }

    #[test]
    fn write_writes_every_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let written = write(dir.path()).expect("write");
        assert_eq!(written.len(), files().len());
        let rules = std::fs::read_to_string(dir.path().join("alerts").join(RULES_FILE_NAME))
            .expect("rules written");
        assert_eq!(rules, RULES_YML);
    }

    #[test]
    fn prometheus_rule_carries_every_rule_line() {
        let manifest = prometheus_rule();
        assert!(manifest.contains("kind: PrometheusRule"));
        for line in RULES_YML
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            assert!(
                manifest.contains(&format!("  {line}\n")),
                "missing {line:?}"
            );
        }
    }
}

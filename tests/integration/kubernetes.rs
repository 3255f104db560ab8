//! The Kubernetes manifests in `deploy/kubernetes/` validated offline against real schemas:
//! Kubernetes' own (`kubernetes-validate`, strict: unknown fields are errors) for the core kinds,
//! and the Prometheus Operator's CRD schemas (`@kubernetes-models/prometheus-operator`, run by
//! `tests/schemas/validate-prometheus-operator.mjs`) for ServiceMonitor and PrometheusRule. Both
//! are pinned in `tests/schemas/`. Deliberately broken fixtures prove the validators reject what
//! they should.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_yaml_ng::Value as Yaml;

use crate::common::paths::{fixture, repo_root};
use crate::common::processes::run_bounded;
use crate::common::tools::{Tool, require, schemas_dir};

const VALIDATOR_TIMEOUT: Duration = Duration::from_secs(120);

/// The API group of the Prometheus Operator's custom resources.
const OPERATOR_API: &str = "monitoring.coreos.com/";

/// Every YAML document of `path` (empty documents left out).
fn documents(path: &Path) -> Vec<Yaml> {
    use serde::Deserialize;
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| Yaml::deserialize(doc).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .filter(|doc| !doc.is_null())
        .collect()
}

fn is_operator_kind(object: &Yaml) -> bool {
    object["apiVersion"]
        .as_str()
        .is_some_and(|api| api.starts_with(OPERATOR_API))
}

/// What the two validators said about the documents of one file.
struct Verdict {
    /// kubernetes-validate on the core kinds; `None` when the file has none.
    core: Option<Output>,
    /// The CRD validator on the operator's kinds; `None` when the file has none.
    operator: Option<Output>,
}

impl Verdict {
    fn passed(&self) -> bool {
        [&self.core, &self.operator]
            .into_iter()
            .flatten()
            .all(|out| out.status.success())
    }

    fn text(&self) -> String {
        [&self.core, &self.operator]
            .into_iter()
            .flatten()
            .map(|out| {
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                )
            })
            .collect()
    }
}

/// Splits `path` by kind and runs each part through its validator.
fn validate(kubernetes_validate: &Path, path: &Path) -> Verdict {
    let dir = tempfile::tempdir().expect("tempdir");
    let (operator, core): (Vec<Yaml>, Vec<Yaml>) =
        documents(path).into_iter().partition(is_operator_kind);
    let core = (!core.is_empty()).then(|| {
        let file = dir.path().join("core.yaml");
        let text: String = core
            .iter()
            .map(|doc| format!("---\n{}", serde_yaml_ng::to_string(doc).expect("yaml")))
            .collect();
        std::fs::write(&file, text).expect("write core documents");
        run_bounded(
            Command::new(kubernetes_validate)
                .args(["--strict", "--quiet"])
                .arg(&file),
            VALIDATOR_TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("{e}"))
    });
    let operator = (!operator.is_empty()).then(|| {
        let file = dir.path().join("operator.json");
        std::fs::write(&file, serde_json::to_vec(&operator).expect("json"))
            .expect("write operator documents");
        run_bounded(
            Command::new("node")
                .current_dir(schemas_dir())
                .arg("validate-prometheus-operator.mjs")
                .arg(&file),
            VALIDATOR_TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("{e}"))
    });
    Verdict { core, operator }
}

fn manifests() -> Vec<PathBuf> {
    let dir = repo_root().join("deploy/kubernetes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.expect("dir entry").path())
        .filter(|path| {
            path.extension()
                .is_some_and(|ext| ext == "yaml" || ext == "yml")
        })
        .collect();
    files.sort();
    files
}

#[test]
fn every_manifest_passes_the_kubernetes_and_operator_schemas() {
    let Some(kubernetes_validate) = require(Tool::DeploySchemas) else {
        return;
    };
    let files = manifests();
    assert!(files.len() >= 4, "deploy/kubernetes/ has {files:?}");
    let mut operator_objects = 0;
    for file in &files {
        operator_objects += documents(file)
            .iter()
            .filter(|o| is_operator_kind(o))
            .count();
        let verdict = validate(&kubernetes_validate, file);
        assert!(
            verdict.passed(),
            "{} fails schema validation:\n{}",
            file.display(),
            verdict.text()
        );
    }
    // The ServiceMonitor and the PrometheusRule went through the operator's schemas, not past
    // kubernetes-validate's "no schema" warning.
    assert!(
        operator_objects >= 2,
        "only {operator_objects} operator objects validated"
    );
}

#[test]
fn a_broken_deployment_is_rejected_naming_the_field() {
    let Some(kubernetes_validate) = require(Tool::DeploySchemas) else {
        return;
    };
    let verdict = validate(
        &kubernetes_validate,
        &fixture("kubernetes/broken-deployment.yaml"),
    );
    let text = verdict.text();
    assert!(!verdict.passed(), "the broken Deployment passed:\n{text}");
    assert!(text.contains("containerPort"), "{text}");
}

#[test]
fn broken_operator_resources_are_rejected_naming_the_field() {
    let Some(kubernetes_validate) = require(Tool::DeploySchemas) else {
        return;
    };
    let verdict = validate(
        &kubernetes_validate,
        &fixture("kubernetes/broken-servicemonitor.yaml"),
    );
    let text = verdict.text();
    assert!(!verdict.passed(), "the broken resources passed:\n{text}");
    assert!(
        text.contains("invalid ServiceMonitor/broken") && text.contains("interval"),
        "{text}"
    );
    assert!(
        text.contains("invalid PrometheusRule/broken") && text.contains("expr"),
        "{text}"
    );
}

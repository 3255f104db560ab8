//! The tool-integrity and context-cost families (documented in docs/metrics.md and
//! docs/tool-integrity.md): per-tool definition changes, tools not matching the approved lock,
//! the same two for prompts and resource templates (with a `kind` label, for servers that list
//! them), and the bytes, tokens and token budget of each server's catalog.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

use crate::metric_registry::MetricsRegistry;
use crate::metric_registry::labels::{ServerLabels, impl_server_label_set};
use crate::metric_registry::server_family::ServerFamily;
use crate::probe::catalog::{
    CatalogDefinitions, ChangeKind, ContextCost, DefinitionChange, DefinitionKind,
};
use crate::probe::tools_lock::LockCheck;

/// The kinds counted by the `kind`-labelled families (tools have their own).
const OTHER_KINDS: [DefinitionKind; 2] = [DefinitionKind::Prompt, DefinitionKind::ResourceTemplate];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChangeLabels {
    server: String,
    change: &'static str,
}

impl_server_label_set!(ChangeLabels);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindChangeLabels {
    server: String,
    kind: &'static str,
    change: &'static str,
}

impl_server_label_set!(KindChangeLabels);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    server: String,
    kind: &'static str,
}

impl_server_label_set!(KindLabels);

/// What one assessment says of a server's catalog, for [`CatalogMetrics::record`].
#[derive(Debug, Clone, Copy)]
pub struct CatalogObservation<'a> {
    /// The known catalog's definitions.
    pub definitions: &'a CatalogDefinitions,
    /// What its text costs.
    pub cost: &'a ContextCost,
    /// Definitions changed since the previous listing.
    pub changes: &'a [DefinitionChange],
    /// The comparison with the lock, `None` without a lock.
    pub lock: Option<&'a LockCheck>,
    /// The configured token budget.
    pub token_budget: u64,
}

/// Handles to the catalog families.
#[derive(Clone, Debug)]
pub struct CatalogMetrics {
    definition_changes: ServerFamily<ChangeLabels, Counter>,
    unapproved: ServerFamily<ServerLabels, Gauge>,
    kind_changes: ServerFamily<KindChangeLabels, Counter>,
    kind_unapproved: ServerFamily<KindLabels, Gauge>,
    list_bytes: ServerFamily<ServerLabels, Gauge>,
    list_tokens: ServerFamily<ServerLabels, Gauge>,
    token_budget: ServerFamily<ServerLabels, Gauge>,
}

impl CatalogMetrics {
    /// Registers the catalog families in `registry`.
    pub fn register(registry: &mut MetricsRegistry) -> Self {
        CatalogMetrics {
            definition_changes: registry.server_family(
                "mcp_tool_definition_changes",
                "Tools whose definition changed between two listings, by change (added, removed, modified); each tool's fingerprint is the SHA-256 of its canonical wire object (docs/tool-integrity.md)",
            ),
            unapproved: registry.server_family(
                "mcp_tools_unapproved",
                "Tools of the last listing that do not match the server's approved lock (tools_lock): added, removed or modified; only for servers with a lock",
            ),
            kind_changes: registry.server_family(
                "mcp_definition_changes",
                "Prompts (kind=prompt) and resource templates (kind=resource_template) whose definition changed between two listings, by change; tools are counted in mcp_tool_definition_changes_total (docs/tool-integrity.md)",
            ),
            kind_unapproved: registry.server_family(
                "mcp_definitions_unapproved",
                "Prompts and resource templates of the last listing that do not match the server's approved lock, by kind; tools are counted in mcp_tools_unapproved",
            ),
            list_bytes: registry.server_family(
                "mcp_tools_list_bytes",
                "Bytes of the server's tool catalog as a client receives it: the canonical JSON array of every tool object, ordered by name (docs/tool-integrity.md#catalog-bytes)",
            ),
            list_tokens: registry.server_family(
                "mcp_tools_list_tokens",
                "Tokens of the catalog bytes (mcp_tools_list_bytes) counted with the o200k_base tokenizer: what the tool definitions cost a client's context window",
            ),
            token_budget: registry.server_family(
                "mcp_tools_list_token_budget",
                "The server's configured tools_token_budget: catalog tokens above which MCPToolCatalogOverBudget fires",
            ),
        }
    }

    /// Records what an assessment holds of `server`'s catalog: the catalog's cost, the
    /// definitions that changed since the previous listing, those not matching the lock and
    /// the configured token budget. Prompts and resource templates get series only where the
    /// server lists some (or changed or differs from its lock).
    pub fn record(&self, server: &str, seen: CatalogObservation<'_>) {
        let CatalogObservation {
            definitions,
            cost,
            changes,
            lock,
            token_budget,
        } = seen;
        let labels = ServerLabels::new(server);
        let counted = |kind: DefinitionKind, change: ChangeKind| {
            changes
                .iter()
                .filter(|c| c.kind == kind && c.change == change)
                .count() as u64
        };
        for change in ChangeKind::ALL {
            self.definition_changes
                .get_or_create(&ChangeLabels {
                    server: server.to_string(),
                    change: change.as_str(),
                })
                .inc_by(counted(DefinitionKind::Tool, change));
        }
        for kind in OTHER_KINDS {
            let listed = definitions.of_kind(kind).is_some_and(|d| !d.is_empty());
            let unapproved = lock.map(|l| l.unapproved_of(kind));
            if listed || changes.iter().any(|c| c.kind == kind) {
                for change in ChangeKind::ALL {
                    self.kind_changes
                        .get_or_create(&KindChangeLabels {
                            server: server.to_string(),
                            kind: kind.as_str(),
                            change: change.as_str(),
                        })
                        .inc_by(counted(kind, change));
                }
            }
            let gauge = KindLabels {
                server: server.to_string(),
                kind: kind.as_str(),
            };
            match unapproved {
                Some(n) if listed || n > 0 => {
                    self.kind_unapproved.get_or_create(&gauge).set(n as i64);
                }
                _ => self.kind_unapproved.remove(&gauge),
            }
        }
        self.list_bytes
            .get_or_create(&labels)
            .set(cost.bytes as i64);
        self.list_tokens
            .get_or_create(&labels)
            .set(cost.tokens as i64);
        self.token_budget
            .get_or_create(&labels)
            .set(i64::try_from(token_budget).unwrap_or(i64::MAX));
        if let Some(lock) = lock {
            self.unapproved
                .get_or_create(&labels)
                .set(lock.unapproved_of(DefinitionKind::Tool) as i64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::catalog::{definitions_by_name, diff_catalogs};
    use crate::probe::tools_lock::{Approved, LockCheck};
    use serde_json::json;

    #[test]
    fn changes_are_counted_by_kind_and_the_cost_published() {
        let mut registry = MetricsRegistry::default();
        let m = CatalogMetrics::register(&mut registry);
        let old = CatalogDefinitions::of(&[json!({"name": "a", "inputSchema": {}})]);
        let new = CatalogDefinitions::of(&[
            json!({"name": "a", "description": "x", "inputSchema": {}}),
            json!({"name": "b", "inputSchema": {}}),
        ]);
        let new = CatalogDefinitions {
            prompts: Some(definitions_by_name(&[json!({"name": "greet"})])),
            ..new
        };
        let cost = ContextCost::of(&new);
        // The lock approves the old tools and no prompt: 2 tools and 1 prompt differ.
        let approved = Approved {
            tools: old.tools.clone(),
            prompts: Some(Default::default()),
            resource_templates: None,
        };
        let lock = LockCheck::compare(&approved, &new);
        m.record(
            "s",
            CatalogObservation {
                definitions: &new,
                cost: &cost,
                changes: &diff_catalogs(&old, &new),
                lock: Some(&lock),
                token_budget: 100,
            },
        );
        let text = registry.encode();
        for needle in [
            "mcp_tool_definition_changes_total{server=\"s\",change=\"added\"} 1".to_string(),
            "mcp_tool_definition_changes_total{server=\"s\",change=\"modified\"} 1".to_string(),
            "mcp_tool_definition_changes_total{server=\"s\",change=\"removed\"} 0".to_string(),
            format!("mcp_tools_list_bytes{{server=\"s\"}} {}", new.text.len()),
            format!("mcp_tools_list_tokens{{server=\"s\"}} {}", cost.tokens),
            "mcp_tools_list_token_budget{server=\"s\"} 100".to_string(),
            "mcp_tools_unapproved{server=\"s\"} 2".to_string(),
            "mcp_definition_changes_total{server=\"s\",kind=\"prompt\",change=\"added\"} 1"
                .to_string(),
            "mcp_definitions_unapproved{server=\"s\",kind=\"prompt\"} 1".to_string(),
        ] {
            assert!(text.contains(&needle), "missing {needle} in\n{text}");
        }
        // A server without resource templates has no series for them.
        assert!(!text.contains("kind=\"resource_template\""), "{text}");
    }
}

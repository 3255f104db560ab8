//! The tool-integrity and context-cost families (documented in docs/metrics.md and
//! docs/tool-integrity.md): per-tool definition changes, tools not matching the approved lock,
//! and the bytes, tokens and token budget of each server's catalog.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

use crate::metric_registry::MetricsRegistry;
use crate::metric_registry::labels::{ServerLabels, impl_server_label_set};
use crate::metric_registry::server_family::ServerFamily;
use crate::probe::catalog::{ChangeKind, ContextCost, DefinitionChange};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChangeLabels {
    server: String,
    change: &'static str,
}

impl_server_label_set!(ChangeLabels);

/// Handles to the catalog families.
#[derive(Clone, Debug)]
pub struct CatalogMetrics {
    definition_changes: ServerFamily<ChangeLabels, Counter>,
    unapproved: ServerFamily<ServerLabels, Gauge>,
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

    /// Records what an assessment holds of `server`'s catalog: the catalog's cost, the tools
    /// that changed since the previous listing, the tools not matching the lock (`None` without
    /// a lock) and the configured token budget.
    pub fn record(
        &self,
        server: &str,
        cost: &ContextCost,
        changes: &[DefinitionChange],
        unapproved: Option<usize>,
        token_budget: u64,
    ) {
        let labels = ServerLabels::new(server);
        for kind in ChangeKind::ALL {
            let count = changes.iter().filter(|c| c.change == kind).count();
            self.definition_changes
                .get_or_create(&ChangeLabels {
                    server: server.to_string(),
                    change: kind.as_str(),
                })
                .inc_by(count as u64);
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
        if let Some(unapproved) = unapproved {
            self.unapproved
                .get_or_create(&labels)
                .set(unapproved as i64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::catalog::{CatalogDefinitions, diff};
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
        let cost = ContextCost::of(&new);
        m.record("s", &cost, &diff(&old.tools, &new.tools), Some(2), 100);
        let text = registry.encode();
        for needle in [
            "mcp_tool_definition_changes_total{server=\"s\",change=\"added\"} 1".to_string(),
            "mcp_tool_definition_changes_total{server=\"s\",change=\"modified\"} 1".to_string(),
            "mcp_tool_definition_changes_total{server=\"s\",change=\"removed\"} 0".to_string(),
            format!("mcp_tools_list_bytes{{server=\"s\"}} {}", new.text.len()),
            format!("mcp_tools_list_tokens{{server=\"s\"}} {}", cost.tokens),
            "mcp_tools_list_token_budget{server=\"s\"} 100".to_string(),
            "mcp_tools_unapproved{server=\"s\"} 2".to_string(),
        ] {
            assert!(text.contains(&needle), "missing {needle} in\n{text}");
        }
    }
}

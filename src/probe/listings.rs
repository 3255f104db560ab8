//! The prompts and resource templates of a readiness probe: listed after the tools when the
//! server offers them, fingerprinted like tools (docs/tool-integrity.md#prompts-and-resource-templates).
//! Their listing never fails the probe: a server that offers prompts but cannot list them gets
//! a warning, and its prompts are not compared until they list again.

use std::time::Duration;

use serde_json::Value;

use crate::mcp::{McpError, McpSession};

/// JSON-RPC "method not found": a server offering `resources` need not implement templates.
const METHOD_NOT_FOUND: i64 = -32601;

/// One catalog besides the tools: the capability that offers it, its list method and the
/// result's array.
#[derive(Debug, Clone, Copy)]
pub(super) struct Listing {
    capability: &'static str,
    method: &'static str,
    key: &'static str,
}

/// `prompts/list`, offered with the `prompts` capability.
pub(super) const PROMPTS: Listing = Listing {
    capability: "prompts",
    method: "prompts/list",
    key: "prompts",
};

/// `resources/templates/list`, offered with the `resources` capability.
pub(super) const RESOURCE_TEMPLATES: Listing = Listing {
    capability: "resources",
    method: "resources/templates/list",
    key: "resourceTemplates",
};

/// The items of `listing`: empty when the server does not offer it (or answers that it does
/// not implement the method), `None` with a warning pushed when the listing failed or a limit
/// cut it short (a partial list would read as removals).
pub(super) async fn list(
    session: &mut McpSession,
    listing: Listing,
    timeout: Duration,
    warnings: &mut Vec<String>,
) -> Option<Vec<Value>> {
    if !session.offers(listing.capability) {
        return Some(Vec::new());
    }
    match session
        .list_items(listing.method, listing.key, timeout)
        .await
    {
        Ok(found) if found.truncated => {
            warnings.push(format!(
                "{} stopped at {} items / {} pages (limits); not compared",
                listing.method,
                found.items.len(),
                found.pages
            ));
            None
        }
        Ok(found) => Some(found.items),
        Err(McpError::Rpc { code, .. }) if code == METHOD_NOT_FOUND => Some(Vec::new()),
        Err(err) => {
            warnings.push(format!(
                "{} failed ({err}); not compared this probe",
                listing.method
            ));
            None
        }
    }
}

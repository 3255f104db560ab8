//! Tool catalog assembly (tools/list pages) and tools/call result reading; pure functions.

use std::collections::BTreeMap;

use serde_json::Value;

use super::error::McpError;
use super::mirrored_headers::{self, ParamHeader};

/// Most bytes of tool text content kept in a [`ToolCallOutcome`].
pub const MAX_TOOL_TEXT_BYTES: usize = 64 * 1024;

/// All tools a server lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolCatalog {
    /// Names of the valid tools, in server order.
    pub names: Vec<String>,
    /// Items that are not objects with a string `name` and an object `inputSchema`.
    pub invalid_items: usize,
    /// Pages fetched.
    pub pages: usize,
    /// Stable hash (FNV-1a 64) of the canonical JSON of all tools, to detect catalog changes.
    pub content_hash: u64,
    /// True when `max_tools` or `max_tool_pages` cut the listing short.
    pub truncated: bool,
    /// Tools excluded because their definition breaks the protocol (an invalid `x-mcp-header`
    /// annotation, checked for modern servers over HTTP only); not in `names`.
    pub rejected: Vec<RejectedTool>,
    /// The `Mcp-Param-*` headers of each valid tool that annotates parameters (modern HTTP).
    pub param_headers: BTreeMap<String, Vec<ParamHeader>>,
    /// Every tool object as received, pages concatenated in order (rejected and malformed
    /// items included), for the per-tool fingerprints of src/probe/catalog.rs.
    pub tools: Vec<Value>,
}

/// A tool left out of the catalog, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectedTool {
    /// The tool's name.
    pub name: String,
    /// What is wrong with its definition.
    pub reason: String,
}

/// The result of one tools/call.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolCallOutcome {
    /// The server set `isError: true`.
    pub is_error: bool,
    /// Text content items joined by `\n`, capped at 64 KiB.
    pub text: String,
    /// `structuredContent`, if any.
    pub structured: Option<Value>,
    /// The server answered `input_required` and asked for input a prober cannot give (the
    /// methods it asked for, e.g. `elicitation/create`): the tool did not run to completion.
    pub needs_input: Option<Vec<String>>,
}

/// An `input_required` result of a multi round-trip request (docs/probing.md#mrtr).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct InputRequired {
    /// The methods of the input requests (`elicitation/create`, `sampling/createMessage`,
    /// `roots/list`), in the server's order; empty when it asked for none.
    pub methods: Vec<String>,
    /// The opaque `requestState`, echoed verbatim on the retry.
    pub request_state: Option<Value>,
}

/// FNV-1a, 64 bit: stable across builds and platforms (unlike `DefaultHasher`).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

fn is_valid_tool(tool: &Value) -> bool {
    tool.get("name").is_some_and(Value::is_string)
        && tool.get("inputSchema").is_some_and(Value::is_object)
}

/// Collects tools/list pages under the tool and page caps.
#[derive(Debug)]
pub(crate) struct PageCollector {
    tools: Vec<Value>,
    names: Vec<String>,
    invalid_items: usize,
    pages: usize,
    truncated: bool,
    max_tools: usize,
    max_pages: usize,
    check_param_headers: bool,
    rejected: Vec<RejectedTool>,
    param_headers: BTreeMap<String, Vec<ParamHeader>>,
}

impl PageCollector {
    pub(crate) fn new(max_tools: usize, max_pages: usize) -> Self {
        PageCollector {
            tools: Vec::new(),
            names: Vec::new(),
            invalid_items: 0,
            pages: 0,
            truncated: false,
            max_tools,
            max_pages,
            check_param_headers: false,
            rejected: Vec::new(),
            param_headers: BTreeMap::new(),
        }
    }

    /// Reads `x-mcp-header` annotations and rejects the tools whose annotations are invalid, as
    /// a client of a modern server over Streamable HTTP must.
    pub(crate) fn with_param_headers(mut self) -> Self {
        self.check_param_headers = true;
        self
    }

    /// Adds one valid tool (a string name and an object `inputSchema`).
    fn add_valid(&mut self, name: &str, tool: &Value) {
        if self.check_param_headers {
            let schema = tool.get("inputSchema").unwrap_or(&Value::Null);
            match mirrored_headers::annotations(schema) {
                Err(reason) => {
                    tracing::debug!(tool = %name, %reason, "tool definition rejected");
                    self.rejected.push(RejectedTool {
                        name: name.to_string(),
                        reason,
                    });
                    return;
                }
                Ok(params) if !params.is_empty() => {
                    self.param_headers.insert(name.to_string(), params);
                }
                Ok(_) => {}
            }
        }
        self.names.push(name.to_string());
    }

    /// Adds one page; returns the cursor of the next page to fetch, if any.
    pub(crate) fn add_page(
        &mut self,
        result: &Value,
        cursor: Option<&str>,
    ) -> Result<Option<String>, McpError> {
        let items = result
            .get("tools")
            .and_then(Value::as_array)
            .ok_or_else(|| McpError::protocol("tools/list result has no `tools` array"))?;
        self.pages += 1;
        for tool in items {
            if self.tools.len() >= self.max_tools {
                self.truncated = true;
                return Ok(None);
            }
            if is_valid_tool(tool) {
                if let Some(name) = tool.get("name").and_then(Value::as_str) {
                    self.add_valid(name, tool);
                }
            } else {
                self.invalid_items += 1;
            }
            self.tools.push(tool.clone());
        }
        let next = result
            .get("nextCursor")
            .and_then(Value::as_str)
            .filter(|c| !c.is_empty());
        match next {
            None => Ok(None),
            // A cursor that repeats would loop forever.
            Some(c) if Some(c) == cursor => {
                self.truncated = true;
                Ok(None)
            }
            Some(_) if self.pages >= self.max_pages => {
                self.truncated = true;
                Ok(None)
            }
            Some(c) => Ok(Some(c.to_string())),
        }
    }

    pub(crate) fn finish(self) -> ToolCatalog {
        // serde_json maps are sorted (no preserve_order), so this is canonical JSON.
        let canonical = serde_json::to_vec(&self.tools).unwrap_or_default();
        ToolCatalog {
            names: self.names,
            invalid_items: self.invalid_items,
            pages: self.pages,
            content_hash: fnv1a64(&canonical),
            truncated: self.truncated,
            rejected: self.rejected,
            param_headers: self.param_headers,
            tools: self.tools,
        }
    }
}

/// Reads the `resultType` of a tools/call result: `None` for a complete result (the default
/// when absent), the input it asks for when `input_required`.
pub(crate) fn input_required(result: &Value) -> Result<Option<InputRequired>, McpError> {
    if result.get("resultType").and_then(Value::as_str) != Some("input_required") {
        return Ok(None);
    }
    let methods = match result.get("inputRequests") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(requests)) => requests
            .values()
            .map(|r| {
                r.get("method")
                    .and_then(Value::as_str)
                    .unwrap_or("(no method)")
                    .to_string()
            })
            .collect(),
        Some(other) => {
            return Err(McpError::protocol(format!(
                "input_required result: inputRequests is not an object: {other}"
            )));
        }
    };
    let request_state = match result.get("requestState") {
        None | Some(Value::Null) => None,
        Some(state @ Value::String(_)) => Some(state.clone()),
        Some(other) => {
            return Err(McpError::protocol(format!(
                "input_required result: requestState is not a string: {other}"
            )));
        }
    };
    if methods.is_empty() && request_state.is_none() {
        return Err(McpError::protocol(
            "input_required result carries neither inputRequests nor requestState",
        ));
    }
    Ok(Some(InputRequired {
        methods,
        request_state,
    }))
}

/// Reads a tools/call result.
pub(crate) fn call_outcome(result: &Value) -> Result<ToolCallOutcome, McpError> {
    if !result.is_object() {
        return Err(McpError::protocol(format!(
            "tools/call result is not an object: {result}"
        )));
    }
    let mut text = String::new();
    let items = result.get("content").and_then(Value::as_array);
    for item in items.into_iter().flatten() {
        if item.get("type").and_then(Value::as_str) != Some("text") {
            continue;
        }
        let Some(t) = item.get("text").and_then(Value::as_str) else {
            continue;
        };
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(t);
        if text.len() >= MAX_TOOL_TEXT_BYTES {
            break;
        }
    }
    text.truncate(text.floor_char_boundary(MAX_TOOL_TEXT_BYTES));
    Ok(ToolCallOutcome {
        is_error: result.get("isError").and_then(Value::as_bool) == Some(true),
        text,
        structured: result.get("structuredContent").cloned(),
        needs_input: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tool(name: &str) -> Value {
        json!({"name": name, "inputSchema": {"type": "object"}})
    }

    #[test]
    fn collects_pages_and_counts_invalid_items() {
        let mut c = PageCollector::new(100, 10);
        let next = c
            .add_page(
                &json!({"tools": [tool("a"), {"name": 5}], "nextCursor": "p2"}),
                None,
            )
            .ok()
            .flatten();
        assert_eq!(next.as_deref(), Some("p2"));
        let next = c
            .add_page(
                &json!({"tools": [tool("b"), {"name": "c", "inputSchema": null}]}),
                Some("p2"),
            )
            .ok()
            .flatten();
        assert_eq!(next, None);
        let cat = c.finish();
        assert_eq!(cat.names, ["a", "b"]);
        assert_eq!((cat.invalid_items, cat.pages, cat.truncated), (2, 2, false));
    }

    #[test]
    fn caps_tools_pages_and_repeated_cursors() {
        let mut c = PageCollector::new(1, 10);
        assert!(matches!(
            c.add_page(&json!({"tools": [tool("a"), tool("b")]}), None),
            Ok(None)
        ));
        assert!(c.finish().truncated);

        let mut c = PageCollector::new(10, 1);
        assert!(matches!(
            c.add_page(&json!({"tools": [], "nextCursor": "x"}), None),
            Ok(None)
        ));
        assert!(c.finish().truncated);

        let mut c = PageCollector::new(10, 10);
        assert!(matches!(
            c.add_page(&json!({"tools": [], "nextCursor": "x"}), Some("x")),
            Ok(None)
        ));
        assert!(c.finish().truncated);

        let mut c = PageCollector::new(10, 10);
        assert!(c.add_page(&json!({"tools": "nope"}), None).is_err());
    }

    #[test]
    fn hash_is_independent_of_key_order() {
        let mut a = PageCollector::new(10, 10);
        let mut b = PageCollector::new(10, 10);
        a.add_page(
            &serde_json::from_str(
                r#"{"tools":[{"name":"x","inputSchema":{"type":"object","properties":{}}}]}"#,
            )
            .unwrap_or_default(),
            None,
        )
        .ok();
        b.add_page(
            &serde_json::from_str(
                r#"{"tools":[{"inputSchema":{"properties":{},"type":"object"},"name":"x"}]}"#,
            )
            .unwrap_or_default(),
            None,
        )
        .ok();
        assert_eq!(a.finish().content_hash, b.finish().content_hash);
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn modern_http_catalogs_reject_tools_with_invalid_header_annotations() {
        let page = json!({"tools": [
            {"name": "valid_tool", "inputSchema": {"type": "object", "properties": {
                "region": {"type": "string", "x-mcp-header": "Region"}}}},
            {"name": "invalid_empty_header", "inputSchema": {"type": "object", "properties": {
                "value": {"type": "string", "x-mcp-header": ""}}}},
            tool("plain"),
        ]});
        let mut checked = PageCollector::new(100, 10).with_param_headers();
        checked.add_page(&page, None).ok();
        let cat = checked.finish();
        assert_eq!(cat.names, ["valid_tool", "plain"]);
        assert_eq!(cat.invalid_items, 0);
        assert_eq!(
            cat.rejected
                .iter()
                .map(|r| r.name.as_str())
                .collect::<Vec<_>>(),
            ["invalid_empty_header"]
        );
        assert!(
            cat.rejected[0].reason.contains("empty"),
            "{:?}",
            cat.rejected
        );
        assert_eq!(
            cat.param_headers.get("valid_tool"),
            Some(&vec![ParamHeader {
                path: vec!["region".into()],
                name: "Region".into()
            }])
        );
        // Other eras and transports keep every tool and mirror nothing.
        let mut unchecked = PageCollector::new(100, 10);
        unchecked.add_page(&page, None).ok();
        let cat = unchecked.finish();
        assert_eq!(cat.names, ["valid_tool", "invalid_empty_header", "plain"]);
        assert!(cat.rejected.is_empty() && cat.param_headers.is_empty());
    }

    #[test]
    fn input_required_results_are_answers_not_errors() {
        assert_eq!(input_required(&json!({"content": []})).ok(), Some(None));
        assert_eq!(
            input_required(&json!({"resultType": "complete", "content": []})).ok(),
            Some(None)
        );
        let asked = input_required(&json!({
            "resultType": "input_required",
            "inputRequests": {"confirm": {"method": "elicitation/create", "params": {}}},
            "requestState": "{\"nonce\":1}"
        }));
        assert_eq!(
            asked.ok().flatten(),
            Some(InputRequired {
                methods: vec!["elicitation/create".into()],
                request_state: Some(json!("{\"nonce\":1}")),
            })
        );
        let state_only =
            input_required(&json!({"resultType": "input_required", "requestState": "s"}));
        assert_eq!(
            state_only
                .ok()
                .flatten()
                .map(|i| (i.methods.len(), i.request_state)),
            Some((0, Some(json!("s"))))
        );
        for bad in [
            json!({"resultType": "input_required"}),
            json!({"resultType": "input_required", "requestState": 5}),
            json!({"resultType": "input_required", "inputRequests": []}),
        ] {
            assert!(
                matches!(input_required(&bad), Err(McpError::Protocol { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn call_outcome_joins_text_and_caps_it() {
        let r = json!({"content": [{"type": "text", "text": "a"}, {"type": "image", "data": ""}, {"type": "text", "text": "b"}], "isError": true, "structuredContent": {"k": 1}});
        let o = call_outcome(&r).ok();
        assert_eq!(
            o.as_ref().map(|o| (o.is_error, o.text.as_str())),
            Some((true, "a\nb"))
        );
        assert_eq!(o.and_then(|o| o.structured), Some(json!({"k": 1})));
        let big = "é".repeat(MAX_TOOL_TEXT_BYTES);
        let o = call_outcome(&json!({"content": [{"type": "text", "text": big}]})).ok();
        assert!(o.is_some_and(|o| o.text.len() <= MAX_TOOL_TEXT_BYTES && !o.is_error));
    }
}

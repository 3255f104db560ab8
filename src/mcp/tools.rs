//! Tool catalog assembly (tools/list pages) and tools/call result reading; pure functions.

use serde_json::Value;

use super::error::McpError;

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
        }
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
                    self.names.push(name.to_string());
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
        }
    }
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

//! Modern-era HTTP headers mirrored from a request's body (docs/probing.md#modern-era): the
//! encoding every mirrored value gets, and the `x-mcp-header` annotations of tool input schemas
//! that name the `Mcp-Param-{Name}` headers of a `tools/call`. Pure functions.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// The property holding a parameter's header name in a tool's `inputSchema`.
pub const ANNOTATION: &str = "x-mcp-header";

/// Prefix and suffix of a Base64-encoded header value.
const SENTINEL: (&str, &str) = ("=?base64?", "?=");

/// Schema keywords whose values are data, not schemas: an annotation-like key inside them is
/// not an annotation.
const DATA_KEYWORDS: [&str; 4] = ["const", "default", "enum", "examples"];

/// One annotated parameter of a tool: where its value sits in the call's arguments and the
/// header it is mirrored into.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamHeader {
    /// Property names from the arguments object down to the value (`properties` keys only).
    pub path: Vec<String>,
    /// The annotation's value: the header is `Mcp-Param-{name}`.
    pub name: String,
}

/// Encodes a value for a mirrored header: verbatim when it is a safe plain header value, else
/// `=?base64?{UTF-8 as Base64}?=` (non-ASCII, control characters including tab,
/// leading or trailing spaces, or a value that itself looks encoded).
pub fn encode_value(value: &str) -> String {
    let unsafe_char = value.bytes().any(|b| !(0x20..0x7f).contains(&b));
    let padded = value.starts_with(' ') || value.ends_with(' ');
    let looks_encoded = value.starts_with(SENTINEL.0) && value.ends_with(SENTINEL.1);
    if unsafe_char || padded || looks_encoded {
        format!("{}{}{}", SENTINEL.0, base64(value.as_bytes()), SENTINEL.1)
    } else {
        value.to_string()
    }
}

/// Standard Base64 with padding.
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The string form of an argument value for its header: strings as they are, integers in
/// decimal, booleans as `true`/`false`. `None` (no header) for null, objects and arrays.
fn value_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (_, Some(u), _) => u.to_string(),
            // An integral float (42.0) is the integer it names.
            (_, _, Some(f)) if f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15 => {
                format!("{f:.0}")
            }
            _ => n.to_string(),
        }),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// The `Mcp-Param-*` headers of one call: `(name, encoded value)` for every annotated parameter
/// whose value is present in `arguments`; absent and null values send no header.
pub fn param_headers(params: &[ParamHeader], arguments: &Value) -> Vec<(String, String)> {
    params
        .iter()
        .filter_map(|p| {
            let value = p
                .path
                .iter()
                .try_fold(arguments, |at, key| at.get(key.as_str()))?;
            Some((p.name.clone(), encode_value(&value_text(value)?)))
        })
        .collect()
}

/// True for an HTTP field-name token (RFC 9110 `1*tchar`).
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// True when a schema's `type` allows only string, integer or boolean values (and null).
fn is_primitive_type(schema: &Map<String, Value>) -> bool {
    let allowed = |t: &Value| matches!(t.as_str(), Some("string" | "integer" | "boolean"));
    match schema.get("type") {
        Some(Value::Array(types)) => {
            types.iter().any(allowed)
                && types
                    .iter()
                    .all(|t| allowed(t) || t.as_str() == Some("null"))
        }
        Some(t) => allowed(t),
        None => false,
    }
}

/// Where a schema node sits: the `properties` chain from the root when every step so far was a
/// `properties` key (the only place an annotation may be), else a JSON pointer for messages.
#[derive(Clone)]
enum Position {
    Reachable(Vec<String>),
    Elsewhere(String),
}

impl Position {
    /// JSON pointer of the node (empty for the root).
    fn pointer(&self) -> String {
        match self {
            Position::Reachable(path) => path.iter().map(|p| format!("/properties/{p}")).collect(),
            Position::Elsewhere(pointer) => pointer.clone(),
        }
    }

    /// The pointer as a message names it.
    fn describe(&self) -> String {
        let pointer = self.pointer();
        if pointer.is_empty() {
            "the schema root".into()
        } else {
            pointer
        }
    }

    /// A child reached through any key but `properties`.
    fn down(&self, key: &str) -> Position {
        Position::Elsewhere(format!("{}/{key}", self.pointer()))
    }
}

/// Reads the `x-mcp-header` annotations of a tool's `inputSchema`. `Err` is why the tool
/// definition is invalid and must not be used: an annotation that is not a non-empty HTTP token,
/// one repeated (case-insensitively), one on a parameter whose type is not string, integer or
/// boolean, or one not reachable from the root through `properties` alone.
pub fn annotations(input_schema: &Value) -> Result<Vec<ParamHeader>, String> {
    let mut found = Vec::new();
    walk(input_schema, &Position::Reachable(Vec::new()), &mut found)?;
    let mut seen = BTreeSet::new();
    for p in &found {
        if !seen.insert(p.name.to_ascii_lowercase()) {
            return Err(format!(
                "{ANNOTATION} {:?} names more than one parameter (names must be unique, ignoring case)",
                p.name
            ));
        }
    }
    Ok(found)
}

fn walk(node: &Value, at: &Position, found: &mut Vec<ParamHeader>) -> Result<(), String> {
    match node {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(item, &at.down(&i.to_string()), found)?;
            }
            Ok(())
        }
        Value::Object(schema) => {
            if let Some(name) = schema.get(ANNOTATION) {
                found.push(annotation(schema, name, at)?);
            }
            for (key, value) in schema {
                if key == "properties"
                    && let (Value::Object(props), Position::Reachable(path)) = (value, at)
                {
                    for (prop, sub) in props {
                        let mut path = path.clone();
                        path.push(prop.clone());
                        walk(sub, &Position::Reachable(path), found)?;
                    }
                } else if key != ANNOTATION && !DATA_KEYWORDS.contains(&key.as_str()) {
                    walk(value, &at.down(key), found)?;
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Validates one annotation found at `at` on `schema`.
fn annotation(
    schema: &Map<String, Value>,
    name: &Value,
    at: &Position,
) -> Result<ParamHeader, String> {
    let path = match at {
        Position::Reachable(path) if !path.is_empty() => path.clone(),
        other => {
            return Err(format!(
                "{ANNOTATION} at {} is not on a parameter reachable through `properties` alone",
                other.describe()
            ));
        }
    };
    let param = path.join(".");
    let Some(name) = name.as_str() else {
        return Err(format!("{ANNOTATION} of `{param}` is not a string"));
    };
    if name.is_empty() {
        return Err(format!("{ANNOTATION} of `{param}` is empty"));
    }
    if !is_token(name) {
        return Err(format!(
            "{ANNOTATION} {name:?} of `{param}` is not an HTTP header name (letters, digits and !#$%&'*+-.^_`|~ only)"
        ));
    }
    if !is_primitive_type(schema) {
        let kind = schema.get("type").map_or("none".into(), Value::to_string);
        return Err(format!(
            "{ANNOTATION} {name:?} is on `{param}` of type {kind}; only string, integer and boolean parameters may be mirrored"
        ));
    }
    Ok(ParamHeader {
        path,
        name: name.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_are_plain_when_safe_and_base64_otherwise() {
        assert_eq!(encode_value("us-west1"), "us-west1");
        assert_eq!(encode_value("us west 1"), "us west 1");
        assert_eq!(encode_value(""), "");
        assert_eq!(
            encode_value("Hello, 世界"),
            "=?base64?SGVsbG8sIOS4lueVjA==?="
        );
        assert_eq!(encode_value(" padded "), "=?base64?IHBhZGRlZCA=?=");
        assert_eq!(encode_value(" lead"), "=?base64?IGxlYWQ=?=");
        assert_eq!(encode_value("trail "), "=?base64?dHJhaWwg?=");
        assert_eq!(encode_value("line1\nline2"), "=?base64?bGluZTEKbGluZTI=?=");
        assert_eq!(encode_value("\tindented"), "=?base64?CWluZGVudGVk?=");
        assert_eq!(
            encode_value("=?base64?literal?="),
            "=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?="
        );
        assert_eq!(encode_value("café"), "=?base64?Y2Fmw6k=?=");
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), enc);
        }
    }

    fn header(path: &[&str], name: &str) -> ParamHeader {
        ParamHeader {
            path: path.iter().map(|s| s.to_string()).collect(),
            name: name.into(),
        }
    }

    #[test]
    fn reads_annotations_including_nested_properties() {
        let schema = json!({
            "type": "object",
            "properties": {
                "region": {"type": "string", "x-mcp-header": "Region"},
                "query": {"type": "string"},
                "opts": {"type": "object", "properties": {
                    "tenant": {"type": ["integer", "null"], "x-mcp-header": "Tenant"}
                }},
                "sample": {"type": "string", "default": {"x-mcp-header": "data, not schema"}}
            }
        });
        assert_eq!(
            annotations(&schema),
            Ok(vec![
                header(&["opts", "tenant"], "Tenant"),
                header(&["region"], "Region")
            ])
        );
        assert_eq!(annotations(&json!({"type": "object"})), Ok(vec![]));
    }

    fn one_property(prop: Value) -> Value {
        json!({"type": "object", "properties": {"p": prop}})
    }

    #[test]
    fn invalid_annotations_invalidate_the_tool() {
        let invalid = [
            (
                one_property(json!({"type": "string", "x-mcp-header": ""})),
                "empty",
            ),
            (
                one_property(json!({"type": "string", "x-mcp-header": 7})),
                "not a string",
            ),
            (
                one_property(json!({"type": "string", "x-mcp-header": "My Region"})),
                "not an HTTP header name",
            ),
            (
                one_property(json!({"type": "string", "x-mcp-header": "Region:Primary"})),
                "not an HTTP header name",
            ),
            (
                one_property(json!({"type": "string", "x-mcp-header": "Région"})),
                "not an HTTP header name",
            ),
            (
                one_property(json!({"type": "string", "x-mcp-header": "Region\t1"})),
                "not an HTTP header name",
            ),
            (
                one_property(json!({"type": "object", "x-mcp-header": "Data"})),
                "only string, integer and boolean",
            ),
            (
                one_property(json!({"type": "array", "x-mcp-header": "Items"})),
                "only string, integer and boolean",
            ),
            (
                one_property(json!({"type": "null", "x-mcp-header": "Nil"})),
                "only string, integer and boolean",
            ),
            (
                one_property(json!({"type": "number", "x-mcp-header": "Ratio"})),
                "only string, integer and boolean",
            ),
            (
                one_property(json!({"x-mcp-header": "Untyped"})),
                "only string, integer and boolean",
            ),
            (
                json!({"type": "object", "properties": {
                    "a": {"type": "string", "x-mcp-header": "MyField"},
                    "b": {"type": "string", "x-mcp-header": "myfield"}}}),
                "more than one parameter",
            ),
            (
                one_property(
                    json!({"type": "array", "items": {"type": "string", "x-mcp-header": "Item"}}),
                ),
                "/properties/p/items",
            ),
            (
                json!({"type": "object", "anyOf": [{"properties": {"a": {"type": "string", "x-mcp-header": "A"}}}]}),
                "/anyOf/0/properties/a",
            ),
            (
                json!({"type": "object", "x-mcp-header": "Root"}),
                "the schema root",
            ),
        ];
        for (schema, why) in invalid {
            let err = annotations(&schema).expect_err(&schema.to_string());
            assert!(err.contains(why), "{schema}: {err}");
        }
    }

    #[test]
    fn call_headers_follow_the_argument_values() {
        let params = [
            header(&["region"], "Region"),
            header(&["priority"], "Priority"),
            header(&["verbose"], "Verbose"),
            header(&["missing"], "Missing"),
            header(&["nested", "id"], "Id"),
            header(&["name"], "Name"),
            header(&["ratio"], "Ratio"),
        ];
        let args = json!({"region": "us-west1", "priority": 42, "verbose": null,
                          "nested": {"id": true}, "name": "Hello, 世界", "ratio": 42.0,
                          "query": "SELECT 1"});
        assert_eq!(
            param_headers(&params, &args),
            [
                ("Region", "us-west1"),
                ("Priority", "42"),
                ("Id", "true"),
                ("Name", "=?base64?SGVsbG8sIOS4lueVjA==?="),
                ("Ratio", "42"),
            ]
            .map(|(n, v)| (n.to_string(), v.to_string()))
        );
        assert_eq!(
            param_headers(&params, &json!({"priority": false})),
            [("Priority".to_string(), "false".to_string())]
        );
    }
}

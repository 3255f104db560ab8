//! The handshake result and the pure reading of `initialize` / `server/discover` results.

use serde_json::{Value, json};

use super::error::McpError;
use super::jsonrpc::RpcErrorObject;
use super::{Era, KNOWN_VERSIONS, MODERN_VERSION};

/// JSON-RPC code of a modern-era "unsupported protocol version" error.
pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;
/// JSON-RPC code of a modern-era "HTTP headers do not match the body, or are missing" error.
pub const HEADER_MISMATCH: i64 = -32020;
/// JSON-RPC code of a modern-era "a required client capability was not declared" error.
pub const MISSING_REQUIRED_CLIENT_CAPABILITY: i64 = -32021;

/// True for the JSON-RPC errors only a modern server sends: one of them answering `initialize`
/// means the server is modern (it checks the headers and `_meta` every modern request carries).
pub(crate) fn is_modern_error(code: i64) -> bool {
    matches!(
        code,
        UNSUPPORTED_PROTOCOL_VERSION | HEADER_MISMATCH | MISSING_REQUIRED_CLIENT_CAPABILITY
    )
}

/// What to do after a modern server refused our protocol version with `-32022`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Negotiation {
    /// It lists the modern version this client speaks: ask again with it.
    RetryModern,
    /// It lists only legacy versions this client knows (or none at all): use `initialize`.
    Legacy,
    /// It lists only versions this client does not speak.
    NoCommonVersion(Vec<String>),
}

/// Picks the next step from the `supported` list of a `-32022` error's data.
pub(crate) fn negotiate(error: &RpcErrorObject) -> Negotiation {
    let supported: Vec<String> = error
        .data
        .as_ref()
        .and_then(|d| d.get("supported"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if supported.iter().any(|v| v == MODERN_VERSION) {
        Negotiation::RetryModern
    } else if supported.is_empty()
        || supported
            .iter()
            .any(|v| KNOWN_VERSIONS.contains(&v.as_str()))
    {
        Negotiation::Legacy
    } else {
        Negotiation::NoCommonVersion(supported)
    }
}

/// The result of a successful handshake.
#[derive(Clone, Debug, PartialEq)]
pub struct Handshake {
    /// Which protocol generation was negotiated.
    pub era: Era,
    /// The negotiated protocol version.
    pub protocol_version: String,
    /// `serverInfo.name`.
    pub server_name: String,
    /// `serverInfo.version` (empty when the server sent none).
    pub server_version: String,
    /// `serverInfo.title`, if any.
    pub server_title: Option<String>,
    /// The server's capabilities object, verbatim.
    pub capabilities: Value,
    /// The Streamable HTTP session id (legacy era over HTTP only).
    pub session_id: Option<String>,
    /// Non-fatal oddities seen during the handshake.
    pub notes: Vec<String>,
}

fn str_field(v: Option<&Value>, key: &str) -> Option<String> {
    v.and_then(|v| v.get(key))
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// Reads an `initialize` result (legacy era). `notes` collects non-fatal oddities.
/// The session id is filled in by the caller.
pub(crate) fn from_initialize(
    result: &Value,
    mut notes: Vec<String>,
) -> Result<Handshake, McpError> {
    let version = result
        .get("protocolVersion")
        .and_then(Value::as_str)
        .ok_or_else(|| McpError::protocol("initialize result has no protocolVersion string"))?
        .to_string();
    if !KNOWN_VERSIONS.contains(&version.as_str()) {
        return Err(McpError::UnknownProtocolVersion { version });
    }
    let info = result
        .get("serverInfo")
        .filter(|i| i.is_object())
        .ok_or_else(|| McpError::protocol("initialize result has no serverInfo object"))?;
    let server_name = str_field(Some(info), "name")
        .ok_or_else(|| McpError::protocol("initialize result has no serverInfo.name string"))?;
    let server_version = str_field(Some(info), "version").unwrap_or_else(|| {
        notes.push("serverInfo.version missing".into());
        String::new()
    });
    let capabilities = match result.get("capabilities") {
        Some(c) if c.is_object() => c.clone(),
        _ => {
            notes.push("initialize result has no capabilities object".into());
            json!({})
        }
    };
    Ok(Handshake {
        era: Era::Legacy,
        protocol_version: version,
        server_name,
        server_version,
        server_title: str_field(Some(info), "title"),
        capabilities,
        session_id: None,
        notes,
    })
}

/// Reads a `server/discover` outcome; only a server supporting the modern version succeeds.
/// Every failure here means "not modern": the caller falls back to `initialize`.
pub(crate) fn from_discover(outcome: Result<Value, RpcErrorObject>) -> Result<Handshake, McpError> {
    let result = match outcome {
        Ok(result) => result,
        Err(e) if e.code == UNSUPPORTED_PROTOCOL_VERSION => {
            let supported = e.data.as_ref().and_then(|d| d.get("supported")).cloned();
            return Err(McpError::protocol(format!(
                "server/discover: protocol version {MODERN_VERSION} unsupported (server supports {})",
                supported.unwrap_or(Value::Null)
            )));
        }
        Err(e) => {
            return Err(McpError::Rpc {
                method: "server/discover".into(),
                code: e.code,
                message: e.message,
            });
        }
    };
    let supported: Vec<&str> = result
        .get("supportedVersions")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if !supported.contains(&MODERN_VERSION) {
        return Err(McpError::protocol(format!(
            "server/discover result lists supportedVersions {supported:?}, not {MODERN_VERSION}"
        )));
    }
    let mut notes = Vec::new();
    let info = result
        .get("_meta")
        .and_then(|m| m.get("io.modelcontextprotocol/serverInfo"))
        .or_else(|| result.get("serverInfo"));
    let server_name = str_field(info, "name").unwrap_or_else(|| {
        notes.push("server/discover result carries no serverInfo name".into());
        String::new()
    });
    Ok(Handshake {
        era: Era::Modern,
        protocol_version: MODERN_VERSION.to_string(),
        server_name,
        server_version: str_field(info, "version").unwrap_or_default(),
        server_title: str_field(info, "title"),
        capabilities: result.get("capabilities").cloned().unwrap_or(json!({})),
        session_id: None,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_complete_initialize_result() {
        let r = json!({"protocolVersion": "2024-11-05", "capabilities": {"tools": {}},
                       "serverInfo": {"name": "s", "version": "1.0", "title": "S"}});
        let h = from_initialize(&r, vec!["n".into()]).ok();
        let h = h.as_ref();
        assert_eq!(h.map(|h| h.era), Some(Era::Legacy));
        assert_eq!(h.map(|h| h.protocol_version.as_str()), Some("2024-11-05"));
        assert_eq!(h.and_then(|h| h.server_title.as_deref()), Some("S"));
        assert_eq!(h.map(|h| h.notes.len()), Some(1));
    }

    #[test]
    fn initialize_oddities_become_notes_or_errors() {
        let r = json!({"protocolVersion": "2025-11-25", "serverInfo": {"name": "s"}});
        let notes = from_initialize(&r, vec![])
            .map(|h| h.notes)
            .unwrap_or_default();
        assert_eq!(notes.len(), 2, "{notes:?}");
        let cases = [
            json!({"protocolVersion": 20241105, "serverInfo": {"name": "s"}}),
            json!({"protocolVersion": "2025-11-25", "serverInfo": "s"}),
            json!({"protocolVersion": "2025-11-25", "serverInfo": {"version": "1"}}),
        ];
        for r in cases {
            assert!(
                matches!(from_initialize(&r, vec![]), Err(McpError::Protocol { .. })),
                "{r}"
            );
        }
        let r = json!({"protocolVersion": "2023-01-01", "serverInfo": {"name": "s"}});
        assert!(matches!(
            from_initialize(&r, vec![]),
            Err(McpError::UnknownProtocolVersion { version }) if version == "2023-01-01"
        ));
    }

    #[test]
    fn reads_discover_with_server_info_in_meta() {
        let r = json!({"supportedVersions": ["2026-07-28"], "capabilities": {"tools": {}},
                       "_meta": {"io.modelcontextprotocol/serverInfo": {"name": "py", "version": ""}}});
        let h = from_discover(Ok(r)).ok();
        assert_eq!(h.as_ref().map(|h| h.server_name.as_str()), Some("py"));
        assert_eq!(h.map(|h| h.era), Some(Era::Modern));
    }

    fn unsupported(data: Option<Value>) -> RpcErrorObject {
        RpcErrorObject {
            code: UNSUPPORTED_PROTOCOL_VERSION,
            message: "Unsupported protocol version".into(),
            data,
        }
    }

    #[test]
    fn a_refused_version_is_negotiated_from_the_supported_list() {
        let with = |list: Value| negotiate(&unsupported(Some(json!({"supported": list}))));
        assert_eq!(with(json!(["2026-07-28"])), Negotiation::RetryModern);
        assert_eq!(
            with(json!(["2027-01-01", "2026-07-28", "2025-11-25"])),
            Negotiation::RetryModern
        );
        assert_eq!(with(json!(["2025-06-18"])), Negotiation::Legacy);
        assert_eq!(negotiate(&unsupported(None)), Negotiation::Legacy);
        assert_eq!(
            with(json!(["2027-01-01"])),
            Negotiation::NoCommonVersion(vec!["2027-01-01".into()])
        );
    }

    #[test]
    fn only_modern_error_codes_identify_a_modern_server() {
        for code in [-32020, -32021, -32022] {
            assert!(is_modern_error(code), "{code}");
        }
        for code in [-32600, -32601, -32602, -32603, -32000, 0] {
            assert!(!is_modern_error(code), "{code}");
        }
    }

    #[test]
    fn non_modern_discover_answers_are_errors() {
        assert!(from_discover(Ok(json!({"supportedVersions": ["2099-01-01"]}))).is_err());
        assert!(from_discover(Ok(json!({}))).is_err());
        let unsupported = RpcErrorObject {
            code: UNSUPPORTED_PROTOCOL_VERSION,
            message: "unsupported".into(),
            data: Some(json!({"supported": ["2027-01-01"]})),
        };
        assert!(
            matches!(from_discover(Err(unsupported)), Err(McpError::Protocol { detail }) if detail.contains("2027-01-01"))
        );
        let not_found = RpcErrorObject {
            code: -32601,
            message: "Method not found".into(),
            data: None,
        };
        assert!(matches!(
            from_discover(Err(not_found)),
            Err(McpError::Rpc { code: -32601, .. })
        ));
    }
}

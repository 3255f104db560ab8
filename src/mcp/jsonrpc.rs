//! JSON-RPC 2.0 message building and classification of incoming messages.

use serde_json::{Map, Value, json};

/// JSON-RPC "method not found".
pub const METHOD_NOT_FOUND: i64 = -32601;

/// Hands out monotonic integer request ids, starting at 1; never reused within a session.
#[derive(Debug)]
pub struct IdCounter {
    next: u64,
}

impl Default for IdCounter {
    fn default() -> Self {
        IdCounter { next: 1 }
    }
}

impl IdCounter {
    /// The next unused id.
    pub fn next_id(&mut self) -> u64 {
        let id = self.next;
        self.next += 1;
        id
    }
}

/// Builds a request object; `params` is omitted when `None`.
pub fn request(id: u64, method: &str, params: Option<Value>) -> Value {
    let mut obj = Map::new();
    obj.insert("jsonrpc".into(), json!("2.0"));
    obj.insert("id".into(), json!(id));
    obj.insert("method".into(), json!(method));
    if let Some(p) = params {
        obj.insert("params".into(), p);
    }
    Value::Object(obj)
}

/// Builds a notification object; `params` is omitted when `None`.
pub fn notification(method: &str, params: Option<Value>) -> Value {
    let mut obj = Map::new();
    obj.insert("jsonrpc".into(), json!("2.0"));
    obj.insert("method".into(), json!(method));
    if let Some(p) = params {
        obj.insert("params".into(), p);
    }
    Value::Object(obj)
}

/// Builds a success response to a server request (the id is echoed verbatim).
pub fn result_response(id: Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

/// Builds an error response to a server request (the id is echoed verbatim).
pub fn error_response(id: Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

/// A JSON-RPC error object as received.
#[derive(Clone, Debug, PartialEq)]
pub struct RpcErrorObject {
    /// Error code (0 when missing or not an integer).
    pub code: i64,
    /// Error message (empty when missing).
    pub message: String,
    /// Optional `data` member.
    pub data: Option<Value>,
}

/// What an incoming message is.
#[derive(Clone, Debug, PartialEq)]
pub enum Incoming {
    /// A response to one of our requests (`id` as sent by the server).
    Response {
        /// The id, verbatim.
        id: Value,
        /// `Ok(result)` or `Err(error object)`.
        outcome: Result<Value, RpcErrorObject>,
    },
    /// A server->client notification.
    Notification {
        /// Method name.
        method: String,
        /// Params (`null` when absent).
        params: Value,
    },
    /// A server->client request we must answer.
    Request {
        /// The id to echo in our reply.
        id: Value,
        /// Method name.
        method: String,
    },
    /// Valid JSON that is not a JSON-RPC message (batch, missing members, id-less response...).
    Invalid {
        /// Why it was rejected.
        reason: String,
    },
}

/// Classifies one parsed JSON value.
pub fn classify(value: Value) -> Incoming {
    let Value::Object(mut obj) = value else {
        let kind = if value.is_array() {
            "a batch array"
        } else {
            "not an object"
        };
        return Incoming::Invalid {
            reason: format!("message is {kind}"),
        };
    };
    let method = obj.remove("method");
    let id = obj.remove("id").filter(|v| !v.is_null());
    match (method, id) {
        (Some(Value::String(method)), Some(id)) => Incoming::Request { id, method },
        (Some(Value::String(method)), None) => Incoming::Notification {
            method,
            params: obj.remove("params").unwrap_or(Value::Null),
        },
        (Some(_), _) => Incoming::Invalid {
            reason: "method is not a string".into(),
        },
        (None, id) => {
            let result = obj.remove("result");
            let error = obj.remove("error");
            let Some(id) = id else {
                let reason = match error {
                    Some(e) => format!("error response without id: {}", parse_error(e).message),
                    None => "response without id".into(),
                };
                return Incoming::Invalid { reason };
            };
            match (result, error) {
                (Some(r), None) => Incoming::Response { id, outcome: Ok(r) },
                (None, Some(e)) => Incoming::Response {
                    id,
                    outcome: Err(parse_error(e)),
                },
                (Some(_), Some(_)) => Incoming::Invalid {
                    reason: "response has both result and error".into(),
                },
                (None, None) => Incoming::Invalid {
                    reason: "response has neither result nor error".into(),
                },
            }
        }
    }
}

fn parse_error(e: Value) -> RpcErrorObject {
    RpcErrorObject {
        code: e.get("code").and_then(Value::as_i64).unwrap_or(0),
        message: e
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        data: e.get("data").cloned(),
    }
}

/// True when a response id refers to our integer request `want` (a numeric string also matches).
pub fn id_matches(id: &Value, want: u64) -> bool {
    match id {
        Value::Number(n) => n.as_u64() == Some(want),
        Value::String(s) => s.parse::<u64>().ok() == Some(want),
        _ => false,
    }
}

/// Extracts a JSON-RPC error object from an HTTP error body, if the body is one.
pub fn error_in_body(body: &[u8]) -> Option<RpcErrorObject> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let err = value.get("error")?.clone();
    err.get("code")?.as_i64()?;
    Some(parse_error(err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_monotonic_from_one() {
        let mut ids = IdCounter::default();
        assert_eq!((ids.next_id(), ids.next_id(), ids.next_id()), (1, 2, 3));
    }

    #[test]
    fn builds_request_without_params() {
        let r = request(7, "ping", None);
        assert_eq!(r, json!({"jsonrpc":"2.0","id":7,"method":"ping"}));
    }

    #[test]
    fn classifies_result_and_error_responses() {
        let ok = classify(json!({"jsonrpc":"2.0","id":1,"result":{}}));
        assert_eq!(
            ok,
            Incoming::Response {
                id: json!(1),
                outcome: Ok(json!({}))
            }
        );
        let err =
            classify(json!({"jsonrpc":"2.0","id":"2","error":{"code":-32601,"message":"nope"}}));
        match err {
            Incoming::Response {
                id,
                outcome: Err(e),
            } => {
                assert!(id_matches(&id, 2));
                assert_eq!((e.code, e.message.as_str()), (-32601, "nope"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn classifies_notifications_and_server_requests() {
        assert_eq!(
            classify(json!({"jsonrpc":"2.0","method":"notifications/message","params":{"x":1}})),
            Incoming::Notification {
                method: "notifications/message".into(),
                params: json!({"x":1})
            }
        );
        assert_eq!(
            classify(json!({"jsonrpc":"2.0","id":"s1","method":"ping"})),
            Incoming::Request {
                id: json!("s1"),
                method: "ping".into()
            }
        );
    }

    #[test]
    fn rejects_invalid_shapes() {
        for v in [
            json!([{"jsonrpc":"2.0","id":5,"method":"ping"}]),
            json!("text"),
            json!({"jsonrpc":"2.0","id":4}),
            json!({"jsonrpc":"2.0","result":{}}),
            json!({"jsonrpc":"2.0","id":1,"result":{},"error":{"code":1}}),
            json!({"jsonrpc":"2.0","method":5}),
        ] {
            assert!(
                matches!(classify(v.clone()), Incoming::Invalid { .. }),
                "{v}"
            );
        }
    }

    #[test]
    fn id_matching_rejects_other_types() {
        assert!(id_matches(&json!(3), 3));
        assert!(!id_matches(&json!(4), 3));
        assert!(!id_matches(&json!(null), 3));
        assert!(!id_matches(&json!("abc"), 3));
    }

    #[test]
    fn finds_error_in_http_body() {
        let e = error_in_body(br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":"Bad Request: No valid session ID provided"}}"#);
        assert_eq!(e.map(|e| e.code), Some(-32000));
        assert!(error_in_body(b"<html>").is_none());
    }
}

//! Reads what accounting needs from one JSON-RPC frame, and nothing else: the id, the method,
//! a few params (tool name, protocol versions, the id a cancellation names), a result's
//! `isError` and `protocolVersion`, an error's code. Everything else is skipped without being
//! built (a 10 MB tool result costs one scan, no allocation). Strings borrow from the frame
//! when they hold no escapes.

use std::borrow::Cow;
use std::fmt;

use serde::Deserializer;
use serde::de::{self, Deserialize, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// The `_meta` key a modern-era (2026-07-28) request carries its protocol version in.
pub const MODERN_VERSION_META_KEY: &str = "io.modelcontextprotocol/protocolVersion";
/// Most messages read from one batch frame; the rest are skipped (and the frame counted as
/// malformed).
pub const MAX_BATCH_MESSAGES: usize = 1024;

/// A JSON-RPC request id as sent (ids are compared by type and value: `1` is not `"1"`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RequestId {
    /// An integer id.
    Int(i128),
    /// A string id.
    Text(String),
    /// A fractional number id (allowed by JSON-RPC, discouraged), by its bits.
    Float(u64),
}

/// What one JSON-RPC message says, as far as accounting cares.
#[derive(Debug, PartialEq)]
pub enum Message<'a> {
    /// A request.
    Request {
        /// Its id.
        id: RequestId,
        /// Its method.
        method: Cow<'a, str>,
        /// `params.name` (the tool of a `tools/call`).
        name: Option<Cow<'a, str>>,
        /// `params.protocolVersion` (what an `initialize` asks for).
        protocol_version: Option<Cow<'a, str>>,
        /// `params._meta["io.modelcontextprotocol/protocolVersion"]` (modern era).
        modern_version: Option<Cow<'a, str>>,
    },
    /// A notification.
    Notification {
        /// Its method.
        method: Cow<'a, str>,
        /// `params.requestId` (what a `notifications/cancelled` cancels).
        request_id: Option<RequestId>,
    },
    /// A response.
    Response {
        /// The id it answers (`None`: an error response to a request that could not be read).
        id: Option<RequestId>,
        /// Result or error.
        outcome: Outcome<'a>,
    },
}

/// How a response ended its request.
#[derive(Debug, PartialEq)]
pub enum Outcome<'a> {
    /// A `result`.
    Result {
        /// `result.isError` is `true` (a failed tool call).
        is_error: bool,
        /// `result.protocolVersion` (what `initialize` negotiated).
        protocol_version: Option<Cow<'a, str>>,
    },
    /// An `error`, with its code when it is an integer.
    Error {
        /// `error.code`.
        code: Option<i64>,
    },
}

/// The frame is not JSON-RPC.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed JSON-RPC frame: {0}")]
pub struct Malformed(pub String);

/// Reads one frame: a message, or a batch of them. `Err` when the frame is not JSON or a
/// message has the wrong shape (then nothing of the frame is counted but the frame itself).
pub fn parse_frame(frame: &[u8]) -> Result<Vec<Message<'_>>, Malformed> {
    let first = frame.iter().find(|b| !b.is_ascii_whitespace());
    let envelopes = if first == Some(&b'[') {
        let mut de = serde_json::Deserializer::from_slice(frame);
        let batch = de
            .deserialize_seq(BatchVisitor)
            .map_err(|e| Malformed(e.to_string()))?;
        de.end().map_err(|e| Malformed(e.to_string()))?;
        batch
    } else {
        vec![serde_json::from_slice::<Envelope<'_>>(frame).map_err(|e| Malformed(e.to_string()))?]
    };
    envelopes.into_iter().map(Envelope::into_message).collect()
}

/// The members of one message object that matter.
#[derive(Debug, Default)]
struct Envelope<'a> {
    id: Option<RequestId>,
    method: Option<Cow<'a, str>>,
    params: Params<'a>,
    result: Option<ResultSummary<'a>>,
    error: Option<Option<i64>>,
}

impl<'a> Envelope<'a> {
    fn into_message(self) -> Result<Message<'a>, Malformed> {
        match (self.method, self.id, self.result, self.error) {
            (Some(method), Some(id), None, None) => Ok(Message::Request {
                id,
                method,
                name: self.params.name,
                protocol_version: self.params.protocol_version,
                modern_version: self.params.modern_version,
            }),
            (Some(method), None, None, None) => Ok(Message::Notification {
                method,
                request_id: self.params.request_id,
            }),
            (None, Some(id), Some(result), None) => Ok(Message::Response {
                id: Some(id),
                outcome: Outcome::Result {
                    is_error: result.is_error,
                    protocol_version: result.protocol_version,
                },
            }),
            (None, id, None, Some(code)) => Ok(Message::Response {
                id,
                outcome: Outcome::Error { code },
            }),
            (None, None, Some(_), None) => Err(Malformed("result without id".into())),
            (None, _, None, None) => Err(Malformed("neither method nor result nor error".into())),
            (None, _, Some(_), Some(_)) => Err(Malformed("both result and error".into())),
            (Some(_), _, _, _) => Err(Malformed("method together with result or error".into())),
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Envelope<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(EnvelopeVisitor)
    }
}

struct EnvelopeVisitor;

impl<'de> Visitor<'de> for EnvelopeVisitor {
    type Value = Envelope<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON-RPC message object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut envelope = Envelope::default();
        while let Some(key) = map.next_key::<Str<'de>>()? {
            match key.0.as_ref() {
                "id" => envelope.id = map.next_value::<OptionalId>()?.0,
                "method" => envelope.method = Some(map.next_value::<Str<'de>>()?.0),
                "params" => envelope.params = map.next_value()?,
                "result" => envelope.result = Some(map.next_value()?),
                "error" => envelope.error = Some(map.next_value::<ErrorSummary>()?.0),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(envelope)
    }
}

struct BatchVisitor;

impl<'de> Visitor<'de> for BatchVisitor {
    type Value = Vec<Envelope<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a batch of JSON-RPC messages")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut batch = Vec::new();
        while let Some(envelope) = seq.next_element::<Envelope<'de>>()? {
            if batch.len() == MAX_BATCH_MESSAGES {
                return Err(de::Error::custom("batch too long"));
            }
            batch.push(envelope);
        }
        if batch.is_empty() {
            return Err(de::Error::custom("empty batch"));
        }
        Ok(batch)
    }
}

/// A string that borrows from the frame when it can.
struct Str<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Str<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StrVisitor;
        impl<'de> Visitor<'de> for StrVisitor {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v.to_string())))
            }
        }
        deserializer.deserialize_str(StrVisitor)
    }
}

/// A string if the value is one, else `None` (the value is skipped).
struct MaybeStr<'a>(Option<Cow<'a, str>>);

impl<'de> Deserialize<'de> for MaybeStr<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MaybeStrVisitor;
        impl<'de> Visitor<'de> for MaybeStrVisitor {
            type Value = MaybeStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(MaybeStr(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(MaybeStr(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                skip_seq(seq)?;
                Ok(MaybeStr(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                skip_map(map)?;
                Ok(MaybeStr(None))
            }
        }
        deserializer.deserialize_any(MaybeStrVisitor)
    }
}

/// An id member: `null` is no id; an object, array or bool is a malformed message.
struct OptionalId(Option<RequestId>);

impl<'de> Deserialize<'de> for OptionalId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IdVisitor;
        impl<'de> Visitor<'de> for IdVisitor {
            type Value = OptionalId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number or null id")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(OptionalId(Some(RequestId::Int(v.into()))))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(OptionalId(Some(RequestId::Int(v.into()))))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(OptionalId(Some(RequestId::Float(v.to_bits()))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(OptionalId(Some(RequestId::Text(v.to_string()))))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(OptionalId(None))
            }
        }
        deserializer.deserialize_any(IdVisitor)
    }
}

/// `params`: the members accounting reads; any other shape (an array) is skipped.
#[derive(Debug, Default)]
struct Params<'a> {
    name: Option<Cow<'a, str>>,
    protocol_version: Option<Cow<'a, str>>,
    modern_version: Option<Cow<'a, str>>,
    request_id: Option<RequestId>,
}

impl<'de> Deserialize<'de> for Params<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ParamsVisitor;
        impl<'de> Visitor<'de> for ParamsVisitor {
            type Value = Params<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("params")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut params = Params::default();
                while let Some(key) = map.next_key::<Str<'de>>()? {
                    match key.0.as_ref() {
                        "name" => params.name = map.next_value::<MaybeStr<'de>>()?.0,
                        "protocolVersion" => {
                            params.protocol_version = map.next_value::<MaybeStr<'de>>()?.0
                        }
                        "requestId" => params.request_id = map.next_value::<AnyId>()?.0,
                        "_meta" => params.modern_version = map.next_value::<Meta<'de>>()?.0,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(params)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                skip_seq(seq)?;
                Ok(Params::default())
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Params::default())
            }
        }
        deserializer.deserialize_any(ParamsVisitor)
    }
}

/// An id in params (`requestId`): skipped, not an error, when it has another type.
struct AnyId(Option<RequestId>);

impl<'de> Deserialize<'de> for AnyId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        Ok(AnyId(match value {
            serde_json::Value::Number(n) => n
                .as_i64()
                .map(|v| RequestId::Int(v.into()))
                .or_else(|| n.as_u64().map(|v| RequestId::Int(v.into())))
                .or_else(|| n.as_f64().map(|v| RequestId::Float(v.to_bits()))),
            serde_json::Value::String(s) => Some(RequestId::Text(s)),
            _ => None,
        }))
    }
}

/// `_meta`: only the modern protocol version is read.
struct Meta<'a>(Option<Cow<'a, str>>);

impl<'de> Deserialize<'de> for Meta<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MetaVisitor;
        impl<'de> Visitor<'de> for MetaVisitor {
            type Value = Meta<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("_meta")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut version = None;
                while let Some(key) = map.next_key::<Str<'de>>()? {
                    if key.0 == MODERN_VERSION_META_KEY {
                        version = map.next_value::<MaybeStr<'de>>()?.0;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(Meta(version))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                skip_seq(seq)?;
                Ok(Meta(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Meta(None))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Meta(None))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(Meta(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Meta(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Meta(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Meta(None))
            }
        }
        deserializer.deserialize_any(MetaVisitor)
    }
}

/// `result`: `isError` and `protocolVersion`; everything else (the content) is skipped.
#[derive(Debug, Default)]
struct ResultSummary<'a> {
    is_error: bool,
    protocol_version: Option<Cow<'a, str>>,
}

impl<'de> Deserialize<'de> for ResultSummary<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ResultVisitor;
        impl<'de> Visitor<'de> for ResultVisitor {
            type Value = ResultSummary<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a result")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut result = ResultSummary::default();
                while let Some(key) = map.next_key::<Str<'de>>()? {
                    match key.0.as_ref() {
                        "isError" => {
                            result.is_error = map.next_value::<MaybeBool>()?.0 == Some(true)
                        }
                        "protocolVersion" => {
                            result.protocol_version = map.next_value::<MaybeStr<'de>>()?.0
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(result)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                skip_seq(seq)?;
                Ok(ResultSummary::default())
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(ResultSummary::default())
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(ResultSummary::default())
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(ResultSummary::default())
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(ResultSummary::default())
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(ResultSummary::default())
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(ResultSummary::default())
            }
        }
        deserializer.deserialize_any(ResultVisitor)
    }
}

/// A boolean if the value is one.
struct MaybeBool(Option<bool>);

impl<'de> Deserialize<'de> for MaybeBool {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(MaybeBool(IgnoredOr::<bool>::deserialize(deserializer)?.0))
    }
}

/// `error`: its integer `code`; the error object must be an object.
struct ErrorSummary(Option<i64>);

impl<'de> Deserialize<'de> for ErrorSummary {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ErrorVisitor;
        impl<'de> Visitor<'de> for ErrorVisitor {
            type Value = ErrorSummary;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an error object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut code = None;
                while let Some(key) = map.next_key::<Str<'de>>()? {
                    if key.0 == "code" {
                        code = map.next_value::<IgnoredOr<i64>>()?.0;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(ErrorSummary(code))
            }
        }
        deserializer.deserialize_map(ErrorVisitor)
    }
}

/// A `T` if the value reads as one, else `None` (any value is accepted and skipped).
struct IgnoredOr<T>(Option<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for IgnoredOr<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Only scalars are ever asked for; a scalar Value is small.
        let value = serde_json::Value::deserialize(deserializer)?;
        if value.is_array() || value.is_object() {
            return Ok(IgnoredOr(None));
        }
        Ok(IgnoredOr(T::deserialize(value).ok()))
    }
}

fn skip_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

fn skip_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(frame: &str) -> Message<'_> {
        let mut messages = parse_frame(frame.as_bytes()).expect("parses");
        assert_eq!(messages.len(), 1);
        messages.remove(0)
    }

    #[test]
    fn a_tool_call_request_names_its_tool() {
        let m = one(
            r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"name":"not this"}}}"#,
        );
        match m {
            Message::Request {
                id, method, name, ..
            } => {
                assert_eq!(id, RequestId::Int(7));
                assert_eq!(method, "tools/call");
                assert_eq!(name.as_deref(), Some("echo"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn member_order_does_not_matter_and_strings_borrow() {
        let m = one(r#"{"params":{"name":"t"},"method":"tools/call","id":"abc","jsonrpc":"2.0"}"#);
        match m {
            Message::Request {
                id, method, name, ..
            } => {
                assert_eq!(id, RequestId::Text("abc".into()));
                assert!(matches!(method, Cow::Borrowed(_)));
                assert_eq!(name.as_deref(), Some("t"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_escaped_string_is_unescaped() {
        let m =
            one(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a\u0042"}}"#);
        assert!(matches!(m, Message::Request { name: Some(n), .. } if n == "aB"));
    }

    #[test]
    fn results_tell_is_error_and_protocol_version() {
        let m = one(
            r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"x"}],"isError":true}}"#,
        );
        assert_eq!(
            m,
            Message::Response {
                id: Some(RequestId::Int(1)),
                outcome: Outcome::Result {
                    is_error: true,
                    protocol_version: None
                }
            }
        );
        let m = one(
            r#"{"jsonrpc":"2.0","id":0,"result":{"protocolVersion":"2025-11-25","capabilities":{}}}"#,
        );
        assert!(matches!(
            m,
            Message::Response { outcome: Outcome::Result { is_error: false, protocol_version: Some(v) }, .. } if v == "2025-11-25"
        ));
    }

    #[test]
    fn errors_carry_their_code_and_a_null_id_is_kept_as_none() {
        let m = one(
            r#"{"jsonrpc":"2.0","id":"x","error":{"code":-32601,"message":"Method not found"}}"#,
        );
        assert_eq!(
            m,
            Message::Response {
                id: Some(RequestId::Text("x".into())),
                outcome: Outcome::Error { code: Some(-32601) }
            }
        );
        let m = one(r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse"}}"#);
        assert!(matches!(m, Message::Response { id: None, .. }));
        let m = one(r#"{"jsonrpc":"2.0","id":3,"error":{"code":"weird"}}"#);
        assert!(matches!(
            m,
            Message::Response {
                outcome: Outcome::Error { code: None },
                ..
            }
        ));
    }

    #[test]
    fn ids_keep_their_type() {
        let m = one(r#"{"jsonrpc":"2.0","id":"1","result":{}}"#);
        assert!(matches!(m, Message::Response { id: Some(RequestId::Text(t)), .. } if t == "1"));
        let m = one(r#"{"jsonrpc":"2.0","id":1.5,"result":{}}"#);
        assert!(matches!(
            m,
            Message::Response {
                id: Some(RequestId::Float(_)),
                ..
            }
        ));
    }

    #[test]
    fn cancellation_names_the_request() {
        let m = one(
            r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":5,"reason":"user"}}"#,
        );
        assert_eq!(
            m,
            Message::Notification {
                method: "notifications/cancelled".into(),
                request_id: Some(RequestId::Int(5))
            }
        );
    }

    #[test]
    fn the_modern_version_is_read_from_meta() {
        let m = one(
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","other":[1,2]}}}"#,
        );
        assert!(matches!(m, Message::Request { modern_version: Some(v), .. } if v == "2026-07-28"));
    }

    #[test]
    fn odd_but_valid_shapes_are_not_malformed() {
        one(r#"{"jsonrpc":"2.0","id":1,"method":"x","params":[1,2,{"name":"y"}]}"#);
        one(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":5}}"#);
        one(r#"{"jsonrpc":"2.0","id":1,"result":"text"}"#);
        one(r#"{"jsonrpc":"2.0","id":1,"result":{"isError":"yes"}}"#);
    }

    #[test]
    fn batches_are_read_message_by_message() {
        let messages = parse_frame(
            br#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/initialized"}]"#,
        )
        .expect("parses");
        assert_eq!(messages.len(), 2);
        assert!(parse_frame(b"[]").is_err());
    }

    #[test]
    fn malformed_frames_are_errors() {
        for frame in [
            "not json",
            "{\"jsonrpc\":\"2.0\",\"id\":1",
            "\"a string\"",
            "{\"jsonrpc\":\"2.0\",\"id\":1}",
            "{\"jsonrpc\":\"2.0\",\"result\":{}}",
            "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{},\"error\":{\"code\":1}}",
            "{\"jsonrpc\":\"2.0\",\"method\":5}",
            "{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"x\"}",
            "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\"} trailing",
            "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\"}] trailing",
        ] {
            assert!(parse_frame(frame.as_bytes()).is_err(), "{frame}");
        }
    }

    #[test]
    fn a_large_result_is_skipped_without_being_built() {
        let text = "x".repeat(10 * 1024 * 1024);
        let frame = format!(
            r#"{{"jsonrpc":"2.0","id":9,"result":{{"content":[{{"type":"text","text":"{text}"}}]}}}}"#
        );
        let m = one(&frame);
        assert!(matches!(
            m,
            Message::Response {
                outcome: Outcome::Result {
                    is_error: false,
                    ..
                },
                ..
            }
        ));
    }
}

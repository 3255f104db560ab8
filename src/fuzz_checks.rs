//! Properties checked by the fuzz targets (`fuzz/`) and by the randomized regression test in
//! the normal suite: parsers of bytes from servers and of operator files never panic, respect
//! their size bounds, and do not depend on how the input is split into chunks.

use std::path::Path;

use crate::mcp::framing::{Frame, LineFramer};
use crate::mcp::jsonrpc;
use crate::mcp::sse::{SseItem, SseParser};

/// Size limit used by the checks (small, so oversize paths are reached).
pub const FUZZ_LIMIT: usize = 256;

/// Cut points derived from the first input byte, so the fuzzer also explores chunking.
fn chunks(data: &[u8]) -> (Vec<&[u8]>, &[u8]) {
    let Some((&seed, rest)) = data.split_first() else {
        return (Vec::new(), data);
    };
    let step = usize::from(seed % 17) + 1;
    (rest.chunks(step).collect(), rest)
}

/// Newline framing + JSON-RPC classification: no panic, lines within the limit, and the same
/// frames whether the bytes arrive at once or in chunks.
pub fn check_jsonrpc_framing(data: &[u8]) {
    let (parts, whole) = chunks(data);
    let mut one = LineFramer::new(FUZZ_LIMIT);
    let mut expected = Vec::new();
    one.push(whole, &mut expected);
    one.finish(&mut expected);
    let mut split = LineFramer::new(FUZZ_LIMIT);
    let mut got = Vec::new();
    for p in parts {
        split.push(p, &mut got);
    }
    split.finish(&mut got);
    assert_eq!(expected, got, "framing depends on chunking");
    for frame in got {
        if let Frame::Line(line) = frame {
            assert!(line.len() <= FUZZ_LIMIT, "line above the limit");
            if let Ok(value) = serde_json::from_slice::<serde_json::Value>(&line) {
                let _ = jsonrpc::classify(value);
            }
        }
    }
    let _ = jsonrpc::error_in_body(data);
}

/// SSE parsing: no panic, events within the limit, chunking-independent.
pub fn check_sse(data: &[u8]) {
    let (parts, whole) = chunks(data);
    let mut one = SseParser::new(FUZZ_LIMIT);
    let mut expected = Vec::new();
    one.push(whole, &mut expected);
    let mut split = SseParser::new(FUZZ_LIMIT);
    let mut got = Vec::new();
    for p in parts {
        split.push(p, &mut got);
    }
    assert_eq!(
        format!("{expected:?}"),
        format!("{got:?}"),
        "SSE parsing depends on chunking"
    );
    for item in got {
        if let SseItem::Event(e) = item {
            assert!(e.data.len() <= FUZZ_LIMIT, "event above the limit");
        }
    }
}

/// Config files (TOML) and web config files (YAML): no panic; errors render.
pub fn check_config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Err(e) = crate::settings::Config::from_toml(&text, Path::new("fuzz.toml")) {
        let _ = e.to_string();
    }
    let _ = crate::web::config::parse_users(&text);
    let _ = crate::security::redact::redact(&text);
}

//! Reads a JSON-RPC frame as its chunks pass, without holding it: a bounded JSON lexer that
//! validates every byte and keeps only the members accounting reads ([`super::parse`]): a
//! message's `id`, `method`, `params`, `result` and `error`; inside those, `name`,
//! `protocolVersion`, `requestId`, `_meta` (and its modern protocol version), `isError` and
//! `code`. Everything else (a tool's arguments, a result's content) is checked and dropped as it
//! passes, so a 10 MB result costs one pass and no buffer. What is kept is a small JSON text,
//! the frame's *skeleton*, that [`parse_frame`] reads exactly as it would read the whole frame.
//!
//! The skeleton is bounded ([`MAX_SKELETON_BYTES`], [`MAX_DEPTH`]): a frame that would need
//! more (an id of megabytes, thousands of repeated members, nesting thousands deep) is reported
//! as [`Scanned::Unparsed`], counted as an oversized message rather than guessed at.

use super::parse::{MODERN_VERSION_META_KEY, Malformed, Message, parse_frame};

/// Most bytes of a frame's skeleton.
pub const MAX_SKELETON_BYTES: usize = 256 * 1024;
/// Deepest nesting followed (skipped containers included).
pub const MAX_DEPTH: usize = 4096;
/// Longest object key remembered (longer keys are never ones accounting reads).
const MAX_KEY_BYTES: usize = 256;
/// Skeleton capacity kept between frames.
const KEEP_CAPACITY: usize = 16 * 1024;

/// What a finished frame turned out to be.
#[derive(Debug)]
pub enum Scanned<'a> {
    /// Empty or whitespace only: not a message.
    Blank,
    /// Too large to read within the bounds: counted, not read.
    Unparsed {
        /// The frame's size in bytes.
        size: usize,
    },
    /// Read: its messages, or why it is not JSON-RPC.
    Read {
        /// The frame's size in bytes.
        size: usize,
        /// What [`parse_frame`] makes of it.
        parsed: Result<Vec<Message<'a>>, Malformed>,
    },
}

/// How a container is kept in the skeleton.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Not written at all.
    Skip,
    /// Written as an empty container of the same type (its contents never matter).
    Empty,
    /// The top-level array of a batch: every element written.
    Batch,
    /// A message object: `id`, `method`, `params`, `result`, `error` written.
    Message,
    /// `params`, `result` or `error`: the members accounting reads written.
    Inner,
    /// `params._meta`: the modern protocol version written.
    Meta,
}

/// How the next value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    /// Checked only.
    Skip,
    /// Written: an object in `object` mode, an array in `array` mode, a string as it is
    /// (`verbatim`) or as `""` (its contents never matter).
    Emit {
        object: Mode,
        array: Mode,
        verbatim: bool,
    },
}

const TOP: Plan = Plan::Emit {
    object: Mode::Message,
    array: Mode::Batch,
    verbatim: true,
};
const SCALAR: Plan = Plan::Emit {
    object: Mode::Empty,
    array: Mode::Empty,
    verbatim: true,
};

#[derive(Debug, Clone, Copy)]
struct Container {
    object: bool,
    mode: Mode,
    /// A member or element was written (the next one needs a comma).
    written: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Num {
    Minus,
    Zero,
    Int,
    Dot,
    Frac,
    Exp,
    ExpSign,
    ExpDigits,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Esc {
    None,
    Backslash,
    Hex(u8),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lex {
    /// A value is next.
    Value,
    /// Just after `[`: a value or `]`.
    ValueOrEnd,
    /// Just after `{`: a key or `}`.
    KeyOrEnd,
    /// After `,` in an object: a key.
    Key,
    /// After a key: `:`.
    Colon,
    /// After a value inside a container: `,` or the close.
    AfterValue,
    /// Inside a string (a key when `key`); written when `emit`.
    Str { key: bool, emit: bool, esc: Esc },
    /// Inside a number; written when `emit`.
    Number { emit: bool, state: Num },
    /// Inside `true`, `false` or `null`: `at` bytes of `word` read.
    Literal {
        emit: bool,
        word: &'static [u8],
        at: u8,
    },
    /// The top-level value is complete: only whitespace may follow.
    Done,
    /// Not JSON (the reason is kept).
    Failed,
}

/// Reads one frame at a time, fed in chunks; reusable for the next frame after
/// [`FrameScanner::finish`].
#[derive(Debug)]
pub struct FrameScanner {
    lex: Lex,
    stack: Vec<Container>,
    /// The plan of the value about to start.
    plan: Plan,
    skeleton: Vec<u8>,
    key: Vec<u8>,
    key_long: bool,
    key_escaped: bool,
    /// The key being read is one of a kept container's (so it is remembered).
    collect_key: bool,
    size: usize,
    content: bool,
    failure: Option<&'static str>,
    /// Past a bound: the rest of the frame is only counted.
    over: bool,
    finished: bool,
}

impl Default for FrameScanner {
    fn default() -> Self {
        FrameScanner::new()
    }
}

impl FrameScanner {
    /// A scanner for the first frame.
    pub fn new() -> Self {
        FrameScanner {
            lex: Lex::Value,
            stack: Vec::new(),
            plan: TOP,
            skeleton: Vec::new(),
            key: Vec::new(),
            key_long: false,
            key_escaped: false,
            collect_key: false,
            size: 0,
            content: false,
            failure: None,
            over: false,
            finished: false,
        }
    }

    /// Bytes of the current frame so far.
    pub fn size(&self) -> usize {
        if self.finished { 0 } else { self.size }
    }

    /// Bytes held for the current frame (its skeleton and open containers).
    pub fn held(&self) -> usize {
        if self.finished {
            return 0;
        }
        self.skeleton.len() + self.stack.len() * std::mem::size_of::<Container>() + self.key.len()
    }

    /// Feeds the next chunk of the current frame.
    pub fn push(&mut self, mut bytes: &[u8]) {
        if self.finished {
            self.reset();
        }
        self.size += bytes.len();
        if !self.content && bytes.iter().any(|b| !b.is_ascii_whitespace()) {
            self.content = true;
        }
        while !bytes.is_empty() && !self.over {
            match self.lex {
                Lex::Failed => return,
                Lex::Done => {
                    if bytes.iter().any(|&b| !is_ws(b)) {
                        self.fail("trailing characters");
                    }
                    return;
                }
                Lex::Str { key, emit, esc } => {
                    let used = self.string(bytes, key, emit, esc);
                    bytes = &bytes[used..];
                }
                _ => {
                    let b = bytes[0];
                    bytes = &bytes[1..];
                    self.byte(b);
                }
            }
        }
    }

    /// The frame is complete: what it is. The scanner is ready for the next frame.
    pub fn finish(&mut self) -> Scanned<'_> {
        if self.finished {
            self.reset();
        }
        self.finished = true;
        let size = self.size;
        if !self.content {
            return Scanned::Blank;
        }
        // A number at the end of a frame ends there (only at top level, which is malformed
        // anyway; inside a container it would be unterminated).
        if self.over {
            return Scanned::Unparsed { size };
        }
        match self.lex {
            Lex::Failed => Scanned::Read {
                size,
                parsed: Err(Malformed(self.failure.unwrap_or("not JSON").to_string())),
            },
            Lex::Done => Scanned::Read {
                size,
                parsed: parse_frame(&self.skeleton),
            },
            _ => Scanned::Read {
                size,
                parsed: Err(Malformed("EOF while parsing a value".to_string())),
            },
        }
    }

    /// Drops the current frame: the next byte starts a new one.
    pub fn reset(&mut self) {
        self.lex = Lex::Value;
        self.stack.clear();
        self.plan = TOP;
        if self.skeleton.capacity() > KEEP_CAPACITY {
            self.skeleton = Vec::new();
        } else {
            self.skeleton.clear();
        }
        self.key.clear();
        self.key_long = false;
        self.key_escaped = false;
        self.collect_key = false;
        self.size = 0;
        self.content = false;
        self.failure = None;
        self.over = false;
        self.finished = false;
    }

    fn fail(&mut self, reason: &'static str) {
        self.lex = Lex::Failed;
        self.failure = Some(reason);
    }

    fn write(&mut self, bytes: &[u8]) {
        if self.skeleton.len() + bytes.len() > MAX_SKELETON_BYTES {
            self.over = true;
            return;
        }
        self.skeleton.extend_from_slice(bytes);
    }

    /// One byte outside strings.
    fn byte(&mut self, b: u8) {
        match self.lex {
            Lex::Value | Lex::ValueOrEnd => {
                if is_ws(b) {
                    return;
                }
                if b == b']' && self.lex == Lex::ValueOrEnd {
                    self.close(false);
                    return;
                }
                self.value(b);
            }
            Lex::KeyOrEnd | Lex::Key => {
                if is_ws(b) {
                    return;
                }
                if b == b'}' && self.lex == Lex::KeyOrEnd {
                    self.close(true);
                } else if b == b'"' {
                    let mode = self.stack.last().map_or(Mode::Skip, |c| c.mode);
                    self.collect_key = matches!(mode, Mode::Message | Mode::Inner | Mode::Meta);
                    self.key.clear();
                    self.key_long = false;
                    self.key_escaped = false;
                    self.lex = Lex::Str {
                        key: true,
                        emit: false,
                        esc: Esc::None,
                    };
                } else {
                    self.fail("expected a key");
                }
            }
            Lex::Colon => {
                if is_ws(b) {
                    return;
                }
                if b != b':' {
                    self.fail("expected `:`");
                    return;
                }
                self.member();
                if self.lex == Lex::Colon {
                    self.lex = Lex::Value;
                }
            }
            Lex::AfterValue => {
                if is_ws(b) {
                    return;
                }
                let Some(top) = self.stack.last().copied() else {
                    self.lex = Lex::Done;
                    return;
                };
                match b {
                    b',' if top.object => self.lex = Lex::Key,
                    b',' => {
                        self.plan = element_plan(top.mode);
                        self.lex = Lex::Value;
                    }
                    b'}' if top.object => self.close(true),
                    b']' if !top.object => self.close(false),
                    _ => self.fail("expected `,` or the end of a container"),
                }
            }
            Lex::Number { emit, state } => self.number(b, emit, state),
            Lex::Literal { emit, word, at } => {
                if word.get(usize::from(at)) != Some(&b) {
                    self.fail("invalid literal");
                    return;
                }
                if emit {
                    self.write(&[b]);
                }
                if usize::from(at) + 1 == word.len() {
                    self.after_value();
                } else {
                    self.lex = Lex::Literal {
                        emit,
                        word,
                        at: at + 1,
                    };
                }
            }
            Lex::Str { .. } | Lex::Done | Lex::Failed => {}
        }
    }

    /// The first byte of a value, under `self.plan`.
    fn value(&mut self, b: u8) {
        let plan = self.plan;
        if self.stack.is_empty() && !matches!(b, b'{' | b'[') {
            self.fail("a frame is an object or a batch");
            return;
        }
        let emit = plan != Plan::Skip;
        // An element of a written array needs its comma.
        if emit
            && let Some(parent) = self.stack.last_mut()
            && !parent.object
        {
            let comma = parent.written;
            parent.written = true;
            if comma {
                self.write(b",");
            }
        }
        match b {
            b'{' | b'[' => {
                if self.stack.len() >= MAX_DEPTH {
                    self.over = true;
                    return;
                }
                let object = b == b'{';
                let mode = match plan {
                    Plan::Skip => Mode::Skip,
                    Plan::Emit { object: o, .. } if object => o,
                    Plan::Emit { array, .. } => array,
                };
                if mode != Mode::Skip {
                    self.write(&[b]);
                }
                self.stack.push(Container {
                    object,
                    mode,
                    written: false,
                });
                if object {
                    self.lex = Lex::KeyOrEnd;
                } else {
                    self.plan = element_plan(mode);
                    self.lex = Lex::ValueOrEnd;
                }
            }
            b'"' => {
                let verbatim = matches!(plan, Plan::Emit { verbatim: true, .. });
                if emit {
                    self.write(if verbatim { b"\"" } else { b"\"\"" });
                }
                self.lex = Lex::Str {
                    key: false,
                    emit: verbatim,
                    esc: Esc::None,
                };
            }
            b'-' | b'0'..=b'9' => {
                if emit {
                    self.write(&[b]);
                }
                let state = match b {
                    b'-' => Num::Minus,
                    b'0' => Num::Zero,
                    _ => Num::Int,
                };
                self.lex = Lex::Number { emit, state };
            }
            b't' | b'f' | b'n' => {
                if emit {
                    self.write(&[b]);
                }
                let word: &'static [u8] = match b {
                    b't' => b"true",
                    b'f' => b"false",
                    _ => b"null",
                };
                self.lex = Lex::Literal { emit, word, at: 1 };
            }
            _ => self.fail("expected a value"),
        }
    }

    /// A key was read and its `:` seen: how its value is written.
    fn member(&mut self) {
        let Some(parent) = self.stack.last().copied() else {
            self.fail("a member outside an object");
            return;
        };
        let key = self.key_text();
        let plan = match (parent.mode, key.as_deref()) {
            (Mode::Message, Some("id" | "method")) => SCALAR,
            (Mode::Message, Some("params" | "result" | "error")) => Plan::Emit {
                object: Mode::Inner,
                array: Mode::Empty,
                verbatim: false,
            },
            (Mode::Inner, Some("name" | "protocolVersion" | "requestId" | "isError" | "code")) => {
                SCALAR
            }
            (Mode::Inner, Some("_meta")) => Plan::Emit {
                object: Mode::Meta,
                array: Mode::Empty,
                verbatim: true,
            },
            (Mode::Meta, Some(MODERN_VERSION_META_KEY)) => SCALAR,
            _ => Plan::Skip,
        };
        if plan != Plan::Skip
            && let Some(key) = key
        {
            let comma = parent.written;
            if let Some(top) = self.stack.last_mut() {
                top.written = true;
            }
            if comma {
                self.write(b",");
            }
            self.write(b"\"");
            self.write(key.as_bytes());
            self.write(b"\":");
        }
        self.plan = plan;
    }

    /// The key just read, when it is one that could be kept.
    fn key_text(&self) -> Option<String> {
        if !self.collect_key || self.key_long {
            return None;
        }
        if !self.key_escaped {
            return std::str::from_utf8(&self.key).ok().map(str::to_string);
        }
        let mut quoted = Vec::with_capacity(self.key.len() + 2);
        quoted.push(b'"');
        quoted.extend_from_slice(&self.key);
        quoted.push(b'"');
        serde_json::from_slice::<String>(&quoted).ok()
    }

    fn close(&mut self, object: bool) {
        let Some(top) = self.stack.pop() else {
            self.fail("unbalanced close");
            return;
        };
        if top.object != object {
            self.fail("mismatched close");
            return;
        }
        if top.mode != Mode::Skip {
            self.write(if object { b"}" } else { b"]" });
        }
        self.after_value();
    }

    fn after_value(&mut self) {
        self.lex = if self.stack.is_empty() {
            Lex::Done
        } else {
            Lex::AfterValue
        };
    }

    fn number(&mut self, b: u8, emit: bool, state: Num) {
        let next = match (state, b) {
            (Num::Minus, b'0') => Some(Num::Zero),
            (Num::Minus, b'1'..=b'9') => Some(Num::Int),
            (Num::Zero, b'0'..=b'9') => {
                self.fail("invalid number");
                return;
            }
            (Num::Int, b'0'..=b'9') => Some(Num::Int),
            (Num::Zero | Num::Int, b'.') => Some(Num::Dot),
            (Num::Dot | Num::Frac, b'0'..=b'9') => Some(Num::Frac),
            (Num::Zero | Num::Int | Num::Frac, b'e' | b'E') => Some(Num::Exp),
            (Num::Exp, b'+' | b'-') => Some(Num::ExpSign),
            (Num::Exp | Num::ExpSign | Num::ExpDigits, b'0'..=b'9') => Some(Num::ExpDigits),
            _ => None,
        };
        match next {
            Some(state) => {
                if emit {
                    self.write(&[b]);
                }
                self.lex = Lex::Number { emit, state };
            }
            None if matches!(state, Num::Zero | Num::Int | Num::Frac | Num::ExpDigits) => {
                // The number ended: the byte belongs to what follows.
                self.after_value();
                self.byte(b);
            }
            None => self.fail("invalid number"),
        }
    }

    /// Reads string bytes from the start of `bytes`; returns how many were used.
    fn string(&mut self, bytes: &[u8], key: bool, emit: bool, mut esc: Esc) -> usize {
        let mut i = 0;
        while i < bytes.len() {
            match esc {
                Esc::None => {
                    let run = plain_run(&bytes[i..]);
                    if run > 0 {
                        self.keep_string_bytes(key, emit, &bytes[i..i + run]);
                        i += run;
                        continue;
                    }
                    let b = bytes[i];
                    i += 1;
                    match b {
                        b'"' => {
                            if emit {
                                self.write(b"\"");
                            }
                            if key {
                                self.lex = Lex::Colon;
                            } else {
                                self.after_value();
                            }
                            return i;
                        }
                        b'\\' => {
                            self.keep_string_bytes(key, emit, b"\\");
                            if key {
                                self.key_escaped = true;
                            }
                            esc = Esc::Backslash;
                        }
                        _ => {
                            self.fail("control character in a string");
                            return bytes.len();
                        }
                    }
                }
                Esc::Backslash => {
                    let b = bytes[i];
                    i += 1;
                    esc = match b {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Esc::None,
                        b'u' => Esc::Hex(4),
                        _ => {
                            self.fail("invalid escape");
                            return bytes.len();
                        }
                    };
                    self.keep_string_bytes(key, emit, &[b]);
                }
                Esc::Hex(left) => {
                    let b = bytes[i];
                    i += 1;
                    if !b.is_ascii_hexdigit() {
                        self.fail("invalid \\u escape");
                        return bytes.len();
                    }
                    self.keep_string_bytes(key, emit, &[b]);
                    esc = if left == 1 {
                        Esc::None
                    } else {
                        Esc::Hex(left - 1)
                    };
                }
            }
        }
        self.lex = Lex::Str { key, emit, esc };
        i
    }

    fn keep_string_bytes(&mut self, key: bool, emit: bool, bytes: &[u8]) {
        if key {
            if self.collect_key && !self.key_long {
                if self.key.len() + bytes.len() > MAX_KEY_BYTES {
                    self.key_long = true;
                    self.key.clear();
                } else {
                    self.key.extend_from_slice(bytes);
                }
            }
        } else if emit {
            self.write(bytes);
        }
    }
}

/// How to write the elements of an array in `mode`.
fn element_plan(mode: Mode) -> Plan {
    match mode {
        Mode::Batch => Plan::Emit {
            object: Mode::Message,
            array: Mode::Empty,
            verbatim: true,
        },
        _ => Plan::Skip,
    }
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\r' | b'\t')
}

/// A string byte that ends a plain run: the quote, a backslash or a control character.
fn is_special(b: u8) -> bool {
    (b == b'"') | (b == b'\\') | (b < 0x20)
}

/// How many bytes from the start of `bytes` are plain string content. Blocks of 64 bytes are
/// tested without branches (bitwise, not short-circuit: the compiler turns each block into a
/// few vector compares), so skipping a megabyte of text costs well under 0.1 ms; a byte loop
/// with `||` costs 2.5 ms.
fn plain_run(bytes: &[u8]) -> usize {
    const BLOCK: usize = 64;
    let mut offset = 0;
    for block in bytes.chunks_exact(BLOCK) {
        let mut hit = 0u8;
        for &b in block {
            hit |= u8::from(b == b'"') | u8::from(b == b'\\') | u8::from(b < 0x20);
        }
        if hit != 0 {
            break;
        }
        offset += BLOCK;
    }
    offset
        + bytes[offset..]
            .iter()
            .position(|&b| is_special(b))
            .unwrap_or(bytes.len() - offset)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traffic::parse::parse_frame;

    /// What the whole-frame parser says, in a comparable form.
    fn whole(frame: &[u8]) -> String {
        if frame.iter().all(u8::is_ascii_whitespace) {
            return "blank".into();
        }
        match parse_frame(frame) {
            Ok(messages) => format!("{messages:?}"),
            Err(_) => "malformed".into(),
        }
    }

    fn scanned(chunks: &[&[u8]]) -> String {
        let mut scanner = FrameScanner::new();
        for chunk in chunks {
            scanner.push(chunk);
        }
        match scanner.finish() {
            Scanned::Blank => "blank".into(),
            Scanned::Unparsed { .. } => "unparsed".into(),
            Scanned::Read { parsed: Ok(m), .. } => format!("{m:?}"),
            Scanned::Read { parsed: Err(_), .. } => "malformed".into(),
        }
    }

    const FRAMES: &[&str] = &[
        r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"name":"not this","x":[1,2,{"a":null}]}}}"#,
        r#"{"params":{"name":"t"},"method":"tools/call","id":"abc","jsonrpc":"2.0"}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a\u0042\n\"x\\"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"x\ty"}],"isError":true}}"#,
        r#"{"jsonrpc":"2.0","id":0,"result":{"protocolVersion":"2025-11-25","capabilities":{}}}"#,
        r#"{"jsonrpc":"2.0","id":"x","error":{"code":-32601,"message":"Method not found"}}"#,
        r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse"}}"#,
        r#"{"jsonrpc":"2.0","id":3,"error":{"code":"weird"}}"#,
        r#"{"jsonrpc":"2.0","id":3,"error":{"code":1.5e3}}"#,
        r#"{"jsonrpc":"2.0","id":3,"error":{"code":[1]}}"#,
        r#"{"jsonrpc":"2.0","id":3,"error":"text"}"#,
        r#"{"jsonrpc":"2.0","id":"1","result":{}}"#,
        r#"{"jsonrpc":"2.0","id":1.5,"result":{}}"#,
        r#"{"jsonrpc":"2.0","id":-0.5e-3,"result":{}}"#,
        r#"{"jsonrpc":"2.0","id":123456789012345678901234567890,"result":{}}"#,
        r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":5,"reason":"user"}}"#,
        r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":{"a":1}}}"#,
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","other":[1,2]}}}"#,
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":{"x":1}}}}"#,
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{"_meta":[1]}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"x","params":[1,2,{"name":"y"}]}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":5}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":true}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"x","params":null}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"x","params":"s"}"#,
        r#"{"jsonrpc":"2.0","id":1,"result":"text"}"#,
        r#"{"jsonrpc":"2.0","id":1,"result":[1,2]}"#,
        r#"{"jsonrpc":"2.0","id":1,"result":{"isError":"yes"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"result":{"isError":false,"isError":true}}"#,
        r#"{"id":1,"id":2,"method":"a","method":"b"}"#,
        r#"{"\u0069d":1,"method":"ping"}"#,
        r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/initialized"}]"#,
        r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}, 5]"#,
        r#"[[]]"#,
        "[]",
        "  {\"jsonrpc\":\"2.0\",\"method\":\"x\"}  \r\n",
        "not json",
        "{\"jsonrpc\":\"2.0\",\"id\":1",
        "\"a string\"",
        "17",
        "{\"jsonrpc\":\"2.0\",\"id\":1}",
        "{\"jsonrpc\":\"2.0\",\"result\":{}}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{},\"error\":{\"code\":1}}",
        "{\"jsonrpc\":\"2.0\",\"method\":5}",
        "{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"x\"}",
        "{\"jsonrpc\":\"2.0\",\"id\":[],\"method\":\"x\"}",
        "{\"jsonrpc\":\"2.0\",\"id\":true,\"method\":\"x\"}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\"} trailing",
        "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\"}] trailing",
        "{\"jsonrpc\":\"2.0\",\"id\":01,\"method\":\"x\"}",
        "{\"jsonrpc\":\"2.0\",\"id\":1.,\"method\":\"x\"}",
        "{\"jsonrpc\":\"2.0\",\"id\":1e,\"method\":\"x\"}",
        "{\"jsonrpc\":\"2.0\",\"id\":-,\"method\":\"x\"}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\",\"skip\":[1,2,}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\",\"skip\":\"a\u{1}b\"}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\",\"skip\":\"\\q\"}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\",\"skip\":\"\\u12g4\"}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\",\"skip\":tru}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\",\"skip\":nulll}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\",}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\" \"y\":1}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\",\"skip\":{\"a\" 1}}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\",\"skip\":[}",
        "{\"jsonrpc\":\"2.0\" \u{c} ,\"id\":1,\"method\":\"x\"}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\"}}",
        "",
        "   \t",
    ];

    #[test]
    fn a_scanned_frame_reads_as_the_whole_frame_does_split_anywhere() {
        for frame in FRAMES {
            let bytes = frame.as_bytes();
            let expected = whole(bytes);
            assert_eq!(scanned(&[bytes]), expected, "{frame}");
            for at in 0..=bytes.len() {
                let (a, b) = bytes.split_at(at);
                assert_eq!(scanned(&[a, b]), expected, "{frame} split at {at}");
            }
            let bytewise: Vec<&[u8]> = bytes.chunks(1).collect();
            assert_eq!(scanned(&bytewise), expected, "{frame} byte by byte");
        }
    }

    #[test]
    fn a_large_result_passes_without_being_held() {
        let text = "x".repeat(10 * 1024 * 1024);
        let frame = format!(
            r#"{{"jsonrpc":"2.0","id":9,"result":{{"content":[{{"type":"text","text":"{text}"}}],"isError":true,"structured":{{"a":[{text:?}]}}}}}}"#
        );
        let mut scanner = FrameScanner::new();
        let mut most = 0;
        for chunk in frame.as_bytes().chunks(64 * 1024) {
            scanner.push(chunk);
            most = most.max(scanner.held());
        }
        assert!(most < 1024, "held {most} bytes");
        assert_eq!(scanned(&[frame.as_bytes()]), whole(frame.as_bytes()));
        match scanner.finish() {
            Scanned::Read {
                size,
                parsed: Ok(m),
            } => {
                assert_eq!(size, frame.len());
                assert!(format!("{m:?}").contains("is_error: true"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_plain_run_ends_at_the_first_special_byte_wherever_it_is() {
        for len in 0..200 {
            let mut bytes = vec![b'x'; len];
            assert_eq!(plain_run(&bytes), len);
            for at in 0..len {
                for special in [b'"', b'\\', 0x1f, b'\n'] {
                    bytes.fill(b'x');
                    bytes[at] = special;
                    assert_eq!(plain_run(&bytes), at, "len {len} at {at}");
                }
            }
        }
        assert_eq!(plain_run(&[0x20, 0x7f, 0x80, 0xff, 0x22]), 4);
    }

    #[test]
    fn past_a_bound_a_frame_is_unparsed_not_guessed() {
        let long_id = format!(
            r#"{{"id":"{}","method":"x"}}"#,
            "i".repeat(MAX_SKELETON_BYTES)
        );
        assert_eq!(scanned(&[long_id.as_bytes()]), "unparsed");
        let deep = format!(
            r#"{{"id":1,"method":"x","params":{{"a":{}{}}}}}"#,
            "[".repeat(MAX_DEPTH),
            "]".repeat(MAX_DEPTH)
        );
        assert_eq!(scanned(&[deep.as_bytes()]), "unparsed");
        // Nesting below the bound that is skipped costs no skeleton.
        let nested = format!(
            r#"{{"id":1,"method":"x","params":{{"a":{}{}}}}}"#,
            "[".repeat(1000),
            "]".repeat(1000)
        );
        assert_eq!(scanned(&[nested.as_bytes()]), whole(nested.as_bytes()));
    }

    #[test]
    fn the_scanner_is_reused_frame_after_frame() {
        let mut scanner = FrameScanner::new();
        scanner.push(b"{\"id\":1,");
        scanner.push(b"\"method\":\"ping\"}");
        assert!(matches!(
            scanner.finish(),
            Scanned::Read {
                parsed: Ok(_),
                size: 24
            }
        ));
        scanner.push(b"{\"id\":");
        assert!(matches!(
            scanner.finish(),
            Scanned::Read { parsed: Err(_), .. }
        ));
        scanner.push(b"  ");
        assert!(matches!(scanner.finish(), Scanned::Blank));
        scanner.push(b"{\"id\":2,\"result\":{}}");
        match scanner.finish() {
            Scanned::Read { parsed: Ok(m), .. } => {
                assert!(matches!(m[0], Message::Response { .. }))
            }
            other => panic!("{other:?}"),
        }
    }
}

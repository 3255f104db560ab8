//! Incremental Server-Sent Events parser (WHATWG rules) with a bounded event size.
//!
//! Handles `event`/`data`/`id`/`retry` fields, comment lines, LF / CRLF / CR line ends (also
//! split across chunks), and skips events with empty data such as the priming events of
//! MCP 2025-11-25. An event larger than the limit is reported once and skipped without buffering.

/// One dispatched event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SseEvent {
    /// Event type; `message` when the server sent none.
    pub event: String,
    /// Data lines joined by `\n`.
    pub data: String,
    /// The last event id seen so far on this stream.
    pub id: Option<String>,
}

/// One item produced by [`SseParser`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SseItem {
    /// A complete event with non-empty data.
    Event(SseEvent),
    /// An event exceeded the limit and is being skipped up to its end.
    Oversize {
        /// The limit that was exceeded, in bytes.
        limit: usize,
    },
}

/// Incremental parser; feed it body chunks as they arrive.
#[derive(Debug)]
pub struct SseParser {
    max_event: usize,
    line: Vec<u8>,
    line_seen: bool,
    after_cr: bool,
    event_type: String,
    data: String,
    has_data: bool,
    event_bytes: usize,
    discarding: bool,
    last_id: Option<String>,
    retry_ms: Option<u64>,
}

impl SseParser {
    /// A parser accepting events of at most `max_event` bytes (all their lines together).
    pub fn new(max_event: usize) -> Self {
        SseParser {
            max_event,
            line: Vec::new(),
            line_seen: false,
            after_cr: false,
            event_type: String::new(),
            data: String::new(),
            has_data: false,
            event_bytes: 0,
            discarding: false,
            last_id: None,
            retry_ms: None,
        }
    }

    /// The last `id:` seen (for `Last-Event-ID` on reconnect).
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_id.as_deref()
    }

    /// The last valid `retry:` value in milliseconds.
    pub fn retry_ms(&self) -> Option<u64> {
        self.retry_ms
    }

    /// Feeds a chunk, appending dispatched events (and oversize reports) to `out`.
    pub fn push(&mut self, mut chunk: &[u8], out: &mut Vec<SseItem>) {
        if self.after_cr && chunk.first() == Some(&b'\n') {
            chunk = &chunk[1..];
        }
        self.after_cr = false;
        while !chunk.is_empty() {
            match chunk.iter().position(|&b| b == b'\n' || b == b'\r') {
                Some(i) => {
                    let is_cr = chunk[i] == b'\r';
                    self.take_bytes(&chunk[..i], out);
                    chunk = &chunk[i + 1..];
                    if is_cr {
                        if chunk.is_empty() {
                            self.after_cr = true;
                        } else if chunk[0] == b'\n' {
                            chunk = &chunk[1..];
                        }
                    }
                    self.end_line(out);
                }
                None => {
                    self.take_bytes(chunk, out);
                    chunk = &[];
                }
            }
        }
    }

    fn take_bytes(&mut self, bytes: &[u8], out: &mut Vec<SseItem>) {
        if bytes.is_empty() {
            return;
        }
        self.line_seen = true;
        if self.discarding {
            return;
        }
        self.event_bytes += bytes.len();
        if self.event_bytes > self.max_event {
            self.start_discarding(out);
            return;
        }
        self.line.extend_from_slice(bytes);
    }

    fn start_discarding(&mut self, out: &mut Vec<SseItem>) {
        self.discarding = true;
        self.line = Vec::new();
        self.data = String::new();
        self.has_data = false;
        out.push(SseItem::Oversize {
            limit: self.max_event,
        });
    }

    fn end_line(&mut self, out: &mut Vec<SseItem>) {
        let line = std::mem::take(&mut self.line);
        if !std::mem::replace(&mut self.line_seen, false) {
            self.dispatch(out);
            return;
        }
        if self.discarding {
            return;
        }
        self.event_bytes += 1;
        if self.event_bytes > self.max_event {
            self.start_discarding(out);
            return;
        }
        if line[0] == b':' {
            return;
        }
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (&line[..], &b""[..]),
        };
        let value = String::from_utf8_lossy(value);
        match name {
            b"event" => self.event_type = value.into_owned(),
            b"data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(&value);
                self.has_data = true;
                // Invalid UTF-8 grows threefold when replaced by U+FFFD: bound the decoded size
                // too (found by fuzzing; fuzz/regressions/sse_parse/lossy_utf8_amplification).
                if self.data.len() > self.max_event {
                    self.start_discarding(out);
                }
            }
            b"id" if !value.contains('\0') => self.last_id = Some(value.into_owned()),
            b"retry" => {
                if let Ok(ms) = value.parse::<u64>() {
                    self.retry_ms = Some(ms);
                }
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseItem>) {
        let event_type = std::mem::take(&mut self.event_type);
        let data = std::mem::take(&mut self.data);
        let has_data = std::mem::replace(&mut self.has_data, false);
        self.event_bytes = 0;
        if std::mem::replace(&mut self.discarding, false) {
            return;
        }
        if !has_data || data.is_empty() {
            return;
        }
        out.push(SseItem::Event(SseEvent {
            event: if event_type.is_empty() {
                "message".into()
            } else {
                event_type
            },
            data,
            id: self.last_id.clone(),
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(max: usize, chunks: &[&[u8]]) -> (Vec<SseItem>, SseParser) {
        let mut p = SseParser::new(max);
        let mut out = Vec::new();
        for c in chunks {
            p.push(c, &mut out);
        }
        (out, p)
    }

    fn ev(event: &str, data: &str, id: Option<&str>) -> SseItem {
        SseItem::Event(SseEvent {
            event: event.into(),
            data: data.into(),
            id: id.map(Into::into),
        })
    }

    #[test]
    fn parses_event_with_type_id_and_multiline_data() {
        let (out, _) = parse(
            1000,
            &[b"event: endpoint\nid: 7\ndata: /message?s=1\ndata:second\n\n"],
        );
        assert_eq!(out, vec![ev("endpoint", "/message?s=1\nsecond", Some("7"))]);
    }

    #[test]
    fn handles_crlf_and_bare_cr() {
        let (out, _) = parse(1000, &[b"data: a\r\n\r\ndata: b\r\rdata: c\n\n"]);
        assert_eq!(
            out,
            vec![
                ev("message", "a", None),
                ev("message", "b", None),
                ev("message", "c", None)
            ]
        );
    }

    #[test]
    fn crlf_split_across_chunks_is_one_line_end() {
        let (out, _) = parse(1000, &[b"data: x\r", b"\n", b"\r", b"\ndata: y\n\n"]);
        assert_eq!(
            out,
            vec![ev("message", "x", None), ev("message", "y", None)]
        );
    }

    #[test]
    fn byte_by_byte_feeding_gives_same_result() {
        let input = b": comment\r\nevent: message\r\nid: 42\r\ndata: {\"id\":1}\r\n\r\n";
        let chunks: Vec<&[u8]> = input.chunks(1).collect();
        let (out, p) = parse(1000, &chunks);
        assert_eq!(out, vec![ev("message", "{\"id\":1}", Some("42"))]);
        assert_eq!(p.last_event_id(), Some("42"));
    }

    #[test]
    fn comments_and_priming_events_are_skipped() {
        let (out, p) = parse(
            1000,
            &[b": keepalive\n\nid: prime-1\ndata: \n\nretry: 1500\n\nevent: message\ndata: {}\n\n"],
        );
        assert_eq!(out, vec![ev("message", "{}", Some("prime-1"))]);
        assert_eq!(p.retry_ms(), Some(1500));
    }

    #[test]
    fn oversize_event_reported_and_following_event_kept() {
        let big = vec![b'x'; 50];
        let (out, p) = parse(
            20,
            &[b"data: ", &big, &big, b"\ndata: more\n\ndata: ok\n\n"],
        );
        assert_eq!(
            out,
            vec![SseItem::Oversize { limit: 20 }, ev("message", "ok", None)]
        );
        assert!(p.line.is_empty() && p.data.is_empty());
    }

    #[test]
    fn many_small_lines_count_toward_the_event_limit() {
        let mut chunks: Vec<&[u8]> = vec![b"data: abc\n"; 20];
        chunks.push(b"\n");
        let (out, _) = parse(64, &chunks);
        assert_eq!(out, vec![SseItem::Oversize { limit: 64 }]);
    }

    #[test]
    fn field_without_colon_and_unknown_fields() {
        let (out, _) = parse(1000, &[b"data\nfoo: bar\n\ndata:x\n\n"]);
        // `data` alone adds an empty data line: the event has empty data and is skipped.
        assert_eq!(out, vec![ev("message", "x", None)]);
    }
}

//! Reads the events of a `text/event-stream` on the side, as its chunks pass: each event's
//! type and data (the JSON-RPC message MCP puts in it). Lines end in LF, CRLF or CR; a line
//! or an event past the size limit is reported as oversized and skipped, never buffered whole.

/// One event read from the stream.
#[derive(Debug, PartialEq, Eq)]
pub enum SseEvent<'a> {
    /// An event with data: its `event:` type (empty for the default, `message`) and its data
    /// lines joined by `\n`.
    Data {
        /// The `event:` field.
        kind: &'a [u8],
        /// The data.
        data: &'a [u8],
    },
    /// An event whose data was over the limit.
    Oversized,
}

/// Splits a stream of chunks into events.
#[derive(Debug)]
pub struct SseSplitter {
    max: usize,
    line: Vec<u8>,
    line_too_long: bool,
    data: Vec<u8>,
    has_data: bool,
    kind: Vec<u8>,
    event_too_long: bool,
    /// The previous chunk ended in CR: a LF starting this one ends nothing.
    after_cr: bool,
}

impl SseSplitter {
    /// A splitter keeping at most `max` bytes of one event's data.
    pub fn new(max: usize) -> Self {
        SseSplitter {
            max,
            line: Vec::new(),
            line_too_long: false,
            data: Vec::new(),
            has_data: false,
            kind: Vec::new(),
            event_too_long: false,
            after_cr: false,
        }
    }

    /// Feeds a chunk; `on_event` is called for every event it completes.
    pub fn push(&mut self, mut chunk: &[u8], mut on_event: impl FnMut(SseEvent<'_>)) {
        if self.after_cr && chunk.first() == Some(&b'\n') {
            chunk = &chunk[1..];
        }
        self.after_cr = false;
        while !chunk.is_empty() {
            match chunk.iter().position(|&b| b == b'\n' || b == b'\r') {
                Some(end) => {
                    self.append_to_line(&chunk[..end]);
                    let cr = chunk[end] == b'\r';
                    let mut next = end + 1;
                    if cr {
                        match chunk.get(next) {
                            Some(b'\n') => next += 1,
                            None => self.after_cr = true,
                            Some(_) => {}
                        }
                    }
                    self.end_line(&mut on_event);
                    chunk = &chunk[next..];
                }
                None => {
                    self.append_to_line(chunk);
                    break;
                }
            }
        }
    }

    fn append_to_line(&mut self, bytes: &[u8]) {
        if self.line_too_long {
            return;
        }
        if self.line.len() + bytes.len() > self.max + 16 {
            self.line_too_long = true;
            self.line.clear();
            return;
        }
        self.line.extend_from_slice(bytes);
    }

    fn end_line(&mut self, on_event: &mut impl FnMut(SseEvent<'_>)) {
        if std::mem::take(&mut self.line_too_long) {
            self.event_too_long = true;
            return;
        }
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            self.dispatch(on_event);
        } else {
            self.field(&line);
            self.line = line;
            self.line.clear();
        }
    }

    fn field(&mut self, line: &[u8]) {
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(0) => return, // a comment
            Some(i) => {
                let value = &line[i + 1..];
                (&line[..i], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        match name {
            b"data" => {
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.has_data = true;
                if self.data.len() + value.len() > self.max {
                    self.event_too_long = true;
                    self.data.clear();
                } else if !self.event_too_long {
                    self.data.extend_from_slice(value);
                }
            }
            b"event" => {
                self.kind.clear();
                self.kind.extend_from_slice(value);
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, on_event: &mut impl FnMut(SseEvent<'_>)) {
        if std::mem::take(&mut self.event_too_long) {
            on_event(SseEvent::Oversized);
        } else if self.has_data {
            on_event(SseEvent::Data {
                kind: &self.kind,
                data: &self.data,
            });
        }
        self.data.clear();
        self.kind.clear();
        self.has_data = false;
    }
}

/// Where the first event of `bytes` ends (just past its blank line), if it is complete.
pub fn first_event_end(bytes: &[u8]) -> Option<usize> {
    let mut line_start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'\n' || b == b'\r' {
            let mut next = i + 1;
            if b == b'\r' {
                match bytes.get(next) {
                    Some(b'\n') => next += 1,
                    // A CR at the very end may still be followed by LF.
                    None => return None,
                    Some(_) => {}
                }
            }
            if i == line_start {
                return Some(next);
            }
            line_start = next;
            i = next;
        } else {
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(chunks: &[&[u8]], max: usize) -> Vec<(String, String)> {
        let mut s = SseSplitter::new(max);
        let mut out = Vec::new();
        for chunk in chunks {
            s.push(chunk, |e| {
                out.push(match e {
                    SseEvent::Data { kind, data } => (
                        String::from_utf8_lossy(kind).into_owned(),
                        String::from_utf8_lossy(data).into_owned(),
                    ),
                    SseEvent::Oversized => ("!".into(), String::new()),
                })
            });
        }
        out
    }

    #[test]
    fn events_split_at_any_byte_and_any_line_ending() {
        let text = b"event: endpoint\r\ndata: /m?s=1\r\n\r\n: ping\n\ndata: {\"a\":\ndata:1}\n\nid: 7\ndata:\r\rdata: x\n\n";
        let whole = events(&[text], 1024);
        let expected = vec![
            ("endpoint".to_string(), "/m?s=1".to_string()),
            (String::new(), "{\"a\":\n1}".to_string()),
            (String::new(), String::new()),
            (String::new(), "x".to_string()),
        ];
        assert_eq!(whole, expected);
        for split in 1..text.len() {
            let (a, b) = text.split_at(split);
            assert_eq!(events(&[a, b], 1024), expected, "split at {split}");
        }
    }

    #[test]
    fn an_event_over_the_limit_is_reported_and_the_next_one_read() {
        let big = format!("data: {}\n\ndata: ok\n\n", "x".repeat(100));
        let got = events(&[big.as_bytes()], 50);
        assert_eq!(
            got,
            vec![("!".into(), String::new()), (String::new(), "ok".into())]
        );
        let many = "data: 0123456789\n".repeat(10) + "\ndata: ok\n\n";
        let got = events(&[many.as_bytes()], 50);
        assert_eq!(
            got,
            vec![("!".into(), String::new()), (String::new(), "ok".into())]
        );
    }

    #[test]
    fn the_end_of_the_first_event_is_found_once_it_is_complete() {
        assert_eq!(first_event_end(b"event: e\ndata: x\n"), None);
        assert_eq!(first_event_end(b"event: e\ndata: x\n\nrest"), Some(18));
        assert_eq!(first_event_end(b"data: x\r\n\r\nrest"), Some(11));
        assert_eq!(
            first_event_end(b"data: x\r\r"),
            None,
            "a last CR may be a CRLF"
        );
        assert_eq!(first_event_end(b"data: x\r\rz"), Some(9));
    }
}

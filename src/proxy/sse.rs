//! Reads the events of a `text/event-stream` on the side, as its chunks pass: each event's
//! type and data (the JSON-RPC message MCP puts in it). Lines end in LF, CRLF or CR. An event's
//! data is either kept (a small event, such as a legacy `endpoint`) or read as it passes by a
//! [`FrameScanner`] and never held whole; data past the size limit is reported as oversized.

use crate::traffic::scan::{FrameScanner, Scanned};

/// One event read from the stream.
#[derive(Debug)]
pub enum SseEvent<'a> {
    /// An event with data: its `event:` type (empty for the default, `message`) and its data
    /// lines joined by `\n`.
    Data {
        /// The `event:` field.
        kind: &'a [u8],
        /// The data.
        data: EventData<'a>,
    },
    /// An event whose data was over the limit.
    Oversized,
}

/// An event's data, as the splitter was asked to deliver it.
#[derive(Debug)]
pub enum EventData<'a> {
    /// The bytes ([`SseSplitter::new`]).
    Raw(&'a [u8]),
    /// The JSON-RPC frame they hold, read as they passed ([`SseSplitter::scanning`]).
    Scanned(Scanned<'a>),
}

#[derive(Debug)]
enum DataSink {
    Raw(Vec<u8>),
    Scan(FrameScanner),
}

/// The field of the line being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    /// Its name is still being read.
    Name,
    Data,
    Event,
    /// A comment or a field nobody reads.
    Ignored,
}

/// Longest field name remembered (`event`, `data`, `id`, `retry` are short).
const MAX_FIELD_NAME: usize = 16;
/// Longest `event:` type remembered; a longer one is no type MCP uses.
const MAX_KIND: usize = 64;

/// Splits a stream of chunks into events.
#[derive(Debug)]
pub struct SseSplitter {
    max: usize,
    /// The line so far: its field, and the name while it is being read.
    field: Field,
    name: Vec<u8>,
    /// The line had a byte.
    line_started: bool,
    /// Just past the colon: a leading space is dropped.
    at_value_start: bool,
    data: DataSink,
    data_len: usize,
    has_data: bool,
    kind: Vec<u8>,
    kind_too_long: bool,
    event_too_long: bool,
    /// The previous chunk ended in CR: a LF starting this one ends nothing.
    after_cr: bool,
}

impl SseSplitter {
    /// A splitter delivering each event's data bytes, up to `max` of them.
    pub fn new(max: usize) -> Self {
        SseSplitter::with_sink(max, DataSink::Raw(Vec::new()))
    }

    /// A splitter reading each event's data as a JSON-RPC frame of up to `max` bytes, as it
    /// passes.
    pub fn scanning(max: usize) -> Self {
        SseSplitter::with_sink(max, DataSink::Scan(FrameScanner::new()))
    }

    fn with_sink(max: usize, data: DataSink) -> Self {
        SseSplitter {
            max,
            field: Field::Name,
            name: Vec::new(),
            line_started: false,
            at_value_start: false,
            data,
            data_len: 0,
            has_data: false,
            kind: Vec::new(),
            kind_too_long: false,
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
                    self.line_bytes(&chunk[..end]);
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
                    self.line_bytes(chunk);
                    break;
                }
            }
        }
    }

    /// More bytes of the current line.
    fn line_bytes(&mut self, mut bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.line_started = true;
        if self.field == Field::Name {
            match bytes.iter().position(|&b| b == b':') {
                Some(colon) => {
                    self.add_name(&bytes[..colon]);
                    self.start_value(self.named_field());
                    bytes = &bytes[colon + 1..];
                }
                None => {
                    self.add_name(bytes);
                    return;
                }
            }
        }
        if self.at_value_start && !bytes.is_empty() {
            self.at_value_start = false;
            bytes = bytes.strip_prefix(b" ").unwrap_or(bytes);
        }
        match self.field {
            Field::Data => self.add_data(bytes),
            Field::Event => {
                if self.kind.len() + bytes.len() > MAX_KIND {
                    self.kind_too_long = true;
                } else {
                    self.kind.extend_from_slice(bytes);
                }
            }
            Field::Name | Field::Ignored => {}
        }
    }

    fn add_name(&mut self, bytes: &[u8]) {
        if self.name.len() + bytes.len() <= MAX_FIELD_NAME {
            self.name.extend_from_slice(bytes);
        } else {
            self.name.clear();
            self.name.push(b'!');
        }
    }

    fn named_field(&self) -> Field {
        match self.name.as_slice() {
            b"data" => Field::Data,
            b"event" => Field::Event,
            _ => Field::Ignored,
        }
    }

    /// The line's field is known (its colon was read, or it ended without one).
    fn start_value(&mut self, field: Field) {
        self.field = field;
        self.at_value_start = true;
        match field {
            Field::Data => {
                if self.has_data {
                    self.add_data(b"\n");
                }
                self.has_data = true;
            }
            Field::Event => {
                self.kind.clear();
                self.kind_too_long = false;
            }
            Field::Name | Field::Ignored => {}
        }
    }

    fn add_data(&mut self, bytes: &[u8]) {
        if self.event_too_long || bytes.is_empty() {
            return;
        }
        self.data_len += bytes.len();
        if self.data_len > self.max {
            self.event_too_long = true;
            if let DataSink::Raw(raw) = &mut self.data {
                *raw = Vec::new();
            }
            return;
        }
        match &mut self.data {
            DataSink::Raw(raw) => raw.extend_from_slice(bytes),
            DataSink::Scan(scanner) => scanner.push(bytes),
        }
    }

    fn end_line(&mut self, on_event: &mut impl FnMut(SseEvent<'_>)) {
        if !self.line_started {
            self.dispatch(on_event);
            return;
        }
        if self.field == Field::Name && !self.name.starts_with(b"!") {
            // A line without a colon is a field with an empty value.
            self.start_value(self.named_field());
        }
        self.field = Field::Name;
        self.name.clear();
        self.line_started = false;
        self.at_value_start = false;
    }

    fn dispatch(&mut self, on_event: &mut impl FnMut(SseEvent<'_>)) {
        let kind: &[u8] = if self.kind_too_long { b"!" } else { &self.kind };
        let too_long = std::mem::take(&mut self.event_too_long);
        let had_data = std::mem::take(&mut self.has_data);
        match &mut self.data {
            DataSink::Raw(raw) => {
                if too_long {
                    on_event(SseEvent::Oversized);
                } else if had_data {
                    on_event(SseEvent::Data {
                        kind,
                        data: EventData::Raw(raw),
                    });
                }
                raw.clear();
            }
            DataSink::Scan(scanner) => {
                let scanned = scanner.finish();
                if too_long {
                    on_event(SseEvent::Oversized);
                } else if had_data {
                    on_event(SseEvent::Data {
                        kind,
                        data: EventData::Scanned(scanned),
                    });
                }
            }
        }
        self.data_len = 0;
        self.kind.clear();
        self.kind_too_long = false;
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
                    SseEvent::Data {
                        kind,
                        data: EventData::Raw(data),
                    } => (
                        String::from_utf8_lossy(kind).into_owned(),
                        String::from_utf8_lossy(data).into_owned(),
                    ),
                    SseEvent::Data { .. } => panic!("raw data asked for"),
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
    fn scanned_events_read_as_their_joined_data_would() {
        let text = b"event: message\r\ndata: {\"jsonrpc\":\"2.0\",\ndata:  \"id\":1,\"result\":{\"isError\":true}}\r\n\r\n: ping\n\ndata\n\ndata: not json\n\n";
        let read = |chunks: &[&[u8]]| {
            let mut s = SseSplitter::scanning(1024);
            let mut out = Vec::new();
            for chunk in chunks {
                s.push(chunk, |e| {
                    out.push(match e {
                        SseEvent::Data {
                            kind,
                            data: EventData::Scanned(scanned),
                        } => format!("{} {scanned:?}", String::from_utf8_lossy(kind)),
                        other => format!("{other:?}"),
                    })
                });
            }
            out
        };
        let whole = read(&[text]);
        assert_eq!(whole.len(), 3, "{whole:?}");
        assert!(whole[0].starts_with("message Read") && whole[0].contains("is_error: true"));
        assert!(whole[1].ends_with("Blank"), "{whole:?}");
        assert!(whole[2].contains("Err(Malformed"), "{whole:?}");
        for split in 1..text.len() {
            let (a, b) = text.split_at(split);
            assert_eq!(read(&[a, b]), whole, "split at {split}");
        }
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

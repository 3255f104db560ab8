//! Newline framing with a maximum line size.
//!
//! An oversize line is reported as soon as it crosses the limit, then skipped up to its newline
//! without buffering it, so a runaway writer can never make the reader allocate without bound.

/// One item produced by [`LineFramer`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// A complete line without its `\n` (and without a trailing `\r`). Blank lines are not produced.
    Line(Vec<u8>),
    /// A line exceeded the limit; the rest of it is being skipped.
    Oversize {
        /// The limit that was exceeded, in bytes.
        limit: usize,
    },
}

/// Incremental splitter of a byte stream into bounded lines.
#[derive(Debug)]
pub struct LineFramer {
    max_line: usize,
    buf: Vec<u8>,
    discarding: bool,
}

impl LineFramer {
    /// A framer accepting lines of at most `max_line` bytes (newline excluded).
    pub fn new(max_line: usize) -> Self {
        LineFramer {
            max_line,
            buf: Vec::new(),
            discarding: false,
        }
    }

    /// Feeds a chunk, appending complete lines (and oversize reports) to `out`.
    pub fn push(&mut self, mut chunk: &[u8], out: &mut Vec<Frame>) {
        while !chunk.is_empty() {
            let newline = chunk.iter().position(|&b| b == b'\n');
            let (segment, rest, ends_line) = match newline {
                Some(i) => (&chunk[..i], &chunk[i + 1..], true),
                None => (chunk, &chunk[chunk.len()..], false),
            };
            chunk = rest;
            if self.discarding {
                if ends_line {
                    self.discarding = false;
                }
                continue;
            }
            // A '\r' right before the newline does not count against the limit.
            let counted = if ends_line && segment.last() == Some(&b'\r') {
                segment.len() - 1
            } else {
                segment.len()
            };
            if self.buf.len() + counted > self.max_line {
                self.buf = Vec::new();
                self.discarding = !ends_line;
                out.push(Frame::Oversize {
                    limit: self.max_line,
                });
                continue;
            }
            self.buf.extend_from_slice(segment);
            if ends_line {
                self.emit(out);
            }
        }
    }

    /// Flushes a final unterminated line at end of stream.
    pub fn finish(&mut self, out: &mut Vec<Frame>) {
        if !self.discarding {
            self.emit(out);
        }
        self.discarding = false;
        self.buf = Vec::new();
    }

    fn emit(&mut self, out: &mut Vec<Frame>) {
        let mut line = std::mem::take(&mut self.buf);
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if !line.iter().all(u8::is_ascii_whitespace) {
            out.push(Frame::Line(line));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(max: usize, chunks: &[&[u8]]) -> Vec<Frame> {
        let mut f = LineFramer::new(max);
        let mut out = Vec::new();
        for c in chunks {
            f.push(c, &mut out);
        }
        f.finish(&mut out);
        out
    }

    fn line(s: &str) -> Frame {
        Frame::Line(s.as_bytes().to_vec())
    }

    #[test]
    fn splits_lines_across_chunks_and_strips_cr() {
        let out = frames(100, &[b"ab", b"c\r\nde", b"f\n\n  \ng"]);
        assert_eq!(out, vec![line("abc"), line("def"), line("g")]);
    }

    #[test]
    fn oversize_line_is_reported_once_and_skipped() {
        let out = frames(5, &[b"ok\n0123", b"456789", b"abc\nnext\n"]);
        assert_eq!(
            out,
            vec![line("ok"), Frame::Oversize { limit: 5 }, line("next")]
        );
    }

    #[test]
    fn oversize_reported_before_the_newline_arrives() {
        let mut f = LineFramer::new(4);
        let mut out = Vec::new();
        f.push(b"0123456789", &mut out);
        assert_eq!(out, vec![Frame::Oversize { limit: 4 }]);
        assert!(f.buf.is_empty(), "oversize bytes must not be buffered");
        f.push(b"more\nyes\n", &mut out);
        assert_eq!(out, vec![Frame::Oversize { limit: 4 }, line("yes")]);
    }

    #[test]
    fn exact_limit_is_accepted_with_crlf() {
        let out = frames(3, &[b"abc\r\n", b"abcd\n"]);
        assert_eq!(out, vec![line("abc"), Frame::Oversize { limit: 3 }]);
    }

    #[test]
    fn unterminated_oversize_tail_is_not_flushed() {
        let out = frames(2, &[b"abcdef"]);
        assert_eq!(out, vec![Frame::Oversize { limit: 2 }]);
    }
}

//! Splits a copy of a byte stream into newline-delimited frames for accounting. The stream
//! itself is forwarded elsewhere, untouched; this only sees what was already forwarded. A
//! frame longer than the limit is not kept: its bytes are counted and it is reported as
//! oversized once its newline arrives, so memory stays bounded whatever the peer sends.

/// Largest frame kept for accounting (16 MiB, the probes' message limit); longer frames are
/// forwarded but only counted.
pub const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;
/// Buffer capacity kept between frames, so that frames up to about a megabyte reuse memory
/// instead of faulting in fresh pages each time; a larger one left by a bigger frame is
/// released.
const KEEP_CAPACITY: usize = 2 * 1024 * 1024;

/// A complete frame, or the size of one that was too long to keep.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameEvent<'a> {
    /// A frame without its newline (a trailing `\r` is removed too).
    Frame(&'a [u8]),
    /// A frame over the limit: its size in bytes, without the newline.
    Oversized(usize),
}

/// Accumulates the partial frame at the end of each chunk; bounded by `max_frame`.
#[derive(Debug)]
pub struct FrameSplitter {
    max_frame: usize,
    partial: Vec<u8>,
    /// Bytes of the current frame seen while it is being skipped as oversized.
    skipping: Option<usize>,
}

impl Default for FrameSplitter {
    fn default() -> Self {
        FrameSplitter::new(MAX_FRAME_BYTES)
    }
}

impl FrameSplitter {
    /// A splitter keeping frames up to `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        FrameSplitter {
            max_frame,
            partial: Vec::new(),
            skipping: None,
        }
    }

    /// Feeds the next chunk of the stream; `on_frame` is called for every frame it
    /// completes. Blank frames (empty or whitespace) are not reported.
    pub fn push(&mut self, mut chunk: &[u8], mut on_frame: impl FnMut(FrameEvent<'_>)) {
        while let Some(newline) = find_newline(chunk) {
            let (line, rest) = (&chunk[..newline], &chunk[newline + 1..]);
            chunk = rest;
            if let Some(skipped) = self.skipping.take() {
                on_frame(FrameEvent::Oversized(skipped + line.len()));
            } else if self.partial.is_empty() {
                emit(line, self.max_frame, &mut on_frame);
            } else if self.partial.len() + line.len() > self.max_frame {
                on_frame(FrameEvent::Oversized(self.partial.len() + line.len()));
                self.release();
            } else {
                self.partial.extend_from_slice(line);
                emit(&self.partial, self.max_frame, &mut on_frame);
                self.release();
            }
        }
        if chunk.is_empty() {
            return;
        }
        if let Some(skipped) = self.skipping.as_mut() {
            *skipped += chunk.len();
        } else if self.partial.len() + chunk.len() > self.max_frame {
            self.skipping = Some(self.partial.len() + chunk.len());
            self.partial = Vec::new();
        } else {
            self.partial.extend_from_slice(chunk);
        }
    }

    /// The stream ended: a last frame without its newline is reported as it is.
    pub fn finish(&mut self, mut on_frame: impl FnMut(FrameEvent<'_>)) {
        if let Some(skipped) = self.skipping.take() {
            on_frame(FrameEvent::Oversized(skipped));
        } else if !self.partial.is_empty() {
            emit(&self.partial, self.max_frame, &mut on_frame);
        }
        self.partial = Vec::new();
    }

    /// Bytes held for the current partial frame.
    pub fn buffered(&self) -> usize {
        self.partial.len()
    }

    fn release(&mut self) {
        if self.partial.capacity() > KEEP_CAPACITY {
            self.partial = Vec::new();
        } else {
            self.partial.clear();
        }
    }
}

/// The first `\n` in `bytes`, eight bytes at a time (a plain byte loop costs a quarter of a
/// millisecond per megabyte of tool result).
pub fn find_newline(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    const NEWLINES: u64 = u64::from_ne_bytes([b'\n'; 8]);
    let mut words = bytes.chunks_exact(8);
    let mut offset = 0;
    for word in words.by_ref() {
        let mut eight = [0u8; 8];
        eight.copy_from_slice(word);
        let x = u64::from_ne_bytes(eight) ^ NEWLINES;
        // Non-zero exactly when one of the eight bytes of `x` is zero.
        if x.wrapping_sub(ONES) & !x & HIGHS != 0 {
            return word.iter().position(|&b| b == b'\n').map(|i| offset + i);
        }
        offset += 8;
    }
    words
        .remainder()
        .iter()
        .position(|&b| b == b'\n')
        .map(|i| offset + i)
}

fn emit(line: &[u8], max_frame: usize, on_frame: &mut impl FnMut(FrameEvent<'_>)) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().all(u8::is_ascii_whitespace) {
        return;
    }
    if line.len() > max_frame {
        on_frame(FrameEvent::Oversized(line.len()));
    } else {
        on_frame(FrameEvent::Frame(line));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    enum Seen {
        Frame(String),
        Oversized(usize),
    }

    fn split(splitter: &mut FrameSplitter, chunks: &[&[u8]]) -> Vec<Seen> {
        let mut seen = Vec::new();
        for chunk in chunks {
            splitter.push(chunk, |event| seen.push(to_seen(event)));
        }
        seen
    }

    fn to_seen(event: FrameEvent<'_>) -> Seen {
        match event {
            FrameEvent::Frame(f) => Seen::Frame(String::from_utf8_lossy(f).into_owned()),
            FrameEvent::Oversized(n) => Seen::Oversized(n),
        }
    }

    #[test]
    fn frames_split_across_chunks_are_joined() {
        let mut s = FrameSplitter::new(100);
        let seen = split(
            &mut s,
            &[b"{\"a\":", b"1}\n{\"b\"", b":2}\r\n\n  \n{\"c\":3}\n"],
        );
        assert_eq!(
            seen,
            vec![
                Seen::Frame("{\"a\":1}".into()),
                Seen::Frame("{\"b\":2}".into()),
                Seen::Frame("{\"c\":3}".into()),
            ]
        );
        assert_eq!(s.buffered(), 0);
    }

    #[test]
    fn an_oversized_frame_is_counted_and_the_next_one_is_whole() {
        let mut s = FrameSplitter::new(8);
        let seen = split(&mut s, &[b"0123456", b"789abc", b"def\nok\n"]);
        assert_eq!(seen, vec![Seen::Oversized(16), Seen::Frame("ok".into())]);
        assert_eq!(s.buffered(), 0);
        let seen = split(&mut s, &[b"0123456789\nx\n"]);
        assert_eq!(seen, vec![Seen::Oversized(10), Seen::Frame("x".into())]);
    }

    #[test]
    fn a_frame_exactly_at_the_limit_is_kept() {
        let mut s = FrameSplitter::new(4);
        let seen = split(&mut s, &[b"ab", b"cd\n"]);
        assert_eq!(seen, vec![Seen::Frame("abcd".into())]);
    }

    #[test]
    fn memory_stays_bounded_while_skipping() {
        let mut s = FrameSplitter::new(1024);
        let chunk = vec![b'x'; 4096];
        for _ in 0..100 {
            s.push(&chunk, |_| panic!("no frame yet"));
            assert_eq!(s.buffered(), 0);
        }
        let mut seen = Vec::new();
        s.finish(|e| seen.push(to_seen(e)));
        assert_eq!(seen, vec![Seen::Oversized(409_600)]);
    }

    #[test]
    fn the_newline_is_found_wherever_it_is() {
        for len in 0..40 {
            let mut bytes = vec![b'x'; len];
            assert_eq!(find_newline(&bytes), None);
            for at in 0..len {
                bytes.fill(b'x');
                bytes[at] = b'\n';
                if at + 1 < len {
                    bytes[len - 1] = b'\n';
                }
                assert_eq!(find_newline(&bytes), Some(at), "len {len} at {at}");
            }
        }
        // Bytes that differ from '\n' only in the high bit or by one are not newlines.
        assert_eq!(find_newline(&[0x8a, 0x0b, 0x09, 0x8a, 0x0a]), Some(4));
    }

    #[test]
    fn a_last_frame_without_newline_is_reported_at_the_end() {
        let mut s = FrameSplitter::new(100);
        assert!(split(&mut s, &[b"{\"tail\":1}"]).is_empty());
        let mut seen = Vec::new();
        s.finish(|e| seen.push(to_seen(e)));
        assert_eq!(seen, vec![Seen::Frame("{\"tail\":1}".into())]);
    }
}

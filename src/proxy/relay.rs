//! Passes an upstream response body to the client chunk by chunk, as each arrives (nothing
//! waits for a whole body or a whole event), accounting each chunk on the side after it was
//! read. The one change ever made to the bytes: the first event of a legacy SSE stream, the
//! `endpoint`, is held until complete and rewritten to a path on the proxy.

use std::io;
use std::pin::Pin;
use std::time::Instant;

use axum::body::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::sync::watch;

use super::observe::ResponseObserver;
use super::sse::{EventData, SseEvent, SseSplitter, first_event_end};
use super::upstream::Upstream;

/// Most bytes held while waiting for a GET stream's first event to complete; past it the
/// stream is passed on unchanged.
const MAX_HELD: usize = 64 * 1024;

/// Looks at a GET stream's first event for a legacy `endpoint`.
#[derive(Debug)]
pub struct EndpointRewrite {
    upstream: Upstream,
    /// The upstream URL the stream was asked from (endpoints are relative to it).
    stream_target: String,
    held: Vec<u8>,
}

/// The first event, as the client gets it.
#[derive(Debug, PartialEq, Eq)]
pub struct FirstEvent {
    /// The bytes to pass on (the held bytes, with the endpoint rewritten).
    pub bytes: Vec<u8>,
    /// The endpoint path on the proxy, when it was a legacy `endpoint` event under the upstream.
    pub endpoint: Option<String>,
}

impl EndpointRewrite {
    /// A rewrite for the stream asked from `stream_target`.
    pub fn new(upstream: Upstream, stream_target: String) -> Self {
        EndpointRewrite {
            upstream,
            stream_target,
            held: Vec::new(),
        }
    }

    /// Adds a chunk; returns the first event once decided (it may be followed by more bytes
    /// of the chunk, passed unchanged).
    pub fn push(&mut self, chunk: &[u8]) -> Option<FirstEvent> {
        self.held.extend_from_slice(chunk);
        match first_event_end(&self.held) {
            Some(end) => {
                let rest = self.held.split_off(end);
                let block = std::mem::take(&mut self.held);
                let (mut bytes, endpoint) = self.rewrite(block);
                bytes.extend_from_slice(&rest);
                Some(FirstEvent { bytes, endpoint })
            }
            None if self.held.len() > MAX_HELD => Some(self.give_up()),
            None => None,
        }
    }

    /// The stream ended before its first event did: what was held passes unchanged.
    pub fn give_up(&mut self) -> FirstEvent {
        FirstEvent {
            bytes: std::mem::take(&mut self.held),
            endpoint: None,
        }
    }

    fn rewrite(&self, block: Vec<u8>) -> (Vec<u8>, Option<String>) {
        let mut found = None;
        let mut splitter = SseSplitter::new(MAX_HELD);
        splitter.push(&block, |event| {
            if let SseEvent::Data {
                kind,
                data: EventData::Raw(data),
            } = event
                && kind == b"endpoint"
            {
                found = Some(String::from_utf8_lossy(data).into_owned());
            }
        });
        let Some(endpoint) =
            found.and_then(|e| self.upstream.proxied_endpoint(&self.stream_target, &e))
        else {
            return (block, None);
        };
        let eol: &[u8] = match block.iter().position(|&b| b == b'\n' || b == b'\r') {
            Some(i) if block[i] == b'\r' && block.get(i + 1) == Some(&b'\n') => b"\r\n",
            Some(i) if block[i] == b'\r' => b"\r",
            _ => b"\n",
        };
        let mut out = Vec::with_capacity(block.len() + endpoint.len());
        let mut data_written = false;
        for line in split_lines(&block) {
            if line.is_empty() {
                continue;
            }
            if line.starts_with(b"data:") || line == b"data" {
                if !data_written {
                    out.extend_from_slice(b"data: ");
                    out.extend_from_slice(endpoint.as_bytes());
                    out.extend_from_slice(eol);
                    data_written = true;
                }
                continue;
            }
            out.extend_from_slice(line);
            out.extend_from_slice(eol);
        }
        out.extend_from_slice(eol);
        (out, Some(endpoint))
    }
}

fn split_lines(block: &[u8]) -> impl Iterator<Item = &[u8]> {
    block.split(|&b| b == b'\n' || b == b'\r')
}

/// Resolves when the proxy stops (or its handle is gone).
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

struct Pump<S> {
    upstream: Pin<Box<S>>,
    observer: ResponseObserver,
    rewrite: Option<EndpointRewrite>,
    stop: watch::Receiver<bool>,
    done: bool,
}

/// The client's body: `upstream` relayed chunk by chunk, accounted by `observer`, the first
/// event rewritten by `rewrite` when given; ends when the upstream's body ends or the proxy
/// stops. An upstream error mid-body aborts the client's response too.
pub fn relay<S, E>(
    upstream: S,
    observer: ResponseObserver,
    rewrite: Option<EndpointRewrite>,
    stop: watch::Receiver<bool>,
) -> impl Stream<Item = Result<Bytes, io::Error>> + Send + 'static
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: std::error::Error + Send + Sync + 'static,
{
    let pump = Pump {
        upstream: Box::pin(upstream),
        observer,
        rewrite,
        stop,
        done: false,
    };
    futures_util::stream::unfold(pump, |mut pump| async move {
        if pump.done {
            return None;
        }
        loop {
            let next = tokio::select! {
                biased;
                item = pump.upstream.next() => item,
                _ = stopped(&mut pump.stop) => None,
            };
            let at = Instant::now();
            match next {
                Some(Ok(chunk)) => {
                    let chunk = match pump.rewrite.as_mut() {
                        None => chunk,
                        Some(rewrite) => match rewrite.push(&chunk) {
                            None => continue,
                            Some(first) => {
                                pump.rewrite = None;
                                if let Some(endpoint) = first.endpoint {
                                    pump.observer.open_legacy_session(endpoint, at);
                                }
                                Bytes::from(first.bytes)
                            }
                        },
                    };
                    pump.observer.observe(&chunk, at);
                    return Some((Ok(chunk), pump));
                }
                Some(Err(err)) => {
                    pump.done = true;
                    tracing::debug!(error = %err, "proxy: upstream body failed");
                    return Some((Err(io::Error::other(err)), pump));
                }
                None => {
                    pump.done = true;
                    let held = pump.rewrite.take().map(|mut r| r.give_up().bytes);
                    if let Some(held) = held.filter(|h| !h.is_empty()) {
                        pump.observer.observe(&held, at);
                        pump.observer.finish(at);
                        return Some((Ok(Bytes::from(held)), pump));
                    }
                    pump.observer.finish(at);
                    return None;
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(stream: &str, chunks: &[&str]) -> (String, Option<String>) {
        let up = Upstream::parse("http://127.0.0.1:3001").expect("url");
        let mut r = EndpointRewrite::new(up.clone(), up.target(stream));
        for chunk in chunks {
            if let Some(first) = r.push(chunk.as_bytes()) {
                return (
                    String::from_utf8(first.bytes).expect("utf8"),
                    first.endpoint,
                );
            }
        }
        (String::from_utf8(r.give_up().bytes).expect("utf8"), None)
    }

    #[test]
    fn an_absolute_endpoint_becomes_a_path_on_the_proxy() {
        let (bytes, endpoint) = rewrite(
            "/sse",
            &[
                "event: endpoint\r\nda",
                "ta: http://127.0.0.1:3001/messages?sessionId=9\r\n\r\nevent: message\r\n",
            ],
        );
        assert_eq!(
            bytes,
            "event: endpoint\r\ndata: /messages?sessionId=9\r\n\r\nevent: message\r\n"
        );
        assert_eq!(endpoint.as_deref(), Some("/messages?sessionId=9"));
    }

    #[test]
    fn other_first_events_and_foreign_endpoints_pass_unchanged() {
        let text = "id: 1\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"x\"}\n\nmore";
        assert_eq!(rewrite("/mcp", &[text]), (text.to_string(), None));
        let foreign = "event: endpoint\ndata: http://other:1/m?s=1\n\n";
        assert_eq!(rewrite("/sse", &[foreign]), (foreign.to_string(), None));
        assert_eq!(
            rewrite("/sse", &["event: endpo"]),
            ("event: endpo".to_string(), None)
        );
    }
}

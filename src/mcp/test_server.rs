//! A scripted loopback HTTP server for the transports' and the session's unit tests: it
//! answers its n-th connection's one request with the n-th scripted raw response and records
//! what it was sent.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// One request a [`scripted_server`] saw.
pub(crate) struct Seen {
    /// The HTTP method.
    pub method: String,
    /// Header names lowercased, in order.
    pub headers: Vec<(String, String)>,
    /// The body, parsed as JSON (`Null` when it is not JSON).
    pub body: serde_json::Value,
    /// When it arrived.
    pub at: Instant,
}

impl Seen {
    /// The first header named `name` (lowercase).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A loopback server answering its n-th connection's one request with `script[n]` (raw
/// HTTP/1.1, the connection closed after it, so an event stream ends there).
pub(crate) async fn scripted_server(script: Vec<String>) -> (url::Url, Arc<Mutex<Vec<Seen>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    tokio::spawn(async move {
        for response in script {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let mut raw = Vec::new();
            let mut buf = [0u8; 4096];
            while !raw.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => raw.extend_from_slice(&buf[..n]),
                }
            }
            let text = String::from_utf8_lossy(&raw).into_owned();
            let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
            let mut lines = head.lines();
            let method = lines
                .next()
                .and_then(|l| l.split(' ').next())
                .unwrap_or_default()
                .to_string();
            let headers: Vec<(String, String)> = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                .collect();
            let length = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .and_then(|(_, v)| v.parse::<usize>().ok())
                .unwrap_or(0);
            let mut body = body.as_bytes().to_vec();
            while body.len() < length {
                match conn.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => body.extend_from_slice(&buf[..n]),
                }
            }
            log.lock().expect("log").push(Seen {
                method,
                headers,
                body: serde_json::from_slice(&body).unwrap_or_default(),
                at: Instant::now(),
            });
            let _ = conn.write_all(response.as_bytes()).await;
            let _ = conn.shutdown().await;
        }
    });
    let url = url::Url::parse(&format!("http://{addr}/mcp")).expect("url");
    (url, seen)
}

/// A raw 200 response carrying `events` as an event stream, ended by closing the connection.
pub(crate) fn event_stream(events: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n{events}"
    )
}

/// A raw 200 response carrying one JSON body.
pub(crate) fn json_response(body: &serde_json::Value) -> String {
    let body = body.to_string();
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// A raw response with `status` and a JSON-RPC error body.
pub(crate) fn rpc_error_response(
    status: u16,
    id: u64,
    code: i64,
    data: serde_json::Value,
) -> String {
    let body = serde_json::json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": "refused", "data": data}}).to_string();
    format!(
        "HTTP/1.1 {status} Refused\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

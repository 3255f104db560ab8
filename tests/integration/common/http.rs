//! HTTP requests from the tests to loopback servers (the daemon, Prometheus, Alertmanager, the
//! MCP servers), made with reqwest's blocking client.
//!
//! No proxy (loopback only, whatever `HTTP_PROXY` says), no redirects followed, no
//! decompression (a test asking for gzip sees the encoded body), and a new connection per
//! request, so one request never depends on a connection another left behind.

use std::io::Read;
use std::sync::OnceLock;
use std::time::Duration;

use reqwest::blocking::Client;

/// Default deadline for one HTTP request made by the harness.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest HTTP response body the harness reads.
pub const HTTP_MAX_BODY: usize = 16 * 1024 * 1024;

/// A response read by [`http_request`].
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status code, e.g. 200.
    pub status: u16,
    /// Header names lowercased, in the order received.
    pub headers: Vec<(String, String)>,
    /// Body (transfer encoding removed; content encoding kept).
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// First header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Body as text (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// The one client of the harness (see the module documentation for its settings).
fn client() -> &'static Client {
    static CLIENT: OnceLock<Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(0)
            .build()
            .expect("build the harness's HTTP client")
    })
}

/// Sends one request to `http://<addr><path>` and reads the whole response within `timeout` and
/// [`HTTP_MAX_BODY`]. `headers` are added as given.
pub fn http_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> Result<HttpResponse, String> {
    let url = format!("http://{addr}{path}");
    let mut response = send(&url, method, headers, body, timeout)?;
    let mut read = Vec::new();
    (&mut response)
        .take(HTTP_MAX_BODY as u64 + 1)
        .read_to_end(&mut read)
        .map_err(|e| format!("{method} {url}: reading the body: {}", chain(&e)))?;
    if read.len() > HTTP_MAX_BODY {
        return Err(format!(
            "{method} {url}: response body exceeds {HTTP_MAX_BODY} bytes"
        ));
    }
    Ok(HttpResponse {
        body: read,
        ..head_of(&response)
    })
}

/// Like [`http_request`] but returns once the response headers arrived (empty body), for
/// responses that stream forever, such as an SSE endpoint.
pub fn http_request_head(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
) -> Result<HttpResponse, String> {
    let url = format!("http://{addr}{path}");
    let response = send(&url, method, headers, b"", timeout)?;
    Ok(head_of(&response))
}

fn send(
    url: &str,
    method: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> Result<reqwest::blocking::Response, String> {
    let verb = reqwest::Method::from_bytes(method.as_bytes())
        .map_err(|e| format!("bad HTTP method {method:?}: {e}"))?;
    let mut request = client().request(verb, url).timeout(timeout);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if !body.is_empty() {
        request = request.body(body.to_vec());
    }
    request
        .send()
        .map_err(|e| format!("{method} {url}: {}", chain(&e)))
}

/// Status and headers of a response.
fn head_of(response: &reqwest::blocking::Response) -> HttpResponse {
    HttpResponse {
        status: response.status().as_u16(),
        headers: response
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_string(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: Vec::new(),
    }
}

/// An error with its causes, `outer: inner: ...` (reqwest's own text omits them).
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A JSON-RPC `initialize` request body for the given protocol version.
fn initialize_request(protocol_version: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"initialize","params":{{"protocolVersion":"{protocol_version}","capabilities":{{}},"clientInfo":{{"name":"mcp-exporter-tests","version":"0"}}}}}}"#
    )
}

/// POSTs an MCP `initialize` to `http://127.0.0.1:<port><path>` as a streamable-HTTP client
/// would (accepting JSON and SSE) and returns the response.
pub fn post_initialize(port: u16, path: &str) -> Result<HttpResponse, String> {
    let body = initialize_request("2025-06-18");
    http_request(
        &format!("127.0.0.1:{port}"),
        "POST",
        path,
        &[
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
        ],
        body.as_bytes(),
        HTTP_TIMEOUT,
    )
}

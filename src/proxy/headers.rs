//! Which headers cross the proxy: all of them, except the hop-by-hop ones (RFC 9110 section
//! 7.6.1), which describe one connection and not the message. `Host` crosses unchanged too, so
//! a server's DNS-rebinding protection judges the name the client used (the proxy's).

use axum::http::header::{self, HeaderMap, HeaderName};

/// Headers that belong to one connection, never forwarded.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The headers of `from` that are forwarded: everything but the hop-by-hop headers and the
/// ones `Connection` names.
pub fn end_to_end(from: &HeaderMap) -> HeaderMap {
    let named: Vec<String> = from
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| !name.is_empty())
        .collect();
    let mut out = HeaderMap::with_capacity(from.len());
    for (name, value) in from {
        if is_hop_by_hop(name) || named.iter().any(|n| n == name.as_str()) {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(&name.as_str())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn hop_by_hop_and_connection_named_headers_stay_behind() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, X-Trace"),
        );
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        h.insert("x-trace", HeaderValue::from_static("1"));
        h.insert("host", HeaderValue::from_static("proxy:1"));
        h.insert("mcp-session-id", HeaderValue::from_static("abc"));
        h.append("accept", HeaderValue::from_static("application/json"));
        h.append("accept", HeaderValue::from_static("text/event-stream"));
        let out = end_to_end(&h);
        let names: Vec<&str> = out.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["host", "mcp-session-id", "accept"]);
        assert_eq!(
            out.get_all("accept").iter().count(),
            2,
            "repeated values kept"
        );
    }
}

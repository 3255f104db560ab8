//! The upstream a proxy forwards to: where a client's request goes (the same path and query,
//! under the upstream's path prefix), and how a legacy SSE `endpoint` event is rewritten so
//! the client posts its messages to the proxy instead of the upstream.

use url::Url;

/// Why an upstream URL is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// Not a URL.
    #[error("`{0}` is not a URL: {1}")]
    Invalid(String, String),
    /// Not plain HTTP(S), or with a query, fragment or credentials.
    #[error("`{0}` must be an http:// or https:// URL without query, fragment or credentials")]
    Unsupported(String),
}

/// The upstream's origin and path prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    url: Url,
    /// `scheme://host:port`.
    origin: String,
    /// The URL's path without its trailing `/` (empty for the root).
    prefix: String,
}

impl Upstream {
    /// Parses `http://host:port[/prefix]`.
    pub fn parse(text: &str) -> Result<Upstream, UpstreamError> {
        let url =
            Url::parse(text).map_err(|e| UpstreamError::Invalid(text.into(), e.to_string()))?;
        let plain = matches!(url.scheme(), "http" | "https")
            && url.host_str().is_some()
            && url.query().is_none()
            && url.fragment().is_none()
            && url.username().is_empty()
            && url.password().is_none();
        if !plain {
            return Err(UpstreamError::Unsupported(text.into()));
        }
        let origin = url.origin().ascii_serialization();
        let prefix = url.path().trim_end_matches('/').to_string();
        Ok(Upstream {
            url,
            origin,
            prefix,
        })
    }

    /// The URL as configured.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// Where a client's request for `path_and_query` (as sent to the proxy) goes.
    pub fn target(&self, path_and_query: &str) -> String {
        let mut out =
            String::with_capacity(self.origin.len() + self.prefix.len() + path_and_query.len());
        out.push_str(&self.origin);
        out.push_str(&self.prefix);
        if !path_and_query.starts_with('/') {
            out.push('/');
        }
        out.push_str(path_and_query);
        out
    }

    /// The endpoint a client of the proxy must post to, for the `endpoint` the upstream
    /// announced on the stream it served at `stream_target` (a URL from [`Upstream::target`]):
    /// the path and query relative to the proxy. `None` when the endpoint is not under the
    /// upstream (another origin, or outside the prefix): it is then passed unchanged.
    pub fn proxied_endpoint(&self, stream_target: &str, endpoint: &str) -> Option<String> {
        let base = Url::parse(stream_target).ok()?;
        let resolved = base.join(endpoint.trim()).ok()?;
        if resolved.origin().ascii_serialization() != self.origin {
            return None;
        }
        let path = resolved.path().strip_prefix(self.prefix.as_str())?;
        if !(path.is_empty() || path.starts_with('/')) {
            return None;
        }
        let mut out = if path.is_empty() {
            "/".to_string()
        } else {
            path.to_string()
        };
        if let Some(query) = resolved.query() {
            out.push('?');
            out.push_str(query);
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_keep_their_path_under_the_prefix() {
        let root = Upstream::parse("http://127.0.0.1:3001").expect("url");
        assert_eq!(root.target("/mcp?x=1"), "http://127.0.0.1:3001/mcp?x=1");
        let prefixed = Upstream::parse("http://h:80/api/").expect("url");
        assert_eq!(prefixed.target("/sse"), "http://h/api/sse");
        assert!(Upstream::parse("ftp://h/").is_err());
        assert!(Upstream::parse("http://u:p@h/").is_err());
        assert!(Upstream::parse("http://h/?q").is_err());
        assert!(Upstream::parse("not a url").is_err());
    }

    #[test]
    fn endpoints_become_paths_on_the_proxy() {
        let up = Upstream::parse("http://127.0.0.1:3001/api").expect("url");
        let stream = up.target("/sse");
        for (announced, expected) in [
            (
                "/api/messages?sessionId=abc",
                Some("/messages?sessionId=abc"),
            ),
            ("messages?sessionId=abc", Some("/messages?sessionId=abc")),
            ("http://127.0.0.1:3001/api/m?s=1", Some("/m?s=1")),
            ("http://elsewhere:3001/api/m?s=1", None),
            ("/other/m?s=1", None),
            ("/apix/m", None),
        ] {
            assert_eq!(
                up.proxied_endpoint(&stream, announced).as_deref(),
                expected,
                "{announced}"
            );
        }
    }
}

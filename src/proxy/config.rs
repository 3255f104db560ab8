//! `[[proxies]]` entries: a reverse proxy the daemon runs in front of an HTTP MCP server, to
//! account its real traffic (docs/traffic.md, "The HTTP proxy").
//!
//! ```toml
//! [[proxies]]
//! name = "search"                      # the `server` label of its traffic
//! listen = "127.0.0.1:7010"            # where clients connect
//! upstream = "http://127.0.0.1:3001"   # the server (path prefix allowed)
//! timeout = "60s"                      # optional: longest wait for the response headers
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::upstream::Upstream;
use crate::config::{KeyError, SourceText};

/// Default longest wait for an upstream's response headers.
pub const DEFAULT_PROXY_TIMEOUT: Duration = Duration::from_secs(60);

/// One validated proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    /// The `server` label its traffic is filed under.
    pub name: String,
    /// Where it listens.
    pub listen: SocketAddr,
    /// Where it forwards.
    pub upstream: Upstream,
    /// Longest wait for the upstream's response headers (then `504`).
    pub timeout: Duration,
}

/// A `[[proxies]]` table as serde reads it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProxy {
    name: Option<Spanned<String>>,
    listen: Option<Spanned<String>>,
    upstream: Option<Spanned<String>>,
    #[serde(default, with = "crate::config::duration::opt_duration")]
    timeout: Option<Duration>,
}

/// Validates every entry; names and listen addresses must be unique.
pub fn validate_all(
    raw: Vec<Spanned<RawProxy>>,
    src: &SourceText<'_>,
) -> Result<Vec<ProxyConfig>, KeyError> {
    let mut out: Vec<ProxyConfig> = Vec::with_capacity(raw.len());
    for (index, spanned) in raw.into_iter().enumerate() {
        let start = spanned.span().start;
        let proxy = validate(index, start, spanned.into_inner(), src)?;
        if out.iter().any(|p| p.name == proxy.name) {
            return Err(src.key_error(
                start,
                format!("proxies[{index}].name"),
                format!(
                    "duplicate proxy name {:?}; every proxy needs a unique name",
                    proxy.name
                ),
            ));
        }
        if out.iter().any(|p| p.listen == proxy.listen) {
            return Err(src.key_error(
                start,
                format!("proxies[{index}].listen"),
                format!("{} is already another proxy's address", proxy.listen),
            ));
        }
        out.push(proxy);
    }
    Ok(out)
}

fn validate(
    index: usize,
    table_start: usize,
    raw: RawProxy,
    src: &SourceText<'_>,
) -> Result<ProxyConfig, KeyError> {
    let key = |k: &str| format!("proxies[{index}].{k}");
    let missing =
        |k: &str, what: &str| src.key_error(table_start, key(k), format!("missing; {what}"));
    let name = raw.name.ok_or_else(|| {
        missing(
            "name",
            "every proxy needs a name (the `server` label of its traffic)",
        )
    })?;
    if name.get_ref().trim().is_empty() {
        return Err(src.key_error(name.span().start, key("name"), "must not be empty"));
    }
    let listen = raw.listen.ok_or_else(|| {
        missing(
            "listen",
            "the address clients connect to, e.g. \"127.0.0.1:7010\"",
        )
    })?;
    let listen_addr = listen.get_ref().parse::<SocketAddr>().map_err(|_| {
        src.key_error(
            listen.span().start,
            key("listen"),
            format!(
                "{:?} is not an address with a port, e.g. \"127.0.0.1:7010\"",
                listen.get_ref()
            ),
        )
    })?;
    let upstream = raw.upstream.ok_or_else(|| {
        missing(
            "upstream",
            "the server's URL, e.g. \"http://127.0.0.1:3001\"",
        )
    })?;
    let upstream_url = Upstream::parse(upstream.get_ref())
        .map_err(|e| src.key_error(upstream.span().start, key("upstream"), e.to_string()))?;
    Ok(ProxyConfig {
        name: name.into_inner(),
        listen: listen_addr,
        upstream: upstream_url,
        timeout: raw.timeout.unwrap_or(DEFAULT_PROXY_TIMEOUT),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct File {
        proxies: Vec<Spanned<RawProxy>>,
    }

    fn parse(text: &str) -> Result<Vec<ProxyConfig>, KeyError> {
        let file: File = toml::from_str(text).expect("toml");
        validate_all(file.proxies, &SourceText::new(text))
    }

    #[test]
    fn entries_are_validated_and_take_the_default_timeout() {
        let ok = parse(
            "[[proxies]]\nname = \"a\"\nlisten = \"127.0.0.1:7010\"\nupstream = \"http://127.0.0.1:3001/mcp\"\n\
             [[proxies]]\nname = \"b\"\nlisten = \"127.0.0.1:7011\"\nupstream = \"http://h\"\ntimeout = \"5s\"\n",
        )
        .expect("valid");
        assert_eq!(ok[0].timeout, DEFAULT_PROXY_TIMEOUT);
        assert_eq!(ok[1].timeout, Duration::from_secs(5));
        assert_eq!(ok[0].upstream.url().path(), "/mcp");
    }

    #[test]
    fn bad_entries_name_their_key_and_line() {
        let cases = [
            (
                "[[proxies]]\nlisten = \"127.0.0.1:1\"\nupstream = \"http://h\"\n",
                "proxies[0].name",
            ),
            (
                "[[proxies]]\nname = \"a\"\nlisten = \"nowhere\"\nupstream = \"http://h\"\n",
                "proxies[0].listen",
            ),
            (
                "[[proxies]]\nname = \"a\"\nlisten = \"127.0.0.1:1\"\nupstream = \"ftp://h\"\n",
                "proxies[0].upstream",
            ),
            (
                "[[proxies]]\nname = \"a\"\nlisten = \"127.0.0.1:1\"\nupstream = \"http://h\"\n\
                 [[proxies]]\nname = \"a\"\nlisten = \"127.0.0.1:2\"\nupstream = \"http://h\"\n",
                "proxies[1].name",
            ),
            (
                "[[proxies]]\nname = \"a\"\nlisten = \"127.0.0.1:1\"\nupstream = \"http://h\"\n\
                 [[proxies]]\nname = \"b\"\nlisten = \"127.0.0.1:1\"\nupstream = \"http://h\"\n",
                "proxies[1].listen",
            ),
        ];
        for (text, key) in cases {
            let err = parse(text).expect_err(key);
            assert_eq!(err.key, key, "{text}");
            assert!(err.line > 0);
        }
    }
}

//! Where metadata documents are looked for, in the order the MCP authorization spec lists:
//! protected-resource metadata (RFC 9728 section 3.1) and authorization-server metadata
//! (RFC 8414 section 3.1 and OpenID Connect Discovery, with their path-insertion variants).
//! Also the server's canonical URL (RFC 8707 `resource`) and whether metadata may name it.

use url::Url;

/// Protected-resource metadata candidates for the MCP endpoint `server` when its 401 names no
/// `resource_metadata`: the path-suffixed well-known URL, then the root one.
pub fn protected_resource_candidates(server: &Url) -> Vec<Url> {
    well_known(server, "oauth-protected-resource")
}

/// Authorization-server metadata candidates for `issuer`: for an issuer with a path,
/// OAuth with the path appended, OpenID with the path appended, OpenID with the well-known
/// segment appended to the path; for one without, OAuth then OpenID at the root.
pub fn authorization_server_candidates(issuer: &Url) -> Vec<Url> {
    let path = issuer.path().trim_end_matches('/');
    if path.is_empty() {
        return [
            "/.well-known/oauth-authorization-server",
            "/.well-known/openid-configuration",
        ]
        .into_iter()
        .map(|p| at_path(issuer, p))
        .collect();
    }
    vec![
        at_path(
            issuer,
            &format!("/.well-known/oauth-authorization-server{path}"),
        ),
        at_path(issuer, &format!("/.well-known/openid-configuration{path}")),
        at_path(issuer, &format!("{path}/.well-known/openid-configuration")),
    ]
}

/// The well-known document `name` for `url`: with the URL's path inserted after the segment
/// (when it has one), then at the root.
fn well_known(url: &Url, name: &str) -> Vec<Url> {
    let path = url.path().trim_end_matches('/');
    let mut out = Vec::new();
    if !path.is_empty() {
        out.push(at_path(url, &format!("/.well-known/{name}{path}")));
    }
    out.push(at_path(url, &format!("/.well-known/{name}")));
    out
}

/// `url`'s origin with `path` (no query or fragment).
fn at_path(url: &Url, path: &str) -> Url {
    let mut out = url.clone();
    out.set_path(path);
    out.set_query(None);
    out.set_fragment(None);
    out
}

/// The server's canonical URL (MCP authorization spec, "Canonical Server URI"): scheme and host
/// lower case, no fragment, no query, no trailing slash unless the path is `/` alone.
pub fn canonical_resource(server: &Url) -> String {
    let mut url = server.clone();
    url.set_fragment(None);
    url.set_query(None);
    let text = url.to_string();
    if url.path() == "/" {
        // `Url` always writes a root path; the canonical form of a pathless server omits it.
        return text.trim_end_matches('/').to_string();
    }
    text.trim_end_matches('/').to_string()
}

/// True when protected-resource metadata stating `resource` may speak for `server`: the same
/// origin, and the server's path equal to or below the resource's path (RFC 9728 section 3.3
/// with the MCP spec's path prefix rule).
pub fn resource_covers(resource: &str, server: &Url) -> bool {
    let Ok(resource) = Url::parse(resource) else {
        return false;
    };
    if resource.origin() != server.origin() {
        return false;
    }
    let want = resource.path().trim_end_matches('/');
    let have = server.path().trim_end_matches('/');
    have == want || have.starts_with(&format!("{want}/")) || want.is_empty()
}

/// The origin of `server` as a URL (the legacy 2025-03-26 authorization server when no
/// protected-resource metadata exists).
pub fn origin_of(server: &Url) -> Url {
    at_path(server, "/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).expect("url")
    }

    fn strings(urls: Vec<Url>) -> Vec<String> {
        urls.into_iter().map(|u| u.to_string()).collect()
    }

    #[test]
    fn protected_resource_path_suffixed_then_root() {
        assert_eq!(
            strings(protected_resource_candidates(&url(
                "https://h:8443/api/mcp?x=1"
            ))),
            [
                "https://h:8443/.well-known/oauth-protected-resource/api/mcp",
                "https://h:8443/.well-known/oauth-protected-resource",
            ]
        );
        assert_eq!(
            strings(protected_resource_candidates(&url("https://h/"))),
            ["https://h/.well-known/oauth-protected-resource"]
        );
    }

    #[test]
    fn authorization_server_path_insertion_variants() {
        assert_eq!(
            strings(authorization_server_candidates(&url("https://as/tenant1"))),
            [
                "https://as/.well-known/oauth-authorization-server/tenant1",
                "https://as/.well-known/openid-configuration/tenant1",
                "https://as/tenant1/.well-known/openid-configuration",
            ]
        );
        assert_eq!(
            strings(authorization_server_candidates(&url("https://as"))),
            [
                "https://as/.well-known/oauth-authorization-server",
                "https://as/.well-known/openid-configuration",
            ]
        );
    }

    #[test]
    fn canonical_resource_drops_fragment_query_and_trailing_slash() {
        assert_eq!(
            canonical_resource(&url("HTTPS://API.Example/mcp/#x")),
            "https://api.example/mcp"
        );
        assert_eq!(
            canonical_resource(&url("https://api.example/")),
            "https://api.example"
        );
    }

    #[test]
    fn metadata_speaks_for_its_path_and_below_only() {
        let server = url("https://h/api/mcp");
        assert!(resource_covers("https://h/api/mcp", &server));
        assert!(resource_covers("https://h/api", &server));
        assert!(resource_covers("https://h", &server));
        assert!(!resource_covers("https://h/other", &server));
        assert!(!resource_covers("https://h/api/mc", &server));
        assert!(!resource_covers("https://evil/api/mcp", &server));
        assert!(!resource_covers("not a url", &server));
    }
}

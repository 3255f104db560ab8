//! The `Bearer` challenge of a 401 or 403 `WWW-Authenticate` header (RFC 6750 section 3,
//! RFC 9728 section 5.1): where the protected-resource metadata is, which scope to ask for, and
//! the error (`invalid_token`, `insufficient_scope`).

/// What a `Bearer` challenge says; every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Challenge {
    /// `resource_metadata`: the protected-resource metadata URL.
    pub resource_metadata: Option<String>,
    /// `scope`: the scopes the request needs, space separated.
    pub scope: Option<String>,
    /// `error`: why the token was refused.
    pub error: Option<String>,
}

impl Challenge {
    /// The `Bearer` (or `DPoP`) challenge among the header's challenges; an empty challenge when
    /// the header names neither scheme (or is absent).
    pub fn parse(header: Option<&str>) -> Challenge {
        let Some(header) = header else {
            return Challenge::default();
        };
        let mut found = Challenge::default();
        let mut in_bearer = false;
        for (scheme, params) in challenges(header) {
            if let Some(scheme) = scheme {
                // A DPoP challenge (RFC 9449 section 7.1) has the same parameters.
                in_bearer =
                    scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("dpop");
            }
            if !in_bearer {
                continue;
            }
            for (name, value) in params {
                let slot = match name.to_ascii_lowercase().as_str() {
                    "resource_metadata" => &mut found.resource_metadata,
                    "scope" => &mut found.scope,
                    "error" => &mut found.error,
                    _ => continue,
                };
                slot.get_or_insert(value);
            }
        }
        found
    }

    /// True when a 403 asks for more scope (step-up authorization).
    pub fn insufficient_scope(&self) -> bool {
        self.error.as_deref() == Some("insufficient_scope")
    }
}

/// One challenge of a header: its scheme (`None` for parameters before any scheme) and its
/// `name=value` parameters.
type Segment = (Option<String>, Vec<(String, String)>);

/// Splits a header into segments: a scheme starts a new challenge (`Some(scheme)`), followed by
/// its `name=value` parameters. Quoted values may hold commas and escaped quotes.
fn challenges(header: &str) -> Vec<Segment> {
    let mut out: Vec<Segment> = Vec::new();
    let mut rest = header.trim();
    while !rest.is_empty() {
        rest = rest.trim_start_matches([',', ' ', '\t']);
        if rest.is_empty() {
            break;
        }
        let token_end = rest
            .find(|c: char| c == '=' || c == ',' || c.is_whitespace())
            .unwrap_or(rest.len());
        let token = &rest[..token_end];
        let after = rest[token_end..].trim_start();
        if let Some(value_text) = after.strip_prefix('=') {
            // A parameter of the current challenge (or token68 padding: ignored).
            let value_text = value_text.trim_start();
            let (value, remaining) = read_value(value_text);
            match out.last_mut() {
                Some((_, params)) => params.push((token.to_string(), value)),
                None => out.push((None, vec![(token.to_string(), value)])),
            }
            rest = remaining;
        } else {
            out.push((Some(token.to_string()), Vec::new()));
            rest = after;
        }
    }
    out
}

/// Reads a quoted-string or token value; returns it and the text after it.
fn read_value(text: &str) -> (String, &str) {
    if let Some(quoted) = text.strip_prefix('"') {
        let mut value = String::new();
        let mut chars = quoted.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(escaped);
                    }
                }
                '"' => return (value, &quoted[i + 1..]),
                _ => value.push(c),
            }
        }
        (value, "")
    } else {
        let end = text
            .find(|c: char| c == ',' || c.is_whitespace())
            .unwrap_or(text.len());
        (text[..end].to_string(), &text[end..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_bearer_parameters() {
        let c = Challenge::parse(Some(
            r#"Bearer error="invalid_token", resource_metadata="http://h/.well-known/oauth-protected-resource/mcp", scope="a b""#,
        ));
        assert_eq!(
            c.resource_metadata.as_deref(),
            Some("http://h/.well-known/oauth-protected-resource/mcp")
        );
        assert_eq!(c.scope.as_deref(), Some("a b"));
        assert_eq!(c.error.as_deref(), Some("invalid_token"));
        assert!(!c.insufficient_scope());
    }

    #[test]
    fn skips_other_schemes_and_reads_unquoted_values() {
        let c = Challenge::parse(Some(
            r#"Basic realm="x, y", Bearer error=insufficient_scope, scope="files:write", DPoP algs="ES256""#,
        ));
        assert!(c.insufficient_scope());
        assert_eq!(c.scope.as_deref(), Some("files:write"));
        assert_eq!(c.resource_metadata, None);
    }

    #[test]
    fn quoted_values_keep_escapes_and_commas() {
        let c = Challenge::parse(Some(r#"bearer scope="a,\"b\"""#));
        assert_eq!(c.scope.as_deref(), Some("a,\"b\""));
    }

    #[test]
    fn absent_or_foreign_headers_say_nothing() {
        assert_eq!(Challenge::parse(None), Challenge::default());
        assert_eq!(
            Challenge::parse(Some("Basic realm=\"x\"")),
            Challenge::default()
        );
        assert_eq!(Challenge::parse(Some("Bearer")), Challenge::default());
    }
}

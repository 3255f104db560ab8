//! Which scopes a token request asks for (MCP authorization spec, "Scope Selection Strategy").

use super::challenge::Challenge;

/// The scopes to request, space separated, or `None` to leave `scope` out:
/// the challenge's `scope` first (what this request needs), then the configured `scopes`, then
/// the protected-resource metadata's `scopes_supported`; nothing when none names any.
/// On a step-up (`previous` is the scope of the token the server found insufficient) the
/// previous scopes are kept beside the challenge's, so the new token still covers what worked.
pub fn select(
    challenge: &Challenge,
    configured: &[String],
    scopes_supported: Option<&[String]>,
    previous: Option<&str>,
) -> Option<String> {
    let chosen: Vec<String> =
        if let Some(scope) = challenge.scope.as_deref().filter(|s| !s.trim().is_empty()) {
            let mut words: Vec<String> = Vec::new();
            if challenge.insufficient_scope() {
                words.extend(
                    previous
                        .unwrap_or("")
                        .split_whitespace()
                        .map(str::to_string),
                );
            }
            words.extend(scope.split_whitespace().map(str::to_string));
            words
        } else if !configured.is_empty() {
            configured.to_vec()
        } else if let Some(supported) = scopes_supported.filter(|s| !s.is_empty()) {
            supported.to_vec()
        } else {
            return None;
        };
    let mut distinct: Vec<String> = Vec::new();
    for word in chosen {
        if !distinct.contains(&word) {
            distinct.push(word);
        }
    }
    Some(distinct.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn challenge(scope: Option<&str>, error: Option<&str>) -> Challenge {
        Challenge {
            scope: scope.map(str::to_string),
            error: error.map(str::to_string),
            ..Challenge::default()
        }
    }

    #[test]
    fn challenge_scope_wins_then_configured_then_supported() {
        let supported = vec!["a".to_string(), "b".to_string()];
        let configured = vec!["c".to_string()];
        assert_eq!(
            select(
                &challenge(Some("x y"), None),
                &configured,
                Some(&supported),
                None
            )
            .as_deref(),
            Some("x y")
        );
        assert_eq!(
            select(&challenge(None, None), &configured, Some(&supported), None).as_deref(),
            Some("c")
        );
        assert_eq!(
            select(&challenge(None, None), &[], Some(&supported), None).as_deref(),
            Some("a b")
        );
    }

    #[test]
    fn nothing_named_means_no_scope_parameter() {
        assert_eq!(select(&challenge(None, None), &[], None, None), None);
        assert_eq!(
            select(&challenge(Some(" "), None), &[], Some(&[]), None),
            None
        );
    }

    #[test]
    fn step_up_keeps_the_previous_scopes() {
        assert_eq!(
            select(
                &challenge(Some("write"), Some("insufficient_scope")),
                &[],
                None,
                Some("read write")
            )
            .as_deref(),
            Some("read write")
        );
        assert_eq!(
            select(
                &challenge(Some("admin"), Some("insufficient_scope")),
                &[],
                None,
                Some("read")
            )
            .as_deref(),
            Some("read admin")
        );
    }
}

//! `[security]`: the patterns (case-insensitive regexes) matched in servers' stderr and log
//! notifications; each match is a `pattern_match` security event.

use serde::Deserialize;
use toml::Spanned;

use crate::config::{KeyError, SourceText};

/// Largest compiled pattern accepted, in bytes (the regex crate's size limit).
pub const MAX_PATTERN_SIZE: usize = 1 << 20;

/// `[security]` as written in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSecurity {
    patterns: Option<Spanned<Vec<String>>>,
}

/// `[security]`, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecurityConfig {
    /// The patterns, validated as regexes; `None` keeps the built-in defaults.
    pub patterns: Option<Vec<String>>,
}

impl SecurityConfig {
    /// Validates `[security]`: every pattern must compile.
    pub fn from_raw(raw: RawSecurity, src: &SourceText<'_>) -> Result<SecurityConfig, KeyError> {
        let Some(patterns) = raw.patterns else {
            return Ok(SecurityConfig::default());
        };
        for (i, p) in patterns.get_ref().iter().enumerate() {
            if let Err(e) = regex::RegexBuilder::new(p)
                .size_limit(MAX_PATTERN_SIZE)
                .build()
            {
                return Err(src.key_error(
                    patterns.span().start,
                    format!("security.patterns[{i}]"),
                    format!("{p:?} is not a valid regex: {e}"),
                ));
            }
        }
        Ok(SecurityConfig {
            patterns: Some(patterns.into_inner()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<SecurityConfig, KeyError> {
        let raw: RawSecurity = toml::from_str(text).expect("security parses");
        SecurityConfig::from_raw(raw, &SourceText::new(text))
    }

    #[test]
    fn patterns_are_validated() {
        assert_eq!(check("").expect("absent"), SecurityConfig::default());
        let c = check("patterns = [\"denied\"]\n").expect("valid");
        assert_eq!(c.patterns, Some(vec!["denied".to_string()]));
        let err = check("\npatterns = [\"ok\", \"(\"]\n").expect_err("invalid");
        assert_eq!(err.key, "security.patterns[1]");
        assert_eq!(err.line, 2);
        assert!(
            err.message.starts_with("\"(\" is not a valid regex"),
            "{err}"
        );
    }
}

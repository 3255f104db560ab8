//! Human durations such as `"15s"`, `"1m30s"` or `"500ms"`, and the serde helper of optional
//! duration keys.

use std::time::Duration;

/// Why a duration text was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DurationError {
    /// Not a number with a unit.
    #[error(
        "invalid duration {text:?} ({source}); expected a number with a unit, like \"15s\", \"500ms\" or \"1m\""
    )]
    Invalid {
        /// The text as written.
        text: String,
        /// What the parser found wrong.
        source: humantime::DurationError,
    },
    /// Zero, which no interval or deadline can be.
    #[error("duration {text:?} must be greater than zero")]
    Zero {
        /// The text as written.
        text: String,
    },
}

/// Parses a human duration (`"15s"`, `"1m30s"`, `"250ms"`); zero is rejected.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let parsed =
        humantime::parse_duration(text.trim()).map_err(|source| DurationError::Invalid {
            text: text.to_string(),
            source,
        })?;
    if parsed.is_zero() {
        return Err(DurationError::Zero {
            text: text.to_string(),
        });
    }
    Ok(parsed)
}

/// Serde helper for optional duration keys:
/// `#[serde(default, with = "crate::config::duration::opt_duration")]`.
pub mod opt_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    /// Deserializes an optional duration string; other types are rejected with what was found.
    pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<Option<Duration>, D::Error> {
        match toml::Value::deserialize(de)? {
            toml::Value::String(text) => super::parse_duration(&text)
                .map(Some)
                .map_err(serde::de::Error::custom),
            other => Err(serde::de::Error::custom(format!(
                "expected a duration string such as \"10s\" or \"500ms\", found {} `{other}`",
                other.type_str()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_and_zero_is_rejected() {
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration(" 250ms "), Ok(Duration::from_millis(250)));
        let err = parse_duration("soon").expect_err("no unit").to_string();
        assert!(err.starts_with("invalid duration \"soon\" ("), "{err}");
        assert!(
            err.ends_with("expected a number with a unit, like \"15s\", \"500ms\" or \"1m\""),
            "{err}"
        );
        assert_eq!(
            parse_duration("0s"),
            Err(DurationError::Zero { text: "0s".into() })
        );
        assert_eq!(
            parse_duration("0s").expect_err("zero").to_string(),
            "duration \"0s\" must be greater than zero"
        );
    }

    #[test]
    fn the_serde_helper_names_what_it_found() {
        #[derive(Debug, serde::Deserialize)]
        struct Keys {
            #[serde(default, with = "super::opt_duration")]
            every: Option<Duration>,
        }
        let keys: Keys = toml::from_str("every = \"2s\"").expect("string");
        assert_eq!(keys.every, Some(Duration::from_secs(2)));
        let keys: Keys = toml::from_str("").expect("absent");
        assert_eq!(keys.every, None);
        let err = toml::from_str::<Keys>("every = 10").expect_err("integer");
        assert_eq!(
            err.message(),
            "expected a duration string such as \"10s\" or \"500ms\", found integer `10`"
        );
    }
}

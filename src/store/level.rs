//! Log levels of the history store: the syslog / MCP names, ordered by severity.

use std::fmt;
use std::str::FromStr;

/// A log level; `Debug` is the least severe, `Emergency` the most (MCP `LoggingLevel`,
/// which follows RFC 5424 syslog severities).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// debug
    Debug,
    /// info
    Info,
    /// notice
    Notice,
    /// warning (also accepted: warn)
    Warning,
    /// error (also accepted: err)
    Error,
    /// critical (also accepted: crit, fatal)
    Critical,
    /// alert
    Alert,
    /// emergency (also accepted: emerg, panic)
    Emergency,
}

impl Level {
    /// Every level, least severe first.
    pub const ALL: [Level; 8] = [
        Level::Debug,
        Level::Info,
        Level::Notice,
        Level::Warning,
        Level::Error,
        Level::Critical,
        Level::Alert,
        Level::Emergency,
    ];

    /// The MCP / syslog name.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Notice => "notice",
            Level::Warning => "warning",
            Level::Error => "error",
            Level::Critical => "critical",
            Level::Alert => "alert",
            Level::Emergency => "emergency",
        }
    }

    /// The number stored in the database (0 debug .. 7 emergency).
    pub fn rank(self) -> i64 {
        self as i64
    }

    /// The level of a stored rank; out-of-range values clamp.
    pub fn from_rank(rank: i64) -> Level {
        Level::ALL[rank.clamp(0, 7) as usize]
    }

    /// Guesses the level of a free-form stderr line from a level word near its start
    /// (`ERROR ...`, `[warn] ...`, `level=error`); `Info` when there is none.
    pub fn guess(line: &str) -> Level {
        let head: String = line
            .chars()
            .take(48)
            .collect::<String>()
            .to_ascii_lowercase();
        head.split(|c: char| !c.is_ascii_alphabetic())
            .filter(|w| !w.is_empty())
            .take(6)
            .find_map(|w| w.parse::<Level>().ok())
            .unwrap_or(Level::Info)
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not a level.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown log level {0:?}; expected one of debug, info, notice, warning, error, critical, alert, emergency"
)]
pub struct UnknownLevel(pub String);

impl FromStr for Level {
    type Err = UnknownLevel;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "debug" | "trace" => Level::Debug,
            "info" | "information" => Level::Info,
            "notice" => Level::Notice,
            "warning" | "warn" => Level::Warning,
            "error" | "err" => Level::Error,
            "critical" | "crit" | "fatal" => Level::Critical,
            "alert" => Level::Alert,
            "emergency" | "emerg" | "panic" => Level::Emergency,
            _ => return Err(UnknownLevel(s.to_string())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_case_insensitively_and_order_by_severity() {
        assert_eq!("ERROR".parse::<Level>(), Ok(Level::Error));
        assert_eq!("Warn".parse::<Level>(), Ok(Level::Warning));
        assert_eq!("emerg".parse::<Level>(), Ok(Level::Emergency));
        assert!("loud".parse::<Level>().is_err());
        assert!(Level::Error > Level::Warning && Level::Warning > Level::Notice);
        for l in Level::ALL {
            assert_eq!(Level::from_rank(l.rank()), l);
            assert_eq!(l.as_str().parse::<Level>(), Ok(l));
        }
    }

    #[test]
    fn stderr_levels_are_guessed_from_a_leading_word() {
        assert_eq!(Level::guess("ERROR: cannot connect"), Level::Error);
        assert_eq!(Level::guess("[warn] slow disk"), Level::Warning);
        assert_eq!(Level::guess("ts=1 level=error msg=x"), Level::Error);
        assert_eq!(
            Level::guess("Starting default (STDIO) server..."),
            Level::Info
        );
    }
}

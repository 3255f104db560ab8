//! [`KeyError`]: a rejected configuration key, with its line and what is expected. Every
//! component's validation returns it; `src/settings/` adds the file name.

/// A rejected key; Display gives `line: `key`: what is wrong (what is expected)`, the part of
/// `file:line: `key`: message` after the file name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{line}: `{key}`: {message}")]
pub struct KeyError {
    /// Dotted path of the key, e.g. `servers[1].url` or `budgets.cpu_cores`.
    pub key: String,
    /// 1-based line of the key or of its table; 0 when unknown.
    pub line: usize,
    /// What is wrong and what is expected.
    pub message: String,
}

impl KeyError {
    /// A rejected `key` at `line`.
    pub fn new(line: usize, key: impl Into<String>, message: impl Into<String>) -> Self {
        KeyError {
            key: key.into(),
            line,
            message: message.into(),
        }
    }

    /// The same error with its key placed inside the table `table`, e.g. `budgets.cpu_cores`
    /// inside `servers[0]` becomes `servers[0].budgets.cpu_cores`.
    pub fn within(self, table: &str) -> Self {
        KeyError {
            key: format!("{table}.{}", self.key),
            ..self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_nesting() {
        let e = KeyError::new(5, "budgets.fd_fraction", "must be a fraction").within("servers[0]");
        assert_eq!(e.key, "servers[0].budgets.fd_fraction");
        assert_eq!(
            e.to_string(),
            "5: `servers[0].budgets.fd_fraction`: must be a fraction"
        );
    }
}

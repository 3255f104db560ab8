//! Redaction of secret values from everything the daemon says.
//!
//! The daemon registers the secret values it resolves at run time (header and env values that
//! come from `${VAR}` references and literal credential headers, listed by
//! `ServerConfig::secret_values` in src/probe/references.rs, and its own environment variables
//! whose names look like secrets, [`environment_secrets`]); [`redact`] replaces every occurrence (also JSON- and
//! HTML-escaped forms) with `[REDACTED]`. Used by the log writer, the HTTP handlers and event
//! evidence.

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::{Arc, OnceLock, RwLock};

use crate::config::secret::looks_secret;

/// What a secret is replaced with.
pub const MASK: &str = "[REDACTED]";
/// Shorter values are not treated as secrets (they would mask ordinary words).
pub const MIN_SECRET_LEN: usize = 6;

/// Shortest value of a daemon environment variable treated as secret because of its name.
pub const MIN_GUESSED_SECRET_LEN: usize = 12;

fn store() -> &'static RwLock<Arc<Vec<String>>> {
    static SECRETS: OnceLock<RwLock<Arc<Vec<String>>>> = OnceLock::new();
    SECRETS.get_or_init(|| RwLock::new(Arc::new(Vec::new())))
}

/// Adds secret values (and their escaped forms); values shorter than [`MIN_SECRET_LEN`] are
/// ignored.
pub fn register<I: IntoIterator<Item = String>>(values: I) {
    let mut lock = store().write().unwrap_or_else(|p| p.into_inner());
    let mut set: BTreeSet<String> = lock.iter().cloned().collect();
    for v in values {
        if v.len() < MIN_SECRET_LEN {
            continue;
        }
        let mut bases = vec![v.clone()];
        // Bearer tokens: the token alone is a secret too.
        if let Some(token) = v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("Basic "))
            && token.len() >= MIN_SECRET_LEN
        {
            bases.push(token.to_string());
        }
        for base in bases {
            let json = serde_json::to_string(&base).unwrap_or_default();
            set.insert(json.trim_matches('"').to_string());
            set.insert(
                base.replace('&', "&amp;")
                    .replace('<', "&lt;")
                    .replace('>', "&gt;")
                    .replace('"', "&quot;")
                    .replace('\'', "&#39;"),
            );
            set.insert(base);
        }
    }
    // Longest first so a secret containing another is masked whole.
    let mut list: Vec<String> = set.into_iter().collect();
    list.sort_by_key(|s| std::cmp::Reverse(s.len()));
    *lock = Arc::new(list);
}

/// Values of the daemon's own environment variables whose names look secret (TOKEN, KEY,
/// PASSWORD, ...). Guessed from the name only, so a value must be at least
/// [`MIN_GUESSED_SECRET_LEN`] long: a short ordinary word (PGPASSWORD=postgres) is not masked
/// everywhere.
pub fn environment_secrets() -> Vec<String> {
    std::env::vars()
        .filter(|(k, v)| looks_secret(k) && v.len() >= MIN_GUESSED_SECRET_LEN)
        .map(|(_, v)| v)
        .collect()
}

/// Replaces every registered secret in `text`.
pub fn redact(text: &str) -> String {
    redact_owned(text.to_string())
}

/// [`redact`] for text the caller owns: returned as it is, without a copy, when it holds no
/// secret (the common case for a `/metrics` body of a few hundred kilobytes).
pub fn redact_owned(text: String) -> String {
    let secrets = Arc::clone(&store().read().unwrap_or_else(|p| p.into_inner()));
    let mut out = text;
    for s in secrets.iter() {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), MASK);
        }
    }
    out
}

/// A `tracing_subscriber` writer for stderr that redacts each log line.
#[derive(Debug, Default, Clone, Copy)]
pub struct RedactingStderr;

/// The per-event buffer of [`RedactingStderr`]; written out, redacted, when dropped.
#[derive(Debug, Default)]
pub struct RedactingBuffer(Vec<u8>);

impl Write for RedactingBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for RedactingBuffer {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.0);
        let _ = std::io::stderr().write_all(redact(&text).as_bytes());
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RedactingStderr {
    type Writer = RedactingBuffer;
    fn make_writer(&'a self) -> Self::Writer {
        RedactingBuffer::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_and_their_escaped_forms_are_masked() {
        register(["Bearer tok\"en-123456".to_string(), "abc".to_string()]);
        assert_eq!(redact("x tok\"en-123456 y"), format!("x {MASK} y"));
        assert_eq!(
            redact(r#"{"a":"tok\"en-123456"}"#),
            format!(r#"{{"a":"{MASK}"}}"#)
        );
        assert_eq!(redact("tok&quot;en-123456"), MASK);
        assert_eq!(redact("abc"), "abc", "short values are not secrets");
    }
}

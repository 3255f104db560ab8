//! Secrets read at run time, never from the configuration text: from an environment variable of
//! the daemon or from a file (`dsn_env` / `dsn_file`, `${VAR}` / `${file:PATH}`), and the names
//! that mark a value as secret.
//!
//! One rule for secret files, whoever reads them: at most [`MAX_SECRET_FILE_BYTES`] (a larger
//! file is an error naming it, never cut), UTF-8, one trailing newline (`\n` or `\r\n`) dropped,
//! and not empty. Files are re-read at every use, so a rotated secret is picked up.

use std::io::Read;
use std::path::{Path, PathBuf};

/// Largest secret file read.
pub const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// Environment variable names that mark a value as secret (substring, case-insensitive).
const SECRET_NAME_HINTS: [&str; 8] = [
    "TOKEN",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "API_KEY",
    "APIKEY",
    "DSN",
    "CREDENTIAL",
];
/// Header names whose values are credentials.
const SECRET_HEADERS: [&str; 5] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-api-key",
    "api-key",
];

/// Where a secret is read from at run time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// An environment variable of the daemon (its value is trimmed).
    Env(String),
    /// A file, read by the secret-file rule at every use, so rotation works.
    File(PathBuf),
}

/// Why a secret has no value; Display names the variable or file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The environment variable is not set (or blank).
    #[error("environment variable `{name}` is not set; export it for the daemon")]
    Unset {
        /// The variable.
        name: String,
    },
    /// The file cannot be opened or read.
    #[error("cannot read secret file {}: {source}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_SECRET_FILE_BYTES`].
    #[error("secret file {} is larger than {MAX_SECRET_FILE_BYTES} bytes", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// The file is not UTF-8 text.
    #[error("secret file {} is not UTF-8 text", path.display())]
    NotText {
        /// The file.
        path: PathBuf,
    },
    /// The file holds nothing but a newline, or nothing.
    #[error("secret file {} is empty", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

/// Reads a secret from its source; `env` looks up environment variables (`std::env::var` in
/// the daemon, a map in tests).
pub fn read_secret(
    source: &SecretSource,
    env: impl Fn(&str) -> Option<String>,
) -> Result<String, SecretError> {
    match source {
        SecretSource::Env(name) => env(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| SecretError::Unset { name: name.clone() }),
        SecretSource::File(path) => read_secret_file(path),
    }
}

/// Reads a secret file by the one rule of this module.
pub fn read_secret_file(path: &Path) -> Result<String, SecretError> {
    let unreadable = |source| SecretError::Unreadable {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let mut bytes = Vec::new();
    file.take(MAX_SECRET_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > MAX_SECRET_FILE_BYTES {
        return Err(SecretError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    let text = String::from_utf8(bytes).map_err(|_| SecretError::NotText {
        path: path.to_path_buf(),
    })?;
    let value = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(&text);
    if value.is_empty() {
        return Err(SecretError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(value.to_string())
}

/// Whether an environment variable's name suggests a secret (TOKEN, KEY, PASSWORD, ...).
pub fn looks_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    SECRET_NAME_HINTS.iter().any(|h| upper.contains(h))
}

/// Whether a header carries credentials (Authorization, Cookie, X-API-Key, ...).
pub fn is_secret_header(name: &str) -> bool {
    SECRET_HEADERS.contains(&name.to_ascii_lowercase().as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_come_from_env_or_file() {
        let env = SecretSource::Env("PG_DSN".into());
        assert_eq!(
            read_secret(&env, |_| Some(" postgres://x \n".into())).expect("set"),
            "postgres://x"
        );
        let err = read_secret(&env, |_| None).expect_err("unset").to_string();
        assert!(err.contains("`PG_DSN` is not set"), "{err}");
        assert!(matches!(
            read_secret(&env, |_| Some("  ".into())),
            Err(SecretError::Unset { .. })
        ));
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret\n").expect("write");
        assert_eq!(
            read_secret(&SecretSource::File(path.clone()), |_| None).expect("file"),
            "s3cret"
        );
        let missing = read_secret(&SecretSource::File(dir.path().join("nope")), |_| None)
            .expect_err("missing")
            .to_string();
        assert!(missing.contains("cannot read secret file"), "{missing}");
        assert!(missing.contains("nope"), "{missing}");
    }

    #[test]
    fn one_trailing_newline_is_dropped_and_nothing_else() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token");
        for (content, value) in [
            ("tok\n", "tok"),
            ("tok\r\n", "tok"),
            ("tok", "tok"),
            ("tok\n\n", "tok\n"),
            (" tok \n", " tok "),
        ] {
            std::fs::write(&path, content).expect("write");
            assert_eq!(
                read_secret_file(&path).expect(content),
                value,
                "{content:?}"
            );
        }
        for empty in ["", "\n", "\r\n"] {
            std::fs::write(&path, empty).expect("write");
            let err = read_secret_file(&path).expect_err("empty");
            assert!(matches!(err, SecretError::Empty { .. }), "{err:?}");
            assert_eq!(
                err.to_string(),
                format!("secret file {} is empty", path.display())
            );
        }
        std::fs::write(&path, [0xff, 0xfe]).expect("write");
        assert!(matches!(
            read_secret_file(&path),
            Err(SecretError::NotText { .. })
        ));
    }

    #[test]
    fn a_file_above_the_bound_is_an_error_naming_it_not_a_cut_secret() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("big");
        let at_bound = "x".repeat(MAX_SECRET_FILE_BYTES as usize);
        std::fs::write(&path, &at_bound).expect("write");
        assert_eq!(read_secret_file(&path).expect("at the bound"), at_bound);
        std::fs::write(&path, format!("{at_bound}y")).expect("write");
        let err = read_secret_file(&path).expect_err("too large");
        assert!(matches!(err, SecretError::TooLarge { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!("secret file {} is larger than 65536 bytes", path.display())
        );
    }

    #[test]
    fn secret_names_and_headers_are_recognised() {
        assert!(looks_secret("github_token"));
        assert!(looks_secret("PG_DSN"));
        assert!(!looks_secret("HOME"));
        assert!(is_secret_header("Authorization"));
        assert!(is_secret_header("X-API-Key"));
        assert!(!is_secret_header("Accept"));
    }
}

//! `${…}` references inside configuration values (header and env values of servers, header
//! values of HTTP dependencies): `${NAME}` is an environment variable, `${file:PATH}` a secret
//! file (read by the rule of [`super::secret`]), `$$` a literal `$`.

use std::path::Path;

use super::secret::{SecretError, read_secret_file};

/// What starts a reference to a secret file: `${file:/run/secrets/token}`.
pub const FILE_PREFIX: &str = "file:";

/// Replaces every `${NAME}` in `value` with `lookup(NAME)`; `$$` is a literal `$`, and a `$`
/// that starts no reference (or an unterminated `${`) stays as written. The first failed
/// lookup's error is returned.
pub fn expand<E>(
    value: &str,
    mut lookup: impl FnMut(&str) -> Result<String, E>,
) -> Result<String, E> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(inner) = after.strip_prefix('{') {
            match inner.find('}') {
                Some(end) => {
                    out.push_str(&lookup(&inner[..end])?);
                    rest = &inner[end + 1..];
                }
                None => {
                    out.push('$');
                    rest = after;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The names `value` refers to (`NAME` or `file:PATH`), in order.
pub fn referenced_names(value: &str) -> Vec<String> {
    let mut names = Vec::new();
    let _ = expand(value, |name: &str| {
        names.push(name.to_string());
        Ok::<_, std::convert::Infallible>(String::new())
    });
    names
}

/// The value of one reference: `file:PATH` is read by the secret-file rule, any other name is
/// the environment variable `env` finds (its value as it is).
pub fn resolve(name: &str, env: impl Fn(&str) -> Option<String>) -> Result<String, SecretError> {
    match name.strip_prefix(FILE_PREFIX) {
        Some(path) => read_secret_file(Path::new(path)),
        None => env(name).ok_or_else(|| SecretError::Unset {
            name: name.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion_handles_literals_and_escapes() {
        let look = |n: &str| match n {
            "A" => Ok("x".to_string()),
            other => Err(other.to_string()),
        };
        assert_eq!(expand("Bearer ${A}", look), Ok("Bearer x".into()));
        assert_eq!(expand("$$A ${A}$", look), Ok("$A x$".into()));
        assert_eq!(expand("${B}", look), Err("B".into()));
        assert_eq!(expand("${unterminated", look), Ok("${unterminated".into()));
        assert_eq!(
            referenced_names("${A}:${file:/run/s} $${NOT}"),
            ["A", "file:/run/s"]
        );
    }

    #[test]
    fn references_resolve_from_the_environment_or_a_secret_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token");
        std::fs::write(&path, "from-file\n").expect("write");
        let env = |n: &str| (n == "SET").then(|| " spaced ".to_string());
        assert_eq!(resolve("SET", env).expect("set"), " spaced ");
        assert!(matches!(
            resolve("UNSET", env),
            Err(SecretError::Unset { name }) if name == "UNSET"
        ));
        let file_ref = format!("file:{}", path.display());
        assert_eq!(resolve(&file_ref, env).expect("file"), "from-file");
        assert!(matches!(
            resolve("file:/nonexistent/secret", env),
            Err(SecretError::Unreadable { .. })
        ));
    }
}

//! The secrets of a configuration: registered for redaction, and the ones written literally in
//! the file (a `validate` warning).

use crate::security::redact;

use super::Config;

impl Config {
    /// Registers for redaction the secret values of every server (resolved from the
    /// environment and secret files) and of the daemon's own environment.
    pub fn register_secrets(&self) {
        let mut values: Vec<String> = self
            .servers
            .iter()
            .flat_map(|s| s.secret_values())
            .collect();
        values.extend(redact::environment_secrets());
        redact::register(values);
    }

    /// Warnings for credential headers and secret-looking env entries written literally in the
    /// file instead of `${VAR}` / `${file:PATH}`.
    pub fn literal_secret_warnings(&self) -> Vec<String> {
        self.servers
            .iter()
            .flat_map(|server| {
                server.literal_secret_keys().into_iter().map(move |key| {
                    format!(
                        "server {:?}: `{key}` holds a literal secret; use \"${{VAR}}\" or \"${{file:/path}}\" so it stays out of the file",
                        server.name
                    )
                })
            })
            .collect()
    }
}

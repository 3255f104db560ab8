//! `[store]`: where the history database lives and how much of it is kept.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// File name of the default database, created beside the configuration file.
pub const DEFAULT_FILE_NAME: &str = "mcp-exporter.db";
/// Default age after which rows are deleted.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// Default size (database plus write-ahead log) above which the oldest rows are deleted.
pub const DEFAULT_MAX_SIZE: u64 = 256 * 1024 * 1024;
/// Default period of the retention task.
pub const DEFAULT_RETENTION_INTERVAL: Duration = Duration::from_secs(60);

/// `[store]` as written in the file (validated by [`StoreConfig::from_raw`]).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStoreConfig {
    enabled: Option<bool>,
    path: Option<PathBuf>,
    max_age: Option<String>,
    max_size: Option<toml::Value>,
    retention_interval: Option<String>,
}

/// The history store's settings, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreConfig {
    /// Whether the daemon records history at all.
    pub enabled: bool,
    /// SQLite file; a relative `path` is resolved against the configuration file's directory.
    pub path: PathBuf,
    /// Rows older than this are deleted.
    pub max_age: Duration,
    /// Above this many bytes (database + WAL), the oldest rows are deleted.
    pub max_size: u64,
    /// How often retention runs.
    pub retention_interval: Duration,
}

impl StoreConfig {
    /// Defaults for a configuration file at `config_path`.
    pub fn defaults_for(config_path: &Path) -> StoreConfig {
        StoreConfig {
            enabled: true,
            path: beside(config_path, Path::new(DEFAULT_FILE_NAME)),
            max_age: DEFAULT_MAX_AGE,
            max_size: DEFAULT_MAX_SIZE,
            retention_interval: DEFAULT_RETENTION_INTERVAL,
        }
    }

    /// Validates `[store]`; the error is (key, message).
    pub fn from_raw(
        raw: RawStoreConfig,
        config_path: &Path,
    ) -> Result<StoreConfig, (String, String)> {
        let mut cfg = StoreConfig::defaults_for(config_path);
        if let Some(enabled) = raw.enabled {
            cfg.enabled = enabled;
        }
        if let Some(path) = raw.path {
            if path.as_os_str().is_empty() {
                return Err((
                    "path".into(),
                    "must not be empty; omit it for the default beside the config file".into(),
                ));
            }
            cfg.path = beside(config_path, &path);
        }
        if let Some(text) = raw.max_age {
            cfg.max_age =
                crate::config::parse_duration(&text).map_err(|m| ("max_age".to_string(), m))?;
        }
        if let Some(text) = raw.retention_interval {
            cfg.retention_interval = crate::config::parse_duration(&text)
                .map_err(|m| ("retention_interval".to_string(), m))?;
        }
        if let Some(value) = raw.max_size {
            cfg.max_size = match value {
                toml::Value::Integer(n) if n > 0 => n as u64,
                toml::Value::String(text) => {
                    parse_size(&text).map_err(|m| ("max_size".to_string(), m))?
                }
                other => {
                    return Err((
                        "max_size".into(),
                        format!(
                            "expected a size such as \"256MiB\", \"1GB\" or a positive number of bytes, found `{other}`"
                        ),
                    ));
                }
            };
        }
        Ok(cfg)
    }
}

fn beside(config_path: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        return path.to_path_buf();
    }
    match config_path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join(path),
        _ => path.to_path_buf(),
    }
}

/// Parses `"512KiB"`, `"100MB"`, `"1GiB"`, `"4096"` into bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| {
        format!("invalid size {text:?}; expected a number with a unit, like \"256MiB\"")
    })?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" | "k" => 1000,
        "kib" => 1024,
        "mb" | "m" => 1000 * 1000,
        "mib" => 1024 * 1024,
        "gb" | "g" => 1000 * 1000 * 1000,
        "gib" => 1024 * 1024 * 1024,
        other => {
            return Err(format!(
                "unknown size unit {other:?} in {text:?}; use B, KB, KiB, MB, MiB, GB or GiB"
            ));
        }
    };
    let bytes = (n * mult as f64) as u64;
    if bytes == 0 {
        return Err(format!("size {text:?} must be greater than zero"));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("256MiB"), Ok(256 * 1024 * 1024));
        assert_eq!(parse_size("1 GB"), Ok(1_000_000_000));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("0MB").is_err());
    }

    #[test]
    fn default_path_is_beside_the_config_file() {
        let c = StoreConfig::defaults_for(Path::new("/etc/mcp/mcp-exporter.toml"));
        assert_eq!(c.path, PathBuf::from("/etc/mcp/mcp-exporter.db"));
        let c = StoreConfig::defaults_for(Path::new("mcp-exporter.toml"));
        assert_eq!(c.path, PathBuf::from("mcp-exporter.db"));
        let raw = RawStoreConfig {
            path: Some("history/x.db".into()),
            ..Default::default()
        };
        let c = StoreConfig::from_raw(raw, Path::new("/srv/a.toml")).unwrap();
        assert_eq!(c.path, PathBuf::from("/srv/history/x.db"));
    }

    #[test]
    fn store_table_of_a_config_file_is_validated_with_its_line() {
        use crate::config::Config;
        let path = Path::new("/srv/mcp/c.toml");
        let c = Config::from_toml(
            "[store]\nmax_size = \"1MiB\"\nmax_age = \"1h\"\nenabled = false\n",
            path,
        )
        .unwrap();
        assert_eq!(c.store.max_size, 1024 * 1024);
        assert_eq!(c.store.max_age, Duration::from_secs(3600));
        assert!(!c.store.enabled);
        assert_eq!(c.store.path, PathBuf::from("/srv/mcp/mcp-exporter.db"));
        let err = Config::from_toml("[store]\nbogus = 1\n", path)
            .unwrap_err()
            .to_string();
        assert!(err.contains("bogus") && err.contains("c.toml:2"), "{err}");
        let err = Config::from_toml("\n[store]\nmax_size = \"12 parsecs\"\n", path)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("store.max_size") && err.contains("c.toml:2"),
            "{err}"
        );
    }
}

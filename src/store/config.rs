//! `[store]`: where the history database lives and how much of it is kept.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::config::{KeyError, SourceText, parse_duration};

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
    backup: Option<RawBackupSchedule>,
}

/// `[store] backup = { every = "24h", dir = "...", keep = 7 }` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBackupSchedule {
    every: Option<String>,
    dir: Option<PathBuf>,
    keep: Option<i64>,
}

/// Default number of scheduled backups kept in the backup directory.
pub const DEFAULT_BACKUP_KEEP: usize = 7;

/// The daemon's backup schedule (src/store/backup.rs): a consistent copy of the store every
/// `every` into `dir`, the newest `keep` kept.
#[derive(Debug, Clone, PartialEq)]
pub struct BackupSchedule {
    /// Time between backups.
    pub every: Duration,
    /// Where the backups are written; a relative `dir` is resolved against the configuration
    /// file's directory.
    pub dir: PathBuf,
    /// How many scheduled backups are kept; older ones are deleted after each run.
    pub keep: usize,
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
    /// The backup schedule, when `[store] backup` is set.
    pub backup: Option<BackupSchedule>,
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
            backup: None,
        }
    }

    /// Validates `[store]`; a rejected key is reported at the line of the `[store]` header.
    pub fn from_raw(
        raw: RawStoreConfig,
        config_path: &Path,
        src: &SourceText<'_>,
    ) -> Result<StoreConfig, KeyError> {
        let invalid = |key: &str, message: String| {
            src.key_error(
                src.text().find("[store]").unwrap_or(0),
                format!("store.{key}"),
                message,
            )
        };
        let mut cfg = StoreConfig::defaults_for(config_path);
        if let Some(enabled) = raw.enabled {
            cfg.enabled = enabled;
        }
        if let Some(path) = raw.path {
            if path.as_os_str().is_empty() {
                return Err(invalid(
                    "path",
                    "must not be empty; omit it for the default beside the config file".into(),
                ));
            }
            cfg.path = beside(config_path, &path);
        }
        if let Some(text) = raw.max_age {
            cfg.max_age = parse_duration(&text).map_err(|e| invalid("max_age", e.to_string()))?;
        }
        if let Some(text) = raw.retention_interval {
            cfg.retention_interval =
                parse_duration(&text).map_err(|e| invalid("retention_interval", e.to_string()))?;
        }
        if let Some(value) = raw.max_size {
            cfg.max_size = match value {
                toml::Value::Integer(n) if n > 0 => n as u64,
                toml::Value::String(text) => {
                    parse_size(&text).map_err(|e| invalid("max_size", e.to_string()))?
                }
                other => {
                    return Err(invalid(
                        "max_size",
                        format!(
                            "expected a size such as \"256MiB\", \"1GB\" or a positive number of bytes, found `{other}`"
                        ),
                    ));
                }
            };
        }
        if let Some(raw) = raw.backup {
            cfg.backup = Some(
                backup_schedule(raw, config_path)
                    .map_err(|(key, message)| invalid(&format!("backup.{key}"), message))?,
            );
        }
        Ok(cfg)
    }
}

/// Validates `[store] backup`; the error names the key (`every`, `dir`, `keep`).
fn backup_schedule(
    raw: RawBackupSchedule,
    config_path: &Path,
) -> Result<BackupSchedule, (&'static str, String)> {
    let every = raw
        .every
        .ok_or(("every", "is required, e.g. every = \"24h\"".to_string()))?;
    let every = parse_duration(&every).map_err(|e| ("every", e.to_string()))?;
    let dir = raw.dir.ok_or((
        "dir",
        "is required: the directory the backups are written to".to_string(),
    ))?;
    if dir.as_os_str().is_empty() {
        return Err(("dir", "must not be empty".to_string()));
    }
    let keep = match raw.keep {
        None => DEFAULT_BACKUP_KEEP,
        Some(n) if n >= 1 => usize::try_from(n).unwrap_or(usize::MAX),
        Some(n) => return Err(("keep", format!("must be at least 1, found {n}"))),
    };
    Ok(BackupSchedule {
        every,
        dir: beside(config_path, &dir),
        keep,
    })
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

/// Why a size text was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    /// No number in front.
    #[error("invalid size {0:?}; expected a number with a unit, like \"256MiB\"")]
    NotANumber(String),
    /// A unit that is not B, KB, KiB, MB, MiB, GB or GiB.
    #[error("unknown size unit {unit:?} in {text:?}; use B, KB, KiB, MB, MiB, GB or GiB")]
    UnknownUnit {
        /// The unit as written (lowercased).
        unit: String,
        /// The whole text.
        text: String,
    },
    /// Zero bytes.
    #[error("size {0:?} must be greater than zero")]
    Zero(String),
}

/// Parses `"512KiB"`, `"100MB"`, `"1GiB"`, `"4096"` into bytes.
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| SizeError::NotANumber(text.to_string()))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" | "k" => 1000,
        "kib" => 1024,
        "mb" | "m" => 1000 * 1000,
        "mib" => 1024 * 1024,
        "gb" | "g" => 1000 * 1000 * 1000,
        "gib" => 1024 * 1024 * 1024,
        other => {
            return Err(SizeError::UnknownUnit {
                unit: other.to_string(),
                text: text.to_string(),
            });
        }
    };
    let bytes = (n * mult as f64) as u64;
    if bytes == 0 {
        return Err(SizeError::Zero(text.to_string()));
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
        assert_eq!(
            parse_size("12 parsecs"),
            Err(SizeError::UnknownUnit {
                unit: "parsecs".into(),
                text: "12 parsecs".into()
            })
        );
        assert_eq!(parse_size("0MB"), Err(SizeError::Zero("0MB".into())));
        assert_eq!(parse_size("MB"), Err(SizeError::NotANumber("MB".into())));
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
        let c = StoreConfig::from_raw(raw, Path::new("/srv/a.toml"), &SourceText::new(""))
            .expect("valid");
        assert_eq!(c.path, PathBuf::from("/srv/history/x.db"));
    }

    #[test]
    fn mistakes_are_reported_at_the_store_table() {
        let check = |text: &str| {
            #[derive(Deserialize)]
            struct File {
                store: RawStoreConfig,
            }
            let file: File = toml::from_str(text).expect("store parses");
            StoreConfig::from_raw(file.store, Path::new("/srv/c.toml"), &SourceText::new(text))
        };
        let c = check("[store]\nmax_size = \"1MiB\"\nmax_age = \"1h\"\nenabled = false\n")
            .expect("valid");
        assert_eq!(c.max_size, 1024 * 1024);
        assert_eq!(c.max_age, Duration::from_secs(3600));
        assert!(!c.enabled);
        let err = check("\n[store]\nmax_size = \"12 parsecs\"\n").expect_err("unit");
        assert_eq!(
            err.to_string(),
            "2: `store.max_size`: unknown size unit \"parsecs\" in \"12 parsecs\"; use B, KB, KiB, MB, MiB, GB or GiB"
        );
        let err = check("[store]\nmax_size = -1\n").expect_err("negative");
        assert!(err.message.contains("found `-1`"), "{err}");
        let err = check("[store]\nretention_interval = \"0s\"\n").expect_err("zero");
        assert_eq!(err.key, "store.retention_interval");
        assert!(err.message.contains("greater than zero"), "{err}");
        let err = check("[store]\npath = \"\"\n").expect_err("empty path");
        assert_eq!(err.key, "store.path");
    }

    #[test]
    fn backup_schedule_is_validated_and_its_dir_resolved() {
        let check = |text: &str| {
            #[derive(Deserialize)]
            struct File {
                store: RawStoreConfig,
            }
            let file: File = toml::from_str(text).expect("store parses");
            StoreConfig::from_raw(file.store, Path::new("/srv/c.toml"), &SourceText::new(text))
        };
        let c = check("[store]\nbackup = { every = \"24h\", dir = \"backups\" }\n").expect("valid");
        assert_eq!(
            c.backup,
            Some(BackupSchedule {
                every: Duration::from_secs(24 * 3600),
                dir: PathBuf::from("/srv/backups"),
                keep: DEFAULT_BACKUP_KEEP,
            })
        );
        assert_eq!(check("[store]\n").expect("valid").backup, None);
        let err = check("[store]\nbackup = { dir = \"b\" }\n").expect_err("no every");
        assert_eq!(err.key, "store.backup.every");
        let err = check("[store]\nbackup = { every = \"1h\", dir = \"b\", keep = 0 }\n")
            .expect_err("keep 0");
        assert_eq!(err.key, "store.backup.keep");
        let err = check("[store]\nbackup = { every = \"1h\" }\n").expect_err("no dir");
        assert_eq!(err.key, "store.backup.dir");
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Strict {
            store: RawStoreConfig,
        }
        assert!(
            toml::from_str::<Strict>(
                "[store]\nbackup = { every = \"1h\", dir = \"b\", often = 1 }\n"
            )
            .is_err(),
            "unknown backup keys are rejected"
        );
    }
}

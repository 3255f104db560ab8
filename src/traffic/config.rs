//! `[traffic]`: the daemon's traffic socket, where wrappers report (docs/traffic.md).

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use crate::config::{KeyError, SourceText};

use super::receiver::DEFAULT_SOCKET_MODE;

/// `[traffic]` as written in the file (validated by [`TrafficConfig::from_raw`]).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTrafficConfig {
    enabled: Option<bool>,
    path: Option<Spanned<PathBuf>>,
    socket_mode: Option<Spanned<i64>>,
}

/// The traffic socket's settings, validated. Read when the daemon starts; a reload changes
/// only the configured servers wrappers are joined to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrafficConfig {
    /// Whether the daemon binds the socket at all.
    pub enabled: bool,
    /// The socket; `None` for the default place (`$MCP_EXPORTER_TRAFFIC_SOCKET`, the systemd
    /// runtime directory, `/run/mcp-exporter` for root, `$XDG_RUNTIME_DIR/mcp-exporter`).
    pub path: Option<PathBuf>,
    /// Permission bits of the socket file (0o600 by default: the daemon's user only).
    pub socket_mode: u32,
}

impl Default for TrafficConfig {
    fn default() -> Self {
        TrafficConfig {
            enabled: true,
            path: None,
            socket_mode: DEFAULT_SOCKET_MODE,
        }
    }
}

impl TrafficConfig {
    /// Validates `[traffic]`: `path` must be absolute, `socket_mode` permission bits only
    /// (write it in octal: `socket_mode = 0o660`).
    pub fn from_raw(raw: RawTrafficConfig, src: &SourceText<'_>) -> Result<Self, KeyError> {
        let mut cfg = TrafficConfig::default();
        if let Some(enabled) = raw.enabled {
            cfg.enabled = enabled;
        }
        if let Some(path) = raw.path {
            if !path.get_ref().is_absolute() {
                return Err(src.key_error(
                    path.span().start,
                    "traffic.path",
                    format!(
                        "{:?} is relative; expected an absolute path such as \"/run/mcp-exporter/traffic.sock\"",
                        path.get_ref()
                    ),
                ));
            }
            cfg.path = Some(path.into_inner());
        }
        if let Some(mode) = raw.socket_mode {
            let value = *mode.get_ref();
            cfg.socket_mode = u32::try_from(value)
                .ok()
                .filter(|m| *m != 0 && *m <= 0o777)
                .ok_or_else(|| {
                    src.key_error(
                        mode.span().start,
                        "traffic.socket_mode",
                        format!(
                            "{value} is not a file mode; expected permission bits in octal such as 0o600 or 0o660"
                        ),
                    )
                })?;
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<TrafficConfig, KeyError> {
        #[derive(Deserialize)]
        struct File {
            traffic: RawTrafficConfig,
        }
        let file: File =
            toml::from_str(text).map_err(|e| KeyError::new(0, "toml", e.to_string()))?;
        TrafficConfig::from_raw(file.traffic, &SourceText::new(text))
    }

    #[test]
    fn keys_are_read_and_checked() {
        let cfg = parse("[traffic]\npath = \"/tmp/t.sock\"\nsocket_mode = 0o660\n").expect("valid");
        assert_eq!(cfg.path, Some(PathBuf::from("/tmp/t.sock")));
        assert_eq!(cfg.socket_mode, 0o660);
        assert!(cfg.enabled);
        assert!(
            !parse("[traffic]\nenabled = false\n")
                .expect("valid")
                .enabled
        );
        let relative = parse("[traffic]\npath = \"t.sock\"\n").expect_err("relative");
        assert!(relative.to_string().contains("traffic.path"), "{relative}");
        let mode = parse("[traffic]\n\nsocket_mode = 4096\n").expect_err("not a mode");
        assert!(mode.to_string().contains("traffic.socket_mode"), "{mode}");
        assert!(mode.to_string().starts_with('3'), "at its line: {mode}");
        assert!(parse("[traffic]\nsocket_mode = 0\n").is_err());
    }
}

//! Where the traffic socket lives. The daemon listens on one path; a wrapper tries a short
//! list in order, so the same unchanged client configuration reaches a daemon run by the
//! user or the system service. docs/traffic.md gives the order and the permission model.

use std::path::PathBuf;

/// Environment variable naming the socket, for the daemon and the wrapper alike.
pub const SOCKET_ENV: &str = "MCP_EXPORTER_TRAFFIC_SOCKET";
/// File name of the socket inside its runtime directory.
pub const SOCKET_FILE: &str = "traffic.sock";
/// Directory under `$XDG_RUNTIME_DIR` of a daemon run by a user.
pub const USER_SUBDIR: &str = "mcp-exporter";
/// The socket of the system service (systemd `RuntimeDirectory=mcp-exporter`).
pub const SYSTEM_SOCKET: &str = "/run/mcp-exporter/traffic.sock";

/// What the socket path depends on, read once from the process (or built by tests).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SocketEnv {
    /// `--exporter`, or else `$MCP_EXPORTER_TRAFFIC_SOCKET`.
    pub explicit: Option<PathBuf>,
    /// `$XDG_RUNTIME_DIR` (a user's private runtime directory, mode 0700).
    pub xdg_runtime_dir: Option<PathBuf>,
    /// `$RUNTIME_DIRECTORY`, set by systemd for a unit with `RuntimeDirectory=`.
    pub runtime_directory: Option<PathBuf>,
    /// The process runs as root.
    pub is_root: bool,
}

/// Neither a socket path nor a runtime directory to put one in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "no place for the traffic socket: set {SOCKET_ENV} (or XDG_RUNTIME_DIR, or run as the system service)"
)]
pub struct NoSocketPath;

impl SocketEnv {
    /// Reads the process environment; `flag` is the `--exporter` value, which wins over
    /// `$MCP_EXPORTER_TRAFFIC_SOCKET`. Empty variables count as unset.
    pub fn from_process(flag: Option<PathBuf>) -> SocketEnv {
        let var = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        SocketEnv {
            explicit: flag.or_else(|| var(SOCKET_ENV)),
            xdg_runtime_dir: var("XDG_RUNTIME_DIR"),
            runtime_directory: std::env::var_os("RUNTIME_DIRECTORY")
                .filter(|v| !v.is_empty())
                .and_then(|v| {
                    // systemd separates several RuntimeDirectory= entries with ':'.
                    v.to_string_lossy().split(':').next().map(PathBuf::from)
                }),
            // SAFETY: geteuid has no preconditions and cannot fail.
            is_root: unsafe { libc::geteuid() } == 0,
        }
    }

    /// The sockets a wrapper tries, in order: the explicit one alone if given; else the
    /// user's (`$XDG_RUNTIME_DIR/mcp-exporter/traffic.sock`) then the system service's
    /// (`/run/mcp-exporter/traffic.sock`).
    pub fn wrapper_candidates(&self) -> Vec<PathBuf> {
        if let Some(path) = &self.explicit {
            return vec![path.clone()];
        }
        let mut candidates = Vec::new();
        if let Some(dir) = &self.xdg_runtime_dir {
            candidates.push(dir.join(USER_SUBDIR).join(SOCKET_FILE));
        }
        candidates.push(PathBuf::from(SYSTEM_SOCKET));
        candidates
    }

    /// The socket the daemon listens on: the explicit one; else the systemd runtime
    /// directory's; else, for root, the system path; else the user's runtime directory's.
    pub fn daemon_socket(&self) -> Result<PathBuf, NoSocketPath> {
        if let Some(path) = &self.explicit {
            return Ok(path.clone());
        }
        if let Some(dir) = &self.runtime_directory {
            return Ok(dir.join(SOCKET_FILE));
        }
        if self.is_root {
            return Ok(PathBuf::from(SYSTEM_SOCKET));
        }
        match &self.xdg_runtime_dir {
            Some(dir) => Ok(dir.join(USER_SUBDIR).join(SOCKET_FILE)),
            None => Err(NoSocketPath),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> SocketEnv {
        SocketEnv {
            xdg_runtime_dir: Some("/run/user/1000".into()),
            ..SocketEnv::default()
        }
    }

    #[test]
    fn a_wrapper_tries_the_user_daemon_then_the_system_service() {
        assert_eq!(
            user().wrapper_candidates(),
            vec![
                PathBuf::from("/run/user/1000/mcp-exporter/traffic.sock"),
                PathBuf::from(SYSTEM_SOCKET)
            ]
        );
        assert_eq!(
            SocketEnv::default().wrapper_candidates(),
            vec![PathBuf::from(SYSTEM_SOCKET)]
        );
    }

    #[test]
    fn an_explicit_socket_is_the_only_one() {
        let env = SocketEnv {
            explicit: Some("/tmp/x.sock".into()),
            ..user()
        };
        assert_eq!(env.wrapper_candidates(), vec![PathBuf::from("/tmp/x.sock")]);
        assert_eq!(env.daemon_socket(), Ok(PathBuf::from("/tmp/x.sock")));
    }

    #[test]
    fn the_daemon_picks_systemd_then_root_then_the_user_directory() {
        let service = SocketEnv {
            runtime_directory: Some("/run/mcp-exporter".into()),
            ..SocketEnv::default()
        };
        assert_eq!(service.daemon_socket(), Ok(PathBuf::from(SYSTEM_SOCKET)));
        let root = SocketEnv {
            is_root: true,
            ..SocketEnv::default()
        };
        assert_eq!(root.daemon_socket(), Ok(PathBuf::from(SYSTEM_SOCKET)));
        assert_eq!(
            user().daemon_socket(),
            Ok(PathBuf::from("/run/user/1000/mcp-exporter/traffic.sock"))
        );
        assert_eq!(SocketEnv::default().daemon_socket(), Err(NoSocketPath));
    }

    #[test]
    fn the_flag_wins_over_the_variable() {
        let env = SocketEnv::from_process(Some("/flag.sock".into()));
        assert_eq!(env.explicit, Some(PathBuf::from("/flag.sock")));
    }
}

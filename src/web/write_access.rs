//! Who may change the daemon's state through the API (maintenance windows,
//! src/web/maintenance.rs). Reading is open like every endpoint; a write is accepted only when
//!
//! - `--web.config.file` requires authentication (`basic_auth_users`): the request got past the
//!   credential check of src/web/server.rs, so it comes from a known user; or
//! - the daemon listens on loopback only and the request comes from loopback: only local users
//!   can reach it at all.
//!
//! Otherwise the write is refused with 403 and the reason. `POST /-/reload` keeps Prometheus'
//! own rule (src/web/lifecycle.rs: off unless `--web.enable-lifecycle`).

use std::net::{IpAddr, SocketAddr};

use super::server::WebServer;

/// What a write request is checked against.
#[derive(Clone)]
pub struct WriteAccess {
    /// The address the daemon listens on.
    pub listen: SocketAddr,
    /// The running web settings (whether authentication is required is read per request, so a
    /// reloaded `--web.config.file` applies at once).
    pub web: WebServer,
}

impl WriteAccess {
    /// `Ok` when a write from `peer` is allowed, else why not.
    pub fn check(&self, peer: Option<SocketAddr>) -> Result<(), String> {
        decide(self.web.requires_authentication(), self.listen, peer)
    }
}

fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// The rule of the module documentation, without I/O.
pub fn decide(
    authentication_required: bool,
    listen: SocketAddr,
    peer: Option<SocketAddr>,
) -> Result<(), String> {
    if authentication_required {
        return Ok(());
    }
    if !is_loopback(listen.ip()) {
        return Err(format!(
            "refused: changing maintenance windows needs authentication when the exporter listens beyond loopback; it listens on {listen} and --web.config.file sets no basic_auth_users (set basic_auth_users, or listen on 127.0.0.1 and run the command on this host)\n"
        ));
    }
    match peer {
        Some(peer) if is_loopback(peer.ip()) => Ok(()),
        Some(peer) => Err(format!(
            "refused: the request comes from {}, not from loopback, and --web.config.file sets no basic_auth_users (run the command on the exporter's host, or set basic_auth_users)\n",
            peer.ip()
        )),
        None => Err(
            "refused: the request's source address is unknown and --web.config.file sets no basic_auth_users\n"
                .into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn loopback_only_daemons_take_writes_from_loopback() {
        let local = Some(addr("127.0.0.1:50000"));
        assert_eq!(decide(false, addr("127.0.0.1:8931"), local), Ok(()));
        assert_eq!(
            decide(
                false,
                addr("[::1]:8931"),
                Some(addr("[::ffff:127.0.0.1]:1"))
            ),
            Ok(())
        );
        let err = decide(false, addr("127.0.0.1:8931"), Some(addr("10.1.2.3:5000"))).unwrap_err();
        assert!(
            err.contains("comes from 10.1.2.3, not from loopback"),
            "{err}"
        );
        assert!(decide(false, addr("127.0.0.1:8931"), None).is_err());
    }

    #[test]
    fn daemons_listening_beyond_loopback_need_authentication() {
        let local = Some(addr("127.0.0.1:50000"));
        let err = decide(false, addr("0.0.0.0:8931"), local).unwrap_err();
        assert!(
            err.contains("listens on 0.0.0.0:8931") && err.contains("basic_auth_users"),
            "{err}"
        );
        assert_eq!(
            decide(true, addr("0.0.0.0:8931"), Some(addr("10.1.2.3:5000"))),
            Ok(())
        );
    }
}

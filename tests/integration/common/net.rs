//! Loopback ports: a free one for a server to bind, and whether one accepts connections.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

/// A TCP port that was free on 127.0.0.1 a moment ago (bound to port 0, read, released).
///
/// Another process may take it before it is used; the spawn helpers of
/// [`super::processes::spawn_listening`] retry with a new port when the child exits before it
/// listens.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 for a free port");
    listener
        .local_addr()
        .expect("local_addr of a bound listener")
        .port()
}

/// True when 127.0.0.1:`port` accepts a TCP connection within `timeout`.
pub fn port_accepts(port: u16, timeout: Duration) -> bool {
    TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port)), timeout).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_port_is_bindable() {
        let port = free_port();
        assert_ne!(port, 0);
        let listener = TcpListener::bind(("127.0.0.1", port));
        assert!(
            listener.is_ok(),
            "port {port} from free_port() is not bindable"
        );
        assert!(port_accepts(port, Duration::from_millis(200)));
        drop(listener);
        assert!(!port_accepts(port, Duration::from_millis(200)));
    }
}

//! Listeners whose connections send at once: `TCP_NODELAY` on every accepted socket.
//!
//! axum's `serve` leaves Nagle's algorithm on, so a response's last short segment (the tail of a
//! large scrape or tool result, an event sent while the previous one is unacknowledged) waits
//! for the peer's delayed ACK, up to 40 ms on Linux. The proxy's 1 MB results showed it as a
//! p99 of 30 ms (docs/benchmarks.md, "The HTTP proxy against the direct path").

use axum::serve::{ListenerExt, TapIo};
use tokio::net::{TcpListener, TcpStream};

/// A listener that sets `TCP_NODELAY` on each connection it accepts.
pub type NoDelayListener = TapIo<TcpListener, fn(&mut TcpStream)>;

/// Wraps `listener` so its connections have `TCP_NODELAY` (a socket that refuses it is
/// served as it is, and the refusal logged at debug level).
pub fn no_delay(listener: TcpListener) -> NoDelayListener {
    listener.tap_io(set_no_delay as fn(&mut TcpStream))
}

fn set_no_delay(tcp: &mut TcpStream) {
    if let Err(err) = tcp.set_nodelay(true) {
        tracing::debug!(error = %err, "cannot set TCP_NODELAY");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::serve::Listener;

    #[tokio::test]
    async fn accepted_connections_have_no_delay() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut plain = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let plain_addr = plain.local_addr().expect("addr");
        let mut wrapped = no_delay(listener);
        let _client = TcpStream::connect(addr).await.expect("connect");
        let (accepted, _) = wrapped.accept().await;
        assert!(accepted.nodelay().expect("nodelay"));
        let _other = TcpStream::connect(plain_addr).await.expect("connect");
        let (untouched, _) = Listener::accept(&mut plain).await;
        assert!(
            !untouched.nodelay().expect("nodelay"),
            "the default is Nagle on"
        );
    }
}

//! `kind = "tcp"`: a TCP connection within the timeout (name resolution included).

use std::time::{Duration, SystemTime};

use super::{DependencyCheck, DependencyFailure, ms};

/// Connects to `address` (`host:port`) and closes the connection at once.
pub(super) async fn check(
    address: &str,
    timeout: Duration,
    started_at: SystemTime,
) -> DependencyCheck {
    let mut result = DependencyCheck::healthy(started_at);
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(address)).await {
        Err(_) => result.fail(
            DependencyFailure::TimedOut,
            format!("timed out after {} connecting to {address}", ms(timeout)),
        ),
        Ok(Err(err)) if err.kind() == std::io::ErrorKind::ConnectionRefused => result.fail(
            DependencyFailure::Refused,
            format!("connection refused by {address}"),
        ),
        Ok(Err(err)) => result.fail(
            DependencyFailure::Unreachable,
            format!("cannot connect to {address}: {err}"),
        ),
        Ok(Ok(stream)) => {
            if let Ok(peer) = stream.peer_addr() {
                result.details.insert("peer", peer.to_string());
            }
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::HealthStatus;

    #[tokio::test]
    async fn listening_port_is_healthy_and_a_closed_one_refused() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let ok = check(&addr, Duration::from_secs(2), SystemTime::now()).await;
        assert_eq!(ok.status, HealthStatus::Healthy, "{ok:?}");
        drop(listener);
        let refused = check(&addr, Duration::from_secs(2), SystemTime::now()).await;
        assert_eq!(
            refused.failure,
            Some(DependencyFailure::Refused),
            "{refused:?}"
        );
        assert_eq!(refused.status, HealthStatus::Unhealthy);
    }
}

//! A traffic receiver on its own: binds the socket `mcp-exporter wrap` reports to and sums
//! what the wrappers send in a `TrafficBook`, as the daemon will. For trying the wrapper by
//! hand and for scripts/bench-wrap.sh.
//!
//! Usage: `cargo run --release --example traffic_receiver -- SOCKET [MAX_MESSAGES_PER_SECOND]`
//!
//! On SIGINT or SIGTERM it prints one JSON line and exits: the reports received, per server
//! the requests and frames counted, and the CPU time the receiver used.

use std::sync::Arc;

use mcp_exporter::traffic::{Receiver, ReceiverOptions, TrafficBook};
use tokio::signal::unix::{SignalKind, signal};

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct we pass; RUSAGE_SELF has no other preconditions.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: traffic_receiver SOCKET [MAX_MESSAGES_PER_SECOND]")?;
    let mut options = ReceiverOptions::new(path);
    if let Some(rate) = args.next() {
        options.max_messages_per_second = rate.parse()?;
    }
    let book = Arc::new(TrafficBook::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let handle = Receiver::bind(options)?.spawn(book.clone(), stop_rx);
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    eprintln!("traffic_receiver: listening");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    let stats = handle.stats();
    let servers: serde_json::Map<String, serde_json::Value> = book
        .snapshot()
        .into_iter()
        .map(|(name, traffic)| {
            let requests: u64 = traffic.totals.requests.values().map(|r| r.started).sum();
            let summary = serde_json::json!({
                "requests": requests,
                "client_frames": traffic.totals.client_to_server.messages,
                "server_frames": traffic.totals.server_to_client.messages,
            });
            (name, summary)
        })
        .collect();
    println!(
        "{}",
        serde_json::json!({
            "reports": stats.reports,
            "servers": servers,
            "cpu_seconds": cpu_seconds(),
        })
    );
    let _ = stop_tx.send(true);
    handle.join().await;
    Ok(())
}

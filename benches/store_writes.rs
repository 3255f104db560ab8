//! Write throughput of the history store: the writer's batches (512 rows per transaction)
//! against a peer run committing every row on its own, same file system, same rows.
//! Run: `cargo bench --bench store_writes`. Under `cargo test` it is a quick smoke run, and it
//! lists no tests to test runners that ask (`--list`, as nextest does).

use std::time::{Instant, SystemTime};

use mcp_exporter::store::writer::write_batch;
use mcp_exporter::store::{Level, LogRow, LogSource, Record, Store};
use mcp_exporter::wall_clock::unix_seconds;

const ROWS: usize = 20_000;
/// Rows of the smoke run under `cargo test`.
const SMOKE_ROWS: usize = 600;

fn rows(count: usize) -> Vec<Record> {
    let now = unix_seconds(SystemTime::now());
    (0..count)
        .map(|n| {
            Record::Log(LogRow {
                ts: now,
                server: "bench".into(),
                source: LogSource::Stderr,
                level: Level::Info,
                logger: None,
                message: format!("line {n}: Starting default (STDIO) server... padding padding"),
            })
        })
        .collect()
}

async fn run(batch: usize, count: usize) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("bench.db"))
        .await
        .expect("open");
    let rows = rows(count);
    let start = Instant::now();
    for chunk in rows.chunks(batch) {
        write_batch(&store, chunk).await.expect("write");
    }
    let rate = count as f64 / start.elapsed().as_secs_f64();
    store.close().await;
    rate
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let count = if args.iter().any(|a| a == "--bench") {
        ROWS
    } else {
        SMOKE_ROWS
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let single = run(1, count).await;
        let batched = run(512, count).await;
        println!("rows/s, one row per transaction (peer): {single:.0}");
        println!("rows/s, 512 rows per transaction (writer): {batched:.0}");
        println!("ratio batched/peer: {:.1}x", batched / single);
    });
}

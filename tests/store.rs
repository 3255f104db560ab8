//! The history store on a real SQLite file: retention by age and by size (old rows go, the file
//! stops growing), full-text search after pruning, and migrations applied on reopen.

use std::time::{Duration, SystemTime};

use mcp_exporter::store::query::{self, LogQuery};
use mcp_exporter::store::writer::write_batch;
use mcp_exporter::store::{Level, LogRow, LogSource, Record, Store, StoreConfig, unix_seconds};

fn log(ts: f64, n: usize) -> Record {
    Record::Log(LogRow {
        ts,
        server: "s".into(),
        source: LogSource::Stderr,
        level: if n.is_multiple_of(2) {
            Level::Info
        } else {
            Level::Error
        },
        logger: None,
        message: format!("line {n} marker{n} {}", "padding text ".repeat(12)),
    })
}

fn config(dir: &std::path::Path, max_size: u64) -> StoreConfig {
    StoreConfig {
        max_size,
        max_age: Duration::from_secs(3600),
        ..StoreConfig::defaults_for(&dir.join("c.toml"))
    }
}

#[tokio::test]
async fn retention_removes_old_rows_and_the_file_stops_growing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path(), 512 * 1024);
    let store = Store::open(&cfg.path).await.expect("open");
    let now = unix_seconds(SystemTime::now());

    // By age: rows older than max_age go, recent ones stay.
    let old: Vec<Record> = (0..50).map(|n| log(now - 7200.0, n)).collect();
    let recent: Vec<Record> = (50..60).map(|n| log(now, n)).collect();
    write_batch(&store, &old).await.expect("write old");
    write_batch(&store, &recent).await.expect("write recent");
    mcp_exporter::store::retention_pass(&store, &cfg)
        .await
        .expect("retention");
    let left = query::logs(
        &store,
        &LogQuery {
            limit: 1000,
            ..Default::default()
        },
    )
    .await
    .expect("query");
    assert_eq!(left.len(), 10, "only the recent rows stay");

    // By size: write far more than the limit; after each pass the store is within the limit
    // and the file does not grow any more.
    let mut sizes = Vec::new();
    let mut n = 1000;
    for _ in 0..12 {
        let batch: Vec<Record> = (n..n + 1500).map(|i| log(now, i)).collect();
        n += 1500;
        write_batch(&store, &batch).await.expect("write");
        mcp_exporter::store::retention_pass(&store, &cfg)
            .await
            .expect("retention");
        sizes.push(store.size_on_disk());
    }
    for (i, size) in sizes.iter().enumerate() {
        assert!(
            *size <= cfg.max_size,
            "pass {i}: {size} bytes over the {} limit ({sizes:?})",
            cfg.max_size
        );
    }
    let db_file = std::fs::metadata(&cfg.path).expect("stat").len();
    assert!(db_file <= cfg.max_size, "{db_file}");

    // The newest rows are searchable, the pruned ones are gone from the index too.
    let newest = format!("marker{}", n - 1);
    let hits = query::logs(
        &store,
        &LogQuery {
            search: Some(newest.clone()),
            limit: 10,
            ..Default::default()
        },
    )
    .await
    .expect("search");
    assert_eq!(hits.len(), 1, "{newest}");
    let hits = query::logs(
        &store,
        &LogQuery {
            search: Some("marker1000".into()),
            limit: 10,
            ..Default::default()
        },
    )
    .await
    .expect("search");
    assert!(hits.is_empty(), "pruned rows are not found: {hits:?}");
    let errors = query::logs(
        &store,
        &LogQuery {
            min_level: Some(Level::Error),
            limit: 50,
            ..Default::default()
        },
    )
    .await
    .expect("level");
    assert!(!errors.is_empty() && errors.iter().all(|e| e.level == "error"));
    store.close().await;

    // Reopening applies no migration twice and keeps the rows.
    let store = Store::open(&cfg.path).await.expect("reopen");
    let hits = query::logs(
        &store,
        &LogQuery {
            search: Some(newest),
            limit: 10,
            ..Default::default()
        },
    )
    .await
    .expect("search");
    assert_eq!(hits.len(), 1);
    store.close().await;
}

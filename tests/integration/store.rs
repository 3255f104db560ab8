//! The history store on a real SQLite file: retention by age and by size (old rows go, the file
//! stops growing), full-text search after pruning, and migrations applied on reopen.

use std::time::{Duration, SystemTime};

use mcp_exporter::store::maintenance::{self, NewMaintenance};
use mcp_exporter::store::query::{self, LogQuery};
use mcp_exporter::store::writer::write_batch;
use mcp_exporter::store::{Level, LogRow, LogSource, Record, Store, StoreConfig};
use mcp_exporter::wall_clock::unix_seconds;

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

/// The value of an unlabelled-or-`kind` series in an exposition, 0 when absent.
fn series(text: &str, name: &str, kind: &str) -> f64 {
    let prefix = format!("{name}{{kind=\"{kind}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn a_stalled_disk_never_blocks_submitters_and_every_row_is_written_or_counted_dropped() {
    use mcp_exporter::metrics::Metrics;
    use mcp_exporter::store::writer::{QUEUE_CAPACITY, StoreWriter};

    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path(), 1 << 30);
    let store = Store::open(&cfg.path).await.expect("open");
    // Another connection holds the write lock: the writer stalls like on a hung disk.
    let blocker = Store::open_existing(&cfg.path)
        .await
        .expect("second connection");
    let mut lock = blocker.pool().acquire().await.expect("acquire");
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut *lock)
        .await
        .expect("lock");

    let metrics = Metrics::new();
    metrics.store.init_kinds();
    let (handle, writer) = StoreWriter::start(store, &cfg, std::sync::Arc::clone(&metrics.store));
    let total = QUEUE_CAPACITY + 2000;
    let now = unix_seconds(SystemTime::now());
    // record() never awaits: all of these return while the writer is stuck.
    for n in 0..total {
        handle.record(log(now, n));
    }
    let text = metrics.encode_prometheus();
    let dropped = series(&text, "mcp_store_dropped_total", "log");
    assert!(
        dropped >= 2000.0 - 512.0,
        "rows beyond the queue are dropped and counted: {dropped}"
    );

    sqlx::query("ROLLBACK")
        .execute(&mut *lock)
        .await
        .expect("unlock");
    drop(lock);
    blocker.close().await;
    drop(handle);
    writer.shutdown(Duration::from_secs(30)).await;
    let text = metrics.encode_prometheus();
    let written = series(&text, "mcp_store_writes_total", "log");
    let dropped = series(&text, "mcp_store_dropped_total", "log");
    assert_eq!(
        written + dropped,
        total as f64,
        "every row is accounted for: {written} written, {dropped} dropped"
    );

    let store = Store::open_existing(&cfg.path).await.expect("reopen");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM log_lines")
        .fetch_one(store.pool())
        .await
        .expect("count");
    assert_eq!(rows as f64, written);
    store.close().await;
}

/// Maintenance windows that ended longer than `max_age` ago are pruned; a recent one, a running
/// one and one still to come stay, even when size pressure prunes everything else.
#[tokio::test]
async fn retention_prunes_maintenance_windows_that_ended_long_ago() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path(), 512 * 1024);
    let store = Store::open(&cfg.path).await.expect("open");
    let now = unix_seconds(SystemTime::now());
    let window = |server: &str, starts_at: f64, ends_at: f64| NewMaintenance {
        server: Some(server.to_string()),
        starts_at,
        ends_at,
        reason: format!("window of {server}"),
        created_at: starts_at,
    };
    for new in [
        window("ancient", now - 9000.0, now - 7200.0),
        window("recent", now - 1800.0, now - 600.0),
        window("running", now - 7200.0, now + 600.0),
        window("planned", now + 3600.0, now + 7200.0),
    ] {
        maintenance::insert(&store, &new).await.expect("insert");
    }
    // Far more log lines than the size limit, so size pruning runs too.
    let batch: Vec<Record> = (0..6000).map(|i| log(now, i)).collect();
    write_batch(&store, &batch).await.expect("write");
    mcp_exporter::store::retention_pass(&store, &cfg)
        .await
        .expect("retention");
    let mut left = Vec::new();
    for server in ["ancient", "recent", "running", "planned"] {
        let rows = maintenance::covering(&store, server, now - 86_400.0, now + 86_400.0)
            .await
            .expect("query");
        left.extend(rows.into_iter().filter_map(|r| r.server));
    }
    assert_eq!(left, ["recent", "running", "planned"]);
}

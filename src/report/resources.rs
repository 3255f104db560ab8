//! Resource trends of a period: the process samples the history sink keeps, one per server per
//! minute (src/store/observe.rs, table `process_samples` of
//! migrations/0006_process_samples.sql), the same figures `mcp_process_*` shows at each scrape.

use serde::Serialize;
use sqlx::Row;

use crate::store::Store;

/// Where a resource series was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ResourceSource {
    /// The history store's `process_samples`.
    Store,
    /// Range queries of `mcp_server_*` from the Prometheus of `[prometheus] url`.
    Prometheus,
}

/// One sample of a server's process tree.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ResourcePoint {
    /// Unix seconds.
    pub ts: f64,
    /// CPU use, percent of one core; `None` when unknown.
    pub cpu_percent: Option<f64>,
    /// Resident set size summed over the tree, bytes.
    pub memory_bytes: u64,
    /// Open file descriptors summed over the tree; `None` when not countable.
    pub file_descriptors: Option<u64>,
    /// Processes in the tree.
    pub processes: u64,
}

/// A server's resource samples of the period, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Resources {
    /// Where they come from.
    pub source: ResourceSource,
    /// The samples.
    pub points: Vec<ResourcePoint>,
}

/// The process samples of `server` in `[from, to)` from the store.
pub async fn from_store(
    store: &Store,
    server: &str,
    from: f64,
    to: f64,
) -> Result<Resources, sqlx::Error> {
    let unsigned = |v: i64| u64::try_from(v).unwrap_or(0);
    let points = crate::store::query::server_period_rows(
        store,
        "SELECT ts, cpu_percent, memory_bytes, file_descriptors, processes FROM process_samples WHERE server = ? AND ts >= ? AND ts < ? ORDER BY ts",
        server,
        from,
        to,
    )
    .await?
    .iter()
    .map(|r| ResourcePoint {
        ts: r.get("ts"),
        cpu_percent: r.get("cpu_percent"),
        memory_bytes: unsigned(r.get("memory_bytes")),
        file_descriptors: r.get::<Option<i64>, _>("file_descriptors").map(unsigned),
        processes: unsigned(r.get("processes")),
    })
    .collect();
    Ok(Resources {
        source: ResourceSource::Store,
        points,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::observe::process_sample_row;
    use crate::store::writer::write_batch;
    use crate::store::{Record, Store};

    #[tokio::test]
    async fn the_samples_the_sink_writes_come_back_in_the_period_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("h.db")).await.expect("open");
        let usage = |cpu: Option<f64>, fds: Option<u64>| crate::process::usage::Usage {
            processes: 2,
            main_pid: 1,
            cpu_percent: cpu,
            memory_bytes: 50 << 20,
            file_descriptors: fds,
            file_descriptors_limit: None,
            connections: None,
            listening_sockets: None,
            threads: None,
            start_time_seconds: 0.0,
        };
        let rows = [
            process_sample_row("a", 160.0, &usage(Some(3.5), Some(12))),
            process_sample_row("a", 100.0, &usage(None, None)),
            process_sample_row("a", 400.0, &usage(Some(1.0), Some(9))),
            process_sample_row("b", 130.0, &usage(Some(9.0), Some(1))),
        ];
        let records: Vec<Record> = rows.into_iter().map(Record::ProcessSample).collect();
        write_batch(&store, &records).await.expect("write");
        let r = from_store(&store, "a", 100.0, 400.0).await.expect("read");
        assert_eq!(r.source, ResourceSource::Store);
        let ts: Vec<f64> = r.points.iter().map(|p| p.ts).collect();
        assert_eq!(ts, vec![100.0, 160.0]);
        assert_eq!(r.points[0].cpu_percent, None);
        assert_eq!(r.points[1].cpu_percent, Some(3.5));
        assert_eq!(r.points[1].file_descriptors, Some(12));
        assert_eq!(
            (r.points[1].memory_bytes, r.points[1].processes),
            (50 << 20, 2)
        );
        store.close().await;
    }
}

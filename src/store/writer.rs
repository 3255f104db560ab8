//! Batched writes off the probe path: [`StoreHandle::record`] never waits (a full queue drops
//! the row and counts it in `mcp_store_dropped_total`); one task writes batches in a transaction.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{Record, Store, StoreConfig, retention};
use crate::store::metrics::StoreMetrics;

/// Rows waiting to be written; beyond this, new rows are dropped.
pub const QUEUE_CAPACITY: usize = 8192;
/// Most rows written in one transaction.
const MAX_BATCH: usize = 512;
/// How long the writer waits for more rows after the first before committing: a steady
/// trickle of probe results then costs one transaction per LINGER, not one per row.
const LINGER: Duration = Duration::from_millis(500);

/// Cheap handle the probe tasks use to submit rows.
#[derive(Clone, Debug)]
pub struct StoreHandle {
    tx: mpsc::Sender<Record>,
    metrics: Arc<StoreMetrics>,
}

impl StoreHandle {
    /// Queues a row without waiting; a full queue or a stopped writer drops it (counted).
    pub fn record(&self, record: Record) {
        if let Record::Log(log) = &record {
            self.metrics.log_line(&log.server, log.level);
        }
        let kind = record.kind();
        if self.tx.try_send(record).is_err() {
            self.metrics.dropped(kind, 1);
        }
    }
}

/// The running writer task (it also runs retention, so one connection at a time writes).
pub struct StoreWriter {
    writer: JoinHandle<()>,
    backups: Option<JoinHandle<()>>,
    store: Store,
}

impl StoreWriter {
    /// Starts the writer (with retention every `config.retention_interval`) on `store`, and
    /// the backup schedule when `config.backup` is set (src/store/backup.rs).
    pub fn start(
        store: Store,
        config: &StoreConfig,
        metrics: Arc<StoreMetrics>,
    ) -> (StoreHandle, StoreWriter) {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let writer = tokio::spawn(write_loop(
            store.clone(),
            config.clone(),
            rx,
            Arc::clone(&metrics),
        ));
        let backups = config.backup.clone().map(|schedule| {
            super::backup::spawn_schedule(store.clone(), schedule, Arc::clone(&metrics))
        });
        (
            StoreHandle { tx, metrics },
            StoreWriter {
                writer,
                backups,
                store,
            },
        )
    }

    /// The store it writes to (for readers that share its pool: maintenance windows, the
    /// integrity check, the server pages and reports).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Writes what is queued (the task ends once every handle is dropped) and closes the pool.
    /// Bounded by `limit`.
    pub async fn shutdown(self, limit: Duration) {
        if let Some(backups) = &self.backups {
            // A backup cut short leaves only its `.partial` file, removed by the next run.
            backups.abort();
        }
        if tokio::time::timeout(limit, self.writer).await.is_err() {
            tracing::warn!("history store writer did not finish in time; unwritten rows are lost");
        }
        self.store.close().await;
    }
}

async fn write_loop(
    store: Store,
    config: StoreConfig,
    mut rx: mpsc::Receiver<Record>,
    metrics: Arc<StoreMetrics>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut tick = tokio::time::interval(config.retention_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            n = rx.recv_many(&mut batch, MAX_BATCH) => {
                if n == 0 {
                    return;
                }
                // Rows trickle in (a probe result at a time): gather what arrives within
                // LINGER so they share one transaction instead of one commit each.
                let deadline = tokio::time::Instant::now() + LINGER;
                while batch.len() < MAX_BATCH {
                    let room = MAX_BATCH - batch.len();
                    match tokio::time::timeout_at(deadline, rx.recv_many(&mut batch, room)).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
                write_counted(&store, &batch, &metrics).await;
                batch.clear();
            }
            _ = tick.tick() => {
                // Rows keep queueing (bounded) while retention runs; probes never wait.
                retention::pass(&store, &config, &metrics).await;
            }
        }
    }
}

async fn write_counted(store: &Store, batch: &[Record], metrics: &StoreMetrics) {
    match write_batch(store, batch).await {
        Ok(()) => {
            for record in batch {
                metrics.written(record.kind(), 1);
            }
        }
        Err(err) => {
            tracing::warn!(error = %err, rows = batch.len(), path = %store.path().display(), "history store write failed; rows dropped");
            for record in batch {
                metrics.dropped(record.kind(), 1);
            }
        }
    }
}

/// Writes `records` in one transaction.
pub async fn write_batch(store: &Store, records: &[Record]) -> Result<(), sqlx::Error> {
    let mut tx = store.pool().begin().await?;
    for record in records {
        match record {
            Record::Probe(p) => {
                sqlx::query(
                    "INSERT INTO probe_results (ts, server, check_type, up, success, health, duration_ms, latency_ms, failure_class, failure_stage, error, stages, trace_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(p.ts)
                .bind(&p.server)
                .bind(&p.check_type)
                .bind(p.up)
                .bind(p.success)
                .bind(&p.health)
                .bind(p.duration_ms)
                .bind(p.latency_ms)
                .bind(&p.failure_class)
                .bind(&p.failure_stage)
                .bind(&p.error)
                .bind(&p.stages)
                .bind(&p.trace_id)
                .execute(&mut *tx)
                .await?;
            }
            Record::Dependency(d) => {
                sqlx::query(
                    "INSERT INTO dependency_results (ts, server, dependency, kind, up, status, duration_ms, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(d.ts)
                .bind(&d.server)
                .bind(&d.dependency)
                .bind(&d.kind)
                .bind(d.up)
                .bind(&d.status)
                .bind(d.duration_ms)
                .bind(&d.error)
                .execute(&mut *tx)
                .await?;
            }
            Record::Transition(t) => {
                sqlx::query(
                    "INSERT INTO health_transitions (ts, server, kind, from_status, to_status, reason) VALUES (?, ?, ?, ?, ?, ?)",
                )
                .bind(t.ts)
                .bind(&t.server)
                .bind(&t.kind)
                .bind(&t.from_status)
                .bind(&t.to_status)
                .bind(&t.reason)
                .execute(&mut *tx)
                .await?;
            }
            Record::Log(l) => {
                sqlx::query(
                    "INSERT INTO log_lines (ts, server, source, level, logger, message) VALUES (?, ?, ?, ?, ?, ?)",
                )
                .bind(l.ts)
                .bind(&l.server)
                .bind(l.source.as_str())
                .bind(l.level.rank())
                .bind(&l.logger)
                .bind(&l.message)
                .execute(&mut *tx)
                .await?;
            }
            Record::DefinitionChange(c) => {
                sqlx::query(
                    "INSERT INTO tool_definition_changes (ts, server, kind, tool, change, old_sha256, new_sha256, fields) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(c.ts)
                .bind(&c.server)
                .bind(&c.kind)
                .bind(&c.tool)
                .bind(&c.change)
                .bind(&c.old_sha256)
                .bind(&c.new_sha256)
                .bind(&c.fields)
                .execute(&mut *tx)
                .await?;
            }
            Record::ProcessSample(p) => {
                sqlx::query(
                    "INSERT INTO process_samples (ts, server, processes, cpu_percent, memory_bytes, file_descriptors) VALUES (?, ?, ?, ?, ?, ?)",
                )
                .bind(p.ts)
                .bind(&p.server)
                .bind(i64::try_from(p.processes).unwrap_or(i64::MAX))
                .bind(p.cpu_percent)
                .bind(i64::try_from(p.memory_bytes).unwrap_or(i64::MAX))
                .bind(p.file_descriptors.map(|n| i64::try_from(n).unwrap_or(i64::MAX)))
                .execute(&mut *tx)
                .await?;
            }
        }
    }
    tx.commit().await
}

-- Process samples of each server's process tree, downsampled by the history sink
-- (src/store/observe.rs) to one row per server per minute: the resource trends of
-- `mcp-exporter report` (src/report/resources.rs). Pruned by age and size like every other table
-- (src/store/retention.rs).

CREATE TABLE process_samples (
    id                INTEGER PRIMARY KEY,
    ts                REAL    NOT NULL,
    server            TEXT    NOT NULL,
    processes         INTEGER NOT NULL,
    cpu_percent       REAL,             -- percent of one core since the previous sample
    memory_bytes      INTEGER NOT NULL, -- resident set size summed over the tree
    file_descriptors  INTEGER           -- open descriptors summed over the tree
);
CREATE INDEX process_samples_server_ts ON process_samples (server, ts);
CREATE INDEX process_samples_ts ON process_samples (ts);

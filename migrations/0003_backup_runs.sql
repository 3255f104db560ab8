-- Runs of `mcp-exporter backup` and of the `[store] backup` schedule (src/store/backup.rs):
-- when, where, how big, and why a run failed. Kept with the history, not pruned by retention.

CREATE TABLE backup_runs (
    id          INTEGER PRIMARY KEY,
    ts          REAL    NOT NULL, -- Unix seconds the run started
    trigger     TEXT    NOT NULL, -- schedule, cli
    file        TEXT    NOT NULL,
    ok          INTEGER NOT NULL,
    bytes       INTEGER,
    duration_ms REAL    NOT NULL,
    error       TEXT
);
CREATE INDEX backup_runs_ts ON backup_runs (ts);

-- History store of mcp-exporter: probe results, dependency checks, health transitions and
-- log lines. Times are Unix seconds (REAL). Every table is pruned by age and size.

CREATE TABLE probe_results (
    id            INTEGER PRIMARY KEY,
    ts            REAL    NOT NULL,
    server        TEXT    NOT NULL,
    check_type    TEXT    NOT NULL,
    up            INTEGER NOT NULL,
    success       INTEGER NOT NULL,
    health        TEXT    NOT NULL,
    duration_ms   REAL    NOT NULL,
    latency_ms    REAL,
    failure_class TEXT,
    failure_stage TEXT,
    error         TEXT,
    stages        TEXT    NOT NULL -- JSON object: stage name -> milliseconds
);
CREATE INDEX probe_results_server_ts ON probe_results (server, ts);
CREATE INDEX probe_results_ts ON probe_results (ts);

CREATE TABLE dependency_results (
    id          INTEGER PRIMARY KEY,
    ts          REAL    NOT NULL,
    server      TEXT,
    dependency  TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    up          INTEGER NOT NULL,
    status      TEXT    NOT NULL,
    duration_ms REAL,
    error       TEXT
);
CREATE INDEX dependency_results_dep_ts ON dependency_results (dependency, ts);
CREATE INDEX dependency_results_ts ON dependency_results (ts);

CREATE TABLE health_transitions (
    id          INTEGER PRIMARY KEY,
    ts          REAL    NOT NULL,
    server      TEXT    NOT NULL,
    kind        TEXT    NOT NULL, -- down, degraded, recovered, up, unknown, restart
    from_status TEXT    NOT NULL,
    to_status   TEXT    NOT NULL,
    reason      TEXT    NOT NULL
);
CREATE INDEX health_transitions_server_ts ON health_transitions (server, ts);
CREATE INDEX health_transitions_ts ON health_transitions (ts);

CREATE TABLE log_lines (
    id      INTEGER PRIMARY KEY,
    ts      REAL    NOT NULL,
    server  TEXT    NOT NULL,
    source  TEXT    NOT NULL, -- stderr, notification, http
    level   INTEGER NOT NULL, -- 0 debug .. 7 emergency (RFC 5424 order, reversed)
    logger  TEXT,
    message TEXT    NOT NULL
);
CREATE INDEX log_lines_server_ts ON log_lines (server, ts);
CREATE INDEX log_lines_ts ON log_lines (ts);

CREATE VIRTUAL TABLE log_lines_fts USING fts5 (
    message,
    content = 'log_lines',
    content_rowid = 'id'
);
CREATE TRIGGER log_lines_ai AFTER INSERT ON log_lines BEGIN
    INSERT INTO log_lines_fts (rowid, message) VALUES (new.id, new.message);
END;
CREATE TRIGGER log_lines_ad AFTER DELETE ON log_lines BEGIN
    INSERT INTO log_lines_fts (log_lines_fts, rowid, message) VALUES ('delete', old.id, old.message);
END;

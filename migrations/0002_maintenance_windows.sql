-- Maintenance windows (`mcp-exporter maintenance start`): planned downtime of one server, or of
-- every server when `server` is NULL (`--all`). Times are Unix seconds (REAL). A window ended
-- early has `ends_at` moved to the moment it was ended and `ended_early` = 1. `silence_id` is the
-- Alertmanager silence created for the window, when `[alertmanager] url` is configured.

CREATE TABLE maintenance_windows (
    id          INTEGER PRIMARY KEY,
    server      TEXT,
    starts_at   REAL    NOT NULL,
    ends_at     REAL    NOT NULL,
    reason      TEXT    NOT NULL,
    created_at  REAL    NOT NULL,
    ended_early INTEGER NOT NULL DEFAULT 0,
    silence_id  TEXT
);
CREATE INDEX maintenance_windows_ends_at ON maintenance_windows (ends_at);
CREATE INDEX maintenance_windows_server ON maintenance_windows (server, starts_at);

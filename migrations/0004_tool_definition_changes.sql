-- Tool definition changes (docs/tool-integrity.md): one row per tool that was added, removed or
-- modified between two listings of a server's catalog, with the fields that differ and their
-- old and new text. Pruned by age and size like every other table.

CREATE TABLE tool_definition_changes (
    id          INTEGER PRIMARY KEY,
    ts          REAL    NOT NULL,
    server      TEXT    NOT NULL,
    tool        TEXT    NOT NULL,
    change      TEXT    NOT NULL, -- added, removed, modified
    old_sha256  TEXT,
    new_sha256  TEXT,
    fields      TEXT    NOT NULL  -- JSON array of {"field", "old", "new"} (texts or null)
);
CREATE INDEX tool_definition_changes_server_ts ON tool_definition_changes (server, ts);
CREATE INDEX tool_definition_changes_ts ON tool_definition_changes (ts);

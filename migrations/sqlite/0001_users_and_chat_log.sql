-- Users, as the original app's table, plus lower-cased keys: SQLite's NOCASE
-- folds only ASCII, and uniqueness and login must ignore case in any script.
CREATE TABLE IF NOT EXISTS users (
    id              INTEGER PRIMARY KEY AUTOINCREMENT, -- AUTOINCREMENT: ids are never reused
    username        TEXT    NOT NULL,
    username_key    TEXT    NOT NULL UNIQUE,
    email           TEXT    NOT NULL,
    email_key       TEXT    NOT NULL UNIQUE,
    full_name       TEXT,
    full_name_key   TEXT,
    hashed_password TEXT    NOT NULL,
    is_active       INTEGER NOT NULL DEFAULT 1,
    is_admin        INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,  -- Unix seconds, UTC
    updated_at      INTEGER            -- Unix seconds, UTC
);

-- The chat log: one row per event; ids are ULIDs, so text order is time order.
CREATE TABLE IF NOT EXISTS chat_events (
    id      TEXT    NOT NULL PRIMARY KEY,
    room    TEXT    NOT NULL,
    user    TEXT    NOT NULL,
    kind    TEXT    NOT NULL,
    message TEXT    NOT NULL,
    ts      INTEGER NOT NULL  -- Unix milliseconds, UTC
);
CREATE INDEX IF NOT EXISTS chat_events_by_room ON chat_events (room, id);

-- Full-text search over messages (never joins or leaves).
CREATE VIRTUAL TABLE IF NOT EXISTS chat_search USING fts5 (message, content = 'chat_events', content_rowid = 'rowid');
CREATE TRIGGER IF NOT EXISTS chat_events_indexed AFTER INSERT ON chat_events WHEN new.kind = 'message'
BEGIN
    INSERT INTO chat_search (rowid, message) VALUES (new.rowid, new.message);
END;

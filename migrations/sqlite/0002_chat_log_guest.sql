-- Whether an event's author was a guest (an unauthenticated connection, whose
-- name nobody checked). Rows written before the flag read as registered: the
-- server could not tell then, and false keeps what clients were shown so far.
ALTER TABLE chat_events ADD COLUMN guest INTEGER NOT NULL DEFAULT 0;

-- Whether an event's author was a guest (an unauthenticated connection, whose
-- name nobody checked). Rows written before the flag read as registered: the
-- server could not tell then, and false keeps what clients were shown so far.
-- Instant on MySQL 8 and MariaDB 10.3+ (a column added last with a constant
-- default rewrites no rows).
ALTER TABLE chat_events ADD COLUMN guest BOOLEAN NOT NULL DEFAULT FALSE;

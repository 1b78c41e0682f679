-- The chat log, for deployments without Elasticsearch. Ids are ULIDs: in a
-- binary collation their text order is their time order.
CREATE TABLE IF NOT EXISTS chat_events (
    id      CHAR(26)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    room    VARCHAR(100) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    `user`  VARCHAR(100) NOT NULL,
    kind    VARCHAR(8)   NOT NULL,
    message TEXT         NOT NULL,
    ts      DATETIME(3)  NOT NULL,
    PRIMARY KEY (id),
    KEY chat_events_by_room (room, id),
    FULLTEXT KEY chat_events_search (message)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

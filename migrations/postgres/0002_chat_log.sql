-- The words search sees, the same for messages and for queries: runs of
-- letters and digits (Unicode's, by ICU, whatever the database's locale),
-- lower-cased, one space apart. Any other character splits words, so
-- "e-mail", an address or a URL is found by its parts, as in the other chat
-- logs; and what is left is safe to join into a tsquery.
CREATE FUNCTION parley_words(text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT pg_catalog.btrim(pg_catalog.lower(
        pg_catalog.regexp_replace($1 COLLATE pg_catalog."und-x-icu", '[^[:alnum:]]+', ' ', 'g'))) $$;

-- The chat log, for deployments without Elasticsearch. Ids are ULIDs: in the
-- "C" collation (byte order) their text order is their time order. Rooms are
-- compared exactly.
CREATE TABLE chat_events (
    id      VARCHAR(26)  COLLATE "C" PRIMARY KEY,
    room    VARCHAR(100) COLLATE "C" NOT NULL,
    "user"  VARCHAR(100) NOT NULL,
    kind    VARCHAR(8)   NOT NULL,
    message TEXT         NOT NULL,
    ts      TIMESTAMPTZ  NOT NULL,
    -- 'simple': no stemming and no stop words, so every word is found as typed.
    search  TSVECTOR     GENERATED ALWAYS AS (to_tsvector('simple', parley_words(message))) STORED
);
CREATE INDEX chat_events_by_room ON chat_events (room, id);
CREATE INDEX chat_events_search ON chat_events USING GIN (search);

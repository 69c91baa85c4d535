-- Embedded store: events, dead letters. Times are microseconds since the Unix epoch (UTC).
CREATE TABLE IF NOT EXISTS events (
    seq          INTEGER PRIMARY KEY,          -- insertion order
    id           BLOB    NOT NULL,             -- deterministic 128-bit event id
    time_us      INTEGER NOT NULL,
    received_us  INTEGER NOT NULL,
    source_kind  TEXT    NOT NULL,
    source_name  TEXT    NOT NULL,
    peer         TEXT,
    host         TEXT,
    severity     INTEGER NOT NULL,
    category     TEXT,
    message      TEXT    NOT NULL,
    fields       TEXT    NOT NULL,             -- JSON object, original field names
    raw          TEXT
);
-- One row per event: a re-delivered event has the same id and, being normalised from the same
-- record, the same time. Keying the uniqueness by (time, id) instead of id alone keeps index
-- inserts close to append order (ids are random, times mostly increase), which cuts the pages
-- each commit rewrites; the same index serves "newest first".
CREATE UNIQUE INDEX IF NOT EXISTS events_time_id ON events (time_us, id);


CREATE TABLE IF NOT EXISTS dead_letters (
    seq          INTEGER PRIMARY KEY,
    received_us  INTEGER NOT NULL,
    source_kind  TEXT    NOT NULL,
    source_name  TEXT    NOT NULL,
    peer         TEXT,
    reason       TEXT    NOT NULL,             -- metrics label, e.g. invalid_json
    detail       TEXT    NOT NULL,             -- human-readable reason
    body         BLOB    NOT NULL              -- the record exactly as received
);

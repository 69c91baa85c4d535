-- Embedded store: events, dead letters. Times are microseconds since the Unix epoch (UTC).
CREATE TABLE IF NOT EXISTS events (
    seq          INTEGER PRIMARY KEY,          -- insertion order
    id           BLOB    NOT NULL UNIQUE,      -- deterministic 128-bit event id
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
CREATE INDEX IF NOT EXISTS events_time ON events (time_us DESC);


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

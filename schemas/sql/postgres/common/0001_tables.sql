-- PostgreSQL / TimescaleDB store: the tables both flavours share. The events table and the
-- aggregates the dashboards read come next, from plain/ or timescale/ (chosen at start-up).
-- Table names match the embedded SQLite store (schemas/sql/sqlite), so the same queries,
-- dashboards and Grafana panels work on either.

-- Records that could not be stored, with the reason: unparsable input from the normaliser and
-- events PostgreSQL refused (reason 'postgres_rejected').
CREATE TABLE IF NOT EXISTS dead_letters (
    seq          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received     timestamptz NOT NULL,
    source_kind  text        NOT NULL,
    source_name  text        NOT NULL,
    peer         text,
    reason       text        NOT NULL,        -- metrics label, e.g. invalid_json
    detail       text        NOT NULL,        -- human-readable reason
    body         bytea       NOT NULL         -- the record as received (or the event as JSON)
);

-- The dataflow's rollups, one row per one-minute event-time bucket (bucket_start_ms: ms since
-- the Unix epoch, a multiple of 60000). Upserted with the current count, deleted at count 0.
-- A missing host or category is stored as ''.
CREATE TABLE IF NOT EXISTS rollup_source (
    bucket_start_ms bigint   NOT NULL,
    source_kind     text     NOT NULL,
    host            text     NOT NULL DEFAULT '',
    severity        smallint NOT NULL,
    count           bigint   NOT NULL,
    PRIMARY KEY (bucket_start_ms, source_kind, host, severity)
);

CREATE TABLE IF NOT EXISTS rollup_category (
    bucket_start_ms bigint NOT NULL,
    category        text   NOT NULL DEFAULT '',
    count           bigint NOT NULL,
    PRIMARY KEY (bucket_start_ms, category)
);

CREATE TABLE IF NOT EXISTS rollup_hosts (
    bucket_start_ms bigint PRIMARY KEY,
    distinct_hosts  bigint NOT NULL
);

-- Events that arrived after their bucket closed; only ever added to.
CREATE TABLE IF NOT EXISTS rollup_late (
    bucket_start_ms bigint PRIMARY KEY,
    count           bigint NOT NULL
);

-- Enrichment tags per bucket and lookup key ('host:<name>' or 'ip:<address>'); tag: JSON.
CREATE TABLE IF NOT EXISTS enrichment_tags (
    bucket_start_ms bigint NOT NULL,
    lookup_key      text   NOT NULL,
    kind            text   NOT NULL,
    tag             text   NOT NULL,
    PRIMARY KEY (bucket_start_ms, lookup_key, tag)
);

-- Detection alerts; id deterministic from (rule, event) or (rule, group, window start).
CREATE TABLE IF NOT EXISTS alerts (
    id           bytea       PRIMARY KEY,
    rule_id      text        NOT NULL,
    title        text        NOT NULL,
    level        text,                        -- informational .. critical; null when the rule states none
    kind         text        NOT NULL,        -- 'rule' or the correlation type
    tags         jsonb       NOT NULL,        -- array of strings
    group_key    jsonb       NOT NULL,        -- object: group-by field -> value
    window_start timestamptz NOT NULL,
    window_end   timestamptz NOT NULL,
    fired_at     timestamptz NOT NULL,
    first_seen   timestamptz NOT NULL,
    last_seen    timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_newest ON alerts (last_seen DESC);

-- The events behind each alert (for a chained correlation: the inner alerts' ids).
CREATE TABLE IF NOT EXISTS alert_events (
    alert_id   bytea       NOT NULL,
    event_id   bytea       NOT NULL,
    PRIMARY KEY (alert_id, event_id)
);

-- Source positions (Kafka partition offsets, Redis stream ids) whose outputs are stored,
-- written in the same transaction as those outputs. A worker restarts from here.
-- position: the source's own spelling (a Kafka offset in decimal, a Redis entry id).
-- epoch: the dataflow epoch the position belongs to; a row never moves to an older epoch.
CREATE TABLE IF NOT EXISTS source_progress (
    source     text        NOT NULL,
    partition  text        NOT NULL,
    position   text        NOT NULL,
    epoch      bigint      NOT NULL,
    updated    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, partition)
);

-- Which flavour of the events table this schema holds ('plain' or 'timescale'); one row.
CREATE TABLE IF NOT EXISTS store_flavour (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    flavour  text    NOT NULL CHECK (flavour IN ('plain', 'timescale'))
);

-- TimescaleDB: events in a hypertable (one-day chunks) and continuous aggregates at one minute
-- and one hour (the hour built on the minute), real-time (materialized_only = false) so the
-- newest, not yet refreshed, buckets are read from the events. Refresh, compression and
-- retention policies are added by the sink from its configuration.
CREATE TABLE IF NOT EXISTS events (
    time         timestamptz NOT NULL,
    id           bytea       NOT NULL,
    received     timestamptz NOT NULL,
    source_kind  text        NOT NULL,
    source_name  text        NOT NULL,
    peer         text,
    host         text,
    severity     smallint    NOT NULL,
    category     text,
    message      text        NOT NULL,
    fields       jsonb       NOT NULL,
    raw          text,
    PRIMARY KEY (time, id)
);

SELECT create_hypertable('events', by_range('time', INTERVAL '1 day'), if_not_exists => true);

CREATE MATERIALIZED VIEW IF NOT EXISTS rollup_1m
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 minute', time) AS time, source_kind, host, severity, count(*) AS count
FROM events
GROUP BY 1, source_kind, host, severity
WITH NO DATA;

CREATE MATERIALIZED VIEW IF NOT EXISTS rollup_1h
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 hour', time) AS time, source_kind, host, severity, sum(count)::bigint AS count
FROM rollup_1m
GROUP BY 1, source_kind, host, severity
WITH NO DATA;

CREATE MATERIALIZED VIEW IF NOT EXISTS rollup_category_1m
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 minute', time) AS time, category, count(*) AS count
FROM events
GROUP BY 1, category
WITH NO DATA;

CREATE MATERIALIZED VIEW IF NOT EXISTS rollup_category_1h
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 hour', time) AS time, category, sum(count)::bigint AS count
FROM rollup_category_1m
GROUP BY 1, category
WITH NO DATA;

INSERT INTO store_flavour (flavour) VALUES ('timescale') ON CONFLICT (only_row) DO NOTHING;

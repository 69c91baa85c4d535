-- Plain PostgreSQL: events partitioned by day on event time. The sink creates the daily
-- partitions (events_pYYYYMMDD) ahead of time; the default partition catches any other day
-- until its partition is created (the rows then move into it).
CREATE TABLE IF NOT EXISTS events (
    time         timestamptz NOT NULL,
    id           bytea       NOT NULL,        -- deterministic 128-bit event id
    received     timestamptz NOT NULL,
    source_kind  text        NOT NULL,
    source_name  text        NOT NULL,
    peer         text,
    host         text,
    severity     smallint    NOT NULL,        -- RFC 5424 code 0..=7
    category     text,
    message      text        NOT NULL,
    fields       jsonb       NOT NULL,
    raw          text,
    PRIMARY KEY (time, id)
) PARTITION BY RANGE (time);

CREATE TABLE IF NOT EXISTS events_default PARTITION OF events DEFAULT;

-- The names Timescale gives its continuous aggregates, here as views over the dataflow's
-- rollup tables: time = bucket start, host/category NULL when the events had none.
CREATE OR REPLACE VIEW rollup_1m AS
SELECT to_timestamp(bucket_start_ms / 1000.0) AS time, source_kind, NULLIF(host, '') AS host, severity, count
FROM rollup_source;

CREATE OR REPLACE VIEW rollup_1h AS
SELECT to_timestamp((bucket_start_ms - bucket_start_ms % 3600000) / 1000.0) AS time, source_kind,
       NULLIF(host, '') AS host, severity, SUM(count)::bigint AS count
FROM rollup_source
GROUP BY bucket_start_ms - bucket_start_ms % 3600000, source_kind, host, severity;

CREATE OR REPLACE VIEW rollup_category_1m AS
SELECT to_timestamp(bucket_start_ms / 1000.0) AS time, NULLIF(category, '') AS category, count
FROM rollup_category;

CREATE OR REPLACE VIEW rollup_category_1h AS
SELECT to_timestamp((bucket_start_ms - bucket_start_ms % 3600000) / 1000.0) AS time,
       NULLIF(category, '') AS category, SUM(count)::bigint AS count
FROM rollup_category
GROUP BY bucket_start_ms - bucket_start_ms % 3600000, category;

INSERT INTO store_flavour (flavour) VALUES ('plain') ON CONFLICT (only_row) DO NOTHING;

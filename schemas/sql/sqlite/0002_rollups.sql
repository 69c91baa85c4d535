-- Rollups of the dataflow (securewatch-dataflow), one row per one-minute event-time bucket.
-- bucket_start_ms: bucket start in event time, milliseconds since the Unix epoch (UTC), a
-- multiple of 60000. The writer upserts each row's current count and deletes rows whose count
-- becomes zero, so the tables always hold the dataflow's current rows.
-- A missing host or category is stored as '' (primary-key columns cannot hold a comparable
-- NULL) and read back as "none": an event whose host or category is the empty string counts
-- the same as one without.
-- Table and view names are stable: dashboards (and Grafana) query them directly.

-- Events per (source kind, host, severity). severity: the RFC 5424 code 0..=7.
CREATE TABLE IF NOT EXISTS rollup_source (
    bucket_start_ms INTEGER NOT NULL,
    source_kind     TEXT    NOT NULL,              -- hec, syslog, wazuh, ...
    host            TEXT    NOT NULL DEFAULT '',   -- '' = the events named no host
    severity        INTEGER NOT NULL,
    count           INTEGER NOT NULL,
    PRIMARY KEY (bucket_start_ms, source_kind, host, severity)
) WITHOUT ROWID;

-- Events per category.
CREATE TABLE IF NOT EXISTS rollup_category (
    bucket_start_ms INTEGER NOT NULL,
    category        TEXT    NOT NULL DEFAULT '',   -- '' = the events had no category
    count           INTEGER NOT NULL,
    PRIMARY KEY (bucket_start_ms, category)
) WITHOUT ROWID;

-- Distinct hosts per bucket (events without a host are not counted). Not additive: an hour's
-- distinct hosts cannot be summed from its minutes.
CREATE TABLE IF NOT EXISTS rollup_hosts (
    bucket_start_ms INTEGER PRIMARY KEY,
    distinct_hosts  INTEGER NOT NULL
);

-- Events that arrived after their bucket had closed, per event-time bucket. They are not in the
-- rollups above; the writer only ever adds to these counts.
CREATE TABLE IF NOT EXISTS rollup_late (
    bucket_start_ms INTEGER PRIMARY KEY,
    count           INTEGER NOT NULL
);

-- rollup_source per minute with the bucket as an RFC 3339 time and NULL for a missing host.
CREATE VIEW IF NOT EXISTS rollup_1m AS
SELECT bucket_start_ms,
       strftime('%Y-%m-%dT%H:%M:%SZ', bucket_start_ms / 1000, 'unixepoch') AS time,
       source_kind,
       NULLIF(host, '') AS host,
       severity,
       count
FROM rollup_source;

-- rollup_source summed per hour (bucket_start_ms is the hour's start), same columns as rollup_1m.
CREATE VIEW IF NOT EXISTS rollup_1h AS
SELECT bucket_start_ms - bucket_start_ms % 3600000 AS bucket_start_ms,
       strftime('%Y-%m-%dT%H:%M:%SZ', (bucket_start_ms - bucket_start_ms % 3600000) / 1000,
                'unixepoch') AS time,
       source_kind,
       NULLIF(host, '') AS host,
       severity,
       SUM(count) AS count
FROM rollup_source
GROUP BY bucket_start_ms - bucket_start_ms % 3600000, source_kind, host, severity;

-- Plain PostgreSQL: the counts the dashboard API reads, one dimension value per row, per minute
-- and per hour. A dashboard query then reads a handful of rows per point instead of summing
-- every (source, host, severity) row of every minute in its range, and a day of hourly points
-- reads hours, not minutes. The sink keeps them in the same transaction as rollup_source and
-- rollup_category by adding each write's differences (new count minus stored count), so
-- replaying a write adds nothing. TimescaleDB reads its continuous aggregates instead.
--
-- dimension: 'source' (value = source_kind), 'host' ('' = none), 'severity' (value = the code
-- as text), 'category' ('' = none). bucket_start_ms: the minute, or the hour, it counts.
-- A count that drops to 0 keeps its row; the queries skip zero sums.
CREATE TABLE IF NOT EXISTS dashboard_1m (
    dimension       text   NOT NULL,
    bucket_start_ms bigint NOT NULL,
    value           text   NOT NULL,
    count           bigint NOT NULL,
    PRIMARY KEY (dimension, bucket_start_ms, value)
);

CREATE TABLE IF NOT EXISTS dashboard_1h (
    dimension       text   NOT NULL,
    bucket_start_ms bigint NOT NULL,
    value           text   NOT NULL,
    count           bigint NOT NULL,
    PRIMARY KEY (dimension, bucket_start_ms, value)
);

-- Rollups stored before this migration.
INSERT INTO dashboard_1m (dimension, bucket_start_ms, value, count)
SELECT 'source', bucket_start_ms, source_kind, SUM(count) FROM rollup_source GROUP BY 2, 3
UNION ALL
SELECT 'host', bucket_start_ms, host, SUM(count) FROM rollup_source GROUP BY 2, 3
UNION ALL
SELECT 'severity', bucket_start_ms, severity::text, SUM(count) FROM rollup_source GROUP BY 2, 3
UNION ALL
SELECT 'category', bucket_start_ms, category, SUM(count) FROM rollup_category GROUP BY 2, 3
ON CONFLICT DO NOTHING;

INSERT INTO dashboard_1h (dimension, bucket_start_ms, value, count)
SELECT dimension, bucket_start_ms - bucket_start_ms % 3600000, value, SUM(count)
FROM dashboard_1m GROUP BY 1, 2, 3
ON CONFLICT DO NOTHING;

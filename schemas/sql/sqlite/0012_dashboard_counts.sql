-- The counts plain PostgreSQL keeps in dashboard_1m / dashboard_1h (postgres/plain/0102), for
-- the embedded store: one dimension value per row, per minute and per hour, per tenant. A
-- search that groups hour bins by one rolled-up column (`summarize count() by bin(time, 1h),
-- severity`) reads a few rows per hour here instead of every (source, host, severity) row of
-- every minute in rollup_source. The writer keeps them in the transaction that writes
-- rollup_source and rollup_category by adding each write's differences (new count minus stored
-- count), so replaying a write adds nothing.
--
-- dimension: 'source' (value = source_kind), 'host' ('' = none), 'severity' (value = the code
-- as text), 'category' ('' = none). A count that drops to 0 keeps its row; reads skip it.
CREATE TABLE IF NOT EXISTS dashboard_1m (
    dimension       TEXT    NOT NULL,
    bucket_start_ms INTEGER NOT NULL,
    tenant          TEXT    NOT NULL,
    value           TEXT    NOT NULL,
    count           INTEGER NOT NULL,
    PRIMARY KEY (dimension, bucket_start_ms, tenant, value)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS dashboard_1h (
    dimension       TEXT    NOT NULL,
    bucket_start_ms INTEGER NOT NULL,
    tenant          TEXT    NOT NULL,
    value           TEXT    NOT NULL,
    count           INTEGER NOT NULL,
    PRIMARY KEY (dimension, bucket_start_ms, tenant, value)
) WITHOUT ROWID;

-- Rollups stored before this migration.
INSERT INTO dashboard_1m (dimension, bucket_start_ms, tenant, value, count)
SELECT 'source', bucket_start_ms, tenant, source_kind, SUM(count) FROM rollup_source GROUP BY 2, 3, 4
UNION ALL
SELECT 'host', bucket_start_ms, tenant, host, SUM(count) FROM rollup_source GROUP BY 2, 3, 4
UNION ALL
SELECT 'severity', bucket_start_ms, tenant, CAST(severity AS TEXT), SUM(count) FROM rollup_source GROUP BY 2, 3, 4
UNION ALL
SELECT 'category', bucket_start_ms, tenant, category, SUM(count) FROM rollup_category GROUP BY 2, 3, 4;

INSERT INTO dashboard_1h (dimension, bucket_start_ms, tenant, value, count)
SELECT dimension, bucket_start_ms - bucket_start_ms % 3600000, tenant, value, SUM(count)
FROM dashboard_1m GROUP BY 1, 2, 3, 4;

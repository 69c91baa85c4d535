-- Tenants (issue 17): the events' tenant, with an index that starts with it, and continuous
-- aggregates per tenant. A continuous aggregate cannot gain a group-by column, so the four are
-- dropped and made again with the tenant (they rebuild from the events, whose existing rows
-- become 'default'); the sink re-adds their refresh policies at start.
ALTER TABLE events ADD COLUMN IF NOT EXISTS tenant text NOT NULL DEFAULT 'default';
CREATE INDEX IF NOT EXISTS events_tenant_time ON events (tenant, time);

DROP MATERIALIZED VIEW IF EXISTS rollup_1h;
DROP MATERIALIZED VIEW IF EXISTS rollup_1m;
DROP MATERIALIZED VIEW IF EXISTS rollup_category_1h;
DROP MATERIALIZED VIEW IF EXISTS rollup_category_1m;

CREATE MATERIALIZED VIEW IF NOT EXISTS rollup_1m
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 minute', time) AS time, source_kind, host, severity, count(*) AS count, tenant
FROM events
GROUP BY 1, tenant, source_kind, host, severity
WITH NO DATA;

CREATE MATERIALIZED VIEW IF NOT EXISTS rollup_1h
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 hour', time) AS time, source_kind, host, severity, sum(count)::bigint AS count, tenant
FROM rollup_1m
GROUP BY 1, tenant, source_kind, host, severity
WITH NO DATA;

CREATE MATERIALIZED VIEW IF NOT EXISTS rollup_category_1m
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 minute', time) AS time, category, count(*) AS count, tenant
FROM events
GROUP BY 1, tenant, category
WITH NO DATA;

CREATE MATERIALIZED VIEW IF NOT EXISTS rollup_category_1h
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 hour', time) AS time, category, sum(count)::bigint AS count, tenant
FROM rollup_category_1m
GROUP BY 1, tenant, category
WITH NO DATA;

-- Tenants (issue 17): the events' tenant, with an index that starts with it, and per-tenant
-- dashboard counts and views. Rows stored before tenants existed become 'default'.
ALTER TABLE events ADD COLUMN IF NOT EXISTS tenant text NOT NULL DEFAULT 'default';
CREATE INDEX IF NOT EXISTS events_tenant_time ON events (tenant, time);

ALTER TABLE dashboard_1m ADD COLUMN IF NOT EXISTS tenant text NOT NULL DEFAULT 'default';
ALTER TABLE dashboard_1m DROP CONSTRAINT IF EXISTS dashboard_1m_pkey;
ALTER TABLE dashboard_1m ADD PRIMARY KEY (dimension, bucket_start_ms, tenant, value);

ALTER TABLE dashboard_1h ADD COLUMN IF NOT EXISTS tenant text NOT NULL DEFAULT 'default';
ALTER TABLE dashboard_1h DROP CONSTRAINT IF EXISTS dashboard_1h_pkey;
ALTER TABLE dashboard_1h ADD PRIMARY KEY (dimension, bucket_start_ms, tenant, value);

-- The views of 0101_events.sql with the tenant as their last column (Grafana can filter on it).
CREATE OR REPLACE VIEW rollup_1m AS
SELECT to_timestamp(bucket_start_ms / 1000.0) AS time, source_kind, NULLIF(host, '') AS host, severity, count,
       tenant
FROM rollup_source;

CREATE OR REPLACE VIEW rollup_1h AS
SELECT to_timestamp((bucket_start_ms - bucket_start_ms % 3600000) / 1000.0) AS time, source_kind,
       NULLIF(host, '') AS host, severity, SUM(count)::bigint AS count, tenant
FROM rollup_source
GROUP BY bucket_start_ms - bucket_start_ms % 3600000, tenant, source_kind, host, severity;

CREATE OR REPLACE VIEW rollup_category_1m AS
SELECT to_timestamp(bucket_start_ms / 1000.0) AS time, NULLIF(category, '') AS category, count, tenant
FROM rollup_category;

CREATE OR REPLACE VIEW rollup_category_1h AS
SELECT to_timestamp((bucket_start_ms - bucket_start_ms % 3600000) / 1000.0) AS time,
       NULLIF(category, '') AS category, SUM(count)::bigint AS count, tenant
FROM rollup_category
GROUP BY bucket_start_ms - bucket_start_ms % 3600000, tenant, category;

-- Tenants: every event, dead letter, alert and rollup row belongs to one (issue 17). Stores
-- created before tenants existed hold one tenant's data: it becomes 'default'. Reads filter by
-- the caller's tenants, so each table gets an index that starts with the tenant.
ALTER TABLE events ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';
CREATE INDEX IF NOT EXISTS events_tenant_time ON events (tenant, time_us);

ALTER TABLE dead_letters ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';
CREATE INDEX IF NOT EXISTS dead_letters_tenant ON dead_letters (tenant, seq);

ALTER TABLE alerts ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';
CREATE INDEX IF NOT EXISTS alerts_tenant_newest ON alerts (tenant, last_seen_ms DESC);

-- Rollups are per tenant: the tenant joins each table's key, so the tables are rebuilt (SQLite
-- cannot change a primary key in place) and their rows copied as the 'default' tenant's.
DROP VIEW IF EXISTS rollup_1m;
DROP VIEW IF EXISTS rollup_1h;

CREATE TABLE rollup_source_by_tenant (
    bucket_start_ms INTEGER NOT NULL,
    tenant          TEXT    NOT NULL DEFAULT 'default',
    source_kind     TEXT    NOT NULL,
    host            TEXT    NOT NULL DEFAULT '',
    severity        INTEGER NOT NULL,
    count           INTEGER NOT NULL,
    PRIMARY KEY (bucket_start_ms, tenant, source_kind, host, severity)
) WITHOUT ROWID;
INSERT INTO rollup_source_by_tenant (bucket_start_ms, source_kind, host, severity, count)
SELECT bucket_start_ms, source_kind, host, severity, count FROM rollup_source;
DROP TABLE rollup_source;
ALTER TABLE rollup_source_by_tenant RENAME TO rollup_source;

CREATE TABLE rollup_category_by_tenant (
    bucket_start_ms INTEGER NOT NULL,
    tenant          TEXT    NOT NULL DEFAULT 'default',
    category        TEXT    NOT NULL DEFAULT '',
    count           INTEGER NOT NULL,
    PRIMARY KEY (bucket_start_ms, tenant, category)
) WITHOUT ROWID;
INSERT INTO rollup_category_by_tenant (bucket_start_ms, category, count)
SELECT bucket_start_ms, category, count FROM rollup_category;
DROP TABLE rollup_category;
ALTER TABLE rollup_category_by_tenant RENAME TO rollup_category;

CREATE TABLE rollup_hosts_by_tenant (
    bucket_start_ms INTEGER NOT NULL,
    tenant          TEXT    NOT NULL DEFAULT 'default',
    distinct_hosts  INTEGER NOT NULL,
    PRIMARY KEY (bucket_start_ms, tenant)
) WITHOUT ROWID;
INSERT INTO rollup_hosts_by_tenant (bucket_start_ms, distinct_hosts)
SELECT bucket_start_ms, distinct_hosts FROM rollup_hosts;
DROP TABLE rollup_hosts;
ALTER TABLE rollup_hosts_by_tenant RENAME TO rollup_hosts;

-- rollup_late stays one count per bucket for all tenants: an operations figure that no
-- tenant-scoped read returns.

-- The views of 0002_rollups.sql, with the tenant.
CREATE VIEW rollup_1m AS
SELECT bucket_start_ms,
       strftime('%Y-%m-%dT%H:%M:%SZ', bucket_start_ms / 1000, 'unixepoch') AS time,
       source_kind,
       NULLIF(host, '') AS host,
       severity,
       count,
       tenant
FROM rollup_source;

CREATE VIEW rollup_1h AS
SELECT bucket_start_ms - bucket_start_ms % 3600000 AS bucket_start_ms,
       strftime('%Y-%m-%dT%H:%M:%SZ', (bucket_start_ms - bucket_start_ms % 3600000) / 1000,
                'unixepoch') AS time,
       source_kind,
       NULLIF(host, '') AS host,
       severity,
       SUM(count) AS count,
       tenant
FROM rollup_source
GROUP BY bucket_start_ms - bucket_start_ms % 3600000, tenant, source_kind, host, severity;

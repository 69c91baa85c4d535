-- The embedded store drops the (tenant, time) index on events that 0006 made. It cost every
-- insert a second B-tree update: syslog TCP into the store ran ~30% slower with it (bench/README,
-- "Tenants on the hot path"). A tenant's reads use the (time, id) index and filter the tenant,
-- which reads more rows only for a tenant that holds a small share of a busy time range.
-- PostgreSQL keeps its index (schemas/sql/postgres).
DROP INDEX IF EXISTS events_tenant_time;

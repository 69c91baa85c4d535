-- Tenants: every dead letter, alert and rollup row belongs to one (issue 17). Rows stored
-- before tenants existed become the 'default' tenant's. Rollups are per tenant: the tenant
-- joins their primary keys. rollup_late stays one count per bucket for all tenants (an
-- operations figure that no tenant-scoped read returns).
ALTER TABLE dead_letters ADD COLUMN IF NOT EXISTS tenant text NOT NULL DEFAULT 'default';
CREATE INDEX IF NOT EXISTS dead_letters_tenant ON dead_letters (tenant, seq);

ALTER TABLE alerts ADD COLUMN IF NOT EXISTS tenant text NOT NULL DEFAULT 'default';
CREATE INDEX IF NOT EXISTS alerts_tenant_newest ON alerts (tenant, last_seen DESC);

ALTER TABLE rollup_source ADD COLUMN IF NOT EXISTS tenant text NOT NULL DEFAULT 'default';
ALTER TABLE rollup_source DROP CONSTRAINT IF EXISTS rollup_source_pkey;
ALTER TABLE rollup_source ADD PRIMARY KEY (bucket_start_ms, tenant, source_kind, host, severity);

ALTER TABLE rollup_category ADD COLUMN IF NOT EXISTS tenant text NOT NULL DEFAULT 'default';
ALTER TABLE rollup_category DROP CONSTRAINT IF EXISTS rollup_category_pkey;
ALTER TABLE rollup_category ADD PRIMARY KEY (bucket_start_ms, tenant, category);

ALTER TABLE rollup_hosts ADD COLUMN IF NOT EXISTS tenant text NOT NULL DEFAULT 'default';
ALTER TABLE rollup_hosts DROP CONSTRAINT IF EXISTS rollup_hosts_pkey;
ALTER TABLE rollup_hosts ADD PRIMARY KEY (bucket_start_ms, tenant);

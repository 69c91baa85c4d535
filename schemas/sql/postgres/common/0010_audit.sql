-- The audit log (as in the embedded store): every state-changing API call and every refused
-- credential, appended and never changed: a trigger refuses UPDATE, DELETE and TRUNCATE.
CREATE TABLE IF NOT EXISTS audit_log (
    seq      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    time     timestamptz NOT NULL,
    identity text        NOT NULL,
    tenant   text        NOT NULL,
    action   text        NOT NULL,
    resource text        NOT NULL,
    outcome  text        NOT NULL,
    peer     text,
    detail   text        NOT NULL DEFAULT ''
);

CREATE INDEX IF NOT EXISTS audit_log_tenant ON audit_log (tenant, seq);

CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only';
END;
$$;

DROP TRIGGER IF EXISTS audit_log_no_change ON audit_log;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log;
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

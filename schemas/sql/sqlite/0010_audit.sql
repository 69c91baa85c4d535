-- The audit log: every state-changing API call (rule reloads, token changes) and every refused
-- credential, appended and never changed (the triggers refuse UPDATE and DELETE).
-- identity: token name or JWT subject ('-' when no credential was accepted).
-- tenant: the identity's tenant ('*' for all tenants or none known; several joined by ',').
-- outcome: 'ok', 'refused' or 'failed'. peer: the client address.
CREATE TABLE IF NOT EXISTS audit_log (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    time_us  INTEGER NOT NULL,
    identity TEXT    NOT NULL,
    tenant   TEXT    NOT NULL,
    action   TEXT    NOT NULL,
    resource TEXT    NOT NULL,
    outcome  TEXT    NOT NULL,
    peer     TEXT,
    detail   TEXT    NOT NULL DEFAULT ''
);

CREATE INDEX IF NOT EXISTS audit_log_tenant ON audit_log (tenant, seq);

CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;

CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;

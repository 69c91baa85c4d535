-- Alerts of the Sigma detection (single-event rules and correlations). An alert's id is
-- deterministic (rule + event, or rule + group + window start), so a replayed epoch upserts
-- the same row; the dataflow retracts an alert that late data invalidated, and the writer
-- deletes it. Times are event times in ms since the Unix epoch (UTC). tags, group_key: JSON.
CREATE TABLE IF NOT EXISTS alerts (
    id              BLOB    PRIMARY KEY,          -- 128-bit deterministic alert id
    rule_id         TEXT    NOT NULL,
    title           TEXT    NOT NULL,
    level           TEXT,                         -- informational, low, medium, high, critical
    kind            TEXT    NOT NULL,             -- 'rule' or the correlation type
    tags            TEXT    NOT NULL,             -- JSON array (ATT&CK tags among them)
    group_key       TEXT    NOT NULL,             -- JSON object: group-by field → value
    window_start_ms INTEGER NOT NULL,
    window_end_ms   INTEGER NOT NULL,
    fired_at_ms     INTEGER NOT NULL,
    first_seen_ms   INTEGER NOT NULL,
    last_seen_ms    INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_newest ON alerts (last_seen_ms DESC);

-- The events behind each alert (for a chained correlation: the inner alerts' ids).
CREATE TABLE IF NOT EXISTS alert_events (
    alert_id        BLOB    NOT NULL,             -- alerts.id (deleted with its alert by the writer)
    event_id        BLOB    NOT NULL,
    PRIMARY KEY (alert_id, event_id)
) WITHOUT ROWID;

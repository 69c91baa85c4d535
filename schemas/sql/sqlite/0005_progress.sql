-- Source positions (Kafka partition offsets, Redis stream ids) whose outputs are stored,
-- written in the same transaction as those outputs: a worker restarts from here.
-- position: the source's own spelling (a Kafka offset in decimal, a Redis entry id).
-- epoch: the dataflow epoch the position belongs to; a row never moves to an older epoch.
CREATE TABLE IF NOT EXISTS source_progress (
    source     TEXT    NOT NULL,
    partition  TEXT    NOT NULL,
    position   TEXT    NOT NULL,
    epoch      INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (source, partition)
) WITHOUT ROWID;

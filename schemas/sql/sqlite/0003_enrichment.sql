-- Enrichment tags of the dataflow (securewatch-dataflow), per one-minute event-time bucket and
-- lookup key. The writer inserts a row when the dataflow adds a tag and deletes it when the tag
-- is retracted (a reference file was edited while the bucket was resident); rows of buckets that
-- left the dataflow stay as they were. An event's tags are the rows of its bucket and its keys.
-- bucket_start_ms: bucket start in event time, ms since the Unix epoch (UTC), a multiple of 60000.
-- lookup_key: 'host:<lowercase name>' or 'ip:<address>'.
-- kind: 'asset', 'network' or 'geo'; tag: the tag as JSON (securewatch_dataflow::Tag).
CREATE TABLE IF NOT EXISTS enrichment_tags (
    bucket_start_ms INTEGER NOT NULL,
    lookup_key      TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    tag             TEXT    NOT NULL,
    PRIMARY KEY (bucket_start_ms, lookup_key, tag)
) WITHOUT ROWID;

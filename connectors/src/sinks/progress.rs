//! Source positions committed with the results derived from them (the `source_progress` table).

use std::collections::BTreeMap;

/// One source position to commit with a write: `(source, partition) → position` at `epoch`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SourceProgress {
    /// The configured source name (e.g. a Kafka topic's source or a Redis stream's).
    pub source: String,
    /// The partition within the source: a Kafka partition number, a Redis consumer.
    pub partition: String,
    /// The next position to read, in the source's own spelling (a Kafka offset, a Redis entry id).
    pub position: String,
    /// The dataflow epoch this position closes. A stored position never moves to an older epoch.
    pub epoch: u64,
}

/// One row per `(source, partition)`: the newest epoch, the last given among equals (positions
/// of one epoch arrive in the order they were read).
pub fn latest_per_partition(progress: &[SourceProgress]) -> BTreeMap<(&str, &str), &SourceProgress> {
    let mut latest: BTreeMap<(&str, &str), &SourceProgress> = BTreeMap::new();
    for row in progress {
        let slot = latest.entry((row.source.as_str(), row.partition.as_str())).or_insert(row);
        if row.epoch >= slot.epoch {
            *slot = row;
        }
    }
    latest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(partition: &str, position: &str, epoch: u64) -> SourceProgress {
        SourceProgress { source: "bus".into(), partition: partition.into(), position: position.into(), epoch }
    }

    #[test]
    fn the_newest_epoch_and_the_last_of_an_epoch_win() {
        let rows = [at("0", "10", 5), at("0", "12", 5), at("1", "7", 9), at("1", "3", 4)];
        let latest = latest_per_partition(&rows);
        let positions: Vec<_> = latest.values().map(|row| (row.partition.as_str(), row.position.as_str())).collect();
        assert_eq!(positions, [("0", "12"), ("1", "7")]);
    }
}

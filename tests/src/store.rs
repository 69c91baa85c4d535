//! Reading a stopped instance's embedded store with the `sqlite3` command, and what the delivery tests check in it.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// The output of `sql` run read-only on the store file `store`; fails the test on an error.
pub fn sqlite(store: &Path, sql: &str) -> String {
    let output = Command::new("sqlite3").arg("-readonly").arg(store).arg(sql).output().expect("sqlite3");
    assert!(output.status.success(), "sqlite3 {sql}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("utf-8")
}

/// `bucket|count` lines as a map.
pub fn per_bucket(text: &str) -> BTreeMap<i64, i64> {
    text.lines()
        .filter_map(|line| line.split_once('|'))
        .map(|(bucket, count)| (bucket.parse().expect("bucket"), count.parse().expect("count")))
        .collect()
}

/// Per one-minute bucket: (stored events, rollup counts plus late counts), buckets counting
/// zero left out. The two are equal when every stored event is counted once in the rollups.
pub fn events_and_rollups_per_bucket(store: &Path) -> (BTreeMap<i64, i64>, BTreeMap<i64, i64>) {
    let events = per_bucket(&sqlite(store, "SELECT (time_us / 60000000) * 60000, count(*) FROM events GROUP BY 1"));
    let mut counted = per_bucket(&sqlite(store, "SELECT bucket_start_ms, sum(count) FROM rollup_source GROUP BY 1"));
    for (bucket, count) in per_bucket(&sqlite(store, "SELECT bucket_start_ms, sum(count) FROM rollup_late GROUP BY 1")) {
        *counted.entry(bucket).or_default() += count;
    }
    counted.retain(|_, count| *count != 0);
    (events, counted)
}

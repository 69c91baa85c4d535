//! The PostgreSQL server of `tests/run.sh` for end-to-end tests, read with the real `psql`.

use std::process::Command;

/// The URL of the PostgreSQL server `tests/run.sh` started, or `None` (the caller skips its
/// test) unless `SECUREWATCH_REQUIRE_POSTGRES=1` makes that a failure.
pub fn postgres_url() -> Option<String> {
    match std::env::var("SECUREWATCH_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("SECUREWATCH_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "SECUREWATCH_REQUIRE_POSTGRES=1 but SECUREWATCH_TEST_POSTGRES_URL is unset"
            );
            eprintln!("skipped: SECUREWATCH_TEST_POSTGRES_URL is unset (tests/run.sh starts PostgreSQL)");
            None
        }
    }
}

/// Runs one SQL statement with `psql` and returns its rows (`|`-separated columns).
pub fn psql(url: &str, sql: &str) -> Vec<String> {
    let output = Command::new("psql")
        .args([url, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .expect("run psql");
    assert!(output.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).lines().map(str::to_string).collect()
}

/// The single number `sql` answers.
pub fn scalar(url: &str, sql: &str) -> i64 {
    psql(url, sql)[0].trim().parse().expect("a number")
}

/// A fresh schema name for one test (dropped by the test at its end).
pub fn schema_name(prefix: &str) -> String {
    format!("{prefix}_{:016x}", rand::random::<u64>())
}

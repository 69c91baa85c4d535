//! Reading the server's Prometheus `/metrics`.

use std::time::{Duration, Instant};

use anyhow::bail;

/// Sum of every sample of `name` (all label sets) in a Prometheus text exposition.
pub fn sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

pub async fn fetch(client: &reqwest::Client, api: &str) -> anyhow::Result<String> {
    Ok(client.get(format!("{api}/metrics")).send().await?.text().await?)
}

/// `securewatch_store_written_total`, all sources.
pub async fn stored_total(client: &reqwest::Client, api: &str) -> anyhow::Result<u64> {
    Ok(sum(&fetch(client, api).await?, "securewatch_store_written_total") as u64)
}

/// Waits until the store has written `target` events (ten minutes at most).
pub async fn wait_stored(client: &reqwest::Client, api: &str, target: u64) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    while stored_total(client, api).await? < target {
        if Instant::now() > deadline {
            bail!("the store did not reach {target} events in 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Counters read before and after a run, to report what the dataflow did with the events.
pub struct Counters {
    pub rollup_changes: f64,
    pub late_events: f64,
}

impl Counters {
    pub async fn read(client: &reqwest::Client, api: &str) -> anyhow::Result<Self> {
        let text = fetch(client, api).await?;
        Ok(Counters {
            rollup_changes: sum(&text, "securewatch_rollup_changes_total"),
            late_events: sum(&text, "securewatch_rollup_late_events_total"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_label_sets_of_one_name_only() {
        let text = "# TYPE securewatch_store_written_total counter\n\
                    securewatch_store_written_total{source=\"hec\"} 10\n\
                    securewatch_store_written_total{source=\"syslog\"} 5\n\
                    securewatch_store_written_total_other 100\n\
                    securewatch_rollup_changes_total 7\n";
        assert_eq!(sum(text, "securewatch_store_written_total"), 15.0);
        assert_eq!(sum(text, "securewatch_rollup_changes_total"), 7.0);
        assert_eq!(sum(text, "missing"), 0.0);
    }
}

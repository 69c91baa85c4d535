//! HEC load: batches of JSON envelopes over keep-alive connections, flat out or paced.
//!
//! HEC answers a request only after the writer committed the epoch its batch entered at, with
//! the events and the rollup changes of that epoch in one SQLite transaction. The request
//! latency measured here is therefore the ingest-to-rollup latency: when the answer arrives,
//! the rollup rows that count the batch are durable.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};

use crate::metrics;
use crate::pacer::Pacer;

pub struct Options {
    pub url: String,
    pub token: String,
    pub api: String,
    pub events: u64,
    pub batch: u64,
    pub concurrency: u64,
    /// Events per second; `None` sends flat out.
    pub rate: Option<f64>,
    /// Event time = send time instead of fixed times.
    pub now_times: bool,
    /// Distinct `host` values (the cardinality of the per-host rollups).
    pub hosts: u64,
    /// A PEM CA file to trust for an `https://` URL.
    pub ca_file: Option<std::path::PathBuf>,
}

/// Fixed event times start here (2023-11-14T22:13:20Z) and advance one second per 1000 events.
const FIXED_TIME_BASE_SECS: u64 = 1_700_000_000;

/// One synthetic event of about 250 bytes, unique by `sequence`, at `time_ms`, from one of
/// `hosts` hosts.
pub(crate) fn hec_event(sequence: u64, time_ms: u64, hosts: u64) -> String {
    format!(
        r#"{{"time":{}.{:03},"host":"host-{:03}","sourcetype":"bench","event":{{"message":"Failed password for user{} from 198.51.100.{} port {} ssh2","seq":{},"severity":"warning"}}}}"#,
        time_ms / 1000,
        time_ms % 1000,
        sequence % hosts,
        sequence % 5000,
        sequence % 250,
        1024 + sequence % 60000,
        sequence
    )
}

/// The fixed event time of `sequence` (the times the benchmark used before `--now-times`).
fn fixed_time_ms(sequence: u64) -> u64 {
    (FIXED_TIME_BASE_SECS + sequence / 1000) * 1000 + sequence % 1000
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_millis() as u64)
}

/// What one connection measured.
#[derive(Default)]
struct Measured {
    /// Request latencies (send → answer) of the successful requests.
    latencies: Vec<Duration>,
    /// Largest delay of a send behind its token's due time (paced runs).
    behind: Duration,
    /// When the last request was sent, relative to the start.
    last_send: Duration,
}

pub(crate) fn percentile(sorted: &[Duration], quantile: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * quantile).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

pub(crate) fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

pub async fn run(options: Options) -> anyhow::Result<()> {
    let Options { url, token, api, events, batch, concurrency, rate, now_times, hosts, ca_file } = options;
    if batch == 0 || concurrency == 0 || hosts == 0 {
        bail!("--batch, --concurrency and --hosts must be at least 1");
    }
    let pacer = match rate {
        Some(rate) => Some(Arc::new(Pacer::new(rate, batch, u32::try_from(concurrency).unwrap_or(u32::MAX))?)),
        None => None,
    };
    let mut builder = reqwest::Client::builder().pool_max_idle_per_host(concurrency as usize);
    if let Some(ca_file) = &ca_file {
        let pem = std::fs::read(ca_file).with_context(|| format!("cannot read {}", ca_file.display()))?;
        builder = builder.add_root_certificate(reqwest::Certificate::from_pem(&pem)?);
    }
    let client = builder.build()?;
    let before = metrics::stored_total(&client, &api).await.context("cannot read /metrics")?;
    let counters_before = metrics::Counters::read(&client, &api).await?;
    let next = Arc::new(AtomicU64::new(0));
    let busy = Arc::new(AtomicU64::new(0));
    let endpoint = format!("{url}/services/collector/event");
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (client, next, busy, endpoint, pacer) =
            (client.clone(), Arc::clone(&next), Arc::clone(&busy), endpoint.clone(), pacer.clone());
        let authorization = format!("Splunk {token}");
        workers.push(tokio::spawn(async move {
            let mut measured = Measured::default();
            loop {
                let first = next.fetch_add(batch, Ordering::Relaxed);
                if first >= events {
                    return Ok::<_, anyhow::Error>(measured);
                }
                let due = pacer.as_ref().map(|pacer| pacer.reserve(Instant::now()));
                if let Some(due) = due {
                    tokio::time::sleep_until(due.into()).await;
                }
                let time_ms = now_ms();
                let body: String = (first..(first + batch).min(events))
                    .map(|sequence| {
                        hec_event(sequence, if now_times { time_ms } else { fixed_time_ms(sequence) }, hosts)
                    })
                    .collect();
                loop {
                    let sent = Instant::now();
                    if let Some(due) = due {
                        measured.behind = measured.behind.max(sent.saturating_duration_since(due));
                    }
                    let response = client
                        .post(&endpoint)
                        .header("Authorization", &authorization)
                        .body(body.clone())
                        .send()
                        .await?;
                    let status = response.status();
                    let _ = response.bytes().await?;
                    if status.as_u16() == 503 {
                        busy.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                    if !status.is_success() {
                        bail!("HEC answered {status}");
                    }
                    measured.latencies.push(sent.elapsed());
                    measured.last_send = sent.duration_since(started);
                    break;
                }
            }
        }));
    }
    let mut latencies = Vec::new();
    let (mut behind, mut last_send) = (Duration::ZERO, Duration::ZERO);
    for worker in workers {
        let measured = worker.await??;
        latencies.extend(measured.latencies);
        behind = behind.max(measured.behind);
        last_send = last_send.max(measured.last_send);
    }
    let acknowledged = started.elapsed();
    metrics::wait_stored(&client, &api, before + events).await?;
    let stored = started.elapsed();
    let counters_after = metrics::Counters::read(&client, &api).await?;
    latencies.sort();
    let times = if now_times { "event time = send time" } else { "fixed event times" };
    let pacing = match rate {
        Some(rate) => format!(
            "paced at {rate:.0} events/s (achieved {:.0} events/s over {:.2}s of sending; largest delay behind schedule {:.1} ms)",
            // Batches were sent from 0 to `last_send`; the last batch's events count at its end.
            (events.saturating_sub(batch)) as f64 / last_send.as_secs_f64().max(f64::EPSILON),
            last_send.as_secs_f64(),
            ms(behind),
        ),
        None => "flat out".to_string(),
    };
    println!(
        "hec: {events} events from {hosts} hosts in batches of {batch}, {concurrency} connections, {pacing}, {times}: \
         acknowledged in {:.2}s ({:.0} events/s), all stored in {:.2}s ({:.0} events/s); \
         request latency (= ingest-to-rollup, HEC answers after the rollups are durable) \
         p50 {:.1} ms p90 {:.1} ms p99 {:.1} ms max {:.1} ms over {} requests; 503 busy answers {}; \
         rollup changes +{:.0}, late events +{:.0}",
        acknowledged.as_secs_f64(),
        events as f64 / acknowledged.as_secs_f64(),
        stored.as_secs_f64(),
        events as f64 / stored.as_secs_f64(),
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.9)),
        ms(percentile(&latencies, 0.99)),
        ms(latencies.last().copied().unwrap_or_default()),
        latencies.len(),
        busy.load(Ordering::Relaxed),
        counters_after.rollup_changes - counters_before.rollup_changes,
        counters_after.late_events - counters_before.late_events,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_times_are_the_old_ones() {
        let event = hec_event(1234, fixed_time_ms(1234), 200);
        assert!(event.starts_with(r#"{"time":1700000001.234,"host":"host-034""#), "{event}");
        serde_json::from_str::<serde_json::Value>(&event).unwrap();
    }

    #[test]
    fn percentiles_of_sorted_latencies() {
        let sorted: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&sorted, 0.5), Duration::from_millis(51));
        assert_eq!(percentile(&sorted, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&[], 0.99), Duration::ZERO);
    }
}

//! Load generators for SecureWatch benchmarks: HEC batches and syslog over TCP.
//!
//! Each command prints one line of results; `bench/run.sh` starts the server, runs them and
//! adds the server's peak RSS. Figures go to `bench/README.md` with the command used.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use tokio::io::AsyncWriteExt;

#[derive(Parser)]
#[command(about = "SecureWatch load generators")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// POSTs batches of JSON events to HEC and waits until the store has written them all.
    Hec {
        #[arg(long, default_value = "http://127.0.0.1:8088")]
        url: String,
        #[arg(long)]
        token: String,
        /// API base URL, to read `securewatch_store_written_total` from `/metrics`.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        api: String,
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        #[arg(long, default_value_t = 100)]
        batch: u64,
        #[arg(long, default_value_t = 32)]
        concurrency: u64,
    },
    /// Writes newline-framed RFC 5424 messages over TCP and waits until all are stored.
    SyslogTcp {
        #[arg(long, default_value = "127.0.0.1:5514")]
        addr: String,
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        api: String,
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        #[arg(long, default_value_t = 4)]
        connections: u64,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Hec { url, token, api, events, batch, concurrency } => {
            hec(&url, &token, &api, events, batch, concurrency).await
        }
        Command::SyslogTcp { addr, api, events, connections } => {
            syslog_tcp(&addr, &api, events, connections).await
        }
    }
}

/// One synthetic event of about 250 bytes, unique by `sequence`.
fn hec_event(sequence: u64) -> String {
    format!(
        r#"{{"time":{}.{:03},"host":"host-{:03}","sourcetype":"bench","event":{{"message":"Failed password for user{} from 198.51.100.{} port {} ssh2","seq":{},"severity":"warning"}}}}"#,
        1_700_000_000 + sequence / 1000,
        sequence % 1000,
        sequence % 200,
        sequence % 5000,
        sequence % 250,
        1024 + sequence % 60000,
        sequence
    )
}

async fn stored_total(client: &reqwest::Client, api: &str) -> anyhow::Result<u64> {
    let text = client.get(format!("{api}/metrics")).send().await?.text().await?;
    Ok(text
        .lines()
        .filter(|line| line.starts_with("securewatch_store_written_total"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64)
}

async fn wait_stored(client: &reqwest::Client, api: &str, target: u64) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    while stored_total(client, api).await? < target {
        if Instant::now() > deadline {
            bail!("the store did not reach {target} events in 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

fn percentile(sorted: &[Duration], quantile: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * quantile).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

async fn hec(url: &str, token: &str, api: &str, events: u64, batch: u64, concurrency: u64) -> anyhow::Result<()> {
    let client = reqwest::Client::builder().pool_max_idle_per_host(concurrency as usize).build()?;
    let before = stored_total(&client, api).await.context("cannot read /metrics")?;
    let next = Arc::new(AtomicU64::new(0));
    let busy = Arc::new(AtomicU64::new(0));
    let endpoint = format!("{url}/services/collector/event");
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (client, next, busy, endpoint) = (client.clone(), Arc::clone(&next), Arc::clone(&busy), endpoint.clone());
        let authorization = format!("Splunk {token}");
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let first = next.fetch_add(batch, Ordering::Relaxed);
                if first >= events {
                    return Ok::<_, anyhow::Error>(latencies);
                }
                let body: String = (first..(first + batch).min(events)).map(hec_event).collect();
                loop {
                    let sent = Instant::now();
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
                    latencies.push(sent.elapsed());
                    break;
                }
            }
        }));
    }
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await??);
    }
    let acknowledged = started.elapsed();
    wait_stored(&client, api, before + events).await?;
    let stored = started.elapsed();
    latencies.sort();
    println!(
        "hec: {events} events in batches of {batch}, {concurrency} connections: acknowledged in {:.2}s \
         ({:.0} events/s), all stored in {:.2}s ({:.0} events/s); request latency p50 {:.1} ms p99 {:.1} ms; \
         503 busy answers {}",
        acknowledged.as_secs_f64(),
        events as f64 / acknowledged.as_secs_f64(),
        stored.as_secs_f64(),
        events as f64 / stored.as_secs_f64(),
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        busy.load(Ordering::Relaxed),
    );
    Ok(())
}

async fn syslog_tcp(addr: &str, api: &str, events: u64, connections: u64) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let before = stored_total(&client, api).await.context("cannot read /metrics")?;
    let started = Instant::now();
    let mut writers = Vec::new();
    for connection in 0..connections {
        let addr = addr.to_string();
        writers.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(&addr).await?;
            let mut stream = tokio::io::BufWriter::with_capacity(256 * 1024, stream);
            let mut sequence = connection;
            while sequence < events {
                let line = format!(
                    "<38>1 2024-01-01T00:{:02}:{:02}.{:06}Z host-{:03} sshd {} - - Failed password for user{} from 198.51.100.{} port {} ssh2 seq={}\n",
                    (sequence / 60) % 60, sequence % 60, sequence % 1_000_000, sequence % 200, 1000 + sequence % 3000,
                    sequence % 5000, sequence % 250, 1024 + sequence % 60000, sequence
                );
                stream.write_all(line.as_bytes()).await?;
                sequence += connections;
            }
            stream.flush().await?;
            stream.into_inner().shutdown().await?;
            Ok::<_, anyhow::Error>(())
        }));
    }
    for writer in writers {
        writer.await??;
    }
    let written = started.elapsed();
    wait_stored(&client, api, before + events).await?;
    let stored = started.elapsed();
    println!(
        "syslog-tcp: {events} messages over {connections} connections: written in {:.2}s, all stored in {:.2}s ({:.0} events/s)",
        written.as_secs_f64(),
        stored.as_secs_f64(),
        events as f64 / stored.as_secs_f64(),
    );
    Ok(())
}

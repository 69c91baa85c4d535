//! HEC with indexer acknowledgement on and off, side by side: one sequential client.
//!
//! Off: each request waits for its answer, which comes once the batch is stored. On: each
//! request waits only for its answer (the batch journaled) and a poller asks
//! `/services/collector/ack` for the outstanding ids every `poll_ms`; the phase ends once every
//! id read `true`, i.e. every event is stored. Both phases then count events/s into the store.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::hec::{hec_event, ms, percentile};
use crate::metrics;

pub struct Options {
    pub url: String,
    pub api: String,
    /// A token without acks.
    pub plain_token: String,
    /// A token with `ack = true`.
    pub ack_token: String,
    pub events: u64,
    pub batch: u64,
    pub poll_ms: u64,
    /// Off then on, this many times.
    pub rounds: u64,
}

/// What one phase measured.
struct Phase {
    /// Send → answer of every request.
    requests: Vec<Duration>,
    /// Send → the poll that saw `true` (acks on only).
    acks: Vec<Duration>,
    /// First send → every event stored (answered, or its id read `true`).
    elapsed: Duration,
    polls: u64,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_millis() as u64)
}

/// The body of request `request`: `batch` events numbered from `first`.
fn body(first: u64, batch: u64, events: u64) -> String {
    let time_ms = now_ms();
    (first..(first + batch).min(events)).map(|sequence| hec_event(sequence, time_ms, 200)).collect()
}

async fn phase(client: &reqwest::Client, options: &Options, acks_on: bool, offset: u64) -> anyhow::Result<Phase> {
    let endpoint = format!("{}/services/collector/event", options.url);
    let token = if acks_on { &options.ack_token } else { &options.plain_token };
    let authorization = format!("Splunk {token}");
    // A fresh channel per phase: ids start at 0 and no earlier id is taken for a new one.
    let channel = format!("bench-{}-{offset}", std::process::id());
    let outstanding: Arc<Mutex<BTreeMap<u64, Instant>>> = Arc::default();
    let sending_done = Arc::new(tokio::sync::Notify::new());
    let poller = acks_on.then(|| {
        let (client, outstanding, done) = (client.clone(), Arc::clone(&outstanding), Arc::clone(&sending_done));
        let (url, authorization, channel) = (format!("{}/services/collector/ack", options.url), authorization.clone(), channel.clone());
        let interval = Duration::from_millis(options.poll_ms.max(1));
        tokio::spawn(async move {
            let (mut latencies, mut polls, mut finished) = (Vec::new(), 0u64, false);
            let done = done.notified();
            tokio::pin!(done);
            loop {
                tokio::select! {
                    () = &mut done, if !finished => finished = true,
                    () = tokio::time::sleep(interval) => {}
                }
                let ids: Vec<u64> = outstanding.lock().unwrap().keys().copied().take(10_000).collect();
                if ids.is_empty() {
                    if finished {
                        return Ok::<_, anyhow::Error>((latencies, polls));
                    }
                    continue;
                }
                let answer: Value = client
                    .post(&url)
                    .header("Authorization", &authorization)
                    .header("X-Splunk-Request-Channel", &channel)
                    .body(json!({ "acks": ids }).to_string())
                    .send()
                    .await?
                    .json()
                    .await?;
                polls += 1;
                let seen = Instant::now();
                let mut outstanding = outstanding.lock().unwrap();
                for id in ids {
                    if answer["acks"][id.to_string()] == json!(true) {
                        let sent = outstanding.remove(&id).context("an id read true twice")?;
                        latencies.push(seen - sent);
                    }
                }
            }
        })
    });
    let started = Instant::now();
    let mut requests = Vec::new();
    let mut first = 0;
    while first < options.events {
        let text = body(offset + first, options.batch, offset + options.events);
        let sent = Instant::now();
        let response = client
            .post(&endpoint)
            .header("Authorization", &authorization)
            .header("X-Splunk-Request-Channel", &channel)
            .body(text)
            .send()
            .await?;
        let status = response.status();
        let answer: Value = response.json().await?;
        if !status.is_success() {
            bail!("HEC answered {status}: {answer}");
        }
        requests.push(sent.elapsed());
        if acks_on {
            let id = answer["ackId"].as_u64().with_context(|| format!("no ackId in {answer}"))?;
            outstanding.lock().unwrap().insert(id, sent);
        }
        first += options.batch;
    }
    sending_done.notify_one();
    let (acks, polls) = match poller {
        Some(poller) => poller.await??,
        None => (Vec::new(), 0),
    };
    Ok(Phase { requests, acks, elapsed: started.elapsed(), polls })
}

fn summary(name: &str, events: u64, mut phase: Phase) -> String {
    phase.requests.sort();
    phase.acks.sort();
    let acks = if phase.acks.is_empty() {
        String::new()
    } else {
        format!(
            "; send → ack true p50 {:.1} ms p99 {:.1} ms ({} polls)",
            ms(percentile(&phase.acks, 0.5)),
            ms(percentile(&phase.acks, 0.99)),
            phase.polls
        )
    };
    format!(
        "acks {name}: {events} events stored in {:.2}s ({:.0} events/s); request latency p50 {:.2} ms p99 {:.2} ms over {} requests{acks}",
        phase.elapsed.as_secs_f64(),
        events as f64 / phase.elapsed.as_secs_f64(),
        ms(percentile(&phase.requests, 0.5)),
        ms(percentile(&phase.requests, 0.99)),
        phase.requests.len(),
    )
}

pub async fn run(options: Options) -> anyhow::Result<()> {
    if options.batch == 0 || options.events == 0 {
        bail!("--events and --batch must be at least 1");
    }
    let client = reqwest::Client::builder().pool_max_idle_per_host(2).build()?;
    let mut offset = 0;
    for round in 1..=options.rounds.max(1) {
        for acks_on in [false, true] {
            let before = metrics::stored_total(&client, &options.api).await.context("cannot read /metrics")?;
            let measured = phase(&client, &options, acks_on, offset).await?;
            // Every answer (off) or every `true` (on) means stored; the store's counter agrees.
            metrics::wait_stored(&client, &options.api, before + options.events).await?;
            let name = if acks_on { "on " } else { "off" };
            println!("round {round}, {}", summary(name, options.events, measured));
            offset += options.events;
        }
    }
    Ok(())
}

//! Syslog over TCP: newline-framed RFC 5424 messages over a few connections.

use std::time::Instant;

use anyhow::Context;
use tokio::io::AsyncWriteExt;

use crate::metrics;

pub async fn run(addr: &str, api: &str, events: u64, connections: u64) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let before = metrics::stored_total(&client, api).await.context("cannot read /metrics")?;
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
    metrics::wait_stored(&client, api, before + events).await?;
    let stored = started.elapsed();
    println!(
        "syslog-tcp: {events} messages over {connections} connections: written in {:.2}s, all stored in {:.2}s ({:.0} events/s)",
        written.as_secs_f64(),
        stored.as_secs_f64(),
        events as f64 / stored.as_secs_f64(),
    );
    Ok(())
}

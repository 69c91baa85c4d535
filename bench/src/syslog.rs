//! Syslog over TCP or TLS: newline-framed RFC 5424 messages over a few connections, flat out or
//! paced.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::metrics;
use crate::pacer::Pacer;

/// Messages written per pacing token.
const BURST: u64 = 100;

/// What `securewatch-bench syslog-tcp` was asked for.
pub struct Options {
    pub addr: String,
    pub api: String,
    pub events: u64,
    pub connections: u64,
    /// Messages per second over all connections (`None`: as fast as possible).
    pub rate: Option<f64>,
    /// Stamp messages with the send time instead of fixed 2024 times.
    pub now_times: bool,
    /// Syslog over TLS (server name `localhost`), trusting the CAs of this PEM file.
    pub tls_ca: Option<std::path::PathBuf>,
}

/// A TLS client trusting the CAs of `ca_file` (PEM).
fn tls_connector(ca_file: &Path) -> anyhow::Result<tokio_rustls::TlsConnector> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for certificate in rustls::pki_types::CertificateDer::pem_file_iter(ca_file)? {
        roots.add(certificate?)?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// Message `sequence`: a failed SSH login of one of 200 hosts, 5,000 users, 250 addresses.
fn message(sequence: u64, now_times: bool) -> String {
    let time = if now_times {
        chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
    } else {
        format!("2024-01-01T00:{:02}:{:02}.{:06}Z", (sequence / 60) % 60, sequence % 60, sequence % 1_000_000)
    };
    format!(
        "<38>1 {time} host-{:03} sshd {} - - Failed password for user{} from 198.51.100.{} port {} ssh2 seq={sequence}\n",
        sequence % 200,
        1000 + sequence % 3000,
        sequence % 5000,
        sequence % 250,
        1024 + sequence % 60000,
    )
}

pub async fn run(options: Options) -> anyhow::Result<()> {
    let Options { addr, api, events, connections, rate, now_times, tls_ca } = options;
    let connector = tls_ca.as_deref().map(tls_connector).transpose()?;
    let client = reqwest::Client::new();
    let before = metrics::stored_total(&client, &api).await.context("cannot read /metrics")?;
    let pacer = match rate {
        Some(rate) => Some(Arc::new(Pacer::new(rate, BURST, u32::try_from(connections).unwrap_or(u32::MAX))?)),
        None => None,
    };
    let started = Instant::now();
    let mut writers = Vec::new();
    for connection in 0..connections {
        let (addr, pacer, connector) = (addr.clone(), pacer.clone(), connector.clone());
        writers.push(tokio::spawn(async move {
            let tcp = tokio::net::TcpStream::connect(&addr).await?;
            tcp.set_nodelay(true)?;
            let stream: Box<dyn AsyncWrite + Unpin + Send> = match connector {
                Some(connector) => {
                    let name = rustls::pki_types::ServerName::try_from("localhost")?;
                    Box::new(connector.connect(name, tcp).await?)
                }
                None => Box::new(tcp),
            };
            let mut stream = tokio::io::BufWriter::with_capacity(256 * 1024, stream);
            let mut sequence = connection;
            while sequence < events {
                if let Some(pacer) = &pacer {
                    // Paced: a burst per token, flushed so it leaves now rather than when the buffer fills.
                    tokio::time::sleep_until(pacer.reserve(Instant::now()).into()).await;
                    for _ in 0..BURST {
                        if sequence >= events {
                            break;
                        }
                        stream.write_all(message(sequence, now_times).as_bytes()).await?;
                        sequence += connections;
                    }
                    stream.flush().await?;
                } else {
                    stream.write_all(message(sequence, now_times).as_bytes()).await?;
                    sequence += connections;
                }
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
    metrics::wait_stored(&client, &api, before + events).await?;
    let stored = started.elapsed();
    let pacing = rate.map_or(String::new(), |rate| format!(", paced at {rate:.0} messages/s"));
    let transport = if tls_ca.is_some() { "syslog-tls" } else { "syslog-tcp" };
    println!(
        "{transport}: {events} messages over {connections} connections{pacing}: written in {:.2}s, all stored in {:.2}s ({:.0} events/s)",
        written.as_secs_f64(),
        stored.as_secs_f64(),
        events as f64 / stored.as_secs_f64(),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_times_are_the_old_ones_and_now_times_are_now() {
        assert!(message(61, false).starts_with("<38>1 2024-01-01T00:01:01.000061Z host-061 sshd 1061 - - "), "{}", message(61, false));
        let now = message(61, true);
        let year = chrono::Utc::now().format("%Y").to_string();
        assert!(now.starts_with(&format!("<38>1 {year}-")) && now.ends_with("seq=61\n"), "{now}");
    }
}

//! Syslog over TCP or TLS: newline-framed RFC 5424 messages over a few connections.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::metrics;

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

/// Sends `events` messages to `addr` over `connections` connections, over TLS (server name
/// `localhost`) when `tls_ca` names the CA file to trust.
pub async fn run(addr: &str, api: &str, events: u64, connections: u64, tls_ca: Option<&Path>) -> anyhow::Result<()> {
    let connector = tls_ca.map(tls_connector).transpose()?;
    let client = reqwest::Client::new();
    let before = metrics::stored_total(&client, api).await.context("cannot read /metrics")?;
    let started = Instant::now();
    let mut writers = Vec::new();
    for connection in 0..connections {
        let addr = addr.to_string();
        let connector = connector.clone();
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
    let transport = if tls_ca.is_some() { "syslog-tls" } else { "syslog-tcp" };
    println!(
        "{transport}: {events} messages over {connections} connections: written in {:.2}s, all stored in {:.2}s ({:.0} events/s)",
        written.as_secs_f64(),
        stored.as_secs_f64(),
        events as f64 / stored.as_secs_f64(),
    );
    Ok(())
}

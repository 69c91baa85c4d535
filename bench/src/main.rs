//! Load generators and probes for SecureWatch benchmarks: HEC batches (flat out or paced; with
//! indexer acknowledgement on and off), syslog over TCP, the idle CPU of a running server,
//! rows/s into PostgreSQL, dashboard query latency on PostgreSQL, and events/s through
//! detection (Sigma rules and correlations, in-process).
//!
//! Each command prints one line of results; `bench/run.sh` and `bench/long_run.sh` start the
//! server, run them and add the server's memory figures. Figures go to `bench/README.md` with
//! the command used.

mod backtest;
mod dashboard;
mod search;
mod detection;
mod hec;
mod hec_acks;
mod idle;
mod metrics;
mod pacer;
mod pg;
mod syslog;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// The `securewatch` binary's allocator, so that in-process benchmarks (detection) allocate as
/// the pipeline does.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(about = "SecureWatch load generators")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// POSTs batches of JSON events to HEC and waits until the store has written them all.
    ///
    /// HEC answers a request only after its events and the rollup changes they caused are
    /// committed, so the request latency is the ingest-to-rollup latency.
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
        /// Paced sending at this many events per second (a token bucket over batches, at most
        /// one token per connection saved up); without it, every connection sends flat out.
        #[arg(long, value_name = "EVENTS_PER_SEC")]
        rate: Option<f64>,
        /// Event `time` = the moment the batch is sent (rollup buckets follow the wall clock)
        /// instead of fixed times from 2023-11-14 on (which the rollups treat as late).
        #[arg(long)]
        now_times: bool,
        /// Distinct `host` values, i.e. rows per bucket of the per-host rollups.
        #[arg(long, default_value_t = 200)]
        hosts: u64,
        /// For an `https://` URL: trust this PEM CA file (besides the built-in roots).
        #[arg(long)]
        ca_file: Option<std::path::PathBuf>,
    },
    /// HEC indexer acknowledgement off and on, side by side: one sequential client sends
    /// `--events` in batches with a token without acks, then with one with `ack = true`
    /// (polling `/services/collector/ack` every `--poll-ms`), `--rounds` times.
    HecAcks {
        #[arg(long, default_value = "http://127.0.0.1:8088")]
        url: String,
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        api: String,
        #[arg(long)]
        plain_token: String,
        #[arg(long)]
        ack_token: String,
        #[arg(long, default_value_t = 100_000)]
        events: u64,
        #[arg(long, default_value_t = 100)]
        batch: u64,
        #[arg(long, default_value_t = 10)]
        poll_ms: u64,
        #[arg(long, default_value_t = 2)]
        rounds: u64,
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
        /// Messages per second over all connections (default: as fast as possible).
        #[arg(long)]
        rate: Option<f64>,
        /// Stamp each message with the time it is sent instead of fixed 2024 times.
        #[arg(long)]
        now_times: bool,
        /// Syslog over TLS (RFC 5425 port), trusting this PEM CA file; server name `localhost`.
        #[arg(long)]
        tls_ca: Option<std::path::PathBuf>,
    },
    /// Writes synthetic events into PostgreSQL through the sink (`write_epochs`), once by binary
    /// COPY and once by multi-row INSERT into the staging table, then again as duplicates.
    Pg {
        /// PostgreSQL URL; the bench works in schemas `bench_pg_copy` / `bench_pg_insert` (dropped first).
        #[arg(long, env = "SECUREWATCH_BENCH_POSTGRES_URL")]
        url: String,
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        /// Events per write (one transaction).
        #[arg(long, default_value_t = 50_000)]
        write_events: u64,
        /// Events per COPY / INSERT round inside a write.
        #[arg(long, default_value_t = 10_000)]
        batch_rows: usize,
        /// `copy`, `insert` or `both`.
        #[arg(long, default_value = "both")]
        load: String,
        #[arg(long, default_value_t = 200)]
        hosts: u64,
    },
    /// Loads events and their rollup rows into PostgreSQL through the sink, then times the
    /// API's dashboard queries (time series, top hosts) over random 1 h and 24 h ranges.
    PgDashboard {
        /// PostgreSQL URL; the bench works in schema `bench_pg_dashboard` (dropped first).
        #[arg(long, env = "SECUREWATCH_BENCH_POSTGRES_URL")]
        url: String,
        #[arg(long, default_value_t = 10_000_000)]
        events: u64,
        /// Hours of event time the events cover, ending now.
        #[arg(long, default_value_t = 24)]
        hours: u64,
        #[arg(long, default_value_t = 200)]
        hosts: u64,
        /// Runs of each query kind.
        #[arg(long, default_value_t = 500)]
        rounds: usize,
        /// Query the schema an earlier run loaded instead of loading again.
        #[arg(long)]
        reuse: bool,
    },
    /// Loads events over 24 h into SQLite (and PostgreSQL with a URL) with their rollups, then
    /// times search-language queries: a selective take, a rollup summary, a full scan against
    /// the same SQL by hand through `sqlite3` / `psql`.
    Search {
        /// PostgreSQL URL (schema `bench_search`, dropped first); SQLite only without it.
        #[arg(long, env = "SECUREWATCH_BENCH_POSTGRES_URL")]
        url: Option<String>,
        /// Data directory of the SQLite store (its securewatch.db is written there).
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long, default_value_t = 10_000_000)]
        events: u64,
        #[arg(long, default_value_t = 200)]
        hosts: u64,
        /// Runs of each timed query.
        #[arg(long, default_value_t = 200)]
        rounds: usize,
        /// Loads the store and stops, timing nothing (bench/console.sh serves it after).
        #[arg(long)]
        load_only: bool,
    },
    /// Writes the detection benchmark's events: the SigmaHQ regression samples of the corpus,
    /// flattened and replicated with varied hosts, users and times, as JSON lines.
    DetectionEvents {
        /// The corpus directory (`../shared/corpus`), read in place.
        #[arg(long)]
        corpus: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        #[arg(long, default_value_t = 1_000)]
        hosts: u64,
        #[arg(long, default_value_t = 300)]
        users: u64,
    },
    /// Stores the JSON lines of `detection-events` in a data directory's SQLite store (and
    /// PostgreSQL schema `bench_backtest` with `--url`) for `securewatch rules backtest`.
    BacktestLoad {
        /// JSON lines (from `detection-events`).
        #[arg(long)]
        events: PathBuf,
        /// Data directory of the SQLite store.
        #[arg(long)]
        data_dir: PathBuf,
        /// PostgreSQL URL (schema `bench_backtest`, dropped first).
        #[arg(long, env = "SECUREWATCH_BENCH_POSTGRES_URL")]
        url: Option<String>,
    },
    /// Events/s through detection in-process: JSON parsing, rule matching with log source
    /// routing, and the correlation operators, on `--workers` timely workers.
    Detection {
        /// Rules directory (Sigma rules and correlations, searched recursively).
        #[arg(long)]
        rules: PathBuf,
        /// JSON lines (from `detection-events`).
        #[arg(long)]
        events: PathBuf,
        #[arg(long, default_value_t = 1)]
        workers: usize,
    },
    /// Samples a process's CPU time (`/proc/PID/stat` utime + stime) over an interval without
    /// traffic and prints it as a percentage of one core, with its context switches per second.
    Idle {
        #[arg(long)]
        pid: u32,
        #[arg(long, default_value_t = 30.0)]
        seconds: f64,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Hec { url, token, api, events, batch, concurrency, rate, now_times, hosts, ca_file } => {
            hec::run(hec::Options { url, token, api, events, batch, concurrency, rate, now_times, hosts, ca_file }).await
        }
        Command::HecAcks { url, api, plain_token, ack_token, events, batch, poll_ms, rounds } => {
            hec_acks::run(hec_acks::Options { url, api, plain_token, ack_token, events, batch, poll_ms, rounds }).await
        }
        Command::SyslogTcp { addr, api, events, connections, rate, now_times, tls_ca } => {
            syslog::run(syslog::Options { addr, api, events, connections, rate, now_times, tls_ca }).await
        }
        Command::PgDashboard { url, events, hours, hosts, rounds, reuse } => {
            let span = std::time::Duration::from_secs(hours * 3600);
            dashboard::run(dashboard::Options { url, events, span, hosts, rounds, reuse }).await
        }
        Command::Search { url, data_dir, events, hosts, rounds, load_only } => {
            search::run(search::Options { url, data_dir, events, hosts, rounds, load_only }).await
        }
        Command::Idle { pid, seconds } => idle::run(pid, seconds).await,
        Command::DetectionEvents { corpus, out, events, hosts, users } => {
            detection::write_events(&corpus, &out, events, hosts, users)
        }
        Command::BacktestLoad { events, data_dir, url } => backtest::load(backtest::Options { events, data_dir, url }).await,
        Command::Detection { rules, events, workers } => {
            tokio::task::block_in_place(|| detection::run(detection::Options { rules, events, workers }))
        }
        Command::Pg { url, events, write_events, batch_rows, load, hosts } => {
            use securewatch_connectors::sinks::postgres::LoadMethod;
            let loads = match load.as_str() {
                "copy" => vec![LoadMethod::Copy],
                "insert" => vec![LoadMethod::Insert],
                "both" => vec![LoadMethod::Copy, LoadMethod::Insert],
                other => anyhow::bail!("--load {other}: use copy, insert or both"),
            };
            pg::run(pg::Options { url, events, write_events: write_events.max(1), batch_rows, loads, hosts }).await
        }
    }
}

//! `securewatch rules backtest`: runs rules over stored history, on a running server (as a
//! job, `--server`) or on a data directory without the server (`--data-dir`, e.g. a stopped
//! instance's or a copy); a progress bar on stderr, a summary table or JSON on stdout, and with
//! `--expect` a verdict in the exit code (`--junit` writes it for CI). Ctrl-C stops the
//! backtest and prints what it found.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use chrono::Utc;
use indicatif::{ProgressBar, ProgressStyle};
use securewatch_connectors::sinks::sqlite::SqliteStore;
use securewatch_connectors::sinks::StoreReader;
use securewatch_schemas::TenantScope;
use serde_json::{json, Value};

use super::expect::{junit, Expectations};
use super::replay::{self, Plan};
use super::report::Report;
use super::{compile_rules, RulesSource};
use crate::api::jobs::{time_of, TimeBound};
use crate::config::Config;
use crate::jobs::cli::each_result_row;
use crate::jobs::record::BacktestProgress;

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A summary table per rule.
    Table,
    /// Everything: summary, rules, alerts with evidence, live-only alerts, expectations.
    Json,
}

/// Flags of `securewatch rules backtest`.
#[derive(Debug, clap::Args)]
pub struct BacktestArgs {
    /// Rule file or directory (`.yml` / `.yaml`); with --server its YAML is sent to the server
    /// (or, with --rules-on-server, the path is sent).
    pub rules: PathBuf,
    /// With --server: RULES is a path inside the server's rules directory (`.` for all of
    /// it), read there (for rule sets larger than the API's request body limit).
    #[arg(long, conflicts_with = "data_dir")]
    pub rules_on_server: bool,
    /// Start of the range (events before it are not read): RFC 3339, epoch seconds, or
    /// -<span> such as -24h, -7d.
    #[arg(long, allow_hyphen_values = true)]
    pub from: String,
    /// End of the range, exclusive (default now), in the same forms.
    #[arg(long, allow_hyphen_values = true)]
    pub to: Option<String>,
    /// The API's base URL: run the backtest as a job of this server (the default, at
    /// SECUREWATCH_SERVER, else http:// and SECUREWATCH_API__LISTEN, else
    /// http://127.0.0.1:8080).
    #[arg(long, conflicts_with = "data_dir")]
    pub server: Option<String>,
    /// An API token with jobs:run and backtests:run (default: SECUREWATCH_API_TOKEN, else
    /// data/api_token).
    #[arg(long, env = "SECUREWATCH_API_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Run here over this data directory's store, without the server.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// The server's configuration, with --data-dir: `[store]`, `[sinks.postgres]` (history read
    /// from PostgreSQL when it is on), `[detection] pipelines`, `[dataflow]` lateness.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// With --data-dir: only this tenant's events (repeatable; default every tenant).
    #[arg(long = "tenant")]
    pub tenants: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Expected alerts per rule (rsigma's format): the exit code is 1 when one fails.
    #[arg(long)]
    pub expect: Option<PathBuf>,
    /// Writes the expectations' outcomes as JUnit XML.
    #[arg(long, requires = "expect")]
    pub junit: Option<PathBuf>,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

/// The results, whichever way they were produced.
#[derive(Debug, Default)]
struct Collected {
    summary: Value,
    rules: Vec<Value>,
    alerts: Vec<Value>,
    only_live: Vec<Value>,
}

impl Collected {
    fn add(&mut self, record: &str, detail: Value) {
        match record {
            "summary" => self.summary = detail,
            "rule" => self.rules.push(detail),
            "alert" => self.alerts.push(detail),
            "only_live" => self.only_live.push(detail),
            _ => {}
        }
    }
}

/// Runs the command: exit code 0, 1 when an expectation failed, 130 when interrupted.
pub fn run(args: BacktestArgs) -> anyhow::Result<ExitCode> {
    let expectations = args.expect.as_deref().map(Expectations::load).transpose().map_err(anyhow::Error::msg)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    let (collected, interrupted) = runtime.block_on(async {
        match &args.data_dir {
            Some(data_dir) => local(&args, data_dir).await,
            None => remote(&args).await,
        }
    })?;
    let outcomes = match &expectations {
        Some(expectations) => Some(expectations.check(&collected.rules).map_err(anyhow::Error::msg)?),
        None => None,
    };
    print(&args, &collected, outcomes.as_deref())?;
    if let (Some(path), Some(outcomes)) = (&args.junit, &outcomes) {
        std::fs::write(path, junit(outcomes)).with_context(|| format!("writing {}", path.display()))?;
    }
    if interrupted {
        eprintln!("interrupted: the results cover the events read until then");
        return Ok(ExitCode::from(130));
    }
    let failed = outcomes.iter().flatten().filter(|outcome| outcome.failure.is_some()).count();
    if failed > 0 {
        eprintln!("{failed} expectation(s) failed");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn bar(quiet: bool) -> anyhow::Result<ProgressBar> {
    let bar = if quiet { ProgressBar::hidden() } else { ProgressBar::new(1000) };
    bar.set_style(ProgressStyle::with_template("{spinner} [{bar:30}] {percent:>3}% {msg}")?.progress_chars("=> "));
    Ok(bar)
}

fn bar_message(progress: &Value) -> String {
    format!(
        "{} events · {} matches · {} alerts · at {}",
        progress["events_read"], progress["matches"], progress["alerts"], progress["cursor"].as_str().unwrap_or("-")
    )
}

/// The replay's progress on a bar; Ctrl-C asks it to stop.
struct BarProgress {
    bar: ProgressBar,
    interrupted: Arc<AtomicBool>,
}

impl replay::Progress for BarProgress {
    fn report(&mut self, progress: &BacktestProgress, share: f64) {
        self.bar.set_position((share.clamp(0.0, 1.0) * 1000.0) as u64);
        self.bar.set_message(bar_message(&serde_json::to_value(progress).unwrap_or_default()));
    }

    fn cancelled(&self) -> bool {
        self.interrupted.load(Ordering::Acquire)
    }
}

fn time_arg(name: &str, text: &str, now: chrono::DateTime<Utc>) -> anyhow::Result<chrono::DateTime<Utc>> {
    let bound = match text.parse::<f64>() {
        Ok(seconds) => TimeBound::Number(seconds),
        Err(_) => TimeBound::Text(text.to_owned()),
    };
    time_of(name, &bound, now).map_err(|error| anyhow::anyhow!("--{}", error.message()))
}

/// `--data-dir`: the store of the directory (and PostgreSQL when the configuration has it).
async fn local(args: &BacktestArgs, data_dir: &Path) -> anyhow::Result<(Collected, bool)> {
    let mut config = Config::load(args.config.as_deref(), std::env::vars())?;
    config.data_dir = Some(data_dir.to_path_buf());
    let store_file = data_dir.join(&config.store.file);
    if !store_file.exists() {
        bail!("{} holds no store ({} is missing)", data_dir.display(), store_file.display());
    }
    let now = Utc::now();
    let from = time_arg("from", &args.from, now)?;
    let to = args.to.as_deref().map(|to| time_arg("to", to, now)).transpose()?.unwrap_or(now);
    if from > to {
        bail!("--from is after --to");
    }
    let detection = config.detection.clone();
    let source = RulesSource::Path(args.rules.clone());
    let rules = tokio::task::spawn_blocking(move || compile_rules(&detection, &source)).await?.map_err(anyhow::Error::msg)?;
    let sqlite = SqliteStore::open(data_dir, &config.store).await.context("opening the store")?;
    let postgres = match config.sinks.postgres_in_force() {
        Some(postgres) => Some(Arc::new(
            securewatch_connectors::sinks::postgres::PostgresSink::connect(postgres).await.context("[sinks.postgres]")?,
        )),
        None => None,
    };
    let scope = if args.tenants.is_empty() { TenantScope::All } else { TenantScope::Only(args.tenants.clone()) };
    let correlation = config.dataflow.time_model().context("[dataflow]")?.into();
    let reader = StoreReader::new(sqlite.clone(), postgres, None).with_budget(Duration::from_secs(600));
    let plan = Plan { reader, rules, scope, from, to, correlation, chunk_events: replay::CHUNK_EVENTS };
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&interrupted);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            flag.store(true, Ordering::Release);
        }
    });
    let mut progress = BarProgress { bar: bar(args.quiet)?, interrupted: Arc::clone(&interrupted) };
    let found = replay::run(&plan, &mut progress).await.map_err(anyhow::Error::msg)?;
    progress.bar.finish_and_clear();
    let cancelled = found.cancelled;
    let report = Report::build(&plan, found).await?;
    sqlite.close().await;
    let mut collected = Collected::default();
    for row in report.rows() {
        let mut row = row.into_iter();
        let (record, _, detail) = (row.next().unwrap_or_default(), row.next(), row.next().unwrap_or_default());
        collected.add(record.as_str().unwrap_or_default(), detail);
    }
    Ok((collected, cancelled))
}

/// The YAML of a rule file, or of every rule file under a directory, as one text.
fn rules_text(path: &Path) -> anyhow::Result<String> {
    let mut files = Vec::new();
    let mut pending = vec![path.to_path_buf()];
    while let Some(current) = pending.pop() {
        if current.is_dir() {
            for entry in std::fs::read_dir(&current).with_context(|| format!("reading {}", current.display()))? {
                pending.push(entry?.path());
            }
        } else if current == path || current.extension().is_some_and(|extension| extension == "yml" || extension == "yaml") {
            files.push(current);
        }
    }
    files.sort();
    let mut text = String::new();
    for file in files {
        let content = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
        if !text.is_empty() {
            text.push_str("\n---\n");
        }
        text.push_str(content.trim_end());
    }
    if text.trim().is_empty() {
        bail!("{}: no rules", path.display());
    }
    text.push('\n');
    Ok(text)
}

fn server_of(args: &BacktestArgs) -> String {
    let server = args.server.clone().or_else(|| std::env::var("SECUREWATCH_SERVER").ok());
    let listen = || std::env::var("SECUREWATCH_API__LISTEN").ok().map(|listen| format!("http://{listen}"));
    server.or_else(listen).unwrap_or_else(|| "http://127.0.0.1:8080".to_owned()).trim_end_matches('/').to_owned()
}

/// `--token`, else the admin token `securewatch run` keeps in `data/api_token` here.
fn token_of(args: &BacktestArgs) -> anyhow::Result<String> {
    if let Some(token) = &args.token {
        return Ok(token.clone());
    }
    let path = Path::new("data").join("api_token");
    let token = std::fs::read_to_string(&path)
        .with_context(|| format!("no --token given and cannot read {} (or run over a data directory with --data-dir)", path.display()))?;
    Ok(token.trim().to_owned())
}

/// `--server`: a backtest job on the server; Ctrl-C cancels it (its results are kept).
async fn remote(args: &BacktestArgs) -> anyhow::Result<(Collected, bool)> {
    let server = server_of(args);
    let token = token_of(args)?;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?;
    let call = |method: reqwest::Method, path: String| client.request(method, format!("{server}{path}")).bearer_auth(&token);
    let rules = if args.rules_on_server { args.rules.display().to_string() } else { rules_text(&args.rules)? };
    let mut body = json!({ "kind": "backtest", "rules": rules, "from": args.from });
    if let Some(to) = &args.to {
        body["to"] = json!(to);
    }
    let answer = call(reqwest::Method::POST, "/api/v1/jobs".into()).json(&body).send().await.context("cannot reach the API")?;
    let status = answer.status();
    let job: Value = answer.json().await.unwrap_or(Value::Null);
    if status == reqwest::StatusCode::PAYLOAD_TOO_LARGE {
        bail!("the rules are larger than the API accepts ([api] max_body_bytes); name them on the server with --rules-on-server");
    }
    if status != reqwest::StatusCode::ACCEPTED {
        bail!("the API answered {status}: {}", job["error"].as_str().map_or_else(|| job.to_string(), str::to_owned));
    }
    let id = job["id"].as_str().context("the job has no id")?.to_owned();
    let bar = bar(args.quiet)?;
    let mut interrupt = std::pin::pin!(tokio::signal::ctrl_c());
    let mut interrupted = false;
    let job = loop {
        let job: Value = call(reqwest::Method::GET, format!("/api/v1/jobs/{id}")).send().await?.json().await?;
        bar.set_position((job["progress"].as_f64().unwrap_or(0.0) * 1000.0) as u64);
        bar.set_message(format!("{} · {}", job["state"].as_str().unwrap_or("?"), bar_message(&job["backtest"])));
        if !matches!(job["state"].as_str(), Some("queued" | "running")) {
            break job;
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = &mut interrupt, if !interrupted => {
                interrupted = true;
                call(reqwest::Method::DELETE, format!("/api/v1/jobs/{id}")).send().await?;
            }
        }
    };
    bar.finish_and_clear();
    match job["state"].as_str() {
        Some("done") => {}
        Some("cancelled") if interrupted => {}
        _ => bail!("backtest job {id} ended {}: {}", job["state"], job["error"]["message"].as_str().unwrap_or("-")),
    }
    let mut collected = Collected::default();
    each_result_row(&call, &id, |mut row| {
        let detail = row["detail"].take();
        collected.add(row["record"].as_str().unwrap_or_default(), detail);
    })
    .await?;
    if job["truncated"] == true {
        eprintln!("warning: the job stopped at its row cap; some alerts are missing from the results");
    }
    Ok((collected, interrupted))
}

fn print(args: &BacktestArgs, collected: &Collected, outcomes: Option<&[super::expect::Outcome]>) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.format == Format::Json {
        let all = json!({
            "summary": collected.summary, "rules": collected.rules, "alerts": collected.alerts,
            "only_live": collected.only_live, "expectations": outcomes,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&all)?)?;
    } else {
        let header = ["RULE", "KIND", "MATCHES", "ALERTS", "PER DAY", "SAME", "ONLY BACKTEST", "ONLY LIVE", "TITLE"];
        let cell = |value: &Value| match value {
            Value::Null => "-".to_owned(),
            Value::Number(number) if number.is_f64() => format!("{:.1}", number.as_f64().unwrap_or_default()),
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        let table: Vec<Vec<String>> = collected
            .rules
            .iter()
            .map(|rule| {
                ["rule_id", "kind", "matches", "alerts", "alerts_per_day_average", "same", "only_backtest", "only_live", "title"]
                    .iter()
                    .map(|key| cell(&rule[*key]))
                    .collect()
            })
            .collect();
        let widths: Vec<usize> = (0..header.len())
            .map(|index| table.iter().map(|row| row[index].chars().count()).chain([header[index].len()]).max().unwrap_or(0))
            .collect();
        let line = |values: Vec<String>| -> String {
            values.iter().zip(&widths).map(|(value, width)| format!("{value:<width$}")).collect::<Vec<_>>().join("  ").trim_end().to_owned()
        };
        writeln!(out, "{}", line(header.iter().map(|name| name.to_string()).collect()))?;
        for row in table {
            writeln!(out, "{}", line(row))?;
        }
    }
    let summary = &collected.summary;
    eprintln!(
        "{} events read from {} ({} to {}): {} matches, {} alerts; vs live: {} same, {} only backtest, {} only live, {} evidence differs",
        summary["events_read"], summary["store"].as_str().unwrap_or("?"), summary["from"].as_str().unwrap_or("?"),
        summary["to"].as_str().unwrap_or("?"), summary["matches"], summary["alerts"], summary["same"],
        summary["only_backtest"], summary["only_live"], summary["evidence_differs"]
    );
    for outcome in outcomes.into_iter().flatten() {
        if let Some(failure) = &outcome.failure {
            eprintln!("FAILED {}: {failure}", outcome.rule);
        }
    }
    Ok(())
}

//! `securewatch search`: submits a query as a job to a running API, shows a progress bar on
//! stderr while it runs, prints the rows (table, JSON, NDJSON or CSV); Ctrl-C cancels the job.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns.
    Table,
    /// One JSON array of row objects.
    Json,
    /// One JSON object per line.
    Ndjson,
    /// Comma-separated, with a header line.
    Csv,
}

/// Flags of `securewatch search`.
#[derive(Debug, clap::Args)]
pub struct SearchArgs {
    /// The query, e.g. 'events | where host == "web-01" | take 10'.
    pub query: String,
    /// Start of the time range: RFC 3339, epoch seconds or -<span> such as -15m, -1h, -7d.
    #[arg(long, default_value = "-1h", allow_hyphen_values = true)]
    pub from: String,
    /// End of the time range (default now), in the same forms.
    #[arg(long, allow_hyphen_values = true)]
    pub to: Option<String>,
    /// The API's base URL (default: SECUREWATCH_SERVER, else http:// and
    /// SECUREWATCH_API__LISTEN, else http://127.0.0.1:8080).
    #[arg(long)]
    pub server: Option<String>,
    /// An API token with jobs:run (default: SECUREWATCH_API_TOKEN, else <data-dir>/api_token).
    #[arg(long, env = "SECUREWATCH_API_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Where the generated admin token is read from when no token is given.
    #[arg(long, default_value = "data")]
    pub data_dir: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Print the SQL and the path (rollup or scan) instead of running.
    #[arg(long)]
    pub explain: bool,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

fn server_of(args: &SearchArgs) -> String {
    if let Some(server) = &args.server {
        return server.trim_end_matches('/').to_owned();
    }
    if let Ok(server) = std::env::var("SECUREWATCH_SERVER") {
        return server.trim_end_matches('/').to_owned();
    }
    match std::env::var("SECUREWATCH_API__LISTEN") {
        Ok(listen) => format!("http://{listen}"),
        Err(_) => "http://127.0.0.1:8080".to_owned(),
    }
}

fn token_of(args: &SearchArgs) -> anyhow::Result<String> {
    if let Some(token) = &args.token {
        return Ok(token.clone());
    }
    let path = args.data_dir.join("api_token");
    let token = std::fs::read_to_string(&path)
        .with_context(|| format!("no --token given and cannot read {} (run in the directory of `securewatch run`)", path.display()))?;
    Ok(token.trim().to_owned())
}

/// Runs the command; exit code 1 when the job failed, 130 when cancelled by Ctrl-C.
pub fn run(args: SearchArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(run_async(args))
}

/// Prints a failed job's error like a compiler: position, message, the line and a caret.
fn print_failure(job: &Value) {
    let error = &job["error"];
    match (error["line"].as_u64(), error["column"].as_u64(), error["pointer"].as_str()) {
        (Some(line), Some(column), Some(pointer)) => {
            eprintln!("error: line {line}, column {column}: {}\n{pointer}", error["message"].as_str().unwrap_or_default());
        }
        _ => eprintln!("error: the job failed: {}", error["message"].as_str().unwrap_or("unknown error")),
    }
}

async fn run_async(args: SearchArgs) -> anyhow::Result<ExitCode> {
    let server = server_of(&args);
    let token = token_of(&args)?;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?;
    let call = |method: reqwest::Method, path: String| client.request(method, format!("{server}{path}")).bearer_auth(&token);
    let mut body = json!({ "query": args.query, "from": args.from });
    if let Some(to) = &args.to {
        body["to"] = json!(to);
    }
    if args.explain {
        body["explain"] = json!(true);
        let answer = call(reqwest::Method::POST, "/api/v1/search".into()).json(&body).send().await.context("cannot reach the API")?;
        let (status, answer): (_, Value) = (answer.status(), answer.json().await?);
        if status == reqwest::StatusCode::BAD_REQUEST {
            print_failure(&answer);
            return Ok(ExitCode::from(1));
        }
        if !status.is_success() {
            bail!("the API answered {status}: {answer}");
        }
        println!("path: {}\nsql: {}\nparams: {}", answer["path"].as_str().unwrap_or_default(), answer["sql"].as_str().unwrap_or_default(), answer["params"]);
        return Ok(ExitCode::SUCCESS);
    }
    // Ctrl-C is caught from here on (a first poll installs the handler): one pressed while the
    // job is being submitted cancels it as soon as its id is known, instead of ending this
    // process and leaving the job running.
    let mut interrupt = std::pin::pin!(tokio::signal::ctrl_c());
    let interrupted_early = tokio::select! {
        biased;
        _ = &mut interrupt => true,
        () = std::future::ready(()) => false,
    };
    let answer = call(reqwest::Method::POST, "/api/v1/jobs".into()).json(&body).send().await.context("cannot reach the API")?;
    let (status, job): (_, Value) = (answer.status(), answer.json().await?);
    if status == reqwest::StatusCode::BAD_REQUEST && job.get("state").is_some() {
        print_failure(&job);
        return Ok(ExitCode::from(1));
    }
    if status != reqwest::StatusCode::ACCEPTED {
        bail!("the API answered {status}: {job}");
    }
    let id = job["id"].as_str().context("the job has no id")?.to_owned();
    let bar = if args.quiet { ProgressBar::hidden() } else { ProgressBar::new(1000) };
    bar.set_style(ProgressStyle::with_template("{spinner} [{bar:30}] {percent:>3}% {msg}")?.progress_chars("=> "));
    if interrupted_early {
        let cancelled: Value = call(reqwest::Method::DELETE, format!("/api/v1/jobs/{id}")).send().await?.json().await?;
        eprintln!("cancelled job {id} ({} rows kept)", cancelled["rows_matched"]);
        return Ok(ExitCode::from(130));
    }
    let job = loop {
        let job: Value = call(reqwest::Method::GET, format!("/api/v1/jobs/{id}")).send().await?.json().await?;
        bar.set_position((job["progress"].as_f64().unwrap_or(0.0) * 1000.0) as u64);
        bar.set_message(format!("{} · {} rows", job["state"].as_str().unwrap_or("?"), job["rows_matched"]));
        if !matches!(job["state"].as_str(), Some("queued" | "running")) {
            break job;
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = &mut interrupt => {
                bar.abandon_with_message("cancelling");
                let cancelled: Value = call(reqwest::Method::DELETE, format!("/api/v1/jobs/{id}")).send().await?.json().await?;
                eprintln!("cancelled job {id} ({} rows kept; read them with GET /api/v1/jobs/{id}/results)", cancelled["rows_matched"]);
                return Ok(ExitCode::from(130));
            }
        }
    };
    bar.finish_and_clear();
    if job["state"] == "failed" {
        print_failure(&job);
        return Ok(ExitCode::from(1));
    }
    if job["state"] != "done" {
        bail!("job {id} ended {}", job["state"]);
    }
    let columns: Vec<String> = job["columns"].as_array().map(|columns| columns.iter().filter_map(|c| c.as_str().map(str::to_owned)).collect()).unwrap_or_default();
    let mut rows: Vec<Value> = Vec::new();
    each_result_row(&call, &id, |row| rows.push(row)).await?;
    print_rows(args.format, &columns, &rows)?;
    if job["truncated"] == true {
        eprintln!("warning: the job stopped at its row cap; narrow the query or the time range for the rest");
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads every result row of job `id` page by page (cursor paging), handing each to `row`.
pub(crate) async fn each_result_row(
    call: &impl Fn(reqwest::Method, String) -> reqwest::RequestBuilder,
    id: &str,
    mut row: impl FnMut(Value),
) -> anyhow::Result<()> {
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/api/v1/jobs/{id}/results?limit=10000");
        if let Some(cursor) = &cursor {
            path.push_str(&format!("&cursor={cursor}"));
        }
        let mut page: Value = call(reqwest::Method::GET, path).send().await?.json().await?;
        if let Some(rows) = page["rows"].as_array_mut() {
            rows.drain(..).for_each(&mut row);
        }
        match page["next"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return Ok(()),
        }
    }
}

fn print_rows(format: Format, columns: &[String], rows: &[Value]) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let cells = |row: &Value| -> Vec<String> { columns.iter().map(|column| crate::api::csv_cell(&row[column])).collect() };
    match format {
        Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(rows)?)?,
        Format::Ndjson => {
            for row in rows {
                writeln!(out, "{row}")?;
            }
        }
        Format::Csv => {
            let mut writer = csv::Writer::from_writer(out);
            writer.write_record(columns)?;
            for row in rows {
                writer.write_record(cells(row))?;
            }
            writer.flush()?;
        }
        Format::Table => {
            let table: Vec<Vec<String>> = rows.iter().map(cells).collect();
            let widths: Vec<usize> = columns
                .iter()
                .enumerate()
                .map(|(index, column)| table.iter().map(|row| row[index].chars().count()).chain([column.len()]).max().unwrap_or(0))
                .collect();
            let line = |values: &[String]| -> String {
                values.iter().zip(&widths).map(|(value, width)| format!("{value:<width$}")).collect::<Vec<_>>().join("  ").trim_end().to_owned()
            };
            writeln!(out, "{}", line(columns))?;
            for row in &table {
                writeln!(out, "{}", line(row))?;
            }
            eprintln!("{} rows", table.len());
        }
    }
    Ok(())
}

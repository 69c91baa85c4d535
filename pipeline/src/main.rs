//! `securewatch`: the one binary of SecureWatch (run, ingest, worker, config check, rules
//! check/test).
//!
//! The binary only wires: [`roles`] start what a process runs, [`runtime`] bridges tokio and the
//! timely workers, [`intake`] reads the journal or the bus, [`rules`] loads and reloads detection
//! rules, [`api`] serves HTTP through the sinks' read side. It may depend on every other crate;
//! I/O lives in `securewatch-connectors`, computation in the operator crates, and it holds no
//! SQL of its own.

mod access;
mod api;
mod backup;
mod config;
mod errors;
mod intake;
mod jobs;
mod roles;
mod rules;
mod runtime;
mod telemetry;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::roles::Role;

/// jemalloc instead of glibc's malloc: the pipeline allocates and frees many small objects per
/// event across threads, where glibc spent about a third of the server's CPU (bench/README.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// What `securewatch --help` opens with: what the tool does for its user, and where to start.
const ABOUT: &str = "SecureWatch collects security events (Splunk HEC, syslog, Wazuh alerts), \
normalises and stores them, runs Sigma detection and correlation rules over them, and serves \
events, dashboards and alerts over an HTTP API.";

/// The end of `securewatch --help`: the first commands to try.
const AFTER_HELP: &str = "Start with `securewatch run` (no configuration needed: HEC on 127.0.0.1:8088, \
syslog on 127.0.0.1:5514, the API on 127.0.0.1:8080, data in ./data). \
Test Sigma rules offline with `securewatch rules test RULES --events FILE`. \
Each command has its own --help; the README has the quick start.";

/// The command line.
#[derive(Debug, Parser)]
#[command(name = "securewatch", version, about = ABOUT, after_help = AFTER_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Everything in one process on embedded defaults: HEC, syslog, Wazuh → SQLite, API.
    Run {
        /// TOML configuration file (defaults apply without one).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Data directory for the store, the HEC token and file positions (default ./data).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// The edge of a fleet: HEC, syslog and Wazuh sources publishing to the bus of `[bus]`.
    Ingest {
        /// TOML configuration file.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Data directory for the HEC token and file positions (default ./data).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// A fleet worker: the bus of `[bus]` → dataflow → sinks, plus the API.
    Worker {
        /// TOML configuration file.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Data directory for the embedded store and its progress table (default ./data).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Writes an online, consistent copy of the data directory (store, journal, positions,
    /// tokens) to one file while `run` or `worker` keeps going.
    Backup {
        /// TOML configuration file (for `data_dir` and `[store] file`).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// The data directory to copy (default ./data).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// The backup file to write (a .tar.gz; never overwritten).
        #[arg(long)]
        to: PathBuf,
    },
    /// Restores a backup into a new, empty data directory (checked before it is put in place).
    Restore {
        /// The backup file written by `securewatch backup`.
        file: PathBuf,
        /// TOML configuration file (for `data_dir` and `[store] file`).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// The data directory to create (default ./data); it must not exist or be empty.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Sigma rule tools for rule authors (no services needed).
    Rules {
        #[command(subcommand)]
        command: rules::cli::RulesCommand,
    },
    /// Runs a query of the search language on a running API as a job: a progress bar on
    /// stderr, the rows on stdout; Ctrl-C cancels the job.
    Search(jobs::cli::SearchArgs),
    /// API tokens of a data directory: create (shown once), list, revoke.
    Token {
        #[command(subcommand)]
        command: access::cli::TokenCommand,
    },
}

/// Dataflow flags of `run`; each overrides its `[dataflow]` key.
#[derive(Debug, clap::Args)]
struct ClusterArgs {
    /// Timely worker threads in this process (`dataflow.workers`).
    #[arg(long, short)]
    workers: Option<usize>,
    /// This process's index in the peer list (`dataflow.process`).
    #[arg(long)]
    process: Option<usize>,
    /// Comma-separated timely addresses of all processes, in process order
    /// (`dataflow.peers`), e.g. `10.0.0.1:2101,10.0.0.2:2101`.
    #[arg(long, value_delimiter = ',')]
    peers: Option<Vec<String>>,
}

impl ClusterArgs {
    fn apply(self, config: &mut Config) -> Result<(), config::ConfigError> {
        if let Some(workers) = self.workers {
            config.dataflow.workers = workers;
        }
        if let Some(process) = self.process {
            config.dataflow.process = process;
        }
        if let Some(peers) = self.peers {
            config.dataflow.peers = peers;
        }
        config.dataflow.validate().map_err(|error| config::ConfigError::Unlocated {
            origin: "command line [dataflow]".into(),
            message: error.to_string(),
        })
    }
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Checks a configuration file (and SECUREWATCH_* overrides) and lists what each role
    /// would start with it; non-zero exit on errors.
    Check {
        /// The file to check.
        file: PathBuf,
        /// List only what this command would start (default: `run`, or `ingest` and `worker`
        /// when `[bus]` names a bus).
        #[arg(long, value_enum)]
        role: Option<CheckRole>,
    },
}

/// The commands `config check` can describe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum CheckRole {
    Run,
    Ingest,
    Worker,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Every file and directory the process creates (store, journal, tokens, positions) is
    // private to its user.
    #[cfg(unix)]
    // SAFETY: umask only sets the process's file mode creation mask; it cannot fail.
    unsafe {
        libc::umask(0o077);
    }
    let result = match cli.command {
        Command::Token { command } => access::cli::run(command),
        Command::Search(args) => match jobs::cli::run(args) {
            Ok(code) => return code,
            Err(error) => {
                eprintln!("error: {}", errors::error_chain(&error));
                return ExitCode::from(2);
            }
        },
        Command::Run { config, data_dir, cluster } => run_command(config, data_dir, Some(cluster), Role::All),
        Command::Ingest { config, data_dir } => run_command(config, data_dir, None, Role::Ingest),
        Command::Worker { config, data_dir, cluster } => run_command(config, data_dir, Some(cluster), Role::Worker),
        Command::Backup { config, data_dir, to } => {
            load_config(config, data_dir).and_then(|config| backup::backup(&config, &to))
        }
        Command::Restore { file, config, data_dir } => {
            load_config(config, data_dir).and_then(|config| backup::restore(&config, &file))
        }
        Command::Config { command: ConfigCommand::Check { file, role } } => check_command(&file, role),
        Command::Rules { command } => match rules::cli::run(command) {
            Ok(code) => return code,
            Err(error) => {
                eprintln!("error: {}", errors::error_chain(&error));
                return ExitCode::from(2);
            }
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", errors::error_chain(&error));
            ExitCode::FAILURE
        }
    }
}

fn run_command(
    config_path: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    cluster: Option<ClusterArgs>,
    role: Role,
) -> anyhow::Result<()> {
    let mut config = load_config(config_path, data_dir)?;
    if let Some(cluster) = cluster {
        cluster.apply(&mut config)?;
    }
    telemetry::init_logging(&config.log);
    for warning in config.deprecations() {
        tracing::warn!("{warning} (the old spelling keeps working until the next release)");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(roles::run(config, role))
}

/// The configuration of a command that works on a data directory without running.
fn load_config(config_path: Option<PathBuf>, data_dir: Option<PathBuf>) -> anyhow::Result<Config> {
    let mut config = Config::load(config_path.as_deref(), std::env::vars())?;
    if let Some(data_dir) = data_dir {
        config.data_dir = Some(data_dir);
    }
    Ok(config)
}

fn check_command(file: &std::path::Path, role: Option<CheckRole>) -> anyhow::Result<()> {
    let config = Config::load(Some(file), std::env::vars())?;
    let has_bus = config.bus.kind != intake::BusKind::None;
    let roles = match (role, has_bus) {
        (Some(CheckRole::Ingest | CheckRole::Worker), false) => anyhow::bail!(
            "{}: [bus] kind must be \"kafka\" or \"redis\" for `securewatch ingest` and `securewatch worker`",
            file.display()
        ),
        (Some(role), _) => vec![role],
        (None, false) => vec![CheckRole::Run],
        (None, true) => vec![CheckRole::Ingest, CheckRole::Worker],
    };
    // Tokens from files and the environment are read now, so short ones are refused here too;
    // one not there yet (set only where the server runs) is a warning.
    let mut token_warnings = Vec::new();
    for token in &config.api.auth.tokens {
        match access::tokens::resolve_configured(std::slice::from_ref(token)) {
            Ok(_) => {}
            Err(missing @ access::tokens::TokenError::Missing { .. }) => token_warnings.push(missing.to_string()),
            Err(error) => return Err(error.into()),
        }
    }
    println!("{}: ok", file.display());
    for role in roles {
        println!("  {}", role_summary(&config, role));
    }
    println!("  {}", auth_summary(&config));
    for warning in token_warnings {
        println!("warning: {warning} (needed when the server starts)");
    }
    for warning in config.deprecations() {
        println!("warning: {warning} (the old spelling keeps working until the next release)");
    }
    Ok(())
}

/// One line on the API's access control, without any secret.
fn auth_summary(config: &Config) -> String {
    let auth = &config.api.auth;
    if auth.mode == access::AuthMode::Off {
        return "API access control: OFF (anyone reaching the API is served)".to_string();
    }
    let tokens: Vec<String> =
        auth.tokens.iter().map(|token| format!("{} ({})", token.name, token.roles.join(","))).collect();
    let jwt = auth.jwt.as_ref().map_or("off".to_string(), |jwt| {
        format!("issuer {}, audience {}, {}", jwt.issuer, jwt.audience, if jwt.jwks_url.is_some() { "JWKS" } else { "PEM keys" })
    });
    format!(
        "API access control: on; configured tokens: {}; tokens file in the data directory; JWT: {jwt}",
        if tokens.is_empty() { "none".to_string() } else { tokens.join(", ") }
    )
}

/// One line saying what `securewatch <role>` starts with `config`: listeners, bus and sinks.
fn role_summary(config: &Config, role: CheckRole) -> String {
    let address = |address: Option<std::net::SocketAddr>| address.map_or("off".to_string(), |a| a.to_string());
    let sources = || {
        let syslog = &config.sources.syslog;
        // Extra syslog listeners, one tenant each.
        let extra: String = syslog
            .instances()
            .iter()
            .filter(|instance| syslog.enabled && instance.name != syslog.name)
            .map(|instance| {
                let (udp, tcp) = (address(instance.udp_listen), address(instance.tcp_listen));
                format!(", syslog {} ({}) udp {udp} tcp {tcp}", instance.name, instance.tenant)
            })
            .collect();
        format!(
            "HEC {}, syslog udp {} tcp {}{extra}, wazuh {}",
            if config.sources.hec.enabled { config.sources.hec.listen.to_string() } else { "off".into() },
            if syslog.enabled { address(syslog.udp_listen) } else { "off".into() },
            if syslog.enabled { address(syslog.tcp_listen) } else { "off".into() },
            if config.sources.wazuh.enabled { config.sources.wazuh.path.display().to_string() } else { "off".into() },
        )
    };
    let sinks = || {
        format!(
            "sinks: SQLite in {}, postgres {}, opensearch {}",
            config.data_dir().display(),
            if config.sinks.postgres_in_force().is_some() { "on" } else { "off" },
            if config.sinks.opensearch.enabled { "on" } else { "off" },
        )
    };
    let bus = || format!("{:?}", config.bus.kind).to_lowercase();
    match role {
        CheckRole::Run => format!("securewatch run: {}, API {}, {}", sources(), config.api.listen, sinks()),
        CheckRole::Ingest => format!("securewatch ingest: {}, publishing to {}, API {}", sources(), bus(), config.api.listen),
        CheckRole::Worker => format!("securewatch worker: reading {}, API {}, {}", bus(), config.api.listen, sinks()),
    }
}

//! `securewatch token create|list|revoke`: API tokens in a data directory's tokens file, each change written to the audit log.

use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{Duration, Utc};
use securewatch_connectors::sinks::sqlite::SqliteStore;
use securewatch_connectors::sinks::{AuditLog, AuditOutcome};

use super::tokens;
use crate::config::Config;

/// `securewatch token ...`.
#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Creates an API token and prints it once (only its hash is kept).
    Create {
        /// The token's name (audit log, `token list`).
        #[arg(long)]
        name: String,
        /// A role (repeat for several): viewer, analyst, engineer, admin, or a custom one.
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// A tenant the token sees (repeat for several; `*`: all). Default: `default`.
        #[arg(long = "tenant")]
        tenants: Vec<String>,
        /// Days until it expires (default: never).
        #[arg(long)]
        expires_in_days: Option<u32>,
        #[command(flatten)]
        place: Place,
    },
    /// Lists the tokens of the data directory (names, roles, tenants, expiry; never tokens).
    List {
        #[command(flatten)]
        place: Place,
    },
    /// Revokes a token by name; a running server stops accepting it within a second.
    Revoke {
        /// The token's name.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        place: Place,
    },
}

/// Where the tokens are.
#[derive(Debug, clap::Args)]
pub struct Place {
    /// Data directory of the server (default ./data).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The server's configuration (custom roles; PostgreSQL for the audit log).
    #[arg(long, short)]
    config: Option<PathBuf>,
}

impl Place {
    fn resolve(&self) -> anyhow::Result<(Config, PathBuf)> {
        let mut config = Config::load(self.config.as_deref(), std::env::vars())?;
        if let Some(data_dir) = &self.data_dir {
            config.data_dir = Some(data_dir.clone());
        }
        let data_dir = config.data_dir();
        Ok((config, data_dir))
    }
}

/// Runs a token command.
pub fn run(command: TokenCommand) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(run_async(command))
}

async fn run_async(command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create { name, roles, tenants, expires_in_days, place } => {
            let (config, data_dir) = place.resolve()?;
            for role in &roles {
                config.api.auth.check_role(role).map_err(anyhow::Error::msg)?;
            }
            crate::roles::private_data_dir(&data_dir)?;
            let expires = expires_in_days.map(|days| Utc::now() + Duration::days(i64::from(days)));
            let token = tokens::create(&data_dir, &name, roles.clone(), tenants.clone(), expires)?;
            let detail = format!("created; roles {}; tenants {}", roles.join(","), if tenants.is_empty() { "default".into() } else { tenants.join(",") });
            audit(&config, &data_dir, &format!("token {name}"), detail).await?;
            println!("{token}");
            eprintln!("Token {name:?} created; it is shown only now. Pass it as `Authorization: Bearer <token>`.");
        }
        TokenCommand::List { place } => {
            let (_, data_dir) = place.resolve()?;
            let stored = tokens::read_file(&data_dir)?;
            println!("{:<20} {:<24} {:<24} {:<26} expires", "name", "roles", "tenants", "created");
            for token in stored {
                let expires = token.expires.map_or("never".to_string(), |time| time.to_rfc3339());
                println!("{:<20} {:<24} {:<24} {:<26} {expires}", token.name, token.roles.join(","), token.tenants.join(","), token.created.to_rfc3339());
            }
        }
        TokenCommand::Revoke { name, place } => {
            let (config, data_dir) = place.resolve()?;
            if !tokens::revoke(&data_dir, &name)? {
                anyhow::bail!("no token named {name:?} in {}", data_dir.join(tokens::TOKENS_FILE).display());
            }
            audit(&config, &data_dir, &format!("token {name}"), "revoked".into()).await?;
            eprintln!("Token {name:?} revoked.");
        }
    }
    Ok(())
}

/// Appends a `tokens:write` entry by the command line to the data directory's store (and
/// PostgreSQL when the configuration has it).
async fn audit(config: &Config, data_dir: &Path, resource: &str, detail: String) -> anyhow::Result<()> {
    let sqlite = SqliteStore::open(data_dir, &config.store).await.context("opening the store for the audit log")?;
    let postgres = match config.sinks.postgres_in_force() {
        Some(postgres) => Some(std::sync::Arc::new(
            securewatch_connectors::sinks::postgres::PostgresSink::connect(postgres).await.context("[sinks.postgres]")?,
        )),
        None => None,
    };
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let log = AuditLog::new(sqlite.clone(), postgres);
    let entry = super::entry(&format!("cli:{user}"), super::NO_TENANT, "tokens:write", resource.to_string(), AuditOutcome::Ok, Some("cli".into()), detail);
    super::record(Some(&log), entry).await;
    sqlite.close().await;
    Ok(())
}

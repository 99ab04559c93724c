//! `cin7-gss`: the operator CLI. Exit codes: 0 ok, 1 failure, 2 usage.

mod backend;
mod commands;
mod demo;
mod local;
mod output;

use backend::{Backend, BackendArgs};
use clap::{Parser, Subcommand};
use output::Output;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "cin7-gss",
    version,
    about = "CIN7 Omni ⇄ GoSweetSpot integration: operator CLI and local mode",
    after_help = "Examples:\n  cin7-gss demo\n  cin7-gss integrations put --file acme.toml\n  cin7-gss integrations test acme-nz\n  cin7-gss orders acme-nz --state failed\n  cin7-gss --backend aws --table cin7-gss orders acme-nz --json"
)]
struct Cli {
    #[command(flatten)]
    backend: BackendArgs,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Manage integrations (one CIN7 account ⇄ one GoSweetSpot site each).
    #[command(subcommand)]
    Integrations(IntegrationsCommand),
    /// Manage the secrets an integration refers to.
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// Run one pull now and print its summary.
    ///
    /// Example: `cin7-gss sync-now acme-nz`
    SyncNow { id: String },
    /// Show what a pull would publish, update, delete or skip, and why, changing nothing.
    ///
    /// Example: `cin7-gss pull acme-nz --dry-run`
    Pull {
        id: String,
        /// Required: a pull that writes is `sync-now`.
        #[arg(long, required = true)]
        dry_run: bool,
    },
    /// The per-order sync log.
    ///
    /// Example: `cin7-gss orders acme-nz --state skipped --since 2026-11-01T00:00:00Z`
    Orders {
        id: String,
        /// Only orders in this state (published, skipped, deleted, conflict, dispatched,
        /// ignored, failed).
        #[arg(long)]
        state: Option<String>,
        /// Only orders changed at or after this time (RFC 3339).
        #[arg(long)]
        since: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// One order's history: every state, reason, consignment and write-back.
    ///
    /// Example: `cin7-gss explain acme-nz '#1050'`
    Explain { id: String, reference: String },
    /// Queue a consignment's write-back again (after fixing what made it fail).
    ///
    /// Example: `cin7-gss replay acme-nz SSPOT018667`
    Replay { id: String, connote: String },
    /// Queue the write-back of every consignment GoSweetSpot changed since the last reconcile
    /// (or `--since`) that no webhook brought: a backfill after an outage. Every pull ends
    /// with one; this runs one now.
    ///
    /// Example: `cin7-gss reconcile acme-nz --since 2026-11-28T00:00:00Z --dry-run`
    Reconcile {
        id: String,
        /// Start here instead of at the last reconcile (RFC 3339).
        #[arg(long)]
        since: Option<chrono::DateTime<chrono::Utc>>,
        /// Show what would be queued; queue nothing, move no cursor.
        #[arg(long)]
        dry_run: bool,
    },
    /// The write-back dead-letter queue.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Run local mode: scheduler, webhook listener and write-back worker on one machine.
    ///
    /// Example: `cin7-gss serve --config cin7-gss.toml`
    Serve {
        #[arg(long)]
        config: PathBuf,
    },
    /// A self-contained demo: CIN7 and GoSweetSpot sandboxes on loopback, 25 orders, local
    /// mode, every order's journey from CIN7 to dispatched.
    ///
    /// Example: `cin7-gss demo --keep-running`
    Demo {
        /// Leave the sandboxes and the listener running, printing their URLs.
        #[arg(long)]
        keep_running: bool,
    },
}

#[derive(Subcommand)]
enum IntegrationsCommand {
    /// Save an integration from a TOML or JSON settings file (validated).
    ///
    /// Example: `cin7-gss integrations put --file acme.toml`
    Put {
        #[arg(long)]
        file: PathBuf,
    },
    /// Print an integration's settings.
    Get { id: String },
    /// List integrations.
    List,
    /// Disable an integration (nothing is pulled or written back for it).
    Disable { id: String },
    /// Test the connection: CIN7 credentials and Sales Orders permission, GoSweetSpot key
    /// and site, webhook secret.
    ///
    /// Example: `cin7-gss integrations test acme-nz`
    Test { id: String },
}

#[derive(Subcommand)]
enum SecretsCommand {
    /// Store a secret read from standard input (never from an argument).
    ///
    /// NAME is cin7.api_key, gss.access_key or webhook.secret; the value goes to the
    /// reference the settings name. Example: `cin7-gss --backend aws secrets set acme-nz cin7.api_key < key.txt`
    Set { id: String, name: String },
}

#[derive(Subcommand)]
enum DlqCommand {
    /// List dead-lettered write-backs.
    List,
    /// Move every dead-lettered write-back back onto the queue.
    Redrive,
}

async fn run(cli: Cli) -> anyhow::Result<bool> {
    let out = Output { json: cli.json };
    match cli.command {
        Command::Serve { config } => return local::serve(&config).await.map(|()| true),
        Command::Demo { keep_running } => return demo::run(keep_running).await,
        _ => {}
    }
    let backend = Backend::open(&cli.backend).await?;
    let b = &backend;
    match cli.command {
        Command::Integrations(c) => match c {
            IntegrationsCommand::Put { file } => commands::put(b, &file, &out).await?,
            IntegrationsCommand::Get { id } => commands::get(b, &id).await?,
            IntegrationsCommand::List => commands::list(b, &out).await?,
            IntegrationsCommand::Disable { id } => commands::disable(b, &id, &out).await?,
            IntegrationsCommand::Test { id } => return commands::test(b, &id, &out).await,
        },
        Command::Secrets(SecretsCommand::Set { id, name }) => {
            commands::set_secret(b, &id, &name, &out).await?
        }
        Command::SyncNow { id } => return commands::sync_now(b, &id, &out).await,
        Command::Pull { id, .. } => commands::dry_run(b, &id, &out).await?,
        Command::Orders { id, state, since } => {
            commands::orders(b, &id, state.as_deref(), since, &out).await?
        }
        Command::Explain { id, reference } => commands::explain(b, &id, &reference, &out).await?,
        Command::Replay { id, connote } => commands::replay(b, &id, &connote, &out).await?,
        Command::Reconcile { id, since, dry_run } => {
            commands::reconcile(b, &id, since, dry_run, &out).await?
        }
        Command::Dlq(DlqCommand::List) => commands::dlq_list(b, &out).await?,
        Command::Dlq(DlqCommand::Redrive) => commands::dlq_redrive(b, &out).await?,
        Command::Serve { .. } | Command::Demo { .. } => {}
    }
    Ok(true)
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

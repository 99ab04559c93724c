//! Where the CLI's state lives: the embedded store file (local mode) or DynamoDB, SQS and
//! Secrets Manager (AWS mode, through the standard AWS configuration chain and
//! `AWS_ENDPOINT_URL`).

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use shared::clock::SystemClock;
use shared::queue::embedded::EmbeddedQueue;
use shared::queue::sqs::SqsQueue;
use shared::queue::{JobQueue, JobSource};
use shared::secrets::SecretSource;
use shared::secrets::env::EnvSecrets;
use shared::store::Store;
use shared::store::sqlite::SqliteTable;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Which backend to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendKind {
    /// The embedded store file (local mode).
    Local,
    /// DynamoDB, SQS and Secrets Manager.
    Aws,
}

/// Options every command shares.
#[derive(Debug, Clone, Args)]
pub struct BackendArgs {
    /// Where state lives.
    #[arg(
        long,
        global = true,
        value_enum,
        env = "CIN7_GSS_BACKEND",
        default_value = "local"
    )]
    pub backend: BackendKind,
    /// The embedded store file (local backend).
    #[arg(
        long,
        global = true,
        env = "CIN7_GSS_STORE",
        default_value = "cin7-gss.sqlite3"
    )]
    pub store: PathBuf,
    /// The DynamoDB table (AWS backend).
    #[arg(long, global = true, env = "TABLE_NAME")]
    pub table: Option<String>,
    /// The write-back queue URL (AWS backend).
    #[arg(long, global = true, env = "WRITE_BACK_QUEUE_URL")]
    pub queue_url: Option<String>,
    /// The write-back dead-letter queue URL (AWS backend).
    #[arg(long, global = true, env = "WRITE_BACK_DLQ_URL")]
    pub dlq_url: Option<String>,
    /// The pull queue URL (AWS backend): saving an enabled integration sends its first pull
    /// message, and `sync-now` schedules the next one. Without it, the sweeper starts a saved
    /// integration's pulls within its grace period and schedule.
    #[arg(long, global = true, env = "PULL_QUEUE_URL")]
    pub pull_queue_url: Option<String>,
}

/// The redrive limit of the local queue (as the template's `maxReceiveCount`).
pub const LOCAL_MAX_RECEIVES: u32 = 5;
/// The redrive limit of the local pull queue (as the template's PullQueue).
pub const LOCAL_PULL_MAX_RECEIVES: u32 = 3;

/// An opened backend.
pub enum Backend {
    Local {
        store: Store,
        queue: EmbeddedQueue,
        pulls: EmbeddedQueue,
    },
    Aws {
        store: Store,
        queue: Option<SqsQueue>,
        dlq: Option<SqsQueue>,
        pulls: Option<SqsQueue>,
        secrets: Arc<shared::secrets::aws::SecretsManagerSource>,
    },
}

impl Backend {
    /// Opens the backend the arguments name.
    pub async fn open(args: &BackendArgs) -> anyhow::Result<Self> {
        match args.backend {
            BackendKind::Local => {
                let table = SqliteTable::open(&args.store)
                    .with_context(|| format!("opening the store {}", args.store.display()))?;
                let queue = EmbeddedQueue::open(&args.store, LOCAL_MAX_RECEIVES)
                    .with_context(|| format!("opening the queue in {}", args.store.display()))?;
                let pulls = EmbeddedQueue::open_pulls(&args.store, LOCAL_PULL_MAX_RECEIVES)
                    .with_context(|| {
                        format!("opening the pull queue in {}", args.store.display())
                    })?;
                Ok(Self::Local {
                    store: Store::new(Arc::new(table), Arc::new(SystemClock)),
                    queue,
                    pulls,
                })
            }
            BackendKind::Aws => {
                let Some(table) = &args.table else {
                    bail!("the AWS backend needs --table or TABLE_NAME");
                };
                let sdk = shared::aws_config::sdk_config().await;
                let store = shared::aws_config::dynamo_store(&sdk, table);
                // `secrets set` holds the store's lease on a secret while it rewrites it, so
                // operators setting keys of one shared secret at once lose none.
                let secrets = shared::aws_config::secrets_manager(&sdk, Duration::from_secs(60))
                    .with_writers(Arc::new(store.clone()), &shared::app::process_owner("cli"));
                Ok(Self::Aws {
                    store,
                    queue: args
                        .queue_url
                        .as_deref()
                        .map(|u| shared::aws_config::sqs_queue(&sdk, u)),
                    dlq: args
                        .dlq_url
                        .as_deref()
                        .map(|u| shared::aws_config::sqs_queue(&sdk, u)),
                    pulls: args
                        .pull_queue_url
                        .as_deref()
                        .map(|u| shared::aws_config::sqs_queue(&sdk, u)),
                    secrets: Arc::new(secrets),
                })
            }
        }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        match self {
            Self::Local { store, .. } | Self::Aws { store, .. } => store,
        }
    }

    /// Where secret references resolve: environment variables (local) or Secrets Manager.
    pub fn secrets(&self) -> Arc<dyn SecretSource> {
        match self {
            Self::Local { .. } => Arc::new(EnvSecrets),
            Self::Aws { secrets, .. } => secrets.clone(),
        }
    }

    /// The write-back queue.
    pub fn queue(&self) -> anyhow::Result<&dyn JobQueue> {
        match self {
            Self::Local { queue, .. } => Ok(queue),
            Self::Aws { queue: Some(q), .. } => Ok(q),
            Self::Aws { queue: None, .. } => {
                bail!("the AWS backend needs --queue-url or WRITE_BACK_QUEUE_URL")
            }
        }
    }

    /// The pull queue, when there is one (always locally; with `--pull-queue-url` on AWS).
    pub fn pulls(&self) -> Option<&dyn JobQueue> {
        match self {
            Self::Local { pulls, .. } => Some(pulls),
            Self::Aws { pulls, .. } => pulls.as_ref().map(|q| q as &dyn JobQueue),
        }
    }

    /// The dead-letter queue as a source of messages (AWS).
    pub fn dlq(&self) -> anyhow::Result<&dyn JobSource> {
        match self {
            Self::Aws { dlq: Some(q), .. } => Ok(q),
            Self::Aws { dlq: None, .. } => {
                bail!("the AWS backend needs --dlq-url or WRITE_BACK_DLQ_URL")
            }
            Self::Local { queue, .. } => Ok(queue),
        }
    }
}

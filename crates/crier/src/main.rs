//! `crier`: one binary for every role. `serve` runs the API and the workers; `admin` manages
//! workspaces, keys and users directly in storage; `migrate` applies migrations; the client
//! commands (`login`, `posts`, `media`, …; `client/`) talk to a running server over its API.

mod admin;
mod client;
mod clock_watch;
mod config;
mod mcp;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{CommandFactory, Parser, Subcommand};
use crier_api::AppState;
use crier_core::SystemClock;
use crier_store::Store;
use tokio_util::sync::CancellationToken;

use crate::config::{Flags, Settings};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "crier",
    version,
    about = "Self-hostable social publishing with a developer API"
)]
struct Cli {
    /// A TOML configuration file (default: ./crier.toml if it exists).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Where the embedded database lives (default ./crier-data).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// `sqlite://path` or `postgres://…` (default: a SQLite file in the data dir).
    #[arg(long, global = true)]
    database_url: Option<String>,
    /// `redis://host:port`: rate limits shared by every node (default: each node's own).
    #[arg(long, global = true)]
    redis_url: Option<String>,
    /// Print JSON for scripts: the API's own answers, errors as its envelope.
    #[arg(long, global = true)]
    json: bool,
    /// Client commands: the server (default: the profile's, else http://127.0.0.1:8080).
    #[arg(long, global = true, env = "CRIER_URL")]
    url: Option<String>,
    /// Client commands: the saved login to use (default `default`).
    #[arg(long, global = true, env = "CRIER_PROFILE")]
    profile: Option<String>,
    /// Client commands: print the request a write would send, and send nothing.
    #[arg(long, global = true)]
    dry_run: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API server.
    Serve {
        /// Address to listen on (default 127.0.0.1:8080).
        #[arg(long)]
        bind: Option<String>,
        /// `text` or `json` logs.
        #[arg(long)]
        log_format: Option<String>,
        /// `all` (default), `api` (never claims jobs) or `worker` (only health and metrics
        /// over HTTP).
        #[arg(long)]
        role: Option<String>,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Manage workspaces and API keys directly in storage.
    Admin {
        #[command(subcommand)]
        command: admin::AdminCommand,
    },
    /// The MCP server over stdio, for AI agents: it calls the server at CRIER_URL (or the
    /// saved login's, or http://127.0.0.1:8080) with the API key in CRIER_API_KEY (or the
    /// saved login's); its tools follow the key's scopes.
    Mcp,
    #[command(flatten)]
    Client(client::ClientCommand),
}

fn main() -> ExitCode {
    // Two TLS providers are linked (sqlx and, later, reqwest); pick one before any TLS use.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = Cli::parse();
    // Client commands and `crier mcp` talk to a server: they read no crier.toml and no data
    // dir (and for `mcp`, stdout is MCP's alone).
    let command = match cli.command {
        Command::Client(command) => {
            let globals = client::Globals {
                json: cli.json,
                profile: cli.profile,
                url: cli.url,
                dry_run: cli.dry_run,
            };
            return ExitCode::from(client::run(globals, command, Cli::command()));
        }
        Command::Mcp => {
            return match mcp::run(cli.profile.as_deref(), cli.url.as_deref()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("crier mcp: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        other => other,
    };
    let (bind, log_format, role) = match &command {
        Command::Serve {
            bind,
            log_format,
            role,
        } => (bind.clone(), log_format.clone(), role.clone()),
        _ => (None, None, None),
    };
    let flags = Flags {
        bind,
        data_dir: cli.data_dir.clone(),
        database_url: cli.database_url.clone(),
        redis_url: cli.redis_url.clone(),
        log_format,
        role,
    };
    let settings = match config::load(cli.config.as_deref(), flags) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("crier: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let json = cli.json;
    let result = runtime.block_on(async move {
        match command {
            Command::Serve { .. } => serve(settings).await,
            Command::Migrate => migrate(&settings).await,
            Command::Admin { command } => admin::run(&settings, command, json).await,
            Command::Client(_) | Command::Mcp => {
                unreachable!("client commands and mcp returned above")
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("crier: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logs(settings: &Settings) {
    let filter = tracing_subscriber::EnvFilter::new(&settings.log_level);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if settings.log_json {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
}

pub async fn open_store(settings: &Settings) -> Result<Store, String> {
    let store = Store::connect(&settings.database_url)
        .await
        .map_err(|e| format!("database_url: {e}"))?;
    check_schema(&store, settings.migrate_on_start).await?;
    if settings.migrate_on_start {
        store
            .migrate()
            .await
            .map_err(|e| format!("migrations failed: {e}"))?;
    }
    Ok(store)
}

/// Refuses a schema this binary does not understand: newer than it (another release
/// migrated it), or older when it may not migrate it itself.
async fn check_schema(store: &Store, may_migrate: bool) -> Result<(), String> {
    let status = store
        .schema_status()
        .await
        .map_err(|e| format!("database_url: {e}"))?;
    if !status.unknown.is_empty() {
        return Err(format!(
            "the database schema has migrations this crier does not know ({:?}; it knows up \
             to {}): another, newer release migrated it. Run that release (or a newer one) \
             on every node",
            status.unknown, status.known_latest
        ));
    }
    if !may_migrate && !status.pending.is_empty() {
        return Err(format!(
            "the database schema is older than this crier ({} migration(s) pending, up to \
             {}) and migrate_on_start is off: run `crier migrate` once, then start the nodes",
            status.pending.len(),
            status.known_latest
        ));
    }
    Ok(())
}

async fn migrate(settings: &Settings) -> Result<(), String> {
    let store = Store::connect(&settings.database_url)
        .await
        .map_err(|e| format!("database_url: {e}"))?;
    check_schema(&store, true).await?;
    let applied = store
        .migrate()
        .await
        .map_err(|e| format!("migrations failed: {e}"))?;
    println!(
        "migrations applied: {}; schema at version {}",
        applied.len(),
        store
            .applied_migrations()
            .await
            .map_err(|e| e.to_string())?
            .last()
            .copied()
            .unwrap_or(0)
    );
    store.close().await;
    Ok(())
}

async fn serve(settings: Settings) -> Result<(), String> {
    init_logs(&settings);
    let store = open_store(&settings).await?;
    if store
        .list_workspaces()
        .await
        .map_err(|e| e.to_string())?
        .is_empty()
    {
        eprintln!(
            "\nNo workspace yet. Create one and a first key (shown once) in another terminal:\n\n  \
             crier admin workspace create my-team\n  \
             crier admin key create --workspace my-team --scope all --name admin\n\n\
             then call the API:  curl -H 'Authorization: Bearer sk_live_…' http://{}/v1/workspace\n",
            settings.bind
        );
    }
    let clock: Arc<dyn crier_core::Clock> = Arc::new(SystemClock);
    let skew_limit = clock_watch::limit_ms(settings.network_timeout);
    if let Some(ms) = clock_watch::offset(&store, &clock).await? {
        clock_watch::verdict(ms, skew_limit)?;
    }
    let app = compose(&store, &clock, &settings)?.with_media(settings.media.open()?);
    crier_app::reseal::check_keys(&app).await?;
    let state = AppState::new(app.clone(), settings.api.clone());
    let cancel = CancellationToken::new();
    let mut background = state.spawn_background(cancel.clone());
    // `role` decides: an API-only node has no workers (`Settings::workers` is `None`).
    if let Some(workers) = settings.workers.clone() {
        let publisher = crier_worker::Publisher::new(app.clone(), workers.publisher);
        state.add_metrics(Arc::new(PublisherMetrics(publisher.clone())));
        background.spawn(publisher.clone().run(cancel.clone()));
        background.spawn(publisher.run_metrics(cancel.clone()));
        let deliverer = crier_worker::webhooks::Deliverer::new(
            store.clone(),
            clock.clone(),
            app.keyring().clone(),
            workers.webhooks,
        );
        background.spawn(deliverer.clone().run_key_expiry(cancel.clone()));
        background.spawn(deliverer.run(cancel.clone()));
        let feeds = crier_worker::feeds::FeedPoller::new(app.clone(), workers.feeds);
        background.spawn(feeds.run(cancel.clone()));
        let agents = crier_worker::agents::AgentWorker::new(app.clone(), workers.agents);
        background.spawn(agents.run(cancel.clone()));
        let clips = crier_worker::clips::ClipWorker::new(app.clone(), workers.clips);
        background.spawn(clips.run(cancel.clone()));
        background.spawn(crier_worker::trending::run(
            app.clone(),
            workers.trends,
            cancel.clone(),
        ));
        background.spawn(crier_worker::tokens::run(
            app.clone(),
            std::time::Duration::from_secs(30),
            cancel.clone(),
        ));
        background.spawn(purge_media_uploads(
            app.clone(),
            settings.media.purge_interval,
            cancel.clone(),
        ));
    }
    if store.backend() == crier_store::Backend::Postgres {
        let gauge = Arc::new(clock_watch::ClockGauge::new(skew_limit));
        state.add_metrics(gauge.clone());
        background.spawn(clock_watch::run(
            store.clone(),
            clock.clone(),
            gauge,
            cancel.clone(),
        ));
    }
    let app = match settings.role.serves_api() {
        true => crier_api::router(state),
        false => crier_api::routes::ops_router(state),
    };
    let listener = tokio::net::TcpListener::bind(settings.bind)
        .await
        .map_err(|e| format!("bind: cannot listen on {}: {e}", settings.bind))?;
    tracing::info!(address = %settings.bind, database = %store_kind(&settings.database_url),
        role = settings.role.as_str(), "crier listening");
    match settings.role.serves_api() {
        true => eprintln!(
            "crier listening on http://{} (docs at /docs)",
            settings.bind
        ),
        false => eprintln!(
            "crier worker running; health and metrics on http://{}",
            settings.bind
        ),
    }
    crier_api::server::serve(listener, app, settings.server.clone(), shutdown_signal()).await;
    tracing::info!("shutting down: connections closed; stopping workers, flushing usage");
    cancel.cancel();
    while background.join_next().await.is_some() {}
    store.close().await;
    Ok(())
}

/// The application layer this node runs on: its storage, the clock, the networks it can
/// publish to, the operator's plans (the one plan source of the API and the workers) and the
/// signal that wakes this node's publisher.
fn compose(
    store: &Store,
    clock: &Arc<dyn crier_core::Clock>,
    settings: &Settings,
) -> Result<crier_app::App, String> {
    let timeout = settings.network_timeout;
    let networks = crier_networks::Networks::default()
        .with(Arc::new(crier_networks::sandbox::Sandbox::new(
            store.clone(),
            clock.clone(),
        )))
        .with(Arc::new(crier_networks::bluesky::Bluesky::new(
            crier_networks::bluesky::BlueskyConfig {
                default_service: settings.bluesky_default_service.clone(),
                allow_private_networks: settings.allow_private_networks,
                timeout,
            },
            clock.clone(),
        )))
        .with(Arc::new(crier_networks::mastodon::Mastodon::new(
            crier_networks::mastodon::MastodonConfig {
                allow_private_networks: settings.allow_private_networks,
                timeout,
                // Media processing is polled inside one publish call, which the publisher
                // bounds by the same timeout; a video still processing is retried later.
                media_poll_max: timeout / 2,
                ..Default::default()
            },
            clock.clone(),
        )));
    let mut networks = networks;
    for platform in crier_networks::HOSTED {
        let config = crier_networks::hosted::HostedConfig {
            base: settings.network_bases.get(*platform).cloned(),
            timeout,
            // Processing is polled inside one publish call, which the publisher bounds by the
            // same timeout; what is still processing is resumed by the retry from its kept ids.
            poll_max: timeout / 2,
            settle: settings.network_settle,
            ..Default::default()
        };
        if let Some(network) = crier_networks::hosted_network(platform, config, clock.clone()) {
            networks = networks.with(network);
        }
    }
    let keyring = match &settings.secrets {
        config::SecretKeys::Given(k) => k.clone(),
        config::SecretKeys::File(path) => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("data_dir {}: {e}", dir.display()))?;
            }
            let (keyring, created) = crier_app::Keyring::load_or_create(path)
                .map_err(|e| format!("secret keys: {e}"))?;
            if created {
                tracing::warn!(
                    path = %path.display(),
                    "generated the key that seals network tokens at rest; back this file up \
                     (without it every connected account must reconnect), or set \
                     CRIER_SECRET_KEYS"
                );
            }
            keyring
        }
    };
    let app = crier_app::App::new(
        store.clone(),
        clock.clone(),
        networks,
        &settings.api.plans,
        Arc::new(tokio::sync::Notify::new()),
    )
    .with_keyring(keyring)
    .with_users(crier_app::users::UserSettings {
        default_plan: settings.default_plan.clone(),
        session_ttl_ms: settings.session_ttl.as_millis() as i64,
        ..Default::default()
    })
    .with_connect(settings.connect.clone())
    .with_fetch(crier_app::fetch::FetchSettings::new(
        settings.allow_private_networks,
        settings.network_timeout,
    ));
    // ---- ai ----
    Ok(match settings.ai.open()? {
        Some(model) => {
            let app = match model.has_embeddings() {
                true => app.with_embedder(Arc::new(model.clone())),
                false => app,
            };
            app.with_engine(Arc::new(crier_ai::ModelEngine::new(model)))
        }
        None => app,
    })
}

// ---- media ----
/// Deletes, every `every`, pending uploads whose URL expired over an hour ago (their rows and
/// any bytes that came); failures are logged and tried again next time.
async fn purge_media_uploads(
    app: crier_app::App,
    every: std::time::Duration,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let now = app.clock().now_ms();
                match app.media().purge_expired_uploads(now).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(purged = n, "purged media uploads never confirmed"),
                    Err(e) => tracing::warn!(error = %e.message, "media upload purge failed"),
                }
            }
            _ = cancel.cancelled() => break,
        }
    }
}

/// The publisher's series on `/metrics`.
struct PublisherMetrics(crier_worker::Publisher);

#[async_trait::async_trait]
impl crier_api::metrics::MetricsSource for PublisherMetrics {
    async fn render(&self) -> String {
        self.0.render_metrics().await
    }
}

fn store_kind(url: &str) -> &'static str {
    if url.starts_with("postgres") {
        "postgresql"
    } else {
        "sqlite"
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

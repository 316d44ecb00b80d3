//! The application layer: the one place that decides. Each resource has a module here with
//! its rules (may this post be scheduled, does it fit the quota, what does approving it change);
//! every client is an adapter over it. The HTTP handlers parse, call and render; the publisher
//! and the feed poller call the same functions; the dashboard, the CLI routes, the MCP tools and
//! AI agents will too.
//!
//! Below this layer the store writes what was decided: one status-change function per
//! aggregate, inside one transaction, conditional on the status it expects, with the jobs and
//! events that follow from it (`crier_store::Store::transition`).

pub mod accounts;
pub mod agents;
pub mod ai;
pub mod analytics;
pub mod brands;
pub mod carousels;
pub mod clips;
pub mod connect;
pub mod devices;
pub mod error;
pub mod feeds;
pub mod fetch;
pub mod kb;
pub mod media;
pub mod oauth_server;
pub mod personas;
pub mod placement;
pub mod posts;
pub mod quota;
pub mod reach;
pub mod reseal;
pub mod secrets;
pub mod tokens;
pub mod trending;
pub mod users;
pub mod webhook_secrets;
pub mod workspace;

use std::collections::BTreeMap;
use std::sync::Arc;

use crier_core::ids::WorkspaceId;
use crier_core::{Clock, ErrorCode, Plan, Scope, ScopeSet};
use crier_networks::Networks;
use crier_store::Store;
use tokio::sync::Notify;

pub use connect::ConnectConfig;
pub use error::{AppError, AppResult};
pub use reach::{Reach, Restriction};
pub use secrets::Keyring;

pub use crier_core::Tenant;

/// Who is calling: the tenant, the plan it is on, and a name for the record (a key id, a
/// feed id).
#[derive(Debug, Clone)]
pub struct Caller {
    pub tenant: Tenant,
    pub plan: Arc<Plan>,
    /// What the caller may do (a key's scopes; a system actor holds what it acts with).
    pub scopes: ScopeSet,
    pub actor: String,
    /// The brands and accounts a key is limited to (empty: none; system actors are never
    /// limited). [`App::reach`] resolves it; see [`reach`].
    pub restriction: Arc<Restriction>,
}

impl Caller {
    pub fn workspace(&self) -> &WorkspaceId {
        &self.tenant.workspace
    }

    pub fn livemode(&self) -> bool {
        self.tenant.livemode
    }

    /// A caller acting for the system (the publisher, a feed): the whole of its tenant.
    pub fn system(tenant: Tenant, plan: Arc<Plan>, scopes: ScopeSet, actor: String) -> Self {
        Self {
            tenant,
            plan,
            scopes,
            actor,
            restriction: Arc::default(),
        }
    }

    /// Whether the caller is a key limited to some brands or accounts.
    pub fn is_limited(&self) -> bool {
        self.restriction.is_limited()
    }

    /// `403 forbidden_scope` for a limited key: what it asked (`what`: "connect accounts")
    /// would reach beyond its brands and accounts by nature.
    pub fn require_unrestricted(&self, what: &str) -> AppResult<()> {
        if self.is_limited() {
            return Err(AppError::new(
                ErrorCode::ForbiddenScope,
                format!(
                    "This key is limited to some brands or accounts, so it cannot {what}; use a \
                     key without `allowed_brand_ids` and `allowed_account_ids`."
                ),
            ));
        }
        Ok(())
    }

    /// `403 forbidden_scope` unless the caller holds `scope`, `402 payment_required` unless
    /// its plan includes it: the same decision as the HTTP edge's.
    pub fn require(&self, scope: Scope) -> AppResult<()> {
        self.plan
            .allows(self.scopes, scope)
            .map_err(|(code, message)| AppError::new(code, message))
    }
}

/// What the layer works with, composed once by the binary (or a test): storage, the clock, the
/// networks, the plans (the one plan source of the API and the workers) and the publisher's
/// wake signal. Cheap to clone.
#[derive(Clone)]
pub struct App(Arc<Inner>);

struct Inner {
    store: Store,
    clock: Arc<dyn Clock>,
    networks: Networks,
    plans: BTreeMap<String, Arc<Plan>>,
    publish_wake: Arc<Notify>,
    keyring: Keyring,
    connect: ConnectConfig,
    media: media::MediaSettings,
    fetch: fetch::FetchSettings,
    embedder: Option<Arc<dyn crier_ai::Embedder>>,
    engine: Arc<dyn crier_ai::Engine>,
    users: users::UserSettings,
}

impl App {
    /// Plans are keyed by name; each plan's `name` is set to its key.
    pub fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        networks: Networks,
        plans: &BTreeMap<String, Plan>,
        publish_wake: Arc<Notify>,
    ) -> Self {
        let plans = plans
            .iter()
            .map(|(name, p)| {
                let mut p = p.clone();
                p.name = name.clone();
                (name.clone(), Arc::new(p))
            })
            .collect();
        Self(Arc::new(Inner {
            store,
            clock,
            networks,
            plans,
            publish_wake,
            keyring: Keyring::ephemeral(),
            connect: ConnectConfig::default(),
            media: media::MediaSettings::ephemeral(),
            fetch: fetch::FetchSettings::default(),
            embedder: None,
            engine: Arc::new(crier_ai::builtin::Builtin),
            users: users::UserSettings::default(),
        }))
    }

    /// With the keyring that seals secrets at rest (default: a random key of this process,
    /// which is right for tests only). Call while composing, before the app is shared.
    pub fn with_keyring(self, keyring: Keyring) -> Self {
        self.edit(|i| i.keyring = keyring)
    }

    /// With the operator's connection settings (OAuth clients, allowed redirect URIs).
    pub fn with_connect(self, connect: ConnectConfig) -> Self {
        self.edit(|i| i.connect = connect)
    }

    /// With the operator's media settings and storage (default: an ephemeral local store).
    pub fn with_media(self, media: media::MediaSettings) -> Self {
        self.edit(|i| i.media = media)
    }

    /// With the AI engine (default: the built-in one, which needs no model).
    pub fn with_engine(self, engine: Arc<dyn crier_ai::Engine>) -> Self {
        self.edit(|i| i.engine = engine)
    }

    pub fn engine(&self) -> &dyn crier_ai::Engine {
        &*self.0.engine
    }

    pub fn media_settings(&self) -> &media::MediaSettings {
        &self.0.media
    }

    /// With the operator's settings for fetching URLs users name (knowledge-base pages, media
    /// imports; default: public addresses only, a 15-second timeout).
    pub fn with_fetch(self, fetch: fetch::FetchSettings) -> Self {
        self.edit(|i| i.fetch = fetch)
    }

    pub fn fetch_settings(&self) -> &fetch::FetchSettings {
        &self.0.fetch
    }

    /// With an embeddings endpoint: knowledge-base passages are embedded when added and
    /// searches re-ranked by meaning (default: none, text ranking only).
    pub fn with_embedder(self, embedder: Arc<dyn crier_ai::Embedder>) -> Self {
        self.edit(|i| i.embedder = Some(embedder))
    }

    /// The configured embeddings endpoint, if any.
    pub fn embedder(&self) -> Option<&dyn crier_ai::Embedder> {
        self.0.embedder.as_deref()
    }

    fn edit(self, f: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = Arc::try_unwrap(self.0)
            .unwrap_or_else(|_| panic!("App is configured while composing, before it is shared"));
        f(&mut inner);
        Self(Arc::new(inner))
    }

    pub fn keyring(&self) -> &Keyring {
        &self.0.keyring
    }

    pub fn connect_config(&self) -> &ConnectConfig {
        &self.0.connect
    }

    pub fn store(&self) -> &Store {
        &self.0.store
    }

    pub fn clock(&self) -> &dyn Clock {
        &*self.0.clock
    }

    pub fn clock_arc(&self) -> Arc<dyn Clock> {
        self.0.clock.clone()
    }

    pub fn networks(&self) -> &Networks {
        &self.0.networks
    }

    /// The plan called `name`, if the operator configured it.
    pub fn plan(&self, name: &str) -> Option<Arc<Plan>> {
        self.0.plans.get(name).cloned()
    }

    /// Wakes this node's publisher (a post is due now).
    pub fn publish_wake(&self) -> &Arc<Notify> {
        &self.0.publish_wake
    }

    /// The post rules.
    pub fn posts(&self) -> posts::Posts<'_> {
        posts::Posts { app: self }
    }

    /// Posts published and their engagement per day, in the workspace's time zone.
    pub fn analytics(&self) -> analytics::Analytics<'_> {
        analytics::Analytics { app: self }
    }

    /// The account rules.
    pub fn accounts(&self) -> accounts::Accounts<'_> {
        accounts::Accounts { app: self }
    }

    /// The media rules.
    pub fn media(&self) -> media::Media<'_> {
        media::Media { app: self }
    }

    /// Connecting accounts (OAuth, credentials, the sandbox).
    pub fn connections(&self) -> connect::Connections<'_> {
        connect::Connections { app: self }
    }

    /// Accounts' network credentials: opening them, and renewing tokens before they expire.
    pub fn tokens(&self) -> tokens::Tokens<'_> {
        tokens::Tokens { app: self }
    }

    /// The workspace's settings.
    pub fn workspaces(&self) -> workspace::Workspaces<'_> {
        workspace::Workspaces { app: self }
    }

    /// The brand rules: named groups of accounts with their own voice.
    pub fn brands(&self) -> brands::Brands<'_> {
        brands::Brands { app: self }
    }

    /// The owner's part of the brand voices (the workspace's and each brand's).
    pub fn personas(&self) -> personas::Personas<'_> {
        personas::Personas { app: self }
    }

    /// The knowledge base: documents, passages, search.
    pub fn kb(&self) -> kb::Kb<'_> {
        kb::Kb { app: self }
    }

    /// AI content, the persona and AI credits.
    pub fn ai(&self) -> ai::Ai<'_> {
        ai::Ai { app: self }
    }

    /// The agent rules: agents, their schedules and their runs.
    pub fn agents(&self) -> agents::Agents<'_> {
        agents::Agents { app: self }
    }

    /// The carousel rules: slides made, refined, rendered and exported.
    pub fn carousels(&self) -> carousels::Carousels<'_> {
        carousels::Carousels { app: self }
    }

    /// The clip rules: clip jobs cut from videos.
    pub fn clips(&self) -> clips::Clips<'_> {
        clips::Clips { app: self }
    }

    /// The feed rules: what becomes of a feed's new posts.
    pub fn feeds(&self) -> feeds::Feeds<'_> {
        feeds::Feeds { app: self }
    }

    /// Trending topics: the networks' lists merged with the workspace's rising hashtags, and
    /// the refresh of the networks' lists.
    pub fn trending(&self) -> trending::Trending<'_> {
        trending::Trending { app: self }
    }
}

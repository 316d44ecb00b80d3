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
pub mod error;
pub mod feeds;
pub mod posts;
pub mod quota;
pub mod workspace;

use std::collections::BTreeMap;
use std::sync::Arc;

use crier_core::ids::WorkspaceId;
use crier_core::{Clock, Plan, Scope, ScopeSet};
use crier_networks::Networks;
use crier_store::Store;
use tokio::sync::Notify;

pub use error::{AppError, AppResult};

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
}

impl Caller {
    pub fn workspace(&self) -> &WorkspaceId {
        &self.tenant.workspace
    }

    pub fn livemode(&self) -> bool {
        self.tenant.livemode
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
        }))
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

    /// The account rules.
    pub fn accounts(&self) -> accounts::Accounts<'_> {
        accounts::Accounts { app: self }
    }

    /// The workspace's settings.
    pub fn workspaces(&self) -> workspace::Workspaces<'_> {
        workspace::Workspaces { app: self }
    }

    /// The feed rules: what becomes of a feed's new posts.
    pub fn feeds(&self) -> feeds::Feeds<'_> {
        feeds::Feeds { app: self }
    }
}

//! The in-memory key cache: digest -> the key's record with parsed restrictions and its plan.
//!
//! Misses go to storage once; unknown digests are cached too, briefly and boundedly (the
//! checksum is public, so well-formed fakes are cheap to make). Changes invalidate entries at
//! once. An epoch guards against the race where a look-up that started before a revocation
//! fills the cache after it: a fill is only kept if no invalidation happened meanwhile.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::ratelimit::{Bucket, WindowState, windows};
use axum::http::HeaderValue;
use crier_core::ids::UserId;
use crier_core::net::{self, OriginRule};
use crier_core::{KeyDigest, Plan};
use crier_store::KeyRow;

use crate::ttl_cache::TtlCache;
use ipnet::IpNet;

/// A key as the auth layer needs it: the stored row, its restrictions parsed once, its plan.
#[derive(Debug)]
pub struct KeyRecord {
    pub row: KeyRow,
    pub ip_rules: Vec<IpNet>,
    pub origin_rules: Vec<OriginRule>,
    /// The brands and accounts the key is limited to (cached with the row: a change of them
    /// goes through `Store::update_key`, which invalidates the entry on every node).
    pub restriction: Arc<crier_app::Restriction>,
    pub plan: Arc<Plan>,
    /// Set when this record stands for a user's session rather than a stored key: `row` is
    /// then the grant of the user's role (its scopes, the plan's limits, no restrictions), so
    /// the key rules bound what the session may make (see [`KeyRecord::for_session`]).
    pub user: Option<UserId>,
    /// The user's role in the workspace, with `user`.
    pub role: Option<crier_core::Role>,
    /// Whose rate limits a request takes from ([`KeyRecord::buckets`]): the key's (its id, so
    /// an OAuth grant's key keeps its windows when a refresh replaces its secret), or for a
    /// session its user's (every session of a user shares them).
    limiter_key: u64,
    /// The workspace's ceiling in this key's mode, the same on every node.
    workspace_key: u64,
    /// A session's own windows (its user's, [`SESSION_PER_MINUTE`] and [`SESSION_PER_DAY`]
    /// within the plan's), which are not what it may grant a key it makes (the plan's).
    own_limits: Option<(u32, u32)>,
    /// The `RateLimit-Policy` value of its own windows, made on first use.
    policy: OnceLock<HeaderValue>,
    /// What the key did since the last usage flush: shared by every record of the key on this
    /// node, set when the record comes from storage
    /// ([`super::usage::UsageRecorder::counts_for`]). None for a session (sessions are not
    /// keys: no usage counts) and for a record made anywhere else.
    pub(super) counts: Option<Arc<super::usage::KeyCounts>>,
}

/// What a user's sessions together may request per minute and per day, within the plan's
/// ceilings: a person's scripts and CLI cannot take the whole workspace's budget.
pub const SESSION_PER_MINUTE: u32 = 300;
pub const SESSION_PER_DAY: u32 = 50_000;

/// FNV-1a of `parts`: stable across processes and nodes, unlike the std hasher (the shared
/// limiter keys Redis by it).
fn stable_hash(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in parts.iter().flat_map(|p| p.iter()) {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl KeyRecord {
    pub fn new(row: KeyRow, plan: Arc<Plan>) -> Self {
        let ip_rules = row
            .allowed_ips
            .iter()
            .filter_map(|s| net::parse_ip_rule(s))
            .collect();
        let origin_rules = row
            .allowed_origins
            .iter()
            .filter_map(|s| OriginRule::parse(s))
            .collect();
        let restriction = Arc::new(crier_app::Restriction::from_stored(
            &row.allowed_brand_ids,
            &row.allowed_account_ids,
        ));
        Self {
            limiter_key: stable_hash(&[b"key:", row.id.as_str().as_bytes()]),
            workspace_key: stable_hash(&[
                b"workspace:",
                row.workspace_id.as_str().as_bytes(),
                row.mode.as_str().as_bytes(),
            ]),
            row,
            ip_rules,
            origin_rules,
            restriction,
            plan,
            user: None,
            role: None,
            own_limits: None,
            policy: OnceLock::new(),
            counts: None,
        }
    }

    /// What a session of `user` acts with in `ws`: the role's scopes, live mode, the plan's
    /// ceilings, no expiry and no restrictions. Its id (`key_` with the session id's body) is
    /// never a stored key's, so nothing mistakes it for one.
    pub fn for_session(
        session: &crier_store::Session,
        ws: &crier_store::Workspace,
        role: crier_core::Role,
        plan: Arc<Plan>,
    ) -> Self {
        let body = &session.id.as_str()["ses_".len()..];
        let id = crier_core::ids::KeyId::from_trusted(format!("key_{body}"));
        let own = (
            SESSION_PER_MINUTE.min(plan.per_minute),
            SESSION_PER_DAY.min(plan.per_day),
        );
        Self {
            own_limits: Some(own),
            ..Self::for_user(&session.user_id, id, ws, role, plan, session.created_at)
        }
    }

    /// What `user` may grant in `ws` with `role` (as [`KeyRecord::for_session`]), under the
    /// made-up key id `id`.
    pub fn for_user(
        user: &UserId,
        id: crier_core::ids::KeyId,
        ws: &crier_store::Workspace,
        role: crier_core::Role,
        plan: Arc<Plan>,
        now: i64,
    ) -> Self {
        let row = KeyRow {
            id,
            workspace_id: ws.id.clone(),
            name: "session".into(),
            description: String::new(),
            prefix: String::new(),
            digest: crier_core::KeyDigest([0; 32]),
            mode: crier_core::KeyMode::Live,
            scopes: role.scopes(),
            per_minute: plan.per_minute,
            per_day: plan.per_day,
            allowed_ips: Vec::new(),
            allowed_origins: Vec::new(),
            allowed_brand_ids: Vec::new(),
            allowed_account_ids: Vec::new(),
            expires_at: None,
            last_used_at: None,
            request_count: 0,
            created_at: now,
            updated_at: now,
            revoked_at: None,
            replaced_by: None,
            created_by: None,
            member_id: None,
        };
        Self {
            user: Some(user.clone()),
            role: Some(role),
            limiter_key: stable_hash(&[b"user:", user.as_str().as_bytes()]),
            ..Self::new(row, plan)
        }
    }

    /// The member whose keys alone this record sees and manages: a member's session (or
    /// what their device login or app is granted), or a key bounded to a member
    /// (`member_id`); `None` for owners, admins and the workspace's other keys.
    pub fn member(&self) -> Option<&UserId> {
        match self.role {
            Some(role) if !role.administers() => self.user.as_ref(),
            Some(_) => None,
            None => self.row.member_id.as_ref(),
        }
    }

    pub fn ip_allowed(&self, ip: Option<IpAddr>) -> bool {
        match ip {
            Some(ip) => net::ip_allowed(&self.ip_rules, ip),
            // Without a known peer, only an unrestricted key may pass.
            None => self.ip_rules.is_empty(),
        }
    }

    /// The key's effective limits: its own, capped by its plan's ceilings.
    pub fn limits(&self) -> (u32, u32) {
        (
            self.row.per_minute.min(self.plan.per_minute),
            self.row.per_day.min(self.plan.per_day),
        )
    }

    /// The `RateLimit-Policy` value for a decision's `windows`: made once for the record's own
    /// windows (what its decisions show), afresh for any other.
    pub fn policy_header(&self, windows: &[WindowState; 2]) -> HeaderValue {
        let own = self.buckets()[0].windows;
        if windows.iter().map(|w| w.window).eq(own) {
            return self
                .policy
                .get_or_init(|| super::policy_value(windows))
                .clone();
        }
        super::policy_value(windows)
    }

    /// What one request by this key is decided against: its own limits (a session's are its
    /// user's, shared by all their sessions: [`SESSION_PER_MINUTE`], [`SESSION_PER_DAY`]), then its workspace's ceiling in its mode, the
    /// plan's limits across all the workspace's keys and sessions together, so many keys
    /// cannot multiply the plan.
    pub fn buckets(&self) -> [Bucket; 2] {
        let (per_minute, per_day) = self.own_limits.unwrap_or_else(|| self.limits());
        [
            Bucket {
                key: self.limiter_key,
                windows: windows(per_minute, per_day),
            },
            Bucket {
                key: self.workspace_key,
                windows: windows(self.plan.per_minute, self.plan.per_day),
            },
        ]
    }
}

pub enum Lookup {
    Found(Arc<KeyRecord>),
    Unknown,
    Miss,
}

pub struct KeyCache {
    known: TtlCache<KeyDigest, Arc<KeyRecord>>,
    unknown: TtlCache<KeyDigest, ()>,
    epoch: AtomicU64,
}

impl KeyCache {
    pub fn new(ttl: Duration, unknown_ttl: Duration) -> Self {
        Self {
            known: TtlCache::new(200_000, ttl),
            unknown: TtlCache::new(50_000, unknown_ttl),
            epoch: AtomicU64::new(0),
        }
    }

    pub fn get(&self, digest: &KeyDigest) -> Lookup {
        if let Some(rec) = self.known.get(digest) {
            return Lookup::Found(rec);
        }
        if self.unknown.contains_key(digest) {
            return Lookup::Unknown;
        }
        Lookup::Miss
    }

    /// Take before reading storage; pass to [`KeyCache::fill`].
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    pub fn fill(&self, epoch: u64, digest: KeyDigest, record: Option<Arc<KeyRecord>>) {
        if self.epoch.load(Ordering::Acquire) != epoch {
            return;
        }
        match record {
            Some(r) => self.known.insert(digest, r),
            None => self.unknown.insert(digest, ()),
        }
        // An invalidation that raced with the insert wins: undo if the epoch moved.
        if self.epoch.load(Ordering::Acquire) != epoch {
            self.known.invalidate(&digest);
            self.unknown.invalidate(&digest);
        }
    }

    pub fn invalidate(&self, digest: &KeyDigest) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.known.invalidate(digest);
        self.unknown.invalidate(digest);
    }

    /// Drops expired entries; call on a timer.
    pub fn prune(&self) {
        self.known.prune();
        self.unknown.prune();
    }

    pub fn invalidate_all(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.known.invalidate_all();
        self.unknown.invalidate_all();
    }
}

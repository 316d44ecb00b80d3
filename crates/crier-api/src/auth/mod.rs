//! Authentication: one layer turns `Authorization: Bearer` or `X-API-Key` into a [`Principal`]
//! (workspace, key, scopes, mode, plan), and each handler states the scope it needs in its
//! signature with [`Auth<need::X>`].
//!
//! The order of checks, cheapest first: header shape; key shape and CRC32 (no I/O); SHA-256 and
//! the in-memory cache (storage only on a miss); revoked and expired; IP and origin
//! restrictions; the key's rate limits. Then the handler's scope check (403) and the plan's
//! paid-scope check (402).
//!
//! Failed authentications are counted per client address (a failure is a malformed key, or a
//! digest that storage, or the cache of its earlier answers, does not know; or a revoked or
//! expired key). An address over its limit gets `429` instead of `401` for its failures, but
//! a valid key is never refused by the throttle: its look-up always happens. What keeps such an
//! address from hammering storage with fresh made-up keys is that all throttled addresses
//! together have [`THROTTLED_LOOKUPS`] look-ups in flight at most; the rest wait their turn
//! (their number is bounded by the server's connection cap). Digests found unknown are cached
//! briefly, so a repeated fake costs no look-up at all.

pub mod browsers;
pub mod cache;
pub mod leases;
pub mod ratelimit;
pub mod usage;

use std::hash::{BuildHasher, RandomState};
use std::marker::PhantomData;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use crier_core::keys::check_format;
use crier_core::{ErrorCode, KeyDigest, KeyMode, Plan, Scope, ScopeSet, SecretKey};
use crier_store::Store;
use ipnet::IpNet;

use self::cache::{KeyCache, KeyRecord, Lookup};
pub use self::ratelimit::OnRedisError;
use self::ratelimit::{Decision, Gcra, RateLimiter, Window, ceil_div_1000};
use self::usage::UsageRecorder;
use crate::AppState;
use crate::error::ApiError;

/// Who is calling: the verified key, its workspace and plan.
#[derive(Debug, Clone)]
pub struct Principal {
    pub key: Arc<KeyRecord>,
    /// Collects the scopes this request's handler required (its route's and any it checks
    /// itself), for the idempotency layer to require again before it replays the response.
    /// Only that layer sets it, so other requests allocate nothing.
    pub(crate) required: Option<Arc<std::sync::Mutex<ScopeSet>>>,
}

impl Principal {
    pub fn workspace_id(&self) -> &crier_core::ids::WorkspaceId {
        &self.key.row.workspace_id
    }

    pub fn key_id(&self) -> &crier_core::ids::KeyId {
        &self.key.row.id
    }

    /// Who acts, for the audit log: the key, or the user of a session.
    pub fn actor(&self) -> crier_store::Actor {
        match &self.key.user {
            Some(u) => crier_store::Actor::User(u.clone()),
            None => crier_store::Actor::Key(self.key_id().clone()),
        }
    }

    /// The user when this principal is a session (`None` for an API key).
    pub fn user(&self) -> Option<&crier_core::ids::UserId> {
        self.key.user.as_ref()
    }

    /// The member (not an owner or admin) whose keys alone this principal sees and manages:
    /// a member's session, or a key bounded to a member (made by one, see
    /// [`KeyRecord::member`]); `None` for owners' and admins' sessions and other keys.
    pub fn member(&self) -> Option<&crier_core::ids::UserId> {
        self.key.member()
    }

    /// The id a key made by this principal records as its maker (none for a session).
    pub fn maker_key(&self) -> Option<crier_core::ids::KeyId> {
        self.key.user.is_none().then(|| self.key_id().clone())
    }

    pub fn scopes(&self) -> ScopeSet {
        self.key.row.scopes
    }

    pub fn mode(&self) -> KeyMode {
        self.key.row.mode
    }

    /// Whether this key acts on live data (test-mode keys see only test-mode data).
    pub fn livemode(&self) -> bool {
        self.key.row.mode == KeyMode::Live
    }

    pub fn plan(&self) -> &Plan {
        &self.key.plan
    }

    /// The caller as the application layer sees it: this key's workspace and mode, its
    /// workspace's plan, and the key as the actor on record.
    pub fn caller(&self) -> crier_app::Caller {
        crier_app::Caller {
            tenant: crier_app::Tenant {
                workspace: self.workspace_id().clone(),
                livemode: self.livemode(),
            },
            plan: self.key.plan.clone(),
            scopes: self.scopes(),
            actor: match &self.key.user {
                Some(u) => u.to_string(),
                None => self.key_id().to_string(),
            },
            restriction: self.key.restriction.clone(),
        }
    }

    pub fn new(key: Arc<KeyRecord>) -> Self {
        Self {
            key,
            required: None,
        }
    }

    /// This principal, recording from now on every scope it is required to hold.
    pub(crate) fn recording(&self) -> Self {
        Self {
            key: self.key.clone(),
            required: Some(Arc::default()),
        }
    }

    /// The scopes required of it so far (empty unless it was [`Principal::recording`]).
    pub(crate) fn required(&self) -> ScopeSet {
        self.required
            .as_ref()
            .map(|r| *r.lock().unwrap_or_else(|e| e.into_inner()))
            .unwrap_or(ScopeSet::EMPTY)
    }

    /// The access decision: the key must hold `scope` (403), and the plan must include it
    /// when it is a paid scope (402).
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if let Some(r) = &self.required {
            r.lock().unwrap_or_else(|e| e.into_inner()).insert(scope);
        }
        self.plan()
            .allows(self.scopes(), scope)
            .map_err(|(code, message)| ApiError::new(code, message))
    }
}

/// The key as presented, kept for the idempotency layer (which derives its encryption key
/// from it). Redacted in `Debug`.
#[derive(Debug, Clone)]
pub struct PresentedKey(pub SecretKey);

/// A scope a route needs; `None` means any valid key.
pub trait RequiredScope: Send + Sync + 'static {
    const SCOPE: Option<Scope>;
}

/// The extractor a handler names to get the principal and declare its scope in one place.
pub struct Auth<S: RequiredScope>(pub Principal, pub PhantomData<S>);

impl<S: RequiredScope> Auth<S> {
    /// The principal as a handler's argument, after the scope check the extractor makes:
    /// how the dashboard calls the API's handlers with a session's principal.
    pub fn of(principal: Principal) -> Result<Self, ApiError> {
        if let Some(scope) = S::SCOPE {
            principal.require(scope)?;
        }
        Ok(Auth(principal, PhantomData))
    }
}

impl<S: RequiredScope, St: Send + Sync> FromRequestParts<St> for Auth<S> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &St) -> Result<Self, Self::Rejection> {
        let principal = parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or_else(|| ApiError::unauthorized("No API key provided."))?;
        Self::of(principal)
    }
}

/// Marker types, one per scope, for [`Auth`].
pub mod need {
    use super::{RequiredScope, Scope};

    macro_rules! markers {
        ($($name:ident => $scope:ident),* $(,)?) => {$(
            pub struct $name;
            impl RequiredScope for $name {
                const SCOPE: Option<Scope> = Some(Scope::$scope);
            }
        )*};
    }

    markers! {
        PostsRead => PostsRead,
        PostsWrite => PostsWrite,
        PostsDelete => PostsDelete,
        PostsPublish => PostsPublish,
        PostsApprove => PostsApprove,
        AccountsRead => AccountsRead,
        AccountsWrite => AccountsWrite,
        AnalyticsRead => AnalyticsRead,
        QueueRead => QueueRead,
        QueueWrite => QueueWrite,
        MediaRead => MediaRead,
        MediaWrite => MediaWrite,
        FeedsRead => FeedsRead,
        FeedsWrite => FeedsWrite,
        WebhooksRead => WebhooksRead,
        WebhooksWrite => WebhooksWrite,
        AiGenerate => AiGenerate,
        BrandsRead => BrandsRead,
        BrandsWrite => BrandsWrite,
        KbRead => KbRead,
        KbWrite => KbWrite,
        AgentsRead => AgentsRead,
        AgentsWrite => AgentsWrite,
        CarouselsRead => CarouselsRead,
        CarouselsWrite => CarouselsWrite,
        ClipsRead => ClipsRead,
        ClipsWrite => ClipsWrite,
        KeysRead => KeysRead,
        KeysWrite => KeysWrite,
        WorkspaceWrite => WorkspaceWrite,
    }

    /// Any valid key, whatever its scopes.
    pub struct AnyKey;
    impl RequiredScope for AnyKey {
        const SCOPE: Option<Scope> = None;
    }
}

#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub trusted_proxies: Vec<IpNet>,
    /// Failed authentications a client address may make per minute before it is throttled.
    pub failures_per_minute: u32,
    pub cache_ttl: Duration,
    pub unknown_key_ttl: Duration,
    /// Rate limits shared by every node through Redis (`redis_url`); `None`: this node's own.
    pub shared_limits: Option<SharedLimits>,
}

/// Rate limits decided in Redis (see [`ratelimit`]).
#[derive(Debug, Clone)]
pub struct SharedLimits {
    pub redis_url: String,
    pub on_error: OnRedisError,
}

impl SharedLimits {
    /// Whether `url` is a Redis URL the limiter can use (checked when the configuration loads).
    pub fn check_url(url: &str) -> Result<(), String> {
        redis::Client::open(url)
            .map(|_| ())
            .map_err(|e| format!("redis_url: {e}"))
    }
}

/// How many client addresses the failed-auth throttle tracks at most (about 40 bytes each).
/// When the table is full and holds no idle address, a new address is treated as throttled
/// (see [`Gcra`]): its failures answer 429 and its look-ups take their turn. Valid keys still
/// pass, so filling the table costs nobody access; evicting instead would let an attacker with
/// many addresses erase the state of the addresses being throttled.
const FAILURE_ADDRESSES: usize = 65_536;

/// Failed logins an account may take: 5 a minute, 50 a day (whoever tries them); past them its
/// logins answer `429` until the budget refills, even with the right password. A browser that
/// signed in to the account before has a budget of its own, the same ([`browsers`]).
const LOGIN_WINDOWS: [Window; 2] = [
    Window {
        name: "minute",
        limit: 5,
        seconds: 60,
    },
    Window {
        name: "day",
        limit: 50,
        seconds: 86_400,
    },
];

/// Accounts the login throttle tracks at most. Anyone can name an account (a made-up email
/// costs nothing), so when the table is full the account that spent least makes room
/// ([`Gcra::evicting`]): refusing new accounts instead let a few dozen addresses sending
/// made-up emails refuse every user's sign-in, while an account being guessed at keeps its
/// count through any flood of single attempts.
const LOGIN_ACCOUNTS: usize = 65_536;

/// Storage look-ups in flight at once on behalf of all throttled addresses together.
pub const THROTTLED_LOOKUPS: usize = 4;

/// The verified outcome of one request's credentials.
pub struct Verified {
    pub principal: Principal,
    pub decision: Decision,
    /// The session, when the credential was a session token.
    pub session: Option<crier_app::users::ActiveSession>,
}

/// Everything authentication needs, shared by all requests.
pub struct Authenticator {
    pub config: AuthConfig,
    pub cache: KeyCache,
    pub limiter: RateLimiter,
    failures: Gcra,
    /// Failed logins per account, from browsers it does not know (see [`LOGIN_WINDOWS`]).
    logins: Gcra,
    /// Failed logins per browser that signed in before ([`browsers`]), by its id.
    browser_logins: Gcra,
    /// Device logins and OAuth clients an address started (see [`start_windows`]).
    starts: Gcra,
    /// Keys the failure table by client address; seeded per process, so nobody can choose
    /// addresses that all land in one shard of the table.
    ip_hasher: RandomState,
    throttled_lookups: tokio::sync::Semaphore,
    pub usage: UsageRecorder,
}

fn failure_windows(per_minute: u32) -> [Window; 2] {
    [
        Window {
            name: "minute",
            limit: per_minute,
            seconds: 60,
        },
        Window {
            name: "day",
            limit: u32::MAX,
            seconds: 86_400,
        },
    ]
}

/// Device logins and OAuth client registrations an address may start in 15 minutes (the time
/// a login waits for approval, about the time a person takes to consent): a third of its
/// minute budget of failed authentications, 10 by default. Each stores a row that waits, in
/// tables capped across the install ([`crier_app::devices::MAX_OPEN`] device logins,
/// [`crier_app::oauth_server::MAX_CLIENTS`] clients, the oldest unused making room): at 30 a
/// minute, 23 addresses kept the device logins full and refused everyone's `crier login`, and
/// a /56 turned the clients over in under two minutes; at 10 in 15 minutes it takes 1,000
/// addresses, and a /56 takes an hour.
fn start_windows(per_minute: u32) -> [Window; 2] {
    [
        Window {
            name: "minute",
            limit: (per_minute / 3).max(1),
            seconds: 900,
        },
        Window {
            name: "day",
            limit: u32::MAX,
            seconds: 86_400,
        },
    ]
}

/// Why an authentication failed, as counted in the metrics.
fn refuse(reason: &'static str) -> (ApiError, &'static str) {
    let message = match reason {
        "missing" => {
            "No API key provided. Send it as `Authorization: Bearer <key>` or `X-API-Key: <key>`."
        }
        "revoked" => "This API key has been revoked.",
        "expired" => "This API key has expired.",
        _ => "Invalid API key.",
    };
    (ApiError::unauthorized(message), reason)
}

impl Authenticator {
    pub fn new(config: AuthConfig) -> Self {
        Self {
            cache: KeyCache::new(config.cache_ttl, config.unknown_key_ttl),
            limiter: match &config.shared_limits {
                None => RateLimiter::local(),
                Some(shared) => RateLimiter::Redis(Box::new(
                    ratelimit::RedisLimiter::new(&shared.redis_url, shared.on_error)
                        .expect("redis_url is checked when the configuration loads"),
                )),
            },
            failures: Gcra::bounded(FAILURE_ADDRESSES),
            logins: Gcra::evicting(LOGIN_ACCOUNTS),
            browser_logins: Gcra::evicting(LOGIN_ACCOUNTS),
            starts: Gcra::bounded(FAILURE_ADDRESSES),
            ip_hasher: RandomState::new(),
            throttled_lookups: tokio::sync::Semaphore::new(THROTTLED_LOOKUPS),
            usage: UsageRecorder::default(),
            config,
        }
    }

    /// The address a budget of failed authentications belongs to: an IPv6 address's /64 (one
    /// host or home is handed a whole /64, so its addresses are one client's, not 2^64 budgets
    /// of their own), an IPv4 address (also as IPv4-mapped IPv6) whole.
    fn ip_key(&self, ip: Option<IpAddr>) -> u64 {
        self.ip_hasher
            .hash_one(ip.map(crier_core::net::client_block))
    }

    /// Drops rate-limit and failure state that no longer limits anyone, and expired cached
    /// keys; call on a timer.
    pub fn prune(&self, now_ms: i64) {
        self.limiter.prune(now_ms);
        self.cache.prune();
        self.failures.prune(now_ms * 1000);
        self.logins.prune(now_ms * 1000);
        self.browser_logins.prune(now_ms * 1000);
        self.starts.prune(now_ms * 1000);
    }

    /// Verifies a presented key for a request from `ip` with `origin`, and takes one request
    /// from its rate limits. On failure returns the error and, for 401s, the reason.
    pub async fn verify(
        &self,
        store: &Store,
        plans: &(dyn Fn(&str) -> Option<Arc<Plan>> + Sync),
        presented: &str,
        ip: Option<IpAddr>,
        origin: Option<&str>,
        now_ms: i64,
    ) -> Result<Verified, (ApiError, Option<&'static str>)> {
        let now_us = now_ms * 1000;
        if check_format(presented).is_err() {
            return Err(self.failed(ip, now_us, refuse("malformed")));
        }
        let digest = KeyDigest::of(presented);
        let record = match self.cache.get(&digest) {
            Lookup::Found(r) => r,
            Lookup::Unknown => return Err(self.failed(ip, now_us, refuse("unknown"))),
            Lookup::Miss => {
                // Asked only on a miss: a cached key never waits on the throttle's lock.
                let windows = failure_windows(self.config.failures_per_minute);
                let throttled = self.failures.would_refuse(self.ip_key(ip), windows, now_us);
                let _turn = match throttled {
                    true => Some(
                        self.throttled_lookups
                            .acquire()
                            .await
                            .expect("the semaphore is never closed"),
                    ),
                    false => None,
                };
                let epoch = self.cache.epoch();
                let found = store
                    .key_by_digest(&digest)
                    .await
                    .map_err(|e| (ApiError::from(e), None))?;
                let record = found.and_then(|k| {
                    let plan = plans(&k.plan)?;
                    let mut record = KeyRecord::new(k.key, plan);
                    record.counts = Some(
                        self.usage
                            .counts_for(&record.row.id, &record.row.workspace_id),
                    );
                    Some(Arc::new(record))
                });
                self.cache.fill(epoch, digest, record.clone());
                match record {
                    Some(r) => r,
                    None => return Err(self.failed(ip, now_us, refuse("unknown"))),
                }
            }
        };
        let row = &record.row;
        if row.revoked_at.is_some() {
            return Err(self.failed(ip, now_us, refuse("revoked")));
        }
        if row.expires_at.is_some_and(|t| t <= now_ms) {
            return Err(self.failed(ip, now_us, refuse("expired")));
        }
        if !record.ip_allowed(ip) {
            let shown = ip
                .map(|i| i.to_string())
                .unwrap_or_else(|| "unknown".into());
            return Err((
                ApiError::new(
                    ErrorCode::IpNotAllowed,
                    format!("This key may not be used from {shown}."),
                ),
                None,
            ));
        }
        if !crier_core::net::origin_allowed(&record.origin_rules, origin) {
            return Err((
                ApiError::new(
                    ErrorCode::OriginNotAllowed,
                    "This key may not be used from this origin.",
                ),
                None,
            ));
        }
        let decision = self.limiter.check(&record.buckets(), now_ms).await;
        if decision.allowed {
            self.usage.record(&record, now_ms);
        }
        Ok(Verified {
            principal: Principal::new(record),
            decision,
            session: None,
        })
    }

    /// Verifies a session token (`sess_…`) for a request from `ip` that names `workspace`
    /// (the `Crier-Workspace` header; default: the user's first), and takes one request from
    /// the session's rate limits (the plan's ceilings). A session is read from storage on
    /// every request, so logout and "log out everywhere" hold at once on every node.
    pub async fn verify_session(
        &self,
        app: &crier_app::App,
        token: &str,
        workspace: Option<&str>,
        ip: Option<IpAddr>,
        now_ms: i64,
    ) -> Result<Verified, (ApiError, Option<&'static str>)> {
        let now_us = now_ms * 1000;
        let users = app.users();
        let active = match users.session(token).await {
            Ok(Some(s)) => s,
            Ok(None) => {
                let err = ApiError::unauthorized(
                    "This session is invalid, has expired or has ended; sign in again.",
                );
                return Err(self.failed(ip, now_us, (err, "session")));
            }
            Err(e) => return Err((e.into(), None)),
        };
        let seat = users
            .seat(&active.user.id, workspace)
            .await
            .map_err(|e| (ApiError::from(e), None))?;
        let plan = app.plan(&seat.workspace.plan).ok_or_else(|| {
            (
                ApiError::internal("the workspace's plan is not configured"),
                None,
            )
        })?;
        let record = Arc::new(KeyRecord::for_session(
            &active.session,
            &seat.workspace,
            seat.role,
            plan,
        ));
        let decision = self.limiter.check(&record.buckets(), now_ms).await;
        Ok(Verified {
            principal: Principal::new(record),
            decision,
            session: Some(active),
        })
    }

    /// Takes one login attempt for `account` (a hash of the email) from `ip`, or refuses it:
    /// every attempt, right or wrong, spends one unit of the address's budget of failed
    /// authentications and one of a login budget ([`LOGIN_WINDOWS`]): the browser's own when
    /// it presents the id of a browser that signed in to the account before (`browser`, from
    /// [`browsers::open`]), the account's otherwise. Spending before the password is checked
    /// is what keeps concurrent attempts from outrunning the budget (a check, then a count
    /// after the slow hash, would let a burst all pass).
    pub fn take_login(
        &self,
        ip: Option<IpAddr>,
        account: u64,
        browser: Option<[u8; 16]>,
        now_ms: i64,
    ) -> bool {
        // The address first: an address past its budget spends no account's, so one address
        // cannot churn the account table with made-up emails. An account past its budget
        // still spends the address's, so a burst against one account from one address holds
        // it.
        if !self.take_address(ip, now_ms) {
            return false;
        }
        let (table, key) = match browser {
            Some(id) => (&self.browser_logins, self.ip_hasher.hash_one(id)),
            None => (&self.logins, account),
        };
        table.check(key, LOGIN_WINDOWS, now_ms * 1000).allowed
    }

    /// Takes one unit of `ip`'s budget of failed authentications for an unauthenticated
    /// request that costs the server (a sign-up, a device login), or refuses it.
    pub fn take_address(&self, ip: Option<IpAddr>, now_ms: i64) -> bool {
        self.failures
            .check(
                self.ip_key(ip),
                failure_windows(self.config.failures_per_minute),
                now_ms * 1000,
            )
            .allowed
    }

    /// Takes one of `ip`'s starts of a device login or an OAuth client ([`start_windows`]),
    /// or refuses it.
    pub fn take_start(&self, ip: Option<IpAddr>, now_ms: i64) -> bool {
        self.starts
            .check(
                self.ip_key(ip),
                start_windows(self.config.failures_per_minute),
                now_ms * 1000,
            )
            .allowed
    }

    /// Seconds until an address past its starts has one again: 15 minutes ÷ its starts.
    pub fn start_retry_after(&self) -> u32 {
        let [w, _] = start_windows(self.config.failures_per_minute);
        (w.seconds / w.limit).max(1)
    }

    /// Whether `ip` is over its budget of failed authentications now (nothing is spent).
    pub fn address_throttled(&self, ip: Option<IpAddr>, now_ms: i64) -> bool {
        self.failures.would_refuse(
            self.ip_key(ip),
            failure_windows(self.config.failures_per_minute),
            now_ms * 1000,
        )
    }

    /// The throttle key of an account: its email's normalised form, hashed with this
    /// process's seed.
    pub fn account_key(&self, email: &str) -> u64 {
        self.ip_hasher
            .hash_one(crier_store::users::email_key(email))
    }

    /// Counts a failed authentication from `ip`; an address over its limit is answered 429
    /// instead of the failure's own error.
    fn failed(
        &self,
        ip: Option<IpAddr>,
        now_us: i64,
        (err, reason): (ApiError, &'static str),
    ) -> (ApiError, Option<&'static str>) {
        let windows = failure_windows(self.config.failures_per_minute);
        if self
            .failures
            .check(self.ip_key(ip), windows, now_us)
            .allowed
        {
            return (err, Some(reason));
        }
        (
            ApiError::new(
                ErrorCode::RateLimited,
                "Too many failed authentications from this address; slow down.",
            )
            .with_header(header::RETRY_AFTER, HeaderValue::from_static("60")),
            Some("throttled"),
        )
    }
}

/// The key a request presents: `Authorization: Bearer`, or `X-API-Key`; both must agree.
fn presented_key(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let bearer = match headers.get(header::AUTHORIZATION) {
        None => None,
        Some(v) => {
            let v = v.to_str().unwrap_or("");
            match v.split_once(' ') {
                Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
                    Some(token.trim())
                }
                _ => {
                    return Err(ApiError::unauthorized(
                        "Unsupported Authorization header. Send `Authorization: Bearer <key>`.",
                    ));
                }
            }
        }
    };
    let header_key = headers
        .get("x-api-key")
        .map(|v| v.to_str().unwrap_or("").trim());
    match (bearer, header_key) {
        (Some(a), Some(b)) if a != b => Err(ApiError::invalid(
            "X-API-Key",
            "`Authorization` and `X-API-Key` carry different keys; send one.",
        )),
        (a, b) => Ok(a.or(b)),
    }
}

/// The client's address: the socket peer, or past trusted proxies in `X-Forwarded-For`.
pub fn client_ip(req: &Request, trusted: &[IpNet]) -> Option<IpAddr> {
    client_ip_of(req.extensions(), req.headers(), trusted)
}

fn client_ip_of(
    extensions: &axum::http::Extensions,
    headers: &HeaderMap,
    trusted: &[IpNet],
) -> Option<IpAddr> {
    let peer = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())?;
    Some(crier_core::net::client_ip(
        peer,
        forwarded_for(headers).as_deref(),
        trusted,
    ))
}

/// The client's address as a handler argument (see [`client_ip`]).
pub struct ClientIp(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(client_ip_of(
            &parts.extensions,
            &parts.headers,
            &state.auth().config.trusted_proxies,
        )))
    }
}

/// Every `X-Forwarded-For` line, in order, as one comma-separated list (RFC 9110 §5.3: several
/// lines of a list header are one list). Reading only the first line would let a client put its
/// own line first and have a proxy that appends a second line vouch for it. A line that is not
/// text becomes an entry that does not parse, so the walk from the right stops there.
fn forwarded_for(headers: &HeaderMap) -> Option<String> {
    let mut lines = headers.get_all("x-forwarded-for").iter().peekable();
    lines.peek()?;
    Some(
        lines
            .map(|v| v.to_str().unwrap_or("?"))
            .collect::<Vec<_>>()
            .join(","),
    )
}

/// The workspace a session acts in (`ws_…`; default: the user's first).
pub const WORKSPACE_HEADER: &str = "crier-workspace";

/// The auth layer of a route that needs a key or a session (`/mcp`): [`admit`], then the
/// route. The `/v1` routes have this in their one layer with idempotency
/// (`routes::gate`).
pub async fn authenticate(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = crate::context::matched_route(&req);
    let resp = match admit(&state, req).await {
        Ok((req, headers)) => with_headers(next.run(req).await, headers),
        Err(refused) => refused,
    };
    crate::context::with_route(resp, route)
}

/// `headers` (the rate-limit headers [`admit`] gave) added to `resp`, with room for the
/// three the outer layers add (`Vary`, `Access-Control-Expose-Headers`, `X-Request-Id`), so
/// the map grows once rather than twice.
pub fn with_headers(mut resp: Response, headers: Vec<(HeaderName, HeaderValue)>) -> Response {
    let map = resp.headers_mut();
    map.reserve(headers.len() + 3);
    map.extend(headers);
    resp
}

/// Authenticates `req` (an API key or a session), checks its IP, origin and rate limits: the
/// request with its [`Principal`] and the rate-limit headers its answer carries, or the
/// refusal (a `401` says where to learn how to get a token).
pub async fn admit(
    state: &AppState,
    mut req: Request,
) -> Result<(Request, Vec<(HeaderName, HeaderValue)>), Response> {
    let auth = state.auth();
    // A `401` says where to learn how to get a token (RFC 9728 §5.1), so an MCP client can
    // start signing in from nothing.
    let deny = |err: ApiError, path: &str| {
        let mut resp = err.into_response();
        if resp.status() == axum::http::StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                crate::routes::oauth_server::challenge(&state.config().public_url, path),
            );
        }
        resp
    };
    let key = match presented_key(req.headers()) {
        Ok(Some(k)) => k.to_owned(),
        Ok(None) => {
            state.metrics().auth_failure("missing");
            return Err(deny(refuse("missing").0, req.uri().path()));
        }
        Err(e) => {
            state.metrics().auth_failure("malformed");
            return Err(deny(e, req.uri().path()));
        }
    };
    let ip = client_ip(&req, &auth.config.trusted_proxies);
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .map(|v| v.to_str().unwrap_or("\u{0}").to_owned());
    let now_ms = state.clock().now_ms();
    let plans = |name: &str| state.plan(name);
    let verified = if key.starts_with(crier_app::users::SESSION_PREFIX) {
        let workspace = req
            .headers()
            .get(WORKSPACE_HEADER)
            .map(|v| v.to_str().unwrap_or("\u{0}").to_owned());
        auth.verify_session(state.app(), &key, workspace.as_deref(), ip, now_ms)
            .await
    } else {
        auth.verify(state.store(), &plans, &key, ip, origin.as_deref(), now_ms)
            .await
    };
    let Verified {
        principal,
        decision,
        session,
    } = match verified {
        Ok(v) => v,
        Err((err, reason)) => {
            if let Some(reason) = reason {
                state.metrics().auth_failure(reason);
            }
            return Err(deny(err, req.uri().path()));
        }
    };
    // From here on the request is authenticated (even if its rate limit refuses it): it
    // counts in its key's daily usage and the request log when its response is known.
    crate::context::note_caller(&principal.key);
    let headers = rate_limit_headers(&decision, now_ms, &principal.key);
    if !decision.allowed {
        let window = decision.refused_by.unwrap_or("minute");
        let retry = ceil_div_1000(decision.retry_after_ms).max(1);
        let mut err = if decision.unavailable {
            state.metrics().rate_limited("unavailable");
            ApiError::new(
                ErrorCode::UpstreamUnavailable,
                format!(
                    "Rate limits cannot be checked right now (the shared limiter is \
                     unavailable). Retry after {retry} s."
                ),
            )
        } else if decision.by_workspace {
            state.metrics().rate_limited(match window {
                "day" => "workspace_day",
                _ => "workspace_minute",
            });
            ApiError::new(
                ErrorCode::RateLimited,
                format!(
                    "This workspace's keys together made too many requests (the plan's \
                     per-{window} limit across all keys). Retry after {retry} s."
                ),
            )
        } else {
            state.metrics().rate_limited(window);
            let who = match principal.user() {
                Some(_) => "Your sessions together made too many requests (the per-user",
                None => "This key made too many requests (its",
            };
            ApiError::new(
                ErrorCode::RateLimited,
                format!("{who} per-{window} limit). Retry after {retry} s."),
            )
        }
        .with_header(header::RETRY_AFTER, HeaderValue::from(retry));
        err.headers.extend(headers);
        return Err(err.into_response());
    }
    // Only the idempotency layer reads the presented key (to seal the stored response).
    if crate::idempotency::applies(req.method(), req.headers())
        && let Ok(secret) = SecretKey::parse(&key)
    {
        req.extensions_mut().insert(PresentedKey(secret));
    }
    if let Some(session) = session {
        req.extensions_mut().insert(session);
    }
    req.extensions_mut().insert(principal);
    Ok((req, headers))
}

/// `X-RateLimit-*` for the window closest to running out, and the IETF draft's
/// `RateLimit-Policy` and `RateLimit` for both windows. `record` is the caller's: its policy is
/// made once, not on every response.
pub fn rate_limit_headers(
    d: &Decision,
    now_ms: i64,
    record: &KeyRecord,
) -> Vec<(HeaderName, HeaderValue)> {
    let t = d.tightest();
    let reset_unix = ceil_div_1000(now_ms + t.reset_ms);
    // `"minute";r=R;t=T, "day";r=R;t=T`, on every authenticated response: written into the
    // one buffer the header then owns, without the formatting machinery.
    let mut digits = itoa::Buffer::new();
    let mut current = Vec::with_capacity(64);
    for (i, w) in d.windows.iter().enumerate() {
        if i > 0 {
            current.extend_from_slice(b", ");
        }
        current.push(b'"');
        current.extend_from_slice(w.window.name.as_bytes());
        current.extend_from_slice(b"\";r=");
        current.extend_from_slice(digits.format(w.remaining).as_bytes());
        current.extend_from_slice(b";t=");
        current.extend_from_slice(digits.format(ceil_div_1000(w.reset_ms)).as_bytes());
    }
    let current =
        HeaderValue::from_maybe_shared(bytes::Bytes::from(current)).expect("ASCII header value");
    vec![
        (
            HeaderName::from_static("x-ratelimit-limit"),
            HeaderValue::from(t.window.limit),
        ),
        (
            HeaderName::from_static("x-ratelimit-remaining"),
            HeaderValue::from(t.remaining),
        ),
        (
            HeaderName::from_static("x-ratelimit-reset"),
            HeaderValue::from(reset_unix),
        ),
        (
            HeaderName::from_static("ratelimit-policy"),
            record.policy_header(&d.windows),
        ),
        (HeaderName::from_static("ratelimit"), current),
    ]
}

/// The `RateLimit-Policy` value of `windows`: `"minute";q=LIMIT;w=60, "day";q=LIMIT;w=86400`.
pub(crate) fn policy_value(windows: &[ratelimit::WindowState; 2]) -> HeaderValue {
    use std::fmt::Write as _;
    let mut policy = String::with_capacity(64);
    for (i, w) in windows.iter().enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        let _ = write!(
            policy,
            "{sep}\"{}\";q={};w={}",
            w.window.name, w.window.limit, w.window.seconds
        );
    }
    HeaderValue::try_from(policy).expect("ASCII header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authenticator() -> Authenticator {
        Authenticator::new(crate::ApiConfig::default().auth)
    }

    #[test]
    fn the_failure_table_stays_bounded_however_many_addresses_fail() {
        let auth = authenticator();
        let now_us = 1_000_000_000;
        for i in 0..(2 * FAILURE_ADDRESSES as u32) {
            let ip = IpAddr::from(std::net::Ipv6Addr::from(u128::from(i) << 64));
            let _ = auth.failed(Some(ip), now_us, refuse("unknown"));
        }
        assert!(
            auth.failures.len() <= FAILURE_ADDRESSES,
            "{} addresses tracked",
            auth.failures.len()
        );
    }

    #[test]
    fn one_address_cannot_fill_the_account_table_and_lock_everyone_out() {
        // Made-up emails from one address, far more than the account table holds: past the
        // address's budget none of them is tracked, and a user elsewhere still signs in.
        let auth = authenticator();
        let attacker = Some(IpAddr::from(std::net::Ipv4Addr::new(203, 0, 113, 7)));
        let now_ms = 1_000_000;
        let allowed = (0..2 * LOGIN_ACCOUNTS as u64)
            .filter(|&i| auth.take_login(attacker, i, None, now_ms))
            .count();
        assert!(allowed <= 60, "{allowed} attempts from one address");
        assert!(
            auth.logins.len() <= 60,
            "{} accounts tracked",
            auth.logins.len()
        );
        let user = Some(IpAddr::from(std::net::Ipv4Addr::new(198, 51, 100, 1)));
        assert!(auth.take_login(user, u64::MAX, None, now_ms));
        // Nor can one IPv6 host, taking a new address of its /64 for each attempt.
        let prefix = u128::from(std::net::Ipv6Addr::new(0x2001, 0xdb8, 7, 7, 0, 0, 0, 0));
        let allowed = (0..2 * LOGIN_ACCOUNTS as u64)
            .filter(|&i| {
                let ip = IpAddr::from(std::net::Ipv6Addr::from(prefix | u128::from(i)));
                auth.take_login(Some(ip), i << 32, None, now_ms)
            })
            .count();
        assert!(allowed <= 60, "{allowed} attempts from one /64");
        assert!(
            auth.logins.len() <= 120,
            "{} accounts tracked",
            auth.logins.len()
        );
    }

    #[test]
    fn many_addresses_cannot_lock_everyone_out_or_erase_a_guessed_account() {
        // An account being guessed at spends its minute; then, within that minute, made-up
        // emails from 10,000 addresses, more than the account table holds.
        let auth = authenticator();
        let now_ms = 1_000_000;
        let guesser = Some(IpAddr::from(std::net::Ipv4Addr::new(203, 0, 113, 9)));
        let victim = auth.account_key("victim@example.com");
        for _ in 0..5 {
            assert!(auth.take_login(guesser, victim, None, now_ms));
        }
        let flood = LOGIN_ACCOUNTS as u64 + 10_000;
        let at = |i: u64| now_ms + (i / 10) as i64;
        for i in 0..flood {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + (i as u32 % 10_000)));
            let account = auth.account_key(&format!("made-up-{i}@example.com"));
            assert!(auth.take_login(Some(ip), account, None, at(i)), "{i}");
        }
        let later = at(flood);
        assert!(auth.logins.len() <= LOGIN_ACCOUNTS);
        // A user elsewhere still signs in; the guessed account is still refused.
        let user = Some(IpAddr::from(std::net::Ipv4Addr::new(198, 51, 100, 1)));
        assert!(auth.take_login(user, auth.account_key("user@example.com"), None, later));
        assert!(!auth.take_login(user, victim, None, later));
    }

    #[test]
    fn a_browser_that_signed_in_before_keeps_its_own_budget_while_the_account_is_guessed_at() {
        let auth = authenticator();
        let start = 1_000_000;
        let victim = auth.account_key("victim@example.com");
        // A day's budget of guesses from many addresses, five a minute.
        for i in 0..50 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i as u32));
            let at = start + (i / 5) * 60_000;
            assert!(auth.take_login(Some(ip), victim, None, at), "{i}");
        }
        let now = start + 10 * 60_000;
        let owner = Some(IpAddr::from(std::net::Ipv4Addr::new(198, 51, 100, 1)));
        assert!(
            !auth.take_login(owner, victim, None, now),
            "an unknown browser"
        );
        let laptop = [7u8; 16];
        for i in 0..5 {
            assert!(auth.take_login(owner, victim, Some(laptop), now), "{i}");
        }
        assert!(
            !auth.take_login(owner, victim, Some(laptop), now),
            "a known browser has 5 a minute of its own"
        );
        assert!(auth.take_login(owner, victim, Some([8u8; 16]), now));
        assert!(!auth.take_login(owner, victim, None, now));
    }

    #[test]
    fn the_timer_prunes_addresses_that_stopped_failing() {
        let auth = authenticator();
        let now_ms = 1_000_000;
        for i in 0..1000u32 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(i));
            let _ = auth.failed(Some(ip), now_ms * 1000, refuse("unknown"));
        }
        assert_eq!(auth.failures.len(), 1000);
        auth.prune(now_ms + 1_000);
        assert_eq!(auth.failures.len(), 1000, "still counting");
        auth.prune(now_ms + 5 * 60_000);
        assert_eq!(auth.failures.len(), 0);
    }
}

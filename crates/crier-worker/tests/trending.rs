//! The trending refresher on both backends, with a manual clock and scripted networks (one
//! shared per server like Mastodon's, one per account like Bluesky's): each source is fetched
//! once per period with one account's session, a failing or hanging source keeps its topics
//! and never stops the run, a run fetches at most `max_sources` (the longest waiting first),
//! two nodes never fetch one source twice, what a network sends is held to the bounds, and
//! sources no account uses any more are purged after a week.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crier_core::Clock;
use crier_networks::{
    ConnectKind, Network, NetworkError, Networks, Part, PublishedPart, Rules, Session, TrendScope,
    TrendingTopic,
};
use crier_store::{Account, Metrics};
use crier_worker::trending::{RefreshConfig, Refreshed, refresh_once};

use common::{TestDb, app_on, both};
use crier_testdb::T0;

const MINUTE: i64 = 60_000;
const DAY: i64 = 24 * 60 * MINUTE;

/// What a scripted network answers for one source (by service, or by external id).
#[derive(Clone)]
enum Script {
    Topics(Vec<(String, f64)>),
    Fail(NetworkError),
    Hang,
}

/// A network that publishes trends as scripted, and records every call: the source asked
/// for and the token it was asked with.
struct Trends {
    rules: &'static Rules,
    scope: TrendScope,
    scripts: Mutex<HashMap<String, Script>>,
    calls: Mutex<Vec<(String, String)>>,
    delay: Duration,
}

impl Trends {
    fn new(rules: &'static Rules, scope: TrendScope, delay: Duration) -> Arc<Self> {
        Arc::new(Self {
            rules,
            scope,
            scripts: Mutex::default(),
            calls: Mutex::default(),
            delay,
        })
    }

    fn key(&self, a: &Account) -> String {
        match self.scope {
            TrendScope::Server => a.service.clone().unwrap_or_default(),
            TrendScope::Account => a.external_id.clone(),
        }
    }

    fn script(&self, key: &str, s: Script) {
        self.scripts.lock().unwrap().insert(key.to_owned(), s);
    }

    fn topics(&self, key: &str, topics: &[(&str, f64)]) {
        self.script(
            key,
            Script::Topics(topics.iter().map(|(t, s)| ((*t).to_owned(), *s)).collect()),
        );
    }

    fn calls(&self) -> Vec<String> {
        let mut c: Vec<String> = self
            .calls
            .lock()
            .unwrap()
            .iter()
            .map(|(k, _)| k.clone())
            .collect();
        c.sort();
        c
    }

    fn forget_calls(&self) {
        self.calls.lock().unwrap().clear();
    }
}

#[async_trait::async_trait]
impl Network for Trends {
    fn rules(&self) -> &Rules {
        self.rules
    }

    fn connect_kind(&self) -> ConnectKind {
        ConnectKind::Credentials
    }

    async fn publish(&self, _: Session<'_>, _: Part<'_>) -> Result<PublishedPart, NetworkError> {
        Err(NetworkError::rejected("not in this test"))
    }

    async fn lookup(
        &self,
        _: Session<'_>,
        _: Part<'_>,
    ) -> Result<Option<PublishedPart>, NetworkError> {
        Ok(None)
    }

    async fn metrics(&self, _: Session<'_>, _: &str) -> Result<Metrics, NetworkError> {
        Err(NetworkError::rejected("not in this test"))
    }

    fn trend_scope(&self) -> Option<TrendScope> {
        Some(self.scope)
    }

    async fn trending(&self, s: Session<'_>) -> Result<Vec<TrendingTopic>, NetworkError> {
        let key = self.key(s.account);
        self.calls
            .lock()
            .unwrap()
            .push((key.clone(), s.credentials.access_token.clone()));
        tokio::time::sleep(self.delay).await;
        let script = self.scripts.lock().unwrap().get(&key).cloned();
        match script {
            Some(Script::Topics(t)) => Ok(t
                .into_iter()
                .map(|(topic, score)| TrendingTopic { topic, score })
                .collect()),
            Some(Script::Fail(e)) => Err(e),
            Some(Script::Hang) => {
                tokio::time::sleep(Duration::from_secs(30)).await;
                Ok(Vec::new())
            }
            None => Err(NetworkError::unavailable("no script")),
        }
    }
}

/// The workspace of `crier_testdb::World`, the two scripted networks and the app over them.
struct World {
    base: crier_testdb::World,
    mastodon: Arc<Trends>,
    bluesky: Arc<Trends>,
    app: crier_app::App,
}

impl std::ops::Deref for World {
    type Target = crier_testdb::World;

    fn deref(&self) -> &Self::Target {
        &self.base
    }
}

impl World {
    async fn new(db: &TestDb) -> Self {
        Self::with_delay(db, Duration::ZERO).await
    }

    /// With networks that take `delay` to answer.
    async fn with_delay(db: &TestDb, delay: Duration) -> Self {
        let base = crier_testdb::World::new(db).await;
        let mastodon = Trends::new(
            &crier_networks::mastodon::DEFAULT_RULES,
            TrendScope::Server,
            delay,
        );
        let bluesky = Trends::new(&crier_networks::bluesky::RULES, TrendScope::Account, delay);
        let clock: Arc<dyn Clock> = Arc::new(base.clock.clone());
        let networks = Networks::default()
            .with(mastodon.clone())
            .with(bluesky.clone());
        let app = app_on(&base.store, clock, networks, None);
        Self {
            base,
            mastodon,
            bluesky,
            app,
        }
    }

    /// Another node: its own app (and so its own fetches) over the same store and networks.
    fn other_node(&self) -> crier_app::App {
        let clock: Arc<dyn Clock> = Arc::new(self.clock.clone());
        let networks = Networks::default()
            .with(self.mastodon.clone())
            .with(self.bluesky.clone());
        app_on(&self.store, clock, networks, None)
    }

    /// A live connected account of `platform` on `service` ("" for none), known as `id`.
    async fn connect(&self, platform: &str, service: &str, id: &str) -> Account {
        let mut a = Account::new(&self.ws, true, platform, id, id, T0);
        a.service = (!service.is_empty()).then(|| service.to_owned());
        self.store.connect_account(&a).await.unwrap()
    }

    async fn refresh(&self, config: &RefreshConfig) -> Refreshed {
        refresh_once(&self.app, config)
            .await
            .expect("a run without storage errors")
    }

    async fn cached(&self, source: &str) -> Vec<(String, f64)> {
        self.store
            .cached_trends(source)
            .await
            .unwrap()
            .into_iter()
            .map(|t| (t.topic, t.score))
            .collect()
    }
}

fn config() -> RefreshConfig {
    RefreshConfig {
        every: Duration::from_secs(30 * 60),
        call_timeout: Duration::from_secs(2),
        ..RefreshConfig::default()
    }
}

const M1: &str = "https://m1.example";
const M2: &str = "https://m2.example";

both!(
    each_source_is_fetched_once_per_period_and_kept_when_it_fails,
    |db| async move {
        let w = World::new(&db).await;
        w.connect("mastodon", M1, "1").await;
        w.connect("mastodon", M1, "2").await;
        w.connect("mastodon", M2, "3").await;
        w.connect("bluesky", "", "did:plc:ada").await;
        w.connect("sandbox", "", "sand").await;
        w.mastodon.topics(M1, &[("#rust", 7.0), ("#go", 2.0)]);
        w.mastodon.topics(M2, &[("#art", 1.0)]);
        w.bluesky.topics("did:plc:ada", &[("Eclipse", 20.0)]);

        let done = w.refresh(&config()).await;
        assert_eq!((done.fetched, done.failed), (3, 0));
        // One call per source: the two accounts on M1 share it.
        assert_eq!(w.mastodon.calls(), [M1, M2]);
        assert_eq!(w.bluesky.calls(), ["did:plc:ada"]);
        let m1 = format!("mastodon:{M1}");
        assert_eq!(
            w.cached(&m1).await,
            [("#rust".to_owned(), 7.0), ("#go".to_owned(), 2.0)]
        );
        assert_eq!(
            w.cached("bluesky:did:plc:ada").await,
            [("Eclipse".to_owned(), 20.0)]
        );

        // Not due within the period.
        w.mastodon.forget_calls();
        w.bluesky.forget_calls();
        w.set(T0 + 29 * MINUTE);
        assert_eq!(w.refresh(&config()).await, Refreshed::default());
        assert!(w.mastodon.calls().is_empty() && w.bluesky.calls().is_empty());

        // Due again: M1 fails (its topics stay, its error is kept), the others are replaced.
        w.set(T0 + 30 * MINUTE);
        w.mastodon
            .script(M1, Script::Fail(NetworkError::unavailable("instance down")));
        w.mastodon.topics(M2, &[("#music", 3.0)]);
        w.bluesky.topics("did:plc:ada", &[]);
        let done = w.refresh(&config()).await;
        assert_eq!((done.fetched, done.failed), (2, 1));
        assert_eq!(
            w.cached(&m1).await,
            [("#rust".to_owned(), 7.0), ("#go".to_owned(), 2.0)]
        );
        let s = w.store.trend_source(&m1).await.unwrap().unwrap();
        assert_eq!(s.fetched_at, Some(T0));
        assert_eq!(s.failed_at, Some(T0 + 30 * MINUTE));
        assert!(
            s.last_error.as_deref().unwrap().contains("instance down"),
            "{s:?}"
        );
        assert_eq!(s.next_fetch_at, T0 + 60 * MINUTE, "tried again next period");
        assert_eq!(
            w.cached(&format!("mastodon:{M2}")).await,
            [("#music".to_owned(), 3.0)]
        );
        assert!(w.cached("bluesky:did:plc:ada").await.is_empty());
    }
);

both!(
    a_hanging_network_times_out_and_the_run_goes_on,
    |db| async move {
        let w = World::new(&db).await;
        w.connect("mastodon", M1, "1").await;
        w.connect("bluesky", "", "did:plc:ada").await;
        w.mastodon.script(M1, Script::Hang);
        w.bluesky.topics("did:plc:ada", &[("Eclipse", 20.0)]);
        let quick = RefreshConfig {
            call_timeout: Duration::from_millis(300),
            ..config()
        };
        let started = std::time::Instant::now();
        let done = w.refresh(&quick).await;
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!((done.fetched, done.failed), (1, 1));
        let s = w
            .store
            .trend_source(&format!("mastodon:{M1}"))
            .await
            .unwrap()
            .unwrap();
        assert!(
            s.last_error
                .as_deref()
                .unwrap()
                .contains("network_unavailable"),
            "{s:?}"
        );
        assert_eq!(s.fetched_at, None);
    }
);

both!(
    a_run_fetches_at_most_max_sources_the_longest_waiting_first,
    |db| async move {
        let w = World::new(&db).await;
        for i in 0..5 {
            let service = format!("https://m{i}.example");
            w.connect("mastodon", &service, &i.to_string()).await;
            w.mastodon.topics(&service, &[("#x", 1.0)]);
        }
        let two = RefreshConfig {
            max_sources: 2,
            ..config()
        };
        let mut order = Vec::new();
        for i in 0..3 {
            w.set(T0 + i * MINUTE);
            w.mastodon.forget_calls();
            let done = w.refresh(&two).await;
            assert!(done.fetched <= 2);
            order.push(w.mastodon.calls());
        }
        assert_eq!(
            order,
            [
                vec!["https://m0.example", "https://m1.example"],
                vec!["https://m2.example", "https://m3.example"],
                vec!["https://m4.example"],
            ]
        );
        // Once all are due again, the first fetched come first (they have waited longest).
        w.set(T0 + 32 * MINUTE);
        for expected in [
            ["https://m0.example", "https://m1.example"],
            ["https://m2.example", "https://m3.example"],
        ] {
            w.mastodon.forget_calls();
            w.refresh(&two).await;
            assert_eq!(w.mastodon.calls(), expected);
        }
    }
);

both!(two_nodes_fetch_each_source_once, |db| async move {
    let w = World::with_delay(&db, Duration::from_millis(200)).await;
    for i in 0..6 {
        let service = format!("https://m{i}.example");
        w.connect("mastodon", &service, &i.to_string()).await;
        w.mastodon.topics(&service, &[("#x", 1.0)]);
    }
    let other = w.other_node();
    let config = config();
    let (a, b) = tokio::join!(refresh_once(&w.app, &config), refresh_once(&other, &config));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.fetched + b.fetched, 6, "{a:?} {b:?}");
    assert_eq!(a.failed + b.failed, 0, "a claim lost is not a failure");
    let calls = w.mastodon.calls();
    let mut unique = calls.clone();
    unique.dedup();
    assert_eq!(calls, unique, "a source fetched twice: {calls:?}");
    assert_eq!(calls.len(), 6);
});

both!(
    what_a_network_sends_is_held_to_the_bounds,
    |db| async move {
        let w = World::new(&db).await;
        w.connect("mastodon", M1, "1").await;
        let mut sent: Vec<(String, f64)> = vec![
            ("#ok".into(), 5.0),
            ("#OK".into(), 4.0),
            ("x".repeat(101), 3.0),
            ("  ".into(), 2.0),
            ("#nan".into(), f64::NAN),
        ];
        sent.extend((0..30).map(|i| (format!("#t{i}"), 1.0)));
        w.mastodon.script(M1, Script::Topics(sent));
        let done = w.refresh(&config()).await;
        assert_eq!(done.fetched, 1);
        let kept = w.cached(&format!("mastodon:{M1}")).await;
        assert_eq!(kept.len(), 20);
        assert_eq!(kept[0], ("#ok".to_owned(), 5.0));
        assert_eq!(kept[1], ("#t0".to_owned(), 1.0));
    }
);

both!(
    sources_no_account_uses_are_purged_after_a_week,
    |db| async move {
        let w = World::new(&db).await;
        let gone = w.connect("mastodon", M1, "1").await;
        w.connect("mastodon", M2, "2").await;
        w.mastodon.topics(M1, &[("#old", 1.0)]);
        w.mastodon.topics(M2, &[("#kept", 1.0)]);
        assert_eq!(w.refresh(&config()).await.fetched, 2);
        w.store
            .disconnect_account(&w.ws, &gone.id, T0 + MINUTE)
            .await
            .unwrap();
        // Its topics stay (nobody reads them) until a week has passed without a claim.
        w.set(T0 + 7 * DAY - MINUTE);
        let done = w.refresh(&config()).await;
        assert_eq!((done.fetched, done.purged), (1, 0));
        assert_eq!(w.cached(&format!("mastodon:{M1}")).await.len(), 1);
        w.set(T0 + 7 * DAY + MINUTE);
        let done = w.refresh(&config()).await;
        assert_eq!(done.purged, 1);
        assert!(
            w.store
                .trend_source(&format!("mastodon:{M1}"))
                .await
                .unwrap()
                .is_none()
        );
        assert!(w.cached(&format!("mastodon:{M1}")).await.is_empty());
        assert_eq!(w.cached(&format!("mastodon:{M2}")).await.len(), 1);
    }
);

both!(
    the_longest_waiting_come_first_across_networks,
    |db| async move {
        let w = World::new(&db).await;
        w.connect("mastodon", M1, "1").await;
        w.mastodon.topics(M1, &[("#x", 1.0)]);
        assert_eq!(w.refresh(&config()).await.fetched, 1);
        // Three Bluesky accounts come later and are fetched ten minutes after.
        for did in ["did:plc:a", "did:plc:b", "did:plc:c"] {
            w.connect("bluesky", "", did).await;
            w.bluesky.topics(did, &[("Eclipse", 20.0)]);
        }
        w.set(T0 + 10 * MINUTE);
        assert_eq!(w.refresh(&config()).await.fetched, 3);
        // All due again: the Mastodon list has waited longest, so it is not starved by the
        // network listed first.
        w.set(T0 + 45 * MINUTE);
        w.mastodon.forget_calls();
        w.bluesky.forget_calls();
        let two = RefreshConfig {
            max_sources: 2,
            ..config()
        };
        assert_eq!(w.refresh(&two).await.fetched, 2);
        assert_eq!(w.mastodon.calls(), [M1]);
        assert_eq!(w.bluesky.calls(), ["did:plc:a"]);
    }
);

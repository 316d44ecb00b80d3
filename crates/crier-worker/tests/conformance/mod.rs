//! The network conformance suite: what every connector must do against its network's fake
//! (`crier-fakes`). A network's test file runs it with
//! `conformance::suite!(|clock| crier_fakes::x::XFake::start(clock));`.
//!
//! Through the application layer and the real publisher, on SQLite and PostgreSQL: connect
//! through the network's OAuth flow (credentials sealed), publish text (or video where the
//! network takes only video), a thread where supported, a lost answer reconciled to one post,
//! a 429 whose reset is honoured, a revoked token that ends as `account_disconnected`. At the
//! connector: an image and a video where supported, each documented error mapped to our code,
//! metrics read back, the account's follower count (at the connector and through the metrics
//! collector), a token refresh.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use crier_app::{Caller, ConnectConfig, Keyring};
use crier_core::accounts::AccountStatus;
use crier_core::posts::{PostStatus, TargetStatus};
use crier_core::{Clock, ScopeSet, Tenant};
use crier_fakes::{FakeNetwork, FakePost, kit};
use crier_networks::{Attachment, MediaMeta, MemorySteps, Network, Networks, Part, Session};
use crier_store::{Account, Post, PostOverride};
use crier_testdb::{TestDb, World};
use crier_worker::{Processed, Publisher, WorkerConfig};

pub const REDIRECT: &str = "https://app.example/connected";

/// A workspace on a fresh database with the network's fake, its connector, the application
/// layer and a publisher, and one account connected through the network's OAuth flow.
pub struct Rig<F> {
    pub w: World,
    pub fake: F,
    pub network: Arc<dyn Network>,
    pub app: crier_app::App,
    pub caller: Caller,
    pub account: Account,
    pub publisher: Publisher,
}

impl<F: FakeNetwork> Rig<F> {
    pub async fn new<Fut>(db: &TestDb, start: impl FnOnce(Arc<dyn Clock>) -> Fut) -> Self
    where
        Fut: std::future::Future<Output = F>,
    {
        let w = World::new(db).await;
        let clock: Arc<dyn Clock> = Arc::new(w.clock.clone());
        let fake = start(clock.clone()).await;
        let network = fake.connector(clock.clone());
        let platform = fake.platform();
        let mut plans = crier_core::Plan::defaults();
        plans.get_mut("free").expect("a free plan").posts_per_month = None;
        let app = crier_app::App::new(
            w.store.clone(),
            clock,
            Networks::default().with(network.clone()),
            &plans,
            Arc::new(tokio::sync::Notify::new()),
        )
        .with_keyring(Keyring::ephemeral())
        .with_connect(ConnectConfig {
            redirect_uris: vec![REDIRECT.into()],
            clients: [(platform.to_owned(), fake.client())].into_iter().collect(),
            allow_private_networks: true,
        });
        let caller = Caller {
            tenant: Tenant {
                workspace: w.ws.clone(),
                livemode: true,
            },
            plan: app.plan("free").expect("the free plan"),
            scopes: ScopeSet::all(),
            actor: "test".into(),
            restriction: Default::default(),
        };
        let account = connect(&app, &caller, platform).await;
        let publisher = Publisher::new(
            app.clone(),
            WorkerConfig {
                call_timeout: Duration::from_secs(10),
                backoff: Duration::from_secs(30),
                max_attempts: 8,
                ..WorkerConfig::default()
            },
        );
        Self {
            w,
            fake,
            network,
            app,
            caller,
            account,
            publisher,
        }
    }

    /// The account's opened credentials, as the publisher opens them.
    pub fn credentials(&self) -> crier_networks::Credentials {
        self.app
            .tokens()
            .open(&self.account)
            .expect("credentials open")
            .expect("the account has credentials")
    }

    /// A post of `body` (and `thread`) to the account, due a minute from now; its id.
    pub async fn schedule(&self, body: &str, thread: &[&str]) -> Post {
        let at = self.w.now() + 60_000;
        let post = Post {
            status: PostStatus::Scheduled,
            thread: thread.iter().map(|s| (*s).to_owned()).collect(),
            scheduled_at: Some(at),
            ..Post::draft(
                &self.w.ws,
                true,
                &[&self.account],
                body.into(),
                self.w.now(),
            )
        };
        self.w
            .store
            .insert_posts(std::slice::from_ref(&post))
            .await
            .expect("insert");
        post
    }

    /// Runs the token refresher and the publisher, moving the clock to each next job, until
    /// no job is left (at most `rounds` runs); what each publisher run did.
    pub async fn drain(&self, rounds: usize) -> Vec<Processed> {
        let mut runs = Vec::new();
        for _ in 0..rounds {
            match self.w.store.next_job_at().await.expect("next job") {
                None => break,
                Some(next) => self.w.set(next.max(self.w.now())),
            }
            // The token refresher runs beside the publisher, as in production: a token the
            // publisher found refused is renewed (or the account expired) before the retry.
            crier_worker::tokens::refresh_once(&self.app).await;
            runs.extend(self.publisher.run_due().await);
        }
        runs
    }

    /// A create call the network made the post for but answered 500, listed only two minutes
    /// later (`made_then_500` sets the fake up so), ends as one post: the retry, half a minute
    /// on, does not take the look-up's miss for "not published" and waits until the network
    /// has had time to finish the call, then finds the post.
    pub async fn a_create_call_that_failed_but_landed_late_is_one_post(
        &self,
        made_then_500: impl FnOnce(&F),
    ) {
        made_then_500(&self.fake);
        let post = self.schedule("Made, then a 500", &[]).await;
        let runs = self.drain(10).await;
        assert_eq!(runs.last(), Some(&Processed::Published), "{runs:?}");
        let posts = self.posts();
        assert_eq!(posts.len(), 1, "exactly one post at the network: {posts:?}");
        let target = &self.w.post(&post.id).await.targets[0];
        assert_eq!(target.external_id.as_deref(), Some(posts[0].id.as_str()));
        let outcomes: Vec<String> = self
            .w
            .store
            .attempts(&post.id, &self.account.id)
            .await
            .unwrap()
            .iter()
            .map(|a| a.outcome.as_str().to_owned())
            .collect();
        assert_eq!(outcomes, ["failed", "lookup_failed"], "one call, one wait");
    }

    /// The fake's posts by this account.
    pub fn posts(&self) -> Vec<FakePost> {
        self.fake
            .posts()
            .into_iter()
            .filter(|p| p.author == self.account.external_id)
            .collect()
    }

    /// A part to call the connector with directly.
    pub fn session<'a>(&'a self, credentials: &'a crier_networks::Credentials) -> Session<'a> {
        Session {
            account: &self.account,
            credentials,
        }
    }
}

/// Connects an account the way the API does: start (the authorization URL), the user
/// approves at the fake, finish with the code and state.
pub async fn connect(app: &crier_app::App, caller: &Caller, platform: &str) -> Account {
    let started = app
        .connections()
        .start(caller, platform, Some(REDIRECT), None)
        .await
        .expect("start connecting")
        .expect("an OAuth network");
    let url = url::Url::parse(&started.url).expect("an authorization URL");
    let (code, state) = kit::approve(&url).await;
    assert_eq!(state, started.state, "the state comes back unchanged");
    let account = app
        .connections()
        .finish(
            caller,
            platform,
            crier_app::connect::Finish {
                code: Some(code),
                state: Some(state),
                ..Default::default()
            },
        )
        .await
        .expect("finish connecting");
    assert_eq!(account.status, AccountStatus::Connected);
    assert_eq!(account.platform, platform);
    assert!(!account.external_id.is_empty());
    assert!(
        account.credentials.is_some(),
        "credentials are kept, sealed"
    );
    account
}

pub fn options() -> &'static PostOverride {
    Box::leak(Box::default())
}

/// A part of `text` with `media`, keyed `key`, keeping its steps in `steps`.
pub fn part<'a>(
    text: &'a str,
    media: &'a [Attachment],
    thread: &'a [String],
    key: &'a str,
    steps: &'a MemorySteps,
) -> Part<'a> {
    Part {
        text,
        media,
        thread,
        options: options(),
        idem_key: key,
        steps,
    }
}

/// Serves `bytes` on 127.0.0.1 as `content_type`, as the media store's signed URLs serve
/// them; an attachment with both the bytes and that URL.
pub async fn attachment(
    bytes: Vec<u8>,
    content_type: &str,
    w: Option<u32>,
    h: Option<u32>,
    duration_ms: Option<u64>,
) -> Attachment {
    let body = bytes::Bytes::from(bytes);
    let served = body.clone();
    let ct = content_type.to_owned();
    let router = axum::Router::new().route(
        "/media/file",
        axum::routing::get(move || {
            let served = served.clone();
            let ct = ct.clone();
            async move { ([(axum::http::header::CONTENT_TYPE, ct)], served) }
        }),
    );
    let base = kit::serve(router).await;
    let ext = if content_type.starts_with("video/") {
        "mp4"
    } else {
        "png"
    };
    Attachment {
        meta: MediaMeta {
            id: format!("med_{}", kit::random(6)),
            content_type: content_type.into(),
            size: body.len() as u64,
            width: w,
            height: h,
            duration_ms,
            alt_text: Some("a grey square".into()),
            filename: format!("file.{ext}"),
        },
        url: format!("{base}media/file?sig=abc"),
        bytes: body,
    }
}

pub async fn png_attachment() -> Attachment {
    attachment(kit::png(64, 64), "image/png", Some(64), Some(64), None).await
}

pub async fn mp4_attachment() -> Attachment {
    attachment(
        kit::mp4(256 * 1024),
        "video/mp4",
        Some(1080),
        Some(1920),
        Some(12_000),
    )
    .await
}

/// The first part of a post on this network: text, or a video where only video is taken.
pub async fn first_media<F: FakeNetwork>(fake: &F) -> Vec<Attachment> {
    if fake.features().text {
        Vec::new()
    } else {
        vec![mp4_attachment().await]
    }
}

// ---------------------------------------------------------------------------------------------
// The suite
// ---------------------------------------------------------------------------------------------

/// Connected, a post published once through the worker, its target `published` with the
/// network's id, which the fake holds.
pub async fn publishes_once<F: FakeNetwork>(r: Rig<F>) {
    if !r.fake.features().text {
        // Video-only networks: the worker path is the same; the connector-level video test
        // below publishes through the connector with the media.
        return publishes_video(r).await;
    }
    let post = r
        .schedule("Launch day: crier ships to every network", &[])
        .await;
    let runs = r.drain(10).await;
    assert_eq!(runs, vec![Processed::Published], "{runs:?}");
    let target = &r.w.post(&post.id).await.targets[0];
    assert_eq!(target.status, TargetStatus::Published, "{target:?}");
    let posts = r.posts();
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert_eq!(posts[0].text, "Launch day: crier ships to every network");
    assert_eq!(target.external_id.as_deref(), Some(posts[0].id.as_str()));
    assert!(
        target
            .url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://")),
        "a link to the post: {target:?}"
    );
}

/// A thread: each part a reply to the one before, in order; or, where the network has no
/// threads, a refusal before anything is sent.
pub async fn threads<F: FakeNetwork>(r: Rig<F>) {
    if !r.fake.features().threads {
        let rules = r.network.rules_for(&r.account).await;
        let problems = rules.check(&["one".into(), "two".into()], &[]);
        assert!(
            problems
                .iter()
                .any(|p| p.rule.ends_with("thread.unsupported")),
            "{problems:?}"
        );
        return;
    }
    let post = r
        .schedule("1/3 a thread", &["2/3 goes on", "3/3 ends"])
        .await;
    let runs = r.drain(10).await;
    assert_eq!(runs.last(), Some(&Processed::Published), "{runs:?}");
    let target = &r.w.post(&post.id).await.targets[0];
    assert_eq!(target.part_ids.len(), 3, "{target:?}");
    let posts = r.posts();
    assert_eq!(posts.len(), 3, "{posts:?}");
    for (i, id) in target.part_ids.iter().enumerate() {
        let p = posts
            .iter()
            .find(|p| &p.id == id)
            .expect("each part at the network");
        let expected = if i == 0 {
            None
        } else {
            Some(target.part_ids[i - 1].clone())
        };
        assert_eq!(p.reply_to, expected, "part {i} replies to the one before");
    }
}

/// The create call's answer is lost (the network did the work): the retry finds the post
/// instead of posting again.
pub async fn lost_answer_is_one_post<F: FakeNetwork>(r: Rig<F>) {
    if !r.fake.features().text {
        return lost_media_answer_is_one_post(r).await;
    }
    let (method, path) = r.fake.publish_call();
    r.fake.faults().push(kit::Fault::lose(method, &path));
    let post = r.schedule("Lost in transit, found again", &[]).await;
    let runs = r.drain(10).await;
    assert_eq!(runs.last(), Some(&Processed::Published), "{runs:?}");
    assert!(runs.len() >= 2, "the first run lost the answer: {runs:?}");
    let posts = r.posts();
    assert_eq!(posts.len(), 1, "exactly one post at the network: {posts:?}");
    let target = &r.w.post(&post.id).await.targets[0];
    assert_eq!(target.status, TargetStatus::Published);
    assert_eq!(target.external_id.as_deref(), Some(posts[0].id.as_str()));
}

/// A 429 with a reset ten minutes away: the job waits until then (not the default backoff),
/// then publishes once.
pub async fn rate_limit_reset_is_honoured<F: FakeNetwork>(r: Rig<F>) {
    if !r.fake.features().text {
        return media_rate_limit_is_a_pause(r).await;
    }
    r.fake.faults().push(r.fake.rate_limited(600));
    let post = r.schedule("Patience", &[]).await;
    r.w.set(post.scheduled_at.unwrap());
    let runs = r.publisher.run_due().await;
    let [Processed::RetryAt(at)] = runs[..] else {
        panic!("a retry: {runs:?}")
    };
    let due = post.scheduled_at.unwrap();
    assert!(
        at >= due + 590_000,
        "the retry waits for the network's reset (10 min), not {} s",
        (at - due) / 1000
    );
    assert!(at <= due + 3_600_000, "and not much longer");
    let target = &r.w.post(&post.id).await.targets[0];
    assert_eq!(
        target.error.as_ref().map(|e| e.code.as_str()),
        Some("network_rate_limited"),
        "{target:?}"
    );
    let runs = r.drain(10).await;
    assert_eq!(runs.last(), Some(&Processed::Published), "{runs:?}");
    assert_eq!(r.posts().len(), 1);
}

/// For networks that take only media: the create call's answer is lost; the look-up, and a
/// retry of the same part (same steps) when the look-up says it never landed, leave exactly
/// one post at the network.
pub async fn lost_media_answer_is_one_post<F: FakeNetwork>(r: Rig<F>) {
    let creds = r.credentials();
    let media = first_media(&r.fake).await;
    let steps = MemorySteps::default();
    let (method, path) = r.fake.publish_call();
    r.fake.faults().push(kit::Fault::lose(method, &path));
    let p = part("Lost in transit #Shorts", &media, &[], "lost-1", &steps);
    let err = r
        .network
        .publish(r.session(&creds), p)
        .await
        .expect_err("the answer is lost");
    assert!(err.is_transient(), "{err:?}");
    let published = match r.network.lookup(r.session(&creds), p).await {
        Ok(Some(found)) => found,
        // Certainly not there: the retry publishes it, resuming from the kept steps.
        Ok(None) => r
            .network
            .publish(r.session(&creds), p)
            .await
            .expect("the retry publishes"),
        // Cannot tell yet (still processing): the retry resumes until it can.
        Err(e) => {
            assert!(e.is_transient(), "{e:?}");
            let mut last = Err(e);
            for _ in 0..20 {
                last = r.network.publish(r.session(&creds), p).await;
                if last.is_ok() {
                    break;
                }
            }
            last.expect("the retries publish")
        }
    };
    let posts = r.posts();
    assert_eq!(posts.len(), 1, "exactly one post at the network: {posts:?}");
    assert_eq!(posts[0].id, published.external_id);
    // And once it is there, the look-up finds it.
    let again = r
        .network
        .lookup(r.session(&creds), p)
        .await
        .expect("a look-up")
        .expect("found");
    assert_eq!(again.external_id, published.external_id);
}

/// For networks that take only media: a throttle is a pause of the network's reset (or the
/// connector's documented fallback where the network sends none), and nothing is posted.
pub async fn media_rate_limit_is_a_pause<F: FakeNetwork>(r: Rig<F>) {
    let creds = r.credentials();
    let media = first_media(&r.fake).await;
    let steps = MemorySteps::default();
    r.fake.faults().push(r.fake.rate_limited(600));
    let err = r
        .network
        .publish(
            r.session(&creds),
            part("Patience", &media, &[], "rl-1", &steps),
        )
        .await
        .expect_err("throttled");
    let crier_networks::NetworkError::RateLimited { retry_after } = err else {
        panic!("a rate limit: {err:?}")
    };
    let pause = retry_after.expect("a pause to wait");
    if r.fake.sends_reset() {
        assert!(
            pause >= Duration::from_secs(590) && pause <= Duration::from_secs(3600),
            "the network's reset (10 min): {pause:?}"
        );
    } else {
        assert!(
            pause >= Duration::from_secs(30),
            "a documented fallback: {pause:?}"
        );
    }
    assert!(r.posts().is_empty());
}

/// The user revoked crier's access at the network: the target fails as
/// `account_disconnected`, the account is `expired`, and nothing is posted.
pub async fn revoked_access_disconnects<F: FakeNetwork>(r: Rig<F>) {
    r.fake.revoke_access();
    let media = first_media(&r.fake).await;
    if !media.is_empty() {
        let creds = r.credentials();
        let steps = MemorySteps::default();
        let err = r
            .network
            .publish(r.session(&creds), part("v", &media, &[], "revoked", &steps))
            .await
            .expect_err("a revoked token publishes nothing");
        assert_eq!(err.code(), "account_disconnected", "{err:?}");
        return;
    }
    let post = r.schedule("Nobody home", &[]).await;
    let runs = r.drain(10).await;
    assert_eq!(runs.last(), Some(&Processed::Failed), "{runs:?}");
    let target = &r.w.post(&post.id).await.targets[0];
    assert_eq!(target.status, TargetStatus::Failed);
    assert_eq!(
        target.error.as_ref().map(|e| e.code.as_str()),
        Some("account_disconnected"),
        "{target:?}"
    );
    let account =
        r.w.store
            .get_account(&r.w.ws, &r.account.id)
            .await
            .unwrap()
            .unwrap();
    assert_eq!(account.status, AccountStatus::Expired);
    assert!(r.posts().is_empty());
}

/// Every documented error of the create call maps to our code.
pub async fn documented_errors_map<F: FakeNetwork>(r: Rig<F>) {
    let creds = r.credentials();
    let media = first_media(&r.fake).await;
    let errors = r.fake.documented_errors();
    assert!(!errors.is_empty(), "a fake documents its errors");
    for (i, (fault, code)) in errors.into_iter().enumerate() {
        let described = format!("{fault:?}");
        r.fake.faults().clear();
        r.fake.faults().push(fault);
        let steps = MemorySteps::default();
        let key = format!("err-{i}");
        let err = r
            .network
            .publish(
                r.session(&creds),
                part("an error", &media, &[], &key, &steps),
            )
            .await
            .expect_err(&described);
        assert_eq!(err.code(), code, "{described} → {err:?}");
    }
    r.fake.faults().clear();
}

/// An image post, where the network takes images: the fake holds one post with one image.
pub async fn publishes_an_image<F: FakeNetwork>(r: Rig<F>) {
    if !r.fake.features().images {
        return;
    }
    let creds = r.credentials();
    let media = vec![png_attachment().await];
    let steps = MemorySteps::default();
    let done = r
        .network
        .publish(
            r.session(&creds),
            part("A picture", &media, &[], "img-1", &steps),
        )
        .await
        .expect("an image post");
    let posts = r.posts();
    let p = posts
        .iter()
        .find(|p| p.id == done.external_id)
        .expect("at the network");
    assert_eq!(p.media, vec!["image/png".to_owned()], "{p:?}");
}

/// A video post, where the network takes video.
pub async fn publishes_video<F: FakeNetwork>(r: Rig<F>) {
    if !r.fake.features().video {
        return;
    }
    let creds = r.credentials();
    let media = vec![mp4_attachment().await];
    let steps = MemorySteps::default();
    let done = r
        .network
        .publish(
            r.session(&creds),
            part("A video #Shorts", &media, &[], "vid-1", &steps),
        )
        .await
        .expect("a video post");
    let posts = r.posts();
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert_eq!(posts[0].id, done.external_id);
    assert_eq!(posts[0].media, vec!["video/mp4".to_owned()]);
    // Publishing the same part again (a retry whose answer was lost) finds it.
    let found = r
        .network
        .lookup(
            r.session(&creds),
            part("A video #Shorts", &media, &[], "vid-1", &steps),
        )
        .await
        .expect("a look-up")
        .expect("the video is found");
    assert_eq!(found.external_id, done.external_id);
}

/// Metrics of a published post, as the network counts them.
pub async fn metrics_are_read<F: FakeNetwork>(r: Rig<F>) {
    let creds = r.credentials();
    let media = first_media(&r.fake).await;
    let steps = MemorySteps::default();
    let done = r
        .network
        .publish(
            r.session(&creds),
            part("Count me", &media, &[], "m-1", &steps),
        )
        .await
        .expect("published");
    r.fake.like(&done.external_id, 7);
    let m = r
        .network
        .metrics(r.session(&creds), &done.external_id)
        .await
        .expect("metrics");
    assert_eq!(m.likes, 7, "{m:?}");
}

/// The account's follower count as the network reports it: the fake's followers (as the
/// network rounds them), read again after they change; stored as the day's reading by the
/// metrics collector. Where the connector reads none for the connected kind of account
/// (LinkedIn members: [`FakeNetwork::reports_followers`]), exactly `None` — not an error — and
/// no reading is stored.
pub async fn followers_are_read<F: FakeNetwork>(r: Rig<F>) {
    let creds = r.credentials();
    r.fake.set_followers(1234);
    let expected = r.fake.followers_read_as(1234);
    if !r.fake.reports_followers() {
        assert_eq!(
            expected, None,
            "a fake that reports no followers expects none"
        );
    }
    let got = r.network.followers(r.session(&creds)).await;
    assert_eq!(got, Ok(expected), "followers of {}", r.account.external_id);
    if expected.is_some() {
        // A change at the network is what the next reading says.
        r.fake.set_followers(98_765);
        let again = r.network.followers(r.session(&creds)).await;
        assert_eq!(again, Ok(r.fake.followers_read_as(98_765)));
        r.fake.set_followers(1234);
    }
    // Through the worker's collector: the day's reading of this account.
    let read = r.publisher.collect_followers().await.expect("collected");
    assert!(read >= usize::from(expected.is_some()), "{read} read");
    let stored =
        r.w.store
            .followers_between(&r.w.ws, &r.account.id, "0000-01-01", "9999-12-31")
            .await
            .expect("readings");
    let expected = expected.map(|n| i64::try_from(n).expect("a count"));
    assert_eq!(stored, expected.map(|n| (n, n)), "the stored reading");
}

/// Where the network issues refresh tokens: a refresh gives working credentials.
pub async fn tokens_refresh<F: FakeNetwork>(r: Rig<F>) {
    let creds = r.credentials();
    if creds.refresh_token.is_none() && creds.expires_at.is_none() {
        return;
    }
    let fresh = r
        .network
        .refresh(r.session(&creds))
        .await
        .expect("a refresh");
    assert!(!fresh.access_token.is_empty());
    assert_ne!(fresh.access_token, creds.access_token, "a new access token");
    let media = first_media(&r.fake).await;
    let steps = MemorySteps::default();
    r.network
        .publish(
            r.session(&fresh),
            part("Fresh", &media, &[], "fresh-1", &steps),
        )
        .await
        .expect("the fresh token publishes");
}

/// The whole suite for one network's fake, each test on SQLite and PostgreSQL.
#[macro_export]
macro_rules! suite {
    ($start:expr) => {
        $crate::suite!(@tests $start;
            publishes_once, threads, lost_answer_is_one_post, rate_limit_reset_is_honoured,
            revoked_access_disconnects, documented_errors_map, publishes_an_image,
            publishes_video, metrics_are_read, followers_are_read, tokens_refresh);
    };
    (@tests $start:expr; $($test:ident),+) => {
        $(
            crier_testdb::both!($test, |db| async move {
                let rig = conformance::Rig::new(&db, $start).await;
                conformance::$test(rig).await;
            });
        )+
    };
}

//! Webhook delivery end to end on both backends: events are made by real store operations
//! (keys, posts, accounts), fanned out to endpoints stored through the `Store`, and delivered
//! by a `Deliverer` to a local receiver (axum on 127.0.0.1, see `common::Receiver`) that
//! records every request and answers a scripted status sequence. A `ManualClock` walks through
//! the retry schedule, `Retry-After`, the 5-day disabling and the rotation overlap. The SSRF
//! guard is tested with a `Deliverer` that does not allow private networks: nothing may reach
//! the local receivers then. `cargo test -p crier-worker --test webhooks postgres` runs one
//! side; see `common` for how the PostgreSQL side is found or skipped.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use crier_app::{Keyring, webhook_secrets};
use crier_core::clock::from_ms;
use crier_core::ids::{KeyId, PostId, WebhookId, WorkspaceId};
use crier_core::posts::PostStatus;
use crier_core::{KeyMode, Scope, SecretKey};
use crier_store::views::{AccountObject, KeyObject, PostObject};
use crier_store::{
    Account, Actor, AttemptOutcome, AuditEntry, Delivery, Endpoint, KeyRow, Post, TargetError,
    TargetOutcome, Transition, WebhookAttempt, event_types as types,
};
use crier_worker::webhooks::{Deliverer, WebhookConfig, new_secret, sign};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use common::{Received, Receiver, Reply, TestDb, both};
use crier_testdb::T0;

const SECOND: i64 = 1000;
const MINUTE: i64 = 60 * SECOND;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

/// The delay before attempt n+1 after attempt n failed, n = 1..=7 (the 8th is the last).
const SCHEDULE: [i64; 7] = [
    5 * SECOND,
    5 * MINUTE,
    30 * MINUTE,
    2 * HOUR,
    5 * HOUR,
    10 * HOUR,
    10 * HOUR,
];

fn config(allow_private_networks: bool) -> WebhookConfig {
    WebhookConfig {
        allow_private_networks,
        timeout: Duration::from_secs(5),
        ..WebhookConfig::default()
    }
}

/// A workspace, a receiver and a deliverer (private networks allowed: the receiver is on
/// 127.0.0.1) over a fresh database, at `T0`.
struct World {
    base: crier_testdb::World,
    /// The server's secret keys: what endpoints' secrets are sealed with.
    keyring: Keyring,
    deliverer: Deliverer,
    rx: Receiver,
}

impl std::ops::Deref for World {
    type Target = crier_testdb::World;

    fn deref(&self) -> &Self::Target {
        &self.base
    }
}

impl World {
    async fn new(db: &TestDb) -> Self {
        let base = crier_testdb::World::new(db).await;
        let keyring = Keyring::ephemeral();
        let deliverer = Deliverer::new(
            base.store.clone(),
            Arc::new(base.clock.clone()),
            keyring.clone(),
            config(true),
        );
        Self {
            base,
            keyring,
            deliverer,
            rx: Receiver::start().await,
        }
    }

    /// A deliverer on this world's store and clock with another configuration.
    fn deliverer_with(&self, config: WebhookConfig) -> Deliverer {
        Deliverer::new(
            self.store.clone(),
            Arc::new(self.clock.clone()),
            self.keyring.clone(),
            config,
        )
    }

    /// An enabled test-mode endpoint of this workspace at the receiver's `path`.
    async fn endpoint(&self, path: &str, events: &[&str]) -> Endpoint {
        self.endpoint_with(&self.ws, false, &self.rx.url(path), events, true)
            .await
    }

    async fn endpoint_with(
        &self,
        ws: &WorkspaceId,
        livemode: bool,
        url: &str,
        events: &[&str],
        enabled: bool,
    ) -> Endpoint {
        let now = self.now();
        let e = Endpoint {
            id: WebhookId::generate(),
            workspace_id: ws.clone(),
            livemode,
            url: url.to_owned(),
            description: String::new(),
            events: events.iter().map(|s| s.to_string()).collect(),
            enabled,
            disabled_reason: (!enabled).then(|| "paused".to_owned()),
            secret: new_secret(),
            previous_secret: None,
            previous_secret_until: None,
            failing_since: None,
            created_at: now,
            updated_at: now,
        };
        assert!(
            self.store
                .insert_endpoint(&e, 100)
                .await
                .expect("insert endpoint")
        );
        e
    }

    async fn stored_endpoint(&self, e: &Endpoint) -> Endpoint {
        self.store
            .get_endpoint(&e.workspace_id, &e.id)
            .await
            .expect("get endpoint")
            .expect("the endpoint exists")
    }

    /// An event of `kind` with `data` in this workspace's test mode, now.
    async fn emit(&self, kind: &str, data: Value) -> String {
        self.store
            .emit_event(&self.ws, false, kind, &data, self.now())
            .await
            .expect("emit")
            .to_string()
    }

    async fn run(&self) -> Vec<AttemptOutcome> {
        self.deliverer.run_due().await
    }

    /// An endpoint's deliveries, oldest first, with their attempts.
    async fn deliveries(&self, e: &Endpoint) -> Vec<(Delivery, Vec<WebhookAttempt>)> {
        let page = self
            .store
            .list_deliveries(&e.workspace_id, &e.id, 200, 0)
            .await
            .expect("list deliveries");
        assert!(!page.has_more);
        let mut items = page.items;
        items.reverse();
        items
    }

    async fn the_delivery(&self, e: &Endpoint) -> (Delivery, Vec<WebhookAttempt>) {
        let mut all = self.deliveries(e).await;
        assert_eq!(all.len(), 1, "{all:?}");
        all.pop().unwrap()
    }

    /// Stores a new key (with its `key.created` event) the way `crier admin` does.
    async fn key(&self, ws: &WorkspaceId, mode: KeyMode, expires_at: Option<i64>) -> KeyRow {
        let now = self.now();
        let secret = SecretKey::generate(mode);
        let key = KeyRow {
            id: KeyId::generate(),
            workspace_id: ws.clone(),
            name: "ci".to_owned(),
            description: "deploys".to_owned(),
            prefix: secret.display_prefix().to_owned(),
            digest: secret.digest(),
            mode,
            scopes: [Scope::PostsRead, Scope::PostsWrite].into_iter().collect(),
            per_minute: 120,
            per_day: 10_000,
            allowed_ips: Vec::new(),
            allowed_origins: Vec::new(),
            allowed_brand_ids: Vec::new(),
            allowed_account_ids: Vec::new(),
            expires_at,
            last_used_at: None,
            request_count: 0,
            created_at: now,
            updated_at: now,
            revoked_at: None,
            replaced_by: None,
            created_by: None,
            member_id: None,
        };
        let audit = AuditEntry::new(
            ws,
            Actor::Cli,
            "key.created",
            key.id.as_str(),
            None,
            json!({}),
            now,
        );
        self.store
            .insert_key(&key, &audit)
            .await
            .expect("insert key");
        key
    }

    async fn revoke(&self, key: &KeyRow) -> KeyRow {
        let now = self.now();
        let audit = AuditEntry::new(
            &key.workspace_id,
            Actor::Cli,
            "key.revoked",
            key.id.as_str(),
            None,
            json!({}),
            now,
        );
        self.store
            .revoke_key(&key.workspace_id, &key.id, now, &audit)
            .await
            .expect("revoke")
            .expect("the key exists")
    }

    /// The due times of every webhook job, earliest first.
    async fn webhook_jobs(db: &TestDb) -> Vec<i64> {
        db.query_i64("SELECT run_at FROM jobs WHERE kind = 'webhook' ORDER BY run_at")
            .await
    }
}

fn new_post(ws: &WorkspaceId, accounts: &[&Account], body: &str, status: PostStatus) -> Post {
    Post {
        status,
        scheduled_at: (status == PostStatus::Scheduled).then_some(T0),
        ..Post::draft(
            ws,
            accounts.first().is_some_and(|a| a.livemode),
            accounts,
            body.into(),
            T0,
        )
    }
}

/// `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, computed here with the primitives and not
/// with crier's `sign`.
fn independent_signature(secret: &str, id: &str, timestamp: &str, body: &[u8]) -> String {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").expect("a whsec_ secret"))
        .expect("base64");
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The `v1,` signatures of a request.
fn signatures(r: &Received) -> Vec<String> {
    r.header("webhook-signature")
        .split(' ')
        .map(str::to_owned)
        .collect()
}

/// Asserts that the request carries a signature made with `secret`, by crier's `sign` and by
/// the independent computation alike.
#[track_caller]
fn assert_signed_with(r: &Received, secret: &str) {
    let id = r.header("webhook-id");
    let ts = r.header("webhook-timestamp");
    let expected = sign(secret, id, ts.parse().unwrap(), &r.body).expect("a valid secret");
    assert_eq!(
        expected,
        independent_signature(secret, id, ts, &r.body),
        "crier's sign agrees with the independent HMAC"
    );
    let sigs = signatures(r);
    assert!(
        sigs.contains(&expected),
        "{sigs:?} has no signature by this secret"
    );
}

#[track_caller]
fn assert_not_signed_with(r: &Received, secret: &str) {
    let ts: i64 = r.header("webhook-timestamp").parse().unwrap();
    let expected = sign(secret, r.header("webhook-id"), ts, &r.body).unwrap();
    assert!(!signatures(r).contains(&expected), "signed with {secret}");
}

/// The event body: exactly `{"id","type","created_at","data"}`, `id` equal to `webhook-id`.
#[track_caller]
fn assert_event(r: &Received, kind: &str, created_at: i64, data: &Value) {
    let body = r.json();
    let keys: BTreeSet<&str> = body
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, BTreeSet::from(["id", "type", "created_at", "data"]));
    assert_eq!(body["id"], r.header("webhook-id"));
    assert!(r.header("webhook-id").starts_with("evt_"));
    assert_eq!(body["type"], kind);
    assert_eq!(body["created_at"], json!(from_ms(created_at)));
    assert_eq!(&body["data"], data);
}

fn types_of(rs: &[Received]) -> Vec<String> {
    let mut out: Vec<String> = rs
        .iter()
        .map(|r| r.json()["type"].as_str().unwrap().to_owned())
        .collect();
    out.sort();
    out
}

fn retry_at(outcomes: &[AttemptOutcome]) -> i64 {
    match outcomes {
        [AttemptOutcome::Retry(at)] => *at,
        other => panic!("expected one retry, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Events made by real store operations
// ---------------------------------------------------------------------------------------------

both!(key_created_and_revoked_carry_the_key, |db| async move {
    let w = World::new(&db).await;
    let all = w.endpoint("/all", &["*"]).await;

    let key = w.key(&w.ws, KeyMode::Test, None).await;
    assert_eq!(w.run().await, vec![AttemptOutcome::Succeeded]);
    let got = w.rx.received();
    assert_eq!(got.len(), 1);
    let created_data = serde_json::to_value(KeyObject::from_row(&key, None)).unwrap();
    assert_event(&got[0], types::KEY_CREATED, T0, &created_data);
    assert_eq!(got[0].json()["data"]["id"], key.id.as_str());
    assert_eq!(got[0].json()["data"].get("key"), None, "never the secret");
    assert_signed_with(&got[0], &all.secret);

    w.set(T0 + MINUTE);
    let revoked = w.revoke(&key).await;
    assert_eq!(revoked.revoked_at, Some(T0 + MINUTE));
    // Revoking again changes nothing, so it announces nothing.
    w.revoke(&key).await;
    assert_eq!(w.run().await, vec![AttemptOutcome::Succeeded]);
    let got = w.rx.received();
    assert_eq!(got.len(), 2, "one key.revoked, not two");
    let revoked_data = serde_json::to_value(KeyObject::from_row(&revoked, None)).unwrap();
    assert_eq!(revoked_data["revoked_at"], json!(from_ms(T0 + MINUTE)));
    assert_event(&got[1], types::KEY_REVOKED, T0 + MINUTE, &revoked_data);
    assert_signed_with(&got[1], &all.secret);
    assert_ne!(got[0].header("webhook-id"), got[1].header("webhook-id"));
    assert_eq!(w.deliveries(&all).await.len(), 2);
    assert_eq!(w.run().await, vec![], "nothing left to deliver");
});

both!(post_events_follow_status_changes, |db| async move {
    let w = World::new(&db).await;
    let e = w
        .endpoint(
            "/posts",
            &[
                types::POST_SCHEDULED,
                types::POST_APPROVAL_REQUESTED,
                types::POST_PUBLISHED,
                types::POST_FAILED,
            ],
        )
        .await;
    let a = w.account("ada", false).await;
    let b = w.account("bob", false).await;

    // A draft announces nothing; scheduling it does.
    let p1 = new_post(&w.ws, &[&a], "later", PostStatus::Draft);
    w.store.insert_post(&p1).await.unwrap();
    let p2 = new_post(&w.ws, &[&a], "needs a look", PostStatus::Draft);
    w.store.insert_post(&p2).await.unwrap();
    assert!(w.run().await.is_empty());
    let to = |from, to, enqueue_at| Transition {
        scheduled_at: Some(Some(T0 + HOUR)),
        enqueue_at,
        ..Transition::new(from, to, T0)
    };
    let scheduled = to(PostStatus::Draft, PostStatus::Scheduled, Some(T0 + HOUR));
    assert!(w.store.transition(&w.ws, &p1.id, &scheduled).await.unwrap());
    // The same transition again finds the post moved on: no change, no event.
    assert!(!w.store.transition(&w.ws, &p1.id, &scheduled).await.unwrap());
    let approval = to(PostStatus::Draft, PostStatus::PendingApproval, None);
    assert!(w.store.transition(&w.ws, &p2.id, &approval).await.unwrap());

    let outcomes = w.run().await;
    assert_eq!(outcomes, vec![AttemptOutcome::Succeeded; 2]);
    let got = w.rx.received();
    assert_eq!(
        types_of(&got),
        vec![types::POST_APPROVAL_REQUESTED, types::POST_SCHEDULED]
    );
    for r in &got {
        let (post, kind) = if r.json()["type"] == types::POST_SCHEDULED {
            (w.post(&p1.id).await, types::POST_SCHEDULED)
        } else {
            (w.post(&p2.id).await, types::POST_APPROVAL_REQUESTED)
        };
        let data = serde_json::to_value(PostObject::from(&post)).unwrap();
        assert_event(r, kind, T0, &data);
        assert_signed_with(r, &e.secret);
    }
    assert_eq!(got[0].json()["data"]["object"], "post");

    // Publishing: p3 publishes, p4 publishes to one of two accounts, p5 fails. Each is
    // scheduled through `insert_posts` (a post.scheduled each) and finished target by target.
    let p3 = new_post(&w.ws, &[&a], "ok", PostStatus::Scheduled);
    let p4 = new_post(&w.ws, &[&a, &b], "half", PostStatus::Scheduled);
    let p5 = new_post(&w.ws, &[&b], "no", PostStatus::Scheduled);
    w.store
        .insert_posts(&[p3.clone(), p4.clone(), p5.clone()])
        .await
        .unwrap();
    let jobs = w.store.claim_jobs(T0, MINUTE, 10).await.unwrap();
    assert_eq!(jobs.len(), 4, "p1's job is not due yet: {jobs:?}");
    let published = |n: &str| TargetOutcome::Published {
        external_id: n.to_owned(),
        url: format!("https://sandbox.crier.invalid/{n}"),
        part_ids: vec![n.to_owned()],
    };
    let failed = TargetOutcome::Failed(TargetError {
        code: "network_error".into(),
        message: "no".into(),
    });
    let mut statuses = Vec::new();
    for job in &jobs {
        let post = job.post_id.as_ref().unwrap();
        let account = job.account_id.as_ref().unwrap();
        let outcome = if *post == p5.id || (*post == p4.id && *account == b.id) {
            failed.clone()
        } else {
            published(&format!("x{}", statuses.len()))
        };
        statuses.push(
            w.store
                .finish_target(job, &outcome, T0)
                .await
                .unwrap()
                .expect("the job is ours"),
        );
    }
    assert!(statuses.contains(&PostStatus::Publishing), "p4 half done");

    let outcomes = w.run().await;
    assert_eq!(outcomes.len(), 6, "{outcomes:?}");
    let got: Vec<Received> = w.rx.received().into_iter().skip(2).collect();
    let mut seen: Vec<(String, String, String)> = got
        .iter()
        .map(|r| {
            let b = r.json();
            (
                b["type"].as_str().unwrap().to_owned(),
                b["data"]["id"].as_str().unwrap().to_owned(),
                b["data"]["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    seen.sort();
    let ev = |t: &str, p: &Post, s: &str| (t.to_owned(), p.id.to_string(), s.to_owned());
    let mut expected = vec![
        ev(types::POST_SCHEDULED, &p3, "scheduled"),
        ev(types::POST_SCHEDULED, &p4, "scheduled"),
        ev(types::POST_SCHEDULED, &p5, "scheduled"),
        ev(types::POST_PUBLISHED, &p3, "published"),
        ev(types::POST_FAILED, &p4, "partially_published"),
        ev(types::POST_FAILED, &p5, "failed"),
    ];
    expected.sort();
    assert_eq!(seen, expected);
    // The finished events carry the post as it was when it finished, targets included.
    for r in &got {
        assert_signed_with(r, &e.secret);
        let b = r.json();
        if b["type"] == types::POST_SCHEDULED {
            continue;
        }
        let id = PostId::parse(b["data"]["id"].as_str().unwrap()).unwrap();
        let now = serde_json::to_value(PostObject::from(&w.post(&id).await)).unwrap();
        assert_event(r, b["type"].as_str().unwrap(), T0, &now);
    }
    let p4_targets = w.post(&p4.id).await.targets;
    assert_eq!(p4_targets.len(), 2);
});

// Targets that end at the same moment (on PostgreSQL they are recorded together, in one
// batch: `finish.rs`) end exactly as they would one after another: each post's status from all
// its targets, one event and one delivery per post that finished, the live published targets
// counted, and nothing written for a post cancelled after its jobs were claimed.
both!(
    targets_ending_together_end_as_one_after_another,
    |db| async move {
        let w = World::new(&db).await;
        let url = w.rx.url("/together");
        let finished = [types::POST_PUBLISHED, types::POST_FAILED];
        w.endpoint_with(&w.ws, true, &url, &finished, true).await;
        let (a, b, c) = (
            w.account("ada", true).await,
            w.account("bob", true).await,
            w.account("cy", true).await,
        );
        let posts: Vec<Post> = (0..60)
            .map(|i| {
                let accounts: &[&Account] = match i % 3 {
                    0 => &[&a],
                    1 => &[&a, &b],
                    _ => &[&a, &b, &c],
                };
                new_post(&w.ws, accounts, &format!("post {i}"), PostStatus::Scheduled)
            })
            .collect();
        w.store.insert_posts(&posts).await.unwrap();
        let jobs = w.store.claim_jobs(T0, MINUTE, 1000).await.unwrap();
        assert_eq!(jobs.len(), 120);
        // Every fifth post is cancelled after its jobs were claimed: its jobs are gone.
        let cancelled: BTreeSet<PostId> = posts.iter().step_by(5).map(|p| p.id.clone()).collect();
        for id in &cancelled {
            let cancel = Transition::new(PostStatus::Scheduled, PostStatus::Draft, T0);
            assert!(w.store.transition(&w.ws, id, &cancel).await.unwrap());
        }
        let outcome = |job: &crier_store::Job| {
            if job.account_id.as_ref() == Some(&c.id) {
                TargetOutcome::Failed(TargetError {
                    code: "network_error".into(),
                    message: "no".into(),
                })
            } else {
                TargetOutcome::Published {
                    external_id: format!("x-{}", job.id),
                    url: format!("https://sandbox.crier.invalid/{}", job.id),
                    part_ids: vec![format!("x-{}", job.id)],
                }
            }
        };
        let ends = futures::future::join_all(jobs.iter().map(|job| {
            let (store, outcome) = (w.store.clone(), outcome(job));
            async move { store.finish_target(job, &outcome, T0 + SECOND).await }
        }))
        .await;
        let mut published_live = 0;
        for (job, end) in jobs.iter().zip(ends) {
            let post = job.post_id.as_ref().unwrap();
            let end = end.expect("recorded");
            if cancelled.contains(post) {
                assert_eq!(end, None, "nothing written for a cancelled post");
            } else {
                assert!(end.is_some(), "{job:?}");
                published_live += matches!(outcome(job), TargetOutcome::Published { .. }) as i64;
            }
        }
        for p in &posts {
            let stored = w.post(&p.id).await;
            if cancelled.contains(&p.id) {
                assert_eq!(stored.status, PostStatus::Draft);
                assert!(
                    stored
                        .targets
                        .iter()
                        .all(|t| t.status == crier_core::posts::TargetStatus::Pending)
                );
                continue;
            }
            let want = match p.account_ids.len() {
                3 => PostStatus::PartiallyPublished,
                _ => PostStatus::Published,
            };
            assert_eq!(stored.status, want, "{}", p.id);
            assert_eq!(stored.published_at, Some(T0 + SECOND));
            for t in &stored.targets {
                if t.account_id == c.id {
                    assert_eq!(t.error.as_ref().unwrap().code, "network_error");
                    assert_eq!(t.external_id, None);
                } else {
                    assert_eq!(t.part_ids.len(), 1);
                    assert_eq!(t.external_id.as_deref(), Some(t.part_ids[0].as_str()));
                    assert_eq!(t.published_at, Some(T0 + SECOND));
                }
            }
        }
        let period = crier_core::clock::Month::of(T0 + SECOND).period;
        let usage = w.store.workspace_usage(&w.ws, &period).await.unwrap();
        assert_eq!(
            usage.get(crier_store::METRIC_POSTS_PUBLISHED),
            Some(&published_live)
        );
        // 16 posts of each shape were not cancelled: 1, 2 and 2 (the third failed) published.
        assert_eq!(published_live, 16 + 32 + 32);
        // One event per finished post, carrying it as it finished, each delivered once.
        w.set(T0 + SECOND);
        let outcomes = w.run().await;
        assert_eq!(
            outcomes.len(),
            posts.len() - cancelled.len(),
            "{outcomes:?}"
        );
        let got = w.rx.received();
        let mut seen = BTreeSet::new();
        for r in &got {
            let body = r.json();
            let id = PostId::parse(body["data"]["id"].as_str().unwrap()).unwrap();
            assert!(seen.insert(id.clone()), "one event for {id}");
            let stored = w.post(&id).await;
            let kind = match stored.status {
                PostStatus::Published => types::POST_PUBLISHED,
                _ => types::POST_FAILED,
            };
            let data = serde_json::to_value(PostObject::from(&stored)).unwrap();
            assert_event(r, kind, T0 + SECOND, &data);
        }
        assert_eq!(seen.len(), posts.len() - cancelled.len());
    }
);

both!(a_job_naming_no_delivery_is_dropped, |db| async move {
    let w = World::new(&db).await;
    for sql in [
        "INSERT INTO jobs (id, kind, workspace_id, ref_id, run_at, locked_until, created_at)
         VALUES ('job_bad1', 'webhook', 'ws_x', 'not-a-delivery-id', 0, 0, 0)",
        "INSERT INTO jobs (id, kind, workspace_id, ref_id, run_at, locked_until, created_at)
         VALUES ('job_bad2', 'webhook', 'ws_x', NULL, 0, 0, 0)",
    ] {
        db.query_i64(sql).await;
    }
    assert_eq!(w.run().await, vec![]);
    assert_eq!(
        db.query_i64("SELECT COUNT(*) FROM jobs").await,
        vec![0],
        "dropped, not left to come back every lease"
    );
});

both!(account_disconnected_is_announced_once, |db| async move {
    let w = World::new(&db).await;
    let e = w.endpoint("/acct", &[types::ACCOUNT_DISCONNECTED]).await;
    let a = w.account("ada", false).await;
    w.set(T0 + MINUTE);
    let gone = w
        .store
        .disconnect_account(&w.ws, &a.id, T0 + MINUTE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(gone.status.as_str(), "disconnected");
    // Disconnecting a disconnected account changes nothing and says nothing.
    w.store
        .disconnect_account(&w.ws, &a.id, T0 + 2 * MINUTE)
        .await
        .unwrap();
    assert_eq!(w.run().await, vec![AttemptOutcome::Succeeded]);
    let got = w.rx.received();
    assert_eq!(got.len(), 1);
    let data = serde_json::to_value(AccountObject::from(&gone)).unwrap();
    assert_eq!(data["status"], "disconnected");
    assert_eq!(data["disconnected_at"], json!(from_ms(T0 + MINUTE)));
    assert_event(&got[0], types::ACCOUNT_DISCONNECTED, T0 + MINUTE, &data);
    assert_signed_with(&got[0], &e.secret);
});

both!(
    key_expiring_is_sent_once_within_seven_days,
    |db| async move {
        let w = World::new(&db).await;
        let test = w.endpoint("/test", &[types::KEY_EXPIRING]).await;
        let live = w
            .endpoint_with(
                &w.ws,
                true,
                &w.rx.url("/live"),
                &[types::KEY_EXPIRING],
                true,
            )
            .await;
        let in6 = w.key(&w.ws, KeyMode::Test, Some(T0 + 6 * DAY)).await;
        let in8 = w.key(&w.ws, KeyMode::Test, Some(T0 + 8 * DAY)).await;
        let live3 = w.key(&w.ws, KeyMode::Live, Some(T0 + 3 * DAY)).await;
        w.key(&w.ws, KeyMode::Test, None).await;
        let revoked = w.key(&w.ws, KeyMode::Test, Some(T0 + DAY)).await;
        w.revoke(&revoked).await;
        assert!(
            w.run().await.is_empty(),
            "the endpoints take key.expiring only"
        );

        assert_eq!(w.store.emit_key_expiring(T0, 7 * DAY).await.unwrap(), 2);
        assert_eq!(w.store.emit_key_expiring(T0, 7 * DAY).await.unwrap(), 0);
        assert_eq!(w.run().await.len(), 2);
        let on_test = w.rx.received_on("/test");
        assert_eq!(on_test.len(), 1);
        let data = serde_json::to_value(KeyObject::from_row(&in6, None)).unwrap();
        assert_event(&on_test[0], types::KEY_EXPIRING, T0, &data);
        assert_signed_with(&on_test[0], &test.secret);
        let on_live = w.rx.received_on("/live");
        assert_eq!(on_live.len(), 1);
        assert_eq!(on_live[0].json()["data"]["id"], live3.id.as_str());
        assert_signed_with(&on_live[0], &live.secret);

        // A day later the 8-day key comes within 7 days: announced once too.
        let later = T0 + DAY + 1;
        w.set(later);
        assert_eq!(w.store.emit_key_expiring(later, 7 * DAY).await.unwrap(), 1);
        assert_eq!(w.store.emit_key_expiring(later, 7 * DAY).await.unwrap(), 0);
        assert_eq!(w.run().await, vec![AttemptOutcome::Succeeded]);
        let on_test = w.rx.received_on("/test");
        assert_eq!(on_test.len(), 2);
        assert_eq!(on_test[1].json()["data"]["id"], in8.id.as_str());
        assert_eq!(on_test[1].json()["created_at"], json!(from_ms(later)));
        assert_eq!(w.rx.received().len(), 3);
    }
);

both!(
    events_reach_only_subscribed_enabled_endpoints_of_the_workspace_and_mode,
    |db| async move {
        let w = World::new(&db).await;
        let other = w
            .store
            .create_workspace("globex", "free", T0)
            .await
            .unwrap()
            .id;
        let url = |p: &str| w.rx.url(p);
        let all = w.endpoint("/all", &["*"]).await;
        let created = w.endpoint("/created", &[types::KEY_CREATED]).await;
        let revoked = w.endpoint("/revoked", &[types::KEY_REVOKED]).await;
        let off = w
            .endpoint_with(&w.ws, false, &url("/off"), &["*"], false)
            .await;
        let live = w
            .endpoint_with(&w.ws, true, &url("/live"), &["*"], true)
            .await;
        let theirs = w
            .endpoint_with(&other, false, &url("/theirs"), &["*"], true)
            .await;

        w.key(&w.ws, KeyMode::Test, None).await;
        let count = |e: Endpoint| {
            let w = &w;
            async move { w.deliveries(&e).await.len() }
        };
        assert_eq!(count(all.clone()).await, 1);
        assert_eq!(count(created.clone()).await, 1);
        for e in [&revoked, &off, &live, &theirs] {
            assert_eq!(count(e.clone()).await, 0, "{}", e.url);
        }
        assert_eq!(w.run().await.len(), 2);
        let paths: BTreeSet<String> = w.rx.received().into_iter().map(|r| r.path).collect();
        assert_eq!(paths, BTreeSet::from(["/all".into(), "/created".into()]));

        w.key(&w.ws, KeyMode::Live, None).await;
        w.key(&other, KeyMode::Test, None).await;
        assert_eq!(w.run().await.len(), 2);
        assert_eq!(w.rx.received_on("/live").len(), 1);
        assert_eq!(w.rx.received_on("/theirs").len(), 1);
        assert_signed_with(&w.rx.received_on("/live")[0], &live.secret);
        assert_signed_with(&w.rx.received_on("/theirs")[0], &theirs.secret);
        assert_eq!(w.rx.received_on("/all").len(), 1);
        assert_eq!(w.rx.received_on("/off").len(), 0);
        assert_eq!(w.rx.received().len(), 4);
    }
);

// ---------------------------------------------------------------------------------------------
// The request
// ---------------------------------------------------------------------------------------------

both!(deliveries_follow_standard_webhooks, |db| async move {
    let w = World::new(&db).await;
    let e = w.endpoint("/hook", &["*"]).await;
    let id = w
        .emit(
            types::FEED_ITEM_CREATED,
            json!({"title": "héllo \"quoted\""}),
        )
        .await;
    assert_eq!(w.run().await, vec![AttemptOutcome::Succeeded]);
    let r = &w.rx.received()[0];
    assert_eq!(r.header("webhook-id"), id);
    assert_eq!(r.header("webhook-timestamp"), (T0 / 1000).to_string());
    assert_eq!(r.header("content-type"), "application/json");
    assert!(r.header("user-agent").starts_with("crier/"));
    assert_event(
        r,
        types::FEED_ITEM_CREATED,
        T0,
        &json!({"title": "héllo \"quoted\""}),
    );
    // Exactly one signature, the current secret's, and it covers id, timestamp and body.
    let expected = independent_signature(&e.secret, &id, &(T0 / 1000).to_string(), &r.body);
    assert_eq!(signatures(r), vec![expected.clone()]);
    assert_signed_with(r, &e.secret);
    let mut tampered = r.body.clone();
    tampered.push(b' ');
    assert_ne!(
        sign(&e.secret, &id, T0 / 1000, &tampered).unwrap(),
        expected
    );
    assert_ne!(
        sign(&e.secret, &id, T0 / 1000 + 1, &r.body).unwrap(),
        expected
    );
    assert_not_signed_with(r, &new_secret());
});

// ---------------------------------------------------------------------------------------------
// Retries and disabling
// ---------------------------------------------------------------------------------------------

both!(
    retries_follow_the_schedule_and_keep_the_webhook_id,
    |db| async move {
        let w = World::new(&db).await;
        let e = w.endpoint("/flaky", &["*"]).await;
        w.rx.script("/flaky", std::iter::repeat_n(Reply::status(500), 8));
        let id = w.emit(types::FEED_ITEM_CREATED, json!({"n": 1})).await;

        let mut times = vec![T0];
        for (n, delay) in SCHEDULE.iter().enumerate() {
            let now = w.now();
            let at = retry_at(&w.run().await);
            let waited = at - now;
            assert!(
                waited >= delay * 9 / 10 && waited <= delay * 11 / 10,
                "after attempt {}: waited {waited} ms, schedule says {delay} ms ±10%",
                n + 1
            );
            assert_eq!(
                World::webhook_jobs(&db).await,
                vec![at],
                "the job's next run"
            );
            let (d, attempts) = w.the_delivery(&e).await;
            assert_eq!(d.status, "pending");
            assert_eq!(d.attempts, n as i64 + 1);
            assert_eq!(attempts.len(), n + 1);
            // Not a moment early.
            w.set(at - 1);
            assert_eq!(w.run().await, vec![]);
            assert_eq!(w.rx.received().len(), n + 1);
            w.set(at);
            times.push(at);
        }
        // The 8th attempt fails too, and that was the last.
        assert_eq!(w.run().await, vec![AttemptOutcome::GiveUp]);
        assert_eq!(World::webhook_jobs(&db).await, Vec::<i64>::new());
        w.set(T0 + 30 * DAY);
        assert_eq!(w.run().await, vec![]);

        let got = w.rx.received();
        assert_eq!(got.len(), 8);
        for (r, at) in got.iter().zip(&times) {
            assert_eq!(r.header("webhook-id"), id, "a retry keeps its webhook-id");
            assert_eq!(r.body, got[0].body, "and its body");
            assert_eq!(r.header("webhook-timestamp"), (at / 1000).to_string());
            assert_signed_with(r, &e.secret);
        }
        let (d, attempts) = w.the_delivery(&e).await;
        assert_eq!(d.status, "failed");
        assert_eq!(d.attempts, 8);
        assert_eq!(d.last_status, Some(500));
        let numbers: Vec<i64> = attempts.iter().map(|a| a.attempt).collect();
        assert_eq!(numbers, (1..=8).collect::<Vec<_>>());
        let at: Vec<i64> = attempts.iter().map(|a| a.created_at).collect();
        assert_eq!(at, times);
        assert!(attempts.iter().all(|a| a.status == Some(500)));
        // About 27.6 hours of failures: failing, not disabled.
        let stored = w.stored_endpoint(&e).await;
        assert!(stored.enabled);
        assert_eq!(stored.failing_since, Some(T0));
    }
);

both!(retry_after_is_honoured, |db| async move {
    let w = World::new(&db).await;
    let e = w.endpoint("/busy", &[types::FEED_ITEM_CREATED]).await;
    let cap = w.endpoint("/cap", &[types::KEY_REVOKED]).await;
    w.rx.script(
        "/busy",
        [
            Reply::status(429).header("retry-after", "120"),
            // Shorter than the schedule's 5 minutes: the schedule wins.
            Reply::status(503).header("retry-after", "1"),
            Reply::status(200),
        ],
    );
    w.rx.script("/cap", [Reply::status(429).header("retry-after", "864000")]);
    let id = w.emit(types::FEED_ITEM_CREATED, json!({})).await;
    let at = retry_at(&w.run().await);
    assert_eq!(at, T0 + 120 * SECOND, "Retry-After: 120 over the 5 s step");
    w.set(at - 1);
    assert!(w.run().await.is_empty());
    w.set(at);
    let next = retry_at(&w.run().await);
    let waited = next - at;
    assert!(
        (270 * SECOND..=330 * SECOND).contains(&waited),
        "{waited} ms: the 5 min step"
    );
    w.set(next);
    assert_eq!(w.run().await, vec![AttemptOutcome::Succeeded]);
    let (d, attempts) = w.the_delivery(&e).await;
    assert_eq!(d.status, "succeeded");
    let statuses: Vec<Option<i64>> = attempts.iter().map(|a| a.status).collect();
    assert_eq!(statuses, vec![Some(429), Some(503), Some(200)]);
    let got = w.rx.received_on("/busy");
    assert!(got.iter().all(|r| r.header("webhook-id") == id));
    // A success clears the endpoint's failing state.
    assert_eq!(w.stored_endpoint(&e).await.failing_since, None);

    // A Retry-After of 10 days is held to one day.
    let now = w.now();
    w.store
        .emit_event(&w.ws, false, types::KEY_REVOKED, &json!({}), now)
        .await
        .unwrap();
    assert_eq!(retry_at(&w.run().await), now + DAY);
    assert_eq!(w.stored_endpoint(&cap).await.failing_since, Some(now));
});

both!(gone_disables_the_endpoint_with_an_event, |db| async move {
    let w = World::new(&db).await;
    let gone = w.endpoint("/gone", &[types::FEED_ITEM_CREATED]).await;
    let monitor = w.endpoint("/monitor", &[types::WEBHOOK_DISABLED]).await;
    w.rx.script("/gone", [Reply::status(500), Reply::status(410)]);

    // e1 fails and waits for its retry; e2 meets 410 Gone.
    w.emit(types::FEED_ITEM_CREATED, json!({"n": 1})).await;
    let e1_retry = retry_at(&w.run().await);
    w.set(T0 + SECOND);
    w.emit(types::FEED_ITEM_CREATED, json!({"n": 2})).await;
    // The 410 disables the endpoint, and the webhook_endpoint.disabled event written with it
    // is delivered in the same pass to the workspace's subscribed endpoint.
    assert_eq!(
        w.run().await,
        vec![
            AttemptOutcome::Disable("the endpoint answered 410 Gone".into()),
            AttemptOutcome::Succeeded
        ]
    );
    let stored = w.stored_endpoint(&gone).await;
    assert!(!stored.enabled);
    assert!(
        stored.disabled_reason.as_deref().unwrap().contains("410"),
        "{stored:?}"
    );
    let notes = w.rx.received_on("/monitor");
    assert_eq!(notes.len(), 1);
    assert_event(
        &notes[0],
        types::WEBHOOK_DISABLED,
        T0 + SECOND,
        &json!({
            "id": gone.id.as_str(), "object": "webhook_endpoint", "url": gone.url,
            "enabled": false, "disabled_reason": "the endpoint answered 410 Gone",
        }),
    );
    assert_signed_with(&notes[0], &monitor.secret);

    // e1's retry is dropped without a request; new events skip the endpoint.
    w.set(e1_retry);
    assert_eq!(w.run().await, vec![AttemptOutcome::GiveUp]);
    w.emit(types::FEED_ITEM_CREATED, json!({"n": 3})).await;
    assert!(w.run().await.is_empty());
    w.set(T0 + DAY);
    assert!(w.run().await.is_empty());
    assert_eq!(w.rx.received_on("/gone").len(), 2);
    let deliveries = w.deliveries(&gone).await;
    assert_eq!(deliveries.len(), 2, "none for the event after disabling");
    assert!(deliveries.iter().all(|(d, _)| d.status == "failed"));
    assert_eq!(
        deliveries[0].0.last_error.as_deref(),
        Some("the endpoint is disabled or deleted")
    );
    assert_eq!(deliveries[1].0.last_status, Some(410));
    assert_eq!(w.rx.received_on("/monitor").len(), 1, "announced once");
});

both!(
    five_days_of_failures_disable_the_endpoint,
    |db| async move {
        let w = World::new(&db).await;
        let failing = w.endpoint("/failing", &[types::FEED_ITEM_CREATED]).await;
        w.endpoint("/monitor", &[types::WEBHOOK_DISABLED]).await;
        w.rx.script("/failing", std::iter::repeat_n(Reply::status(500), 1000));

        // An event every 12 hours; every due job runs at its time.
        let mut next_emit = T0;
        let mut disabled = None;
        let mut attempts = 0;
        while disabled.is_none() {
            let next_job = World::webhook_jobs(&db).await.first().copied();
            let t = next_job.map_or(next_emit, |j| j.min(next_emit));
            assert!(t <= T0 + 6 * DAY, "never disabled");
            let stored = w.stored_endpoint(&failing).await;
            assert!(stored.enabled, "disabled early, before {t}");
            w.set(t);
            if t == next_emit {
                w.emit(types::FEED_ITEM_CREATED, json!({ "at": t })).await;
                next_emit += 12 * HOUR;
            }
            for o in w.run().await {
                attempts += 1;
                match o {
                    AttemptOutcome::Disable(reason) => disabled = Some((t, reason)),
                    AttemptOutcome::Retry(_) | AttemptOutcome::GiveUp => {}
                    // Only the monitor's webhook_endpoint.disabled, right after the disabling.
                    AttemptOutcome::Succeeded => assert!(disabled.is_some(), "never succeeds"),
                }
            }
        }
        let (at, reason) = disabled.unwrap();
        assert_eq!(
            at,
            T0 + 5 * DAY,
            "at the first attempt 5 days after the first failure"
        );
        assert_eq!(reason, "every delivery failed for 5 days");
        assert!(attempts > 50, "{attempts} attempts in 5 days");
        let stored = w.stored_endpoint(&failing).await;
        assert!(!stored.enabled);
        assert_eq!(stored.failing_since, Some(T0));
        assert_eq!(stored.disabled_reason.as_deref(), Some(reason.as_str()));

        // The workspace hears of it once; the endpoint hears nothing more.
        let before = w.rx.received_on("/failing").len();
        w.run().await;
        w.set(T0 + 10 * DAY);
        w.run().await;
        assert_eq!(World::webhook_jobs(&db).await, Vec::<i64>::new());
        assert_eq!(w.rx.received_on("/failing").len(), before);
        let notes = w.rx.received_on("/monitor");
        assert_eq!(notes.len(), 1);
        assert_eq!(notes[0].json()["type"], types::WEBHOOK_DISABLED);
        assert_eq!(notes[0].json()["data"]["id"], failing.id.as_str());
        assert_eq!(notes[0].json()["data"]["disabled_reason"], reason);
    }
);

// ---------------------------------------------------------------------------------------------
// The attempt log
// ---------------------------------------------------------------------------------------------

both!(
    attempts_record_status_latency_and_a_bounded_excerpt,
    |db| async move {
        let w = World::new(&db).await;
        let e = w.endpoint("/big", &["*"]).await;
        let ascii = "x".repeat(10 * 1024);
        let euros = "€".repeat(3500); // 3 bytes each: 1024 falls inside a character
        w.rx.script(
            "/big",
            [
                Reply::status(500)
                    .body(ascii.clone())
                    .delay(Duration::from_millis(150)),
                Reply::status(502).body(euros.clone()),
                Reply::status(500).body(vec![0xffu8; 4096]),
                Reply::status(500).body(b"bin\0ary".to_vec()),
                Reply::status(200).body("thanks"),
            ],
        );
        w.emit(types::FEED_ITEM_CREATED, json!({})).await;
        for _ in 0..4 {
            let at = retry_at(&w.run().await);
            w.set(at);
        }
        assert_eq!(w.run().await, vec![AttemptOutcome::Succeeded]);
        let (d, attempts) = w.the_delivery(&e).await;
        assert_eq!(d.status, "succeeded");
        assert_eq!(d.attempts, 5);
        assert_eq!(d.last_status, Some(200));
        assert_eq!(attempts.len(), 5);

        let first = &attempts[0];
        assert_eq!(first.status, Some(500));
        assert_eq!(first.error, None);
        assert!(first.latency_ms >= 150, "latency {} ms", first.latency_ms);
        assert!(first.latency_ms < 5000);
        assert_eq!(first.response_excerpt.as_deref(), Some(&ascii[..1024]));

        let second = &attempts[1];
        assert_eq!(second.status, Some(502));
        let excerpt = second.response_excerpt.as_deref().unwrap();
        assert!(excerpt.len() <= 1024, "{} bytes", excerpt.len());
        assert!(excerpt.len() >= 1020, "{} bytes", excerpt.len());
        assert!(euros.starts_with(excerpt), "a clean prefix of the response");

        // Bytes that are not text at all: still within the bound.
        let third = attempts[2].response_excerpt.as_deref().unwrap();
        assert!(
            !third.is_empty() && third.len() <= 1024,
            "{} bytes",
            third.len()
        );

        // A NUL (PostgreSQL cannot store it in text) is kept as U+FFFD.
        assert_eq!(
            attempts[3].response_excerpt.as_deref(),
            Some("bin\u{FFFD}ary")
        );

        assert_eq!(attempts[4].status, Some(200));
        assert_eq!(attempts[4].response_excerpt.as_deref(), Some("thanks"));
    }
);

both!(network_errors_and_timeouts_are_recorded, |db| async move {
    let w = World::new(&db).await;
    // A port nothing listens on.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let refused = w
        .endpoint_with(
            &w.ws,
            false,
            &format!("http://127.0.0.1:{port}/"),
            &["*"],
            true,
        )
        .await;
    let slow = w.endpoint("/slow", &["*"]).await;
    w.rx.script("/slow", [Reply::status(200).delay(Duration::from_secs(3))]);
    let hasty = w.deliverer_with(WebhookConfig {
        timeout: Duration::from_millis(300),
        ..config(true)
    });
    w.emit(types::FEED_ITEM_CREATED, json!({})).await;
    let outcomes = hasty.run_due().await;
    assert_eq!(outcomes.len(), 2);
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, AttemptOutcome::Retry(_)))
    );

    let (d, attempts) = w.the_delivery(&refused).await;
    assert_eq!(d.status, "pending");
    assert_eq!(attempts[0].status, None);
    assert_eq!(attempts[0].response_excerpt, None);
    let err = attempts[0].error.as_deref().unwrap();
    assert!(err.starts_with("could not connect"), "{err}");
    assert_eq!(d.last_error.as_deref(), Some(err));

    let (_, attempts) = w.the_delivery(&slow).await;
    let err = attempts[0].error.as_deref().unwrap();
    assert!(err.starts_with("timed out"), "{err}");
    assert!(
        (300..2500).contains(&attempts[0].latency_ms),
        "{} ms",
        attempts[0].latency_ms
    );
});

// ---------------------------------------------------------------------------------------------
// Secrets, redelivery, deletion
// ---------------------------------------------------------------------------------------------

both!(
    a_rotated_secret_signs_twice_until_the_overlap_ends,
    |db| async move {
        let w = World::new(&db).await;
        // Made before secrets were sealed (kept as `whsec_…`), rotated to a sealed one.
        let e = w.endpoint("/rot", &["*"]).await;
        let old = e.secret.clone();
        let new = new_secret();
        let sealed = webhook_secrets::seal(&w.keyring, &e.id, &new);
        let rotated = w
            .store
            .rotate_endpoint_secret(&e.workspace_id, &e.id, &sealed, T0 + HOUR, T0)
            .await
            .unwrap()
            .expect("the endpoint");
        assert_eq!(rotated.secret, sealed, "only the sealed secret is stored");
        assert_eq!(rotated.previous_secret.as_deref(), Some(old.as_str()));

        for (at, both_signatures) in [(T0, true), (T0 + HOUR - 1, true), (T0 + HOUR, false)] {
            w.set(at);
            w.emit(types::FEED_ITEM_CREATED, json!({ "at": at })).await;
            assert_eq!(w.run().await, vec![AttemptOutcome::Succeeded]);
            let r = w.rx.received().pop().unwrap();
            let sigs = signatures(&r);
            assert!(sigs.iter().all(|s| s.starts_with("v1,")), "{sigs:?}");
            assert_signed_with(&r, &new);
            if both_signatures {
                assert_eq!(sigs.len(), 2, "{sigs:?} at {at}");
                assert_signed_with(&r, &old);
            } else {
                assert_eq!(sigs.len(), 1, "{sigs:?} at {at}");
                assert_not_signed_with(&r, &old);
            }
        }
    }
);

both!(
    a_secret_that_does_not_open_waits_without_counting_an_attempt,
    |db| async move {
        let w = World::new(&db).await;
        let e = w.endpoint("/sealed", &["*"]).await;
        // Sealed with a key this node does not have (a node started with too few keys).
        let elsewhere = Keyring::ephemeral();
        let secret = new_secret();
        let sealed = webhook_secrets::seal(&elsewhere, &e.id, &secret);
        w.store
            .rotate_endpoint_secret(&e.workspace_id, &e.id, &sealed, T0, T0)
            .await
            .unwrap()
            .expect("the endpoint");
        w.emit(types::FEED_ITEM_CREATED, json!({})).await;
        assert_eq!(w.run().await, vec![AttemptOutcome::Retry(T0 + 60_000)]);
        assert!(w.rx.received_on("/sealed").is_empty(), "nothing unsigned");
        let (d, attempts) = w.the_delivery(&e).await;
        assert_eq!((d.status.as_str(), d.attempts), ("pending", 0));
        assert!(attempts.is_empty(), "no attempt counted: {attempts:?}");
        assert_eq!(w.stored_endpoint(&e).await.failing_since, None);
        assert!(w.run().await.is_empty(), "it waits a minute");
        // A node with the key delivers it, signed with the secret the user was shown.
        w.set(T0 + 60_000);
        let with_key = Deliverer::new(
            w.store.clone(),
            Arc::new(w.clock.clone()),
            elsewhere,
            config(true),
        );
        assert_eq!(with_key.run_due().await, vec![AttemptOutcome::Succeeded]);
        assert_signed_with(&w.rx.received_on("/sealed")[0], &secret);
    }
);

both!(a_secret_that_cannot_sign_sends_nothing, |db| async move {
    let w = World::new(&db).await;
    let e = w.endpoint("/bad", &["*"]).await;
    // Kept as shown by an earlier version, but not base64: no signature can be made.
    w.store
        .rotate_endpoint_secret(&e.workspace_id, &e.id, "whsec_not base64!", T0, T0)
        .await
        .unwrap()
        .expect("the endpoint");
    w.emit(types::FEED_ITEM_CREATED, json!({})).await;
    assert_eq!(w.run().await, vec![AttemptOutcome::Retry(T0 + 60_000)]);
    assert!(
        w.rx.received_on("/bad").is_empty(),
        "never an empty signature"
    );
    assert!(w.the_delivery(&e).await.1.is_empty());
});

both!(redelivery_keeps_the_webhook_id, |db| async move {
    let w = World::new(&db).await;
    let e = w.endpoint("/again", &["*"]).await;
    let other = w.endpoint("/other", &[types::KEY_REVOKED]).await;
    let id = w.emit(types::FEED_ITEM_CREATED, json!({"k": "v"})).await;
    assert_eq!(w.run().await, vec![AttemptOutcome::Succeeded]);
    let (d, _) = w.the_delivery(&e).await;
    assert_eq!(d.status, "succeeded");

    let theirs = w
        .store
        .create_workspace("globex", "free", T0)
        .await
        .unwrap()
        .id;
    let later = T0 + MINUTE;
    assert!(
        !w.store
            .redeliver(&theirs, &e.id, &d.id, later)
            .await
            .unwrap()
    );
    assert!(
        !w.store
            .redeliver(&w.ws, &other.id, &d.id, later)
            .await
            .unwrap()
    );
    assert!(w.store.redeliver(&w.ws, &e.id, &d.id, later).await.unwrap());
    // Already on its way: not twice.
    assert!(!w.store.redeliver(&w.ws, &e.id, &d.id, later).await.unwrap());
    assert_eq!(w.the_delivery(&e).await.0.status, "pending");

    w.set(later);
    assert_eq!(w.run().await, vec![AttemptOutcome::Succeeded]);
    let got = w.rx.received_on("/again");
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].header("webhook-id"), id);
    assert_eq!(got[1].body, got[0].body);
    assert_eq!(
        got[1].header("webhook-timestamp"),
        (later / 1000).to_string()
    );
    assert_signed_with(&got[1], &e.secret);
    let (d, attempts) = w.the_delivery(&e).await;
    assert_eq!(d.status, "succeeded");
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[1].created_at, later);
    assert!(w.rx.received_on("/other").is_empty());
});

both!(
    deleting_an_endpoint_drops_its_pending_jobs,
    |db| async move {
        let w = World::new(&db).await;
        let doomed = w.endpoint("/doomed", &["*"]).await;
        let kept = w.endpoint("/kept", &["*"]).await;
        w.rx.script("/doomed", [Reply::status(500)]);
        w.rx.script("/kept", [Reply::status(500)]);
        w.emit(types::FEED_ITEM_CREATED, json!({"n": 1})).await;
        assert_eq!(w.run().await.len(), 2);
        w.emit(types::FEED_ITEM_CREATED, json!({"n": 2})).await;
        assert_eq!(World::webhook_jobs(&db).await.len(), 4);

        assert!(w.store.delete_endpoint(&w.ws, &doomed.id).await.unwrap());
        assert!(!w.store.delete_endpoint(&w.ws, &doomed.id).await.unwrap());
        assert_eq!(World::webhook_jobs(&db).await.len(), 2, "kept's two remain");
        assert_eq!(
            db.query_i64("SELECT COUNT(*) FROM webhook_deliveries")
                .await,
            vec![2],
            "the deleted endpoint's log went with it"
        );
        assert!(w.deliveries(&doomed).await.is_empty());

        w.set(T0 + HOUR);
        assert_eq!(
            w.run().await,
            vec![AttemptOutcome::Succeeded, AttemptOutcome::Succeeded]
        );
        assert_eq!(
            w.rx.received_on("/doomed").len(),
            1,
            "nothing after deletion"
        );
        assert_eq!(w.rx.received_on("/kept").len(), 3);
        let kept = w.deliveries(&kept).await;
        assert_eq!(kept.len(), 2);
        assert!(kept.iter().all(|(d, _)| d.status == "succeeded"));
        assert_eq!(World::webhook_jobs(&db).await, Vec::<i64>::new());
    }
);

// ---------------------------------------------------------------------------------------------
// The SSRF guard
// ---------------------------------------------------------------------------------------------

/// This machine's host name, if it resolves to loopback addresses only (so it is a name, not
/// `localhost`, that the guard must catch when it resolves it).
async fn loopback_hostname() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()?
        .trim()
        .to_owned();
    if name.is_empty() || name.eq_ignore_ascii_case("localhost") {
        return None;
    }
    let addrs: Vec<_> = tokio::net::lookup_host((name.as_str(), 80))
        .await
        .ok()?
        .collect();
    (!addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback())).then_some(name)
}

both!(
    the_ssrf_guard_refuses_private_destinations,
    |db| async move {
        let w = World::new(&db).await;
        let rx6 = Receiver::start_on("[::1]:0").await;
        let port = w.rx.addr.port();
        let mut urls = vec![
            "http://10.0.0.1/hook".to_owned(),
            "http://169.254.169.254/latest/meta-data/".to_owned(),
            rx6.url("/v6"),
            format!("http://localhost:{port}/localhost"),
            format!("http://127.0.0.1:{port}/literal"),
            format!("http://[::ffff:127.0.0.1]:{port}/mapped"),
        ];
        let hostname = loopback_hostname().await;
        match &hostname {
            Some(h) => urls.push(format!("http://{h}:{port}/hostname")),
            None => eprintln!("no host name resolving to loopback only: that case is skipped"),
        }
        let mut endpoints = Vec::new();
        for url in &urls {
            endpoints.push(w.endpoint_with(&w.ws, false, url, &["*"], true).await);
        }
        assert!(rx6.url("/v6").starts_with("http://[::1]:"));

        let guarded = w.deliverer_with(config(false));
        w.emit(types::FEED_ITEM_CREATED, json!({})).await;
        let started = std::time::Instant::now();
        let outcomes = guarded.run_due().await;
        assert_eq!(outcomes.len(), urls.len());
        assert!(
            outcomes
                .iter()
                .all(|o| matches!(o, AttemptOutcome::Retry(_)))
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "refused before any connection attempt"
        );
        assert!(w.rx.received().is_empty(), "{:?}", w.rx.received());
        assert!(rx6.received().is_empty());
        for (e, url) in endpoints.iter().zip(&urls) {
            let (d, attempts) = w.the_delivery(e).await;
            assert_eq!(attempts.len(), 1);
            assert_eq!(attempts[0].status, None, "{url}");
            let err = attempts[0].error.as_deref().unwrap_or_default();
            if url.contains("/hostname") {
                // A name: refused when resolved, at delivery time.
                assert!(err.contains("no address crier may call"), "{url}: {err}");
            } else {
                assert!(err.starts_with("refused"), "{url}: {err}");
                assert!(err.contains("private"), "{url}: {err}");
            }
            assert_eq!(d.last_error.as_deref(), Some(err));
        }

        // The same endpoints on loopback, with private networks allowed, do arrive: what stopped
        // them was the guard. (The 10/8 and metadata addresses go first: nothing answers there.)
        for e in &endpoints[..2] {
            assert!(w.store.delete_endpoint(&w.ws, &e.id).await.unwrap());
        }
        w.set(T0 + HOUR);
        let outcomes = w.run().await;
        assert_eq!(outcomes.len(), urls.len() - 2);
        assert!(outcomes.iter().all(|o| *o == AttemptOutcome::Succeeded));
        assert_eq!(rx6.received_on("/v6").len(), 1);
        let mut paths: Vec<String> = w.rx.received().into_iter().map(|r| r.path).collect();
        paths.sort();
        let mut expected = vec!["/literal", "/localhost", "/mapped"];
        if hostname.is_some() {
            expected.insert(0, "/hostname");
        }
        assert_eq!(paths, expected);
    }
);

both!(redirects_are_not_followed, |db| async move {
    let w = World::new(&db).await;
    let e = w.endpoint("/moved", &["*"]).await;
    let target = w.rx.url("/target");
    w.rx.script("/moved", [Reply::status(302).header("location", &target)]);
    w.emit(types::FEED_ITEM_CREATED, json!({})).await;
    let at = retry_at(&w.run().await);
    assert!(at > T0);
    assert!(w.rx.received_on("/target").is_empty());
    let (d, attempts) = w.the_delivery(&e).await;
    assert_eq!(d.status, "pending");
    assert_eq!(attempts[0].status, Some(302));
});

// ---------------------------------------------------------------------------------------------
// The production loop, on two nodes
// ---------------------------------------------------------------------------------------------

both!(
    two_running_deliverers_deliver_each_event_once,
    |db| async move {
        // `Deliverer::run` on two nodes (each its own connections to one database) with many
        // deliveries in flight: every event arrives once.
        let w = World::new(&db).await;
        let e = w.endpoint("/hook", &["*"]).await;
        let key = w.key(&w.ws, KeyMode::Test, Some(T0 + 3 * DAY)).await;
        let mut ids = BTreeSet::new();
        for n in 0..100 {
            ids.insert(w.emit(types::FEED_ITEM_CREATED, json!({ "n": n })).await);
        }
        let store2 = db.connect_again().await;
        let running = WebhookConfig {
            concurrency: 8,
            poll: Duration::from_millis(10),
            ..config(true)
        };
        let one = w.deliverer_with(running.clone());
        let other = Deliverer::new(
            store2.clone(),
            Arc::new(w.clock.clone()),
            w.keyring.clone(),
            running,
        );
        let cancel = tokio_util::sync::CancellationToken::new();
        // Both nodes run the key expiry check too: the key is announced once all the same.
        let x1 = tokio::spawn(one.clone().run_key_expiry(cancel.clone()));
        let x2 = tokio::spawn(other.clone().run_key_expiry(cancel.clone()));
        let h1 = tokio::spawn(one.run(cancel.clone()));
        let h2 = tokio::spawn(other.run(cancel.clone()));
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while w.rx.received().len() < 102 || !World::webhook_jobs(&db).await.is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "not delivered in time: {} received",
                w.rx.received().len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        cancel.cancel();
        for h in [h1, h2, x1, x2] {
            h.await.unwrap();
        }
        store2.close().await;

        let got = w.rx.received();
        assert_eq!(got.len(), 102, "each event once");
        let mut feed_ids = BTreeSet::new();
        let mut kinds = Vec::new();
        for r in &got {
            assert_signed_with(r, &e.secret);
            let kind = r.json()["type"].as_str().unwrap().to_owned();
            if kind == types::FEED_ITEM_CREATED {
                assert!(feed_ids.insert(r.header("webhook-id").to_owned()), "twice");
            } else {
                assert_eq!(r.json()["data"]["id"], key.id.as_str());
                kinds.push(kind);
            }
        }
        assert_eq!(feed_ids, ids);
        kinds.sort();
        assert_eq!(kinds, vec![types::KEY_CREATED, types::KEY_EXPIRING]);
        let deliveries = w.deliveries(&e).await;
        assert_eq!(deliveries.len(), 102);
        assert!(
            deliveries
                .iter()
                .all(|(d, a)| d.status == "succeeded" && a.len() == 1)
        );
    }
);

both!(
    one_workspaces_backlog_does_not_keep_anothers_deliveries_waiting,
    |db| async move {
        // A workspace with 200 deliveries due (to a receiver that could be slow: each would
        // hold a slot), then another workspace's one delivery, due a second later.
        let w = World::new(&db).await;
        for i in 0..5 {
            w.endpoint(&format!("/busy{i}"), &["*"]).await;
        }
        for i in 0..40 {
            w.emit("post.created", json!({"i": i})).await;
        }
        w.set(w.now() + 1000);
        let other = w
            .store
            .create_workspace("globex", "free", T0)
            .await
            .unwrap()
            .id;
        let theirs = w
            .endpoint_with(&other, false, &w.rx.url("/theirs"), &["*"], true)
            .await;
        w.store
            .emit_event(&other, false, "post.created", &json!({}), w.now())
            .await
            .unwrap();
        // A claim of ten (the slots a node has free) shares them between the two, five each:
        // the later delivery is among them, not behind the 200.
        let claimed = w
            .store
            .claim_jobs_of(crier_store::JobKind::Webhook, w.now(), 60_000, 10)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 6);
        let workspaces: Vec<&str> = claimed
            .iter()
            .map(|(j, _)| j.workspace_id.as_str())
            .collect();
        assert_eq!(
            workspaces
                .iter()
                .filter(|ws| **ws == other.as_str())
                .count(),
            1,
            "{workspaces:?}"
        );
        // The rest go in the order they fell due, and every one is claimed once.
        let mut seen = BTreeSet::new();
        for (job, _) in &claimed {
            assert!(seen.insert(job.id.clone()));
        }
        loop {
            let more = w
                .store
                .claim_jobs_of(crier_store::JobKind::Webhook, w.now(), 60_000, 64)
                .await
                .unwrap();
            if more.is_empty() {
                break;
            }
            assert!(more.iter().all(|(j, _)| seen.insert(j.id.clone())));
        }
        assert_eq!(seen.len(), 201);
        assert_eq!(w.deliveries(&theirs).await.len(), 1);
    }
);

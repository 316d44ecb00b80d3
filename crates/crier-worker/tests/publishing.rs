//! The publisher end to end on both backends: posts, accounts and jobs are stored through the
//! Store, the sandbox network (which keeps a timeline per account and never deduplicates, so
//! a double publish shows) is the network, and a `ManualClock` walks through due times,
//! backoff, `Retry-After` and lease expiry. `cargo test -p crier-worker postgres` runs one
//! side; see `common` for how the PostgreSQL side is found or skipped.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use sqlx::Connection as _;

use crier_core::ids::{PostId, WorkspaceId};
use crier_core::posts::{PostStatus, TargetStatus};
use crier_core::{Clock, ManualClock};
use crier_networks::sandbox::{Sandbox, simulated_metrics};
use crier_networks::{Network, NetworkError, Networks, Part, Session};
use crier_store::{
    Account, Fault, Job, METRIC_POSTS_PUBLISHED, Post, SandboxPost, Store, Target, Transition,
};
use crier_worker::{Processed, Publisher, WorkerConfig};

use common::{TestDb, app_on, both};
use crier_testdb::T0;

const SECOND: i64 = 1000;
const MINUTE: i64 = 60 * SECOND;
const HOUR: i64 = 60 * MINUTE;
const LEASE_MS: i64 = 60 * SECOND;
const BACKOFF_MS: i64 = 10 * SECOND;
const MAX_ATTEMPTS: i64 = 5;

fn config() -> WorkerConfig {
    WorkerConfig {
        lease: Duration::from_millis(LEASE_MS as u64),
        backoff: Duration::from_millis(BACKOFF_MS as u64),
        max_attempts: MAX_ATTEMPTS,
        metrics_every: Duration::from_millis(HOUR as u64),
        ..WorkerConfig::default()
    }
}

/// A publisher (and its sandbox network) over `store`, on `clock`, with the `free` plan's
/// `posts_per_month` (`None`: no quota).
fn publisher_on(
    store: &Store,
    clock: &ManualClock,
    config: WorkerConfig,
    posts_per_month: Option<u64>,
) -> (Publisher, Arc<Sandbox>) {
    let clock: Arc<dyn Clock> = Arc::new(clock.clone());
    let sandbox = Arc::new(Sandbox::new(store.clone(), clock.clone()));
    let networks = Networks::default().with(sandbox.clone());
    let app = app_on(store, clock, networks, posts_per_month);
    (Publisher::new(app, config), sandbox)
}

/// [`crier_testdb::World`] with a publisher and its sandbox network.
struct World {
    base: crier_testdb::World,
    publisher: Publisher,
    sandbox: Arc<Sandbox>,
}

impl std::ops::Deref for World {
    type Target = crier_testdb::World;

    fn deref(&self) -> &Self::Target {
        &self.base
    }
}

impl World {
    async fn new(db: &TestDb) -> Self {
        Self::with_config(db, config()).await
    }

    async fn with_config(db: &TestDb, config: WorkerConfig) -> Self {
        Self::with_quota(db, config, None).await
    }

    /// With the workspace's plan allowing `posts_per_month` (`None`: no quota).
    async fn with_quota(db: &TestDb, config: WorkerConfig, posts_per_month: Option<u64>) -> Self {
        let base = crier_testdb::World::new(db).await;
        let (publisher, sandbox) = publisher_on(&base.store, &base.clock, config, posts_per_month);
        Self {
            base,
            publisher,
            sandbox,
        }
    }

    /// A connected sandbox account.
    async fn account(&self, handle: &str) -> Account {
        self.account_in(handle, false).await
    }

    async fn account_in(&self, handle: &str, livemode: bool) -> Account {
        self.base.account(handle, livemode).await
    }

    /// A post scheduled at `at` (stored with `insert_posts`, which enqueues its jobs).
    async fn schedule(&self, accounts: &[&Account], body: &str, at: i64) -> PostId {
        self.schedule_thread(accounts, body, &[], at).await
    }

    /// A thread (`body`, then `thread`'s replies) scheduled at `at`, as [`World::schedule`].
    async fn schedule_thread(
        &self,
        accounts: &[&Account],
        body: &str,
        thread: &[&str],
        at: i64,
    ) -> PostId {
        let post = new_post(
            &self.ws,
            accounts,
            body,
            thread,
            PostStatus::Scheduled,
            Some(at),
        );
        self.store
            .insert_posts(std::slice::from_ref(&post))
            .await
            .expect("insert");
        post.id
    }

    async fn target(&self, id: &PostId, account: &Account) -> Target {
        self.post(id)
            .await
            .targets
            .into_iter()
            .find(|t| t.account_id == account.id)
            .expect("the target exists")
    }

    async fn timeline(&self, account: &Account) -> Vec<SandboxPost> {
        let page = self
            .store
            .sandbox_timeline(&account.id, 1000, 0)
            .await
            .expect("timeline");
        assert!(!page.has_more);
        page.items
    }

    async fn outcomes(&self, id: &PostId, account: &Account) -> Vec<String> {
        self.store
            .attempts(id, &account.id)
            .await
            .expect("attempts")
            .into_iter()
            .map(|a| a.outcome.as_str().to_owned())
            .collect()
    }

    async fn fault(&self, account: &Account, n: i64, kind: &str, retry_after_seconds: i64) {
        let fault = Fault {
            kind: crier_store::FaultKind::parse(kind).expect("a fault kind"),
            retry_after_seconds,
        };
        self.store
            .sandbox_set_fault(&account.id, n, &fault, 0)
            .await
            .expect("set fault");
    }

    async fn next_job_at(&self) -> Option<i64> {
        self.store.next_job_at().await.expect("next job")
    }

    /// Runs due jobs, moving the clock to the next due job, until the queue is empty.
    async fn run_until_idle(&self) -> Vec<Processed> {
        let mut out = Vec::new();
        for _ in 0..100 {
            out.extend(self.publisher.run_due().await);
            match self.next_job_at().await {
                None => return out,
                Some(at) => self.set(at.max(self.now())),
            }
        }
        panic!("the queue never emptied: {out:?}");
    }
}

fn new_post(
    ws: &WorkspaceId,
    accounts: &[&Account],
    body: &str,
    thread: &[&str],
    status: PostStatus,
    scheduled_at: Option<i64>,
) -> Post {
    Post {
        status,
        thread: thread.iter().map(|s| s.to_string()).collect(),
        scheduled_at,
        ..Post::draft(
            ws,
            accounts.first().is_some_and(|a| a.livemode),
            accounts,
            body.into(),
            T0,
        )
    }
}

fn idem(post: &PostId, account: &Account, part: usize) -> String {
    format!("{post}:{}:{part}", account.id)
}

fn retry_at(out: &[Processed]) -> i64 {
    match out {
        [Processed::RetryAt(at)] => *at,
        other => panic!("expected one retry, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Publishing once
// ---------------------------------------------------------------------------------------------

both!(a_due_post_publishes_once, |db| async move {
    let w = World::new(&db).await;
    let a = w.account("ada").await;
    let due = w.schedule(&[&a], "hello world", T0 + MINUTE).await;
    let later = w.schedule(&[&a], "not yet", T0 + HOUR).await;

    // Nothing is due at T0.
    assert_eq!(w.publisher.run_due().await, vec![]);
    assert_eq!(w.post(&due).await.status, PostStatus::Scheduled);
    assert!(w.timeline(&a).await.is_empty());

    w.set(T0 + MINUTE);
    assert_eq!(w.publisher.run_due().await, vec![Processed::Published]);

    let timeline = w.timeline(&a).await;
    assert_eq!(timeline.len(), 1, "{timeline:?}");
    let landed = &timeline[0];
    assert_eq!(landed.body, "hello world");
    assert_eq!(landed.reply_to, None);
    assert_eq!(landed.idem_key, idem(&due, &a, 0));

    let post = w.post(&due).await;
    assert_eq!(post.status, PostStatus::Published);
    assert_eq!(post.published_at, Some(T0 + MINUTE));
    let t = &post.targets[0];
    assert_eq!(t.status, TargetStatus::Published);
    assert_eq!(t.external_id.as_deref(), Some(landed.external_id.as_str()));
    assert_eq!(
        t.url.as_deref(),
        Some(format!("https://sandbox.crier.invalid/@ada/{}", landed.external_id).as_str())
    );
    assert_eq!(t.part_ids, vec![landed.external_id.clone()]);
    assert_eq!(t.attempts, 1);
    assert_eq!(t.error, None);
    assert_eq!(t.published_at, Some(T0 + MINUTE));

    let attempts = w.store.attempts(&due, &a.id).await.unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].outcome.as_str(), "published");
    assert_eq!(attempts[0].part, 0);
    assert_eq!(attempts[0].idem_key, idem(&due, &a, 0));
    assert_eq!(
        attempts[0].external_id.as_deref(),
        Some(landed.external_id.as_str())
    );
    assert_eq!(attempts[0].finished_at, Some(T0 + MINUTE));

    // The later post is untouched, its job still waiting.
    let untouched = w.post(&later).await;
    assert_eq!(untouched.status, PostStatus::Scheduled);
    assert_eq!(untouched.targets[0].status, TargetStatus::Pending);
    assert_eq!(untouched.targets[0].attempts, 0);
    assert!(w.outcomes(&later, &a).await.is_empty());
    assert_eq!(w.next_job_at().await, Some(T0 + HOUR));

    // Running again publishes nothing more.
    assert_eq!(w.publisher.run_due().await, vec![]);
    assert_eq!(w.timeline(&a).await.len(), 1);
});

both!(a_thread_is_a_reply_chain, |db| async move {
    let w = World::new(&db).await;
    let a = w.account("ada").await;
    // A draft, then scheduled through a transition that enqueues its job.
    let draft = new_post(
        &w.ws,
        &[&a],
        "one",
        &["two", "three"],
        PostStatus::Draft,
        None,
    );
    w.store.insert_post(&draft).await.unwrap();
    assert_eq!(w.next_job_at().await, None, "a draft has no job");
    let at = T0 + MINUTE;
    let scheduled = Transition {
        scheduled_at: Some(Some(at)),
        enqueue_at: Some(at),
        ..Transition::new(PostStatus::Draft, PostStatus::Scheduled, T0)
    };
    assert!(
        w.store
            .transition(&w.ws, &draft.id, &scheduled)
            .await
            .unwrap()
    );
    assert_eq!(w.next_job_at().await, Some(at));

    w.set(at);
    assert_eq!(w.publisher.run_due().await, vec![Processed::Published]);

    let t = w.target(&draft.id, &a).await;
    assert_eq!(t.status, TargetStatus::Published);
    assert_eq!(t.part_ids.len(), 3, "{t:?}");
    assert_eq!(t.external_id.as_ref(), Some(&t.part_ids[0]));
    assert!(t.url.as_ref().unwrap().ends_with(&t.part_ids[0]));

    let timeline = w.timeline(&a).await;
    assert_eq!(timeline.len(), 3, "{timeline:?}");
    let bodies = ["one", "two", "three"];
    for (i, id) in t.part_ids.iter().enumerate() {
        let part = timeline
            .iter()
            .find(|p| &p.external_id == id)
            .unwrap_or_else(|| panic!("part {i} ({id}) is on the timeline"));
        assert_eq!(part.body, bodies[i]);
        assert_eq!(part.idem_key, idem(&draft.id, &a, i));
        let parent = i.checked_sub(1).map(|p| t.part_ids[p].clone());
        assert_eq!(
            part.reply_to,
            parent,
            "part {i} replies to part {}",
            i as i64 - 1
        );
    }
    let attempts = w.store.attempts(&draft.id, &a.id).await.unwrap();
    let parts: Vec<(i64, &str)> = attempts
        .iter()
        .map(|x| (x.part, x.outcome.as_str()))
        .collect();
    assert_eq!(
        parts,
        vec![(0, "published"), (1, "published"), (2, "published")]
    );
    assert_eq!(w.post(&draft.id).await.status, PostStatus::Published);
});

// ---------------------------------------------------------------------------------------------
// Retries
// ---------------------------------------------------------------------------------------------

both!(two_failures_then_success, |db| async move {
    let w = World::new(&db).await;
    let a = w.account("ada").await;
    let id = w.schedule(&[&a], "third time lucky", T0).await;
    w.fault(&a, 2, "error", 0).await;

    let first = retry_at(&w.publisher.run_due().await);
    let t = w.target(&id, &a).await;
    assert_eq!(t.status, TargetStatus::Pending);
    assert_eq!(
        t.error.as_ref().map(|e| e.code.as_str()),
        Some("network_unavailable")
    );
    assert_eq!(t.attempts, 1);
    assert_eq!(w.post(&id).await.status, PostStatus::Publishing);
    assert!(w.timeline(&a).await.is_empty());

    // Not before its time.
    w.set(first - 1);
    assert_eq!(w.publisher.run_due().await, vec![]);

    w.set(first);
    let second = retry_at(&w.publisher.run_due().await);
    assert!(second > first);
    w.set(second);
    assert_eq!(w.publisher.run_due().await, vec![Processed::Published]);

    assert_eq!(
        w.outcomes(&id, &a).await,
        vec!["failed", "failed", "published"]
    );
    let t = w.target(&id, &a).await;
    assert_eq!(t.status, TargetStatus::Published);
    assert_eq!(t.attempts, 3);
    assert_eq!(t.error, None);
    assert_eq!(w.timeline(&a).await.len(), 1);
    assert_eq!(w.post(&id).await.status, PostStatus::Published);
    assert_eq!(w.next_job_at().await, None);
});

both!(backoff_doubles_with_jitter, |db| async move {
    let w = World::with_config(
        &db,
        WorkerConfig {
            max_attempts: 10,
            ..config()
        },
    )
    .await;
    let a = w.account("ada").await;
    let id = w.schedule(&[&a], "patience", T0).await;
    w.fault(&a, 6, "error", 0).await;

    let mut delays = Vec::new();
    for k in 0..6 {
        let now = w.now();
        let at = retry_at(&w.publisher.run_due().await);
        let delay = at - now;
        let expected = BACKOFF_MS << k;
        assert!(
            delay >= expected * 3 / 4 && delay <= expected * 5 / 4,
            "retry {k}: {delay} ms is not {expected} ms ± 25%"
        );
        delays.push(delay);
        w.set(at);
    }
    for pair in delays.windows(2) {
        let ratio = pair[1] as f64 / pair[0] as f64;
        assert!(
            (1.2..=3.34).contains(&ratio),
            "{delays:?}: ratio {ratio} is not about 2"
        );
    }
    assert_eq!(w.publisher.run_due().await, vec![Processed::Published]);
    assert_eq!(w.outcomes(&id, &a).await.len(), 7);
    assert_eq!(w.timeline(&a).await.len(), 1);
});

both!(retry_after_is_honoured, |db| async move {
    let w = World::new(&db).await;
    let a = w.account("ada").await;
    let id = w.schedule(&[&a], "slow down", T0).await;
    w.fault(&a, 1, "rate_limit", 300).await;

    let at = retry_at(&w.publisher.run_due().await);
    assert!(at >= T0 + 300 * SECOND, "{} ms < 300 s", at - T0);
    let t = w.target(&id, &a).await;
    assert_eq!(
        t.error.as_ref().map(|e| e.code.as_str()),
        Some("network_rate_limited")
    );
    assert_eq!(w.next_job_at().await, Some(at));

    w.set(T0 + 300 * SECOND - 1);
    assert_eq!(w.publisher.run_due().await, vec![]);
    w.set(at);
    assert_eq!(w.publisher.run_due().await, vec![Processed::Published]);
    assert_eq!(w.outcomes(&id, &a).await, vec!["rate_limited", "published"]);
    assert_eq!(w.timeline(&a).await.len(), 1);
});

both!(a_429_does_not_spend_the_retry_budget, |db| async move {
    let w = World::new(&db).await;
    let a = w.account("ada").await;
    let id = w.schedule(&[&a], "throttled, then flaky", T0).await;
    // More 429s than the budget has tries, then one failure short of it: the network never
    // took the post, so the post still goes out.
    let throttled = MAX_ATTEMPTS + 3;
    w.fault(&a, throttled, "rate_limit", 60).await;
    for _ in 0..throttled {
        let at = retry_at(&w.publisher.run_due().await);
        w.set(at);
    }
    w.fault(&a, MAX_ATTEMPTS - 1, "error", 0).await;
    for _ in 0..MAX_ATTEMPTS - 1 {
        let at = retry_at(&w.publisher.run_due().await);
        w.set(at);
    }
    assert_eq!(w.publisher.run_due().await, vec![Processed::Published]);
    let mut expected = vec!["rate_limited"; throttled as usize];
    expected.extend(["failed"; MAX_ATTEMPTS as usize - 1]);
    expected.push("published");
    assert_eq!(w.outcomes(&id, &a).await, expected);
    let t = w.target(&id, &a).await;
    assert_eq!(t.status, TargetStatus::Published);
    assert_eq!(t.attempts, expected.len() as i64, "every call is counted");
    assert_eq!(w.timeline(&a).await.len(), 1);
});

both!(
    a_network_refusing_429_for_a_day_fails_the_target,
    |db| async move {
        // An hour's wait asked each time, or none at all: about one call an hour once the backoff
        // has grown (a `Retry-After: 0` does not make crier call more often), for a day.
        let w = World::new(&db).await;
        for (retry_after, calls) in [(3600, 20..=26), (0, 26..=40)] {
            let a = w.account(&format!("ada{retry_after}")).await;
            let start = w.now();
            let id = w.schedule(&[&a], "never let through", start).await;
            w.fault(&a, 1_000, "rate_limit", retry_after).await;
            let mut made = 0;
            let last = loop {
                let out = w.publisher.run_due().await;
                made += 1;
                match out.as_slice() {
                    [Processed::RetryAt(at)] => {
                        assert!(made < 100, "still retrying after {made} calls");
                        w.set(*at);
                    }
                    other => break other.to_vec(),
                }
            };
            assert_eq!(last, vec![Processed::Failed]);
            assert!(
                calls.contains(&made),
                "Retry-After {retry_after}: {made} calls"
            );
            assert!(
                w.now() - start >= crier_worker::GIVE_UP_AFTER_MS,
                "failed a day after the first try"
            );
            let t = w.target(&id, &a).await;
            assert_eq!(t.status, TargetStatus::Failed);
            let error = t.error.expect("the reason is kept");
            assert_eq!(error.code, "network_rate_limited");
            assert!(error.message.contains("a day after"), "{error:?}");
            assert!(
                w.outcomes(&id, &a)
                    .await
                    .iter()
                    .all(|o| o == "rate_limited"),
                "no call was taken"
            );
            assert!(w.timeline(&a).await.is_empty());
            assert_eq!(w.next_job_at().await, None, "the job is gone");
        }
    }
);

both!(a_429_pauses_only_its_account, |db| async move {
    let w = World::new(&db).await;
    let a = w.account("ada").await;
    let b = w.account("bo").await;
    let first = w.schedule(&[&a], "first", T0).await;
    let second = w.schedule(&[&a], "second", T0).await;
    let other = w.schedule(&[&b], "other account", T0).await;
    w.fault(&a, 1, "rate_limit", 300).await;

    // The 429 pauses ada on this node: her second post (claimed with the first) goes back to
    // the queue until the pause ends, without a call, while bo's goes out.
    let done = w.publisher.run_due().await;
    assert_eq!(done.len(), 3, "{done:?}");
    assert_eq!(
        done.iter().filter(|p| **p == Processed::Published).count(),
        1,
        "{done:?}"
    );
    assert!(
        done.iter()
            .all(|p| !matches!(p, Processed::RetryAt(at) if *at < T0 + 300 * SECOND)),
        "{done:?}"
    );
    // A post of ada's that falls due during the pause is left in the queue by the claim.
    let third = w.schedule(&[&a], "third", T0 + 5 * SECOND).await;
    w.set(T0 + 10 * SECOND);
    assert_eq!(w.publisher.run_due().await, vec![]);
    assert!(w.outcomes(&third, &a).await.is_empty());
    // /metrics shows the throttle and the waiting job (due 5 s ago, held by no node).
    let metrics = w.publisher.render_metrics().await;
    for series in [
        "crier_publish_calls_total{platform=\"sandbox\",outcome=\"rate_limited\"} 1",
        "crier_publish_calls_total{platform=\"sandbox\",outcome=\"published\"} 1",
        "crier_jobs{kind=\"publish\"} 3",
        "crier_jobs_due{kind=\"publish\"} 1",
        "crier_jobs_oldest_due_seconds{kind=\"publish\"} 5",
    ] {
        assert!(metrics.contains(series), "{series} in {metrics}");
    }
    assert_eq!(w.timeline(&b).await.len(), 1);
    assert_eq!(w.target(&other, &b).await.status, TargetStatus::Published);
    let calls = w.outcomes(&first, &a).await.len() + w.outcomes(&second, &a).await.len();
    assert_eq!(calls, 1, "one call for ada, the one that got the 429");
    assert!(w.timeline(&a).await.is_empty());

    // When the pause ends both of ada's posts go out, once each.
    w.set(T0 + 301 * SECOND);
    let done = w.publisher.run_due().await;
    assert_eq!(
        done,
        vec![
            Processed::Published,
            Processed::Published,
            Processed::Published
        ]
    );
    assert_eq!(w.timeline(&a).await.len(), 3);
});

/// A new workspace named `name` beside `w`'s, with one account and one post due at `T0`.
async fn single_post_elsewhere(w: &World, name: &str) -> crier_core::ids::WorkspaceId {
    let ws = w.store.create_workspace(name, "free", T0).await.unwrap().id;
    let other = crier_testdb::World {
        store: w.store.clone(),
        clock: w.clock.clone(),
        ws: ws.clone(),
    };
    let acct = other.account("single", false).await;
    let post = new_post(&ws, &[&acct], "mine", &[], PostStatus::Scheduled, Some(T0));
    w.store
        .insert_posts(std::slice::from_ref(&post))
        .await
        .unwrap();
    ws
}

both!(
    a_burst_does_not_keep_another_workspace_waiting,
    |db| async move {
        let w = World::new(&db).await;
        let a = w.account("burst").await;
        for i in 0..200 {
            w.schedule(&[&a], &format!("burst {i}"), T0 - 60 * SECOND)
                .await;
        }
        // Another workspace's single post, due after every post of the burst.
        let other = single_post_elsewhere(&w, "other").await;
        // A claim of ten shares itself between the two workspaces: the single post is in it.
        let jobs = w.store.claim_jobs(T0, LEASE_MS, 10).await.unwrap();
        assert_eq!(jobs.len(), 6, "five of the burst, and the single post");
        assert_eq!(jobs.iter().filter(|j| j.workspace_id == other).count(), 1);
        // The rest of the burst follows, oldest first, and nothing is claimed twice.
        let rest = w.store.claim_jobs(T0, LEASE_MS, 1000).await.unwrap();
        assert_eq!(rest.len(), 195);
        assert!(rest.windows(2).all(|p| p[0].run_at <= p[1].run_at));
    }
);

both!(
    past_the_fair_cut_every_workspace_gets_its_turn,
    |db| async move {
        // More workspaces with due jobs than one claim shares itself between (32): a burst in
        // the first, one post in each of 40 more. The claims that follow serve every workspace
        // before any comes round twice, and the burst keeps its share throughout.
        let w = World::new(&db).await;
        let a = w.account("burst").await;
        for i in 0..300 {
            w.schedule(&[&a], &format!("burst {i}"), T0 - 60 * SECOND)
                .await;
        }
        let mut singles = Vec::new();
        for i in 0..40 {
            singles.push(single_post_elsewhere(&w, &format!("single {i}")).await);
        }
        let first = w.store.claim_jobs(T0, LEASE_MS, 32).await.unwrap();
        let served = |jobs: &[crier_store::Job]| {
            jobs.iter()
                .filter(|j| singles.contains(&j.workspace_id))
                .map(|j| j.workspace_id.clone())
                .collect::<std::collections::HashSet<_>>()
        };
        let in_first = served(&first);
        assert!(
            in_first.len() >= 31,
            "one claim serves 31 or 32 workspaces, {}",
            in_first.len()
        );
        // The next claim starts past the cut: the workspaces left out come first.
        let second = w.store.claim_jobs(T0, LEASE_MS, 32).await.unwrap();
        let in_second = served(&second);
        assert_eq!(
            in_first.len() + in_second.len(),
            40,
            "every workspace served in two claims"
        );
        assert!(
            first.iter().chain(&second).any(|j| j.workspace_id == w.ws),
            "the burst kept its share"
        );
        // Then the burst drains, and nothing is claimed twice.
        let mut all: Vec<_> = first.iter().chain(&second).map(|j| j.id.clone()).collect();
        loop {
            let more = w.store.claim_jobs(T0, LEASE_MS, 1000).await.unwrap();
            if more.is_empty() {
                break;
            }
            all.extend(more.into_iter().map(|j| j.id));
        }
        assert_eq!(all.len(), 340);
        let distinct: std::collections::HashSet<_> = all.iter().collect();
        assert_eq!(distinct.len(), 340);
    }
);

both!(
    a_claim_takes_no_more_of_an_account_than_its_room,
    |db| async move {
        // Three accounts with ten due posts each, the posts interleaved. The node has room for
        // one more of the first account's jobs, none of the third's, and `per_account` (two)
        // of any other: a claim of 100 takes 1 + 2 + 0, the first account's oldest first.
        let w = World::new(&db).await;
        let accounts = [
            w.account("one").await,
            w.account("two").await,
            w.account("three").await,
        ];
        for i in 0..10 {
            for a in &accounts {
                w.schedule(&[a], &format!("{} {i}", a.handle), T0 - 60 * SECOND + i)
                    .await;
            }
        }
        let room = crier_store::AccountRoom {
            per_account: 2,
            none: vec![accounts[2].id.clone()],
            some: vec![(accounts[0].id.clone(), 1)],
            full_networks: Vec::new(),
        };
        let jobs = w
            .store
            .claim_jobs_within(T0, LEASE_MS, 100, &room)
            .await
            .unwrap()
            .jobs;
        let of = |a: &crier_store::Account| {
            jobs.iter()
                .filter(|j| j.account_id.as_ref() == Some(&a.id))
                .map(|j| j.run_at)
                .collect::<Vec<_>>()
        };
        assert_eq!(of(&accounts[0]), vec![T0 - 60 * SECOND]);
        assert_eq!(
            of(&accounts[1]),
            vec![T0 - 60 * SECOND, T0 - 60 * SECOND + 1]
        );
        assert!(of(&accounts[2]).is_empty());
        // What was not taken is still there for whoever has room, and nothing twice.
        let rest = w.store.claim_jobs(T0, LEASE_MS, 100).await.unwrap();
        assert_eq!(rest.len(), 27);
        assert!(rest.iter().all(|r| jobs.iter().all(|j| j.id != r.id)));
    }
);

both!(
    a_full_network_does_not_hold_up_another_networks_jobs,
    |db| async move {
        // One workspace: a backlog of 30 posts to an account on X, all due before a single
        // post to Mastodon. With X's calls all in flight on this node, a claim takes the
        // Mastodon post at once instead of X's backlog (which would only go back to the
        // queue); with room on X again, X's oldest come first.
        let w = World::new(&db).await;
        let x = w.account("on-x").await;
        let mastodon = w.account("on-mastodon").await;
        db.execute("UPDATE accounts SET platform = 'x' WHERE handle = 'on-x'")
            .await;
        db.execute("UPDATE accounts SET platform = 'mastodon' WHERE handle = 'on-mastodon'")
            .await;
        for i in 0..30 {
            w.schedule(&[&x], &format!("x {i}"), T0 - 60 * SECOND + i)
                .await;
        }
        w.schedule(&[&mastodon], "toot", T0 - SECOND).await;
        let full = crier_store::AccountRoom {
            per_account: 100,
            full_networks: vec!["x".to_owned(), "linkedin".to_owned()],
            ..Default::default()
        };
        let jobs = w
            .store
            .claim_jobs_within(T0, LEASE_MS, 5, &full)
            .await
            .unwrap()
            .jobs;
        assert_eq!(jobs.len(), 1, "{jobs:?}");
        assert_eq!(jobs[0].account_id.as_ref(), Some(&mastodon.id));
        let room = crier_store::AccountRoom {
            per_account: 100,
            ..Default::default()
        };
        let jobs = w
            .store
            .claim_jobs_within(T0, LEASE_MS, 5, &room)
            .await
            .unwrap()
            .jobs;
        assert_eq!(jobs.len(), 5);
        assert!(jobs.iter().all(|j| j.account_id.as_ref() == Some(&x.id)));
        assert_eq!(jobs[0].run_at, T0 - 60 * SECOND);
    }
);

both!(
    claims_of_one_job_take_turns_between_workspaces,
    |db| async move {
        // A burst in one workspace, a single post in another, and a node with one free slot
        // at a time: the claims alternate between the two, and a claim finds the single post
        // when the burst's account has no room.
        let w = World::new(&db).await;
        let a = w.account("burst").await;
        for i in 0..20 {
            w.schedule(&[&a], &format!("burst {i}"), T0 - 60 * SECOND)
                .await;
        }
        let other = single_post_elsewhere(&w, "other").await;
        let full = crier_store::AccountRoom {
            per_account: 4,
            none: vec![a.id.clone()],
            some: Vec::new(),
            full_networks: Vec::new(),
        };
        let one = w
            .store
            .claim_jobs_within(T0, LEASE_MS, 1, &full)
            .await
            .unwrap()
            .jobs;
        assert_eq!(one.len(), 1);
        assert_eq!(
            one[0].workspace_id, other,
            "the burst's account has no room"
        );
        // With room everywhere, claims of one still serve every workspace in turn, the one
        // whose only job is in flight included.
        let third = single_post_elsewhere(&w, "third").await;
        let room = crier_store::AccountRoom {
            per_account: 100,
            ..Default::default()
        };
        let mut served = Vec::new();
        for _ in 0..2 {
            let got = w
                .store
                .claim_jobs_within(T0, LEASE_MS, 1, &room)
                .await
                .unwrap()
                .jobs;
            assert_eq!(got.len(), 1);
            served.push(got[0].workspace_id.clone());
        }
        assert!(served.contains(&third), "{served:?}");
        assert!(served.contains(&w.ws), "{served:?}");
    }
);

both!(a_deferral_only_moves_a_job_still_ours, |db| async move {
    let w = World::new(&db).await;
    let a = w.account("ada").await;
    w.schedule(&[&a], "once", T0).await;
    let first = w.store.claim_jobs(T0, LEASE_MS, 10).await.unwrap();
    assert_eq!(first.len(), 1);
    // The first claim's lease ran out and another node claimed the job.
    let later = T0 + LEASE_MS;
    let second = w.store.claim_jobs(later, LEASE_MS, 10).await.unwrap();
    assert_eq!(second.len(), 1);
    // The first node's late deferral leaves the other node's claim alone...
    w.store.defer_job(&first[0], T0).await.unwrap();
    assert!(
        w.store
            .claim_jobs(later, LEASE_MS, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // ...while the holder's own deferral puts it back.
    w.store.defer_job(&second[0], later).await.unwrap();
    assert_eq!(
        w.store.claim_jobs(later, LEASE_MS, 10).await.unwrap().len(),
        1
    );
});

both!(latency_is_waited_out_per_call, |db| async move {
    let w = World::new(&db).await;
    let a = w.account("ada").await;
    w.store
        .sandbox_set_fault(
            &a.id,
            0,
            &crier_store::Fault {
                kind: crier_store::FaultKind::Error,
                retry_after_seconds: 0,
            },
            150,
        )
        .await
        .unwrap();
    w.schedule(&[&a], "slow network", T0).await;
    let started = std::time::Instant::now();
    assert_eq!(w.publisher.run_due().await, vec![Processed::Published]);
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!(w.timeline(&a).await.len(), 1);
});

both!(gives_up_after_max_attempts, |db| async move {
    let w = World::new(&db).await;
    let a = w.account("ada").await;
    let id = w.schedule(&[&a], "never", T0).await;
    w.fault(&a, 100, "error", 0).await;

    let mut seen = Vec::new();
    for _ in 0..MAX_ATTEMPTS {
        let out = w.publisher.run_due().await;
        assert_eq!(out.len(), 1, "{out:?}");
        if let Processed::RetryAt(at) = out[0] {
            w.set(at);
        }
        seen.push(out[0].clone());
    }
    assert!(
        seen[..MAX_ATTEMPTS as usize - 1]
            .iter()
            .all(|p| matches!(p, Processed::RetryAt(_))),
        "{seen:?}"
    );
    assert_eq!(seen.last(), Some(&Processed::Failed));

    let post = w.post(&id).await;
    assert_eq!(post.status, PostStatus::Failed);
    assert_eq!(post.published_at, None);
    let t = &post.targets[0];
    assert_eq!(t.status, TargetStatus::Failed);
    assert_eq!(t.attempts, MAX_ATTEMPTS);
    let error = t.error.as_ref().expect("the reason is kept");
    assert_eq!(error.code, "network_unavailable");
    assert!(
        error.message.contains("sandbox: injected error")
            && error.message.contains("gave up after 5 attempts"),
        "{error:?}"
    );
    assert_eq!(w.outcomes(&id, &a).await, vec!["failed"; 5]);
    assert_eq!(w.next_job_at().await, None, "the job is gone");
    w.set(T0 + 24 * HOUR);
    assert_eq!(w.publisher.run_due().await, vec![]);
    assert!(w.timeline(&a).await.is_empty());
});

both!(one_account_failing_for_good_is_partial, |db| async move {
    let w = World::new(&db).await;
    let good = w.account("good").await;
    let bad = w.account("bad").await;
    let id = w.schedule(&[&good, &bad], "half of it", T0).await;
    w.fault(&bad, 100, "error", 0).await;

    let out = w.run_until_idle().await;
    assert_eq!(
        out.iter().filter(|p| **p == Processed::Published).count(),
        1
    );
    assert_eq!(out.last(), Some(&Processed::Failed), "{out:?}");

    let post = w.post(&id).await;
    assert_eq!(post.status, PostStatus::PartiallyPublished);
    // The post's time is when its outcome was settled; the target's, when it went out.
    assert!(post.published_at.is_some_and(|at| at > T0), "{post:?}");
    assert_eq!(post.targets[0].status, TargetStatus::Published);
    assert_eq!(post.targets[0].published_at, Some(T0));
    assert_eq!(post.targets[1].status, TargetStatus::Failed);
    assert_eq!(
        post.targets[1].error.as_ref().map(|e| e.code.as_str()),
        Some("network_unavailable")
    );
    assert_eq!(w.timeline(&good).await.len(), 1);
    assert!(w.timeline(&bad).await.is_empty());
});

// ---------------------------------------------------------------------------------------------
// Lost answers and crashes
// ---------------------------------------------------------------------------------------------

both!(
    a_timeout_is_reconciled_without_a_second_copy,
    |db| async move {
        let w = World::new(&db).await;
        let a = w.account("ada").await;
        let id = w.schedule(&[&a], "did it land?", T0).await;
        w.fault(&a, 1, "timeout", 0).await;

        let at = retry_at(&w.publisher.run_due().await);
        assert!(at > T0);
        // The post landed; its answer was lost.
        let timeline = w.timeline(&a).await;
        assert_eq!(timeline.len(), 1);
        assert_eq!(w.outcomes(&id, &a).await, vec!["unknown"]);
        let t = w.target(&id, &a).await;
        assert_eq!(t.status, TargetStatus::Pending);
        assert_eq!(
            t.error.as_ref().map(|e| e.code.as_str()),
            Some("network_unavailable")
        );
        assert_eq!(w.next_job_at().await, Some(at), "the job comes back");

        w.set(at);
        assert_eq!(w.publisher.run_due().await, vec![Processed::Published]);
        assert_eq!(w.timeline(&a).await, timeline, "no second copy");
        // Reconciled by lookup: no second call was made, and the one that landed is on record
        // as published, with its id.
        assert_eq!(w.outcomes(&id, &a).await, vec!["published"]);
        let attempts = w.store.attempts(&id, &a.id).await.unwrap();
        assert_eq!(
            attempts[0].external_id.as_deref(),
            Some(timeline[0].external_id.as_str())
        );
        let t = w.target(&id, &a).await;
        assert_eq!(t.status, TargetStatus::Published);
        assert_eq!(
            t.external_id.as_deref(),
            Some(timeline[0].external_id.as_str())
        );
        assert_eq!(w.post(&id).await.status, PostStatus::Published);
    }
);

both!(the_publisher_stops_at_the_monthly_quota, |db| async move {
    let w = World::with_quota(&db, config(), Some(1)).await;
    let live = w.account_in("live", true).await;
    let test = w.account_in("test", false).await;
    // Both got past the API's check (say, before the plan shrank).
    let first = w.schedule(&[&live], "first", T0).await;
    let second = w.schedule(&[&live], "second", T0 + SECOND).await;
    let sandboxed = w.schedule(&[&test], "test mode", T0 + SECOND).await;

    assert_eq!(w.publisher.run_due().await, vec![Processed::Published]);
    w.set(T0 + SECOND);
    let mut out = w.publisher.run_due().await;
    out.sort_by_key(|p| format!("{p:?}"));
    assert_eq!(out, vec![Processed::Failed, Processed::Published]);

    assert_eq!(w.post(&first).await.status, PostStatus::Published);
    let t = w.target(&second, &live).await;
    assert_eq!(t.status, TargetStatus::Failed);
    let error = t.error.expect("the reason is kept");
    assert_eq!(error.code, "quota_exceeded");
    assert!(error.message.contains("1 of the 1 posts"), "{error:?}");
    assert!(
        w.outcomes(&second, &live).await.is_empty(),
        "no call was made"
    );
    assert_eq!(w.timeline(&live).await.len(), 1);
    // Test mode never counts against the quota.
    assert_eq!(w.post(&sandboxed).await.status, PostStatus::Published);
});

both!(
    a_landed_call_is_found_before_the_quota_is_checked_again,
    |db| async move {
        let config = WorkerConfig {
            max_attempts: 1,
            ..config()
        };
        let w = World::with_quota(&db, config, Some(1)).await;
        let live = w.account_in("live", true).await;
        // The call lands, the answer is lost, and with one attempt allowed the target fails.
        let lost = w.schedule(&[&live], "landed", T0).await;
        w.fault(&live, 1, "timeout", 0).await;
        assert_eq!(w.publisher.run_due().await, vec![Processed::Failed]);
        assert_eq!(w.timeline(&live).await.len(), 1);
        // Another post uses up the month's quota.
        w.schedule(&[&live], "the quota's one", T0).await;
        assert_eq!(w.publisher.run_due().await, vec![Processed::Published]);

        // A client's retry of the first: its post is out there, so it is found, not refused.
        let retry = Transition {
            reset_failed_targets: true,
            enqueue_at: Some(T0),
            ..Transition::new(PostStatus::Failed, PostStatus::Publishing, T0)
        };
        assert!(w.store.transition(&w.ws, &lost, &retry).await.unwrap());
        assert_eq!(w.publisher.run_due().await, vec![Processed::Published]);
        assert_eq!(w.post(&lost).await.status, PostStatus::Published);
        assert_eq!(w.timeline(&live).await.len(), 2, "no second copy");
    }
);

/// What a worker that dies right after the call would have sent.
async fn sandbox_publish(
    w: &World,
    a: &Account,
    text: &str,
    key: &str,
) -> crier_networks::PublishedPart {
    let credentials = crier_networks::Credentials::default();
    let session = Session {
        account: a,
        credentials: &credentials,
    };
    let options = crier_store::PostOverride::default();
    let part = Part {
        text,
        media: &[],
        thread: &[],
        options: &options,
        idem_key: key,
        steps: &crier_networks::MemorySteps::default(),
    };
    w.sandbox.publish(session, part).await.unwrap()
}

/// How a [`Misbehaving`] network departs from the sandbox.
enum Misbehaviour {
    /// Every look-up by idempotency key fails (a network whose search is down).
    LookupDown,
    /// A look-up by idempotency key never answers (a network whose search hangs).
    LookupHangs,
    /// A look-up finds nothing, whatever landed (a network that can only search by text and
    /// time, and missed).
    LookupMisses,
    /// A publish fails with an error text no database column should take as it is: NULs
    /// (PostgreSQL refuses them in text), escape sequences, line breaks and 100,000
    /// characters. The first call's error is transient, every later one a refusal.
    GarbledErrors(std::sync::atomic::AtomicUsize),
    /// A publish lands and answers a post id and URL with NUL in them.
    HostileIds,
    /// A publish lands and answers a good post id with a URL that is no link to show.
    ScriptUrl(&'static str),
    /// A look-up finds nothing, slowly: the clock moves on by `by_ms` while it looks (or
    /// while a media read or the storage stalls before the call). Each publish notes how
    /// much of its job's lease was left when it was called.
    SlowLookup {
        clock: ManualClock,
        by_ms: i64,
        db: Arc<TestDb>,
        lease_left: Arc<std::sync::Mutex<Vec<i64>>>,
    },
    /// A bug: reading the account's rules panics, before any call.
    PanicsBeforeTheCall,
    /// A bug: the call lands, then reading its answer panics (and so does every look-up).
    PanicsAfterTheCall,
    /// The call lands, and meanwhile the node's clock watch finds its clock off and holds
    /// its claims.
    ClockGoesOff(Store),
    /// The call lands, and meanwhile the job became another node's: its lease ran out and
    /// the other node claimed it (its own lease, one millisecond longer).
    LosesTheLease(Arc<TestDb>),
    /// A bug: calling for a thread's later part panics (before anything is sent); each
    /// look-up takes a second of the clock.
    PanicsOnALaterPart(ManualClock),
}

/// The sandbox, misbehaving one way.
struct Misbehaving(Arc<Sandbox>, Misbehaviour);

#[async_trait::async_trait]
impl Network for Misbehaving {
    fn rules(&self) -> &crier_networks::Rules {
        self.0.rules()
    }

    fn connect_kind(&self) -> crier_networks::ConnectKind {
        crier_networks::ConnectKind::Instant
    }

    async fn rules_for(&self, account: &crier_store::Account) -> crier_networks::Rules {
        if matches!(self.1, Misbehaviour::PanicsBeforeTheCall) {
            panic!("a bug in the rules of {}", account.handle);
        }
        self.0.rules_for(account).await
    }

    async fn publish(
        &self,
        s: Session<'_>,
        part: Part<'_>,
    ) -> Result<crier_networks::PublishedPart, NetworkError> {
        match &self.1 {
            Misbehaviour::PanicsAfterTheCall => {
                let _landed = self.0.publish(s, part).await?;
                panic!("a bug reading the network's answer");
            }
            Misbehaviour::GarbledErrors(calls) => {
                let garbage = format!("bad\0gateway\u{1b}[31m\r\n{}", "x".repeat(100_000));
                if calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                    Err(NetworkError::unavailable(garbage))
                } else {
                    Err(NetworkError::rejected(garbage))
                }
            }
            Misbehaviour::HostileIds => {
                let landed = self.0.publish(s, part).await?;
                Ok(crier_networks::PublishedPart {
                    external_id: format!("{}\0", landed.external_id),
                    url: format!("{}\0", landed.url),
                })
            }
            Misbehaviour::ScriptUrl(url) => {
                let landed = self.0.publish(s, part).await?;
                Ok(crier_networks::PublishedPart {
                    external_id: landed.external_id,
                    url: (*url).to_owned(),
                })
            }
            Misbehaviour::PanicsOnALaterPart(_) if !part.thread.is_empty() => {
                panic!("a bug sending a reply")
            }
            Misbehaviour::ClockGoesOff(store) => {
                let landed = self.0.publish(s, part).await;
                store.hold_claims(true);
                landed
            }
            Misbehaviour::LosesTheLease(db) => {
                let landed = self.0.publish(s, part).await;
                db.execute("UPDATE jobs SET locked_until = locked_until + 1")
                    .await;
                landed
            }
            Misbehaviour::SlowLookup {
                clock,
                db,
                lease_left,
                ..
            } => {
                let until = db.query_i64("SELECT locked_until FROM jobs").await;
                assert_eq!(until.len(), 1, "one job: {until:?}");
                lease_left.lock().unwrap().push(until[0] - clock.now_ms());
                self.0.publish(s, part).await
            }
            _ => self.0.publish(s, part).await,
        }
    }

    async fn lookup(
        &self,
        s: Session<'_>,
        part: Part<'_>,
    ) -> Result<Option<crier_networks::PublishedPart>, NetworkError> {
        match &self.1 {
            Misbehaviour::LookupDown => Err(NetworkError::unavailable("search is down")),
            Misbehaviour::LookupHangs => std::future::pending().await,
            Misbehaviour::LookupMisses => Ok(None),
            Misbehaviour::PanicsAfterTheCall => panic!("a bug reading the look-up's answer"),
            Misbehaviour::PanicsOnALaterPart(clock) => {
                clock.set(crier_core::clock::from_ms(clock.now_ms() + 1000));
                self.0.lookup(s, part).await
            }
            Misbehaviour::SlowLookup { clock, by_ms, .. } => {
                let found = self.0.lookup(s, part).await;
                clock.set(crier_core::clock::from_ms(clock.now_ms() + by_ms));
                found
            }
            _ => self.0.lookup(s, part).await,
        }
    }

    async fn metrics(
        &self,
        s: Session<'_>,
        external_id: &str,
    ) -> Result<crier_store::Metrics, NetworkError> {
        self.0.metrics(s, external_id).await
    }
}

impl World {
    /// A publisher whose only network is the sandbox misbehaving `how`.
    fn misbehaving(&self, how: Misbehaviour, config: WorkerConfig) -> Publisher {
        let network = Misbehaving(self.sandbox.clone(), how);
        let networks = Networks::default().with(Arc::new(network));
        Publisher::new(
            app_on(&self.store, Arc::new(self.clock.clone()), networks, None),
            config,
        )
    }
}

both!(
    a_node_whose_clock_goes_off_starts_no_further_call,
    |db| async move {
        let w = World::new(&db).await;
        let a = w.account("ada").await;
        let id = w.schedule_thread(&[&a], "one", &["two"], T0).await;
        let publisher = w.misbehaving(Misbehaviour::ClockGoesOff(w.store.clone()), config());

        // The first part lands; the clock goes off before the second: no call for it, the job
        // is left to its lease.
        let out = publisher.run_due().await;
        assert_eq!(out, vec![Processed::RetryAt(T0 + LEASE_MS)]);
        assert_eq!(w.timeline(&a).await.len(), 1);
        assert_eq!(w.outcomes(&id, &a).await, vec!["published"]);
        assert_eq!(w.target(&id, &a).await.part_ids.len(), 1);
        // Nothing is claimed while the clock is off, even after the lease.
        w.set(T0 + LEASE_MS + 1);
        assert_eq!(publisher.run_due().await, vec![]);

        // Right again: the second part goes out, once, as a reply to the first.
        w.store.hold_claims(false);
        assert_eq!(w.publisher.run_due().await, vec![Processed::Published]);
        let t = w.target(&id, &a).await;
        assert_eq!(t.status, TargetStatus::Published);
        assert_eq!(t.part_ids.len(), 2, "{t:?}");
        assert_eq!(w.timeline(&a).await.len(), 2);
        assert_eq!(w.outcomes(&id, &a).await, vec!["published", "published"]);
    }
);

both!(
    a_panic_on_a_threads_later_part_fails_the_target_in_the_end,
    |db| async move {
        // The later part renews the lease before its call: the target's end after the panic
        // must hold the job as it stands then, or nothing is written and the post stays
        // `publishing` for ever, its author unable to cancel or retry it.
        let w = World::new(&db).await;
        let a = w.account("ada").await;
        let id = w.schedule_thread(&[&a], "one", &["two"], T0).await;
        let publisher = w.misbehaving(Misbehaviour::PanicsOnALaterPart(w.clock.clone()), config());
        let out = publisher.run_due().await;
        assert!(matches!(out[..], [Processed::RetryAt(_)]), "{out:?}");
        assert_eq!(w.timeline(&a).await.len(), 1, "the first part is out");
        // A day on, the next try panics again, and the target fails.
        w.set(T0 + crier_worker::GIVE_UP_AFTER_MS + 1);
        assert_eq!(publisher.run_due().await, vec![Processed::Failed]);
        let t = w.target(&id, &a).await;
        assert_eq!(t.status, TargetStatus::Failed);
        assert_eq!(t.error.map(|e| e.code).as_deref(), Some("internal_error"));
        assert_eq!(w.post(&id).await.status, PostStatus::Failed);
        assert_eq!(w.next_job_at().await, None, "the job is gone");
        assert_eq!(w.timeline(&a).await.len(), 1, "the reply never went out");
    }
);

both!(
    a_first_part_is_sent_only_while_the_lease_outlasts_the_call,
    |db| async move {
        // A crashed worker began the only part and never called; its lease ran out. The next
        // worker must look the part up first, and its look-up is slow: by the time it has
        // found nothing, less of its lease is left than a call may take. Had it called on that
        // lease, a third node could claim the job while the call was still under way, find
        // nothing either, and send the part a second time.
        let db = Arc::new(db);
        let w = World::new(&db).await;
        let a = w.account("ada").await;
        let id = w.schedule(&[&a], "slow to look up", T0).await;
        let (job, key) = crashed_worker_claims(&w, &id, &a).await;
        begin(&w, &job, &key).await;
        w.set(job.locked_until + 1);
        let call_timeout = config().call_timeout.as_millis() as i64;
        assert!(2 * call_timeout <= LEASE_MS);
        let lease_left = Arc::new(std::sync::Mutex::new(Vec::new()));
        let publisher = w.misbehaving(
            Misbehaviour::SlowLookup {
                clock: w.clock.clone(),
                by_ms: LEASE_MS - call_timeout / 2,
                db: db.clone(),
                lease_left: lease_left.clone(),
            },
            config(),
        );
        assert_eq!(publisher.run_due().await, vec![Processed::Published]);
        let left = lease_left.lock().unwrap().clone();
        assert_eq!(left.len(), 1, "one call: {left:?}");
        assert!(
            left[0] >= 2 * call_timeout,
            "the call started with {} ms of its lease left",
            left[0]
        );
        assert_eq!(w.timeline(&a).await.len(), 1);
        assert_eq!(w.outcomes(&id, &a).await, vec!["in_flight", "published"]);
    }
);

both!(
    failed_lookups_use_up_the_budget_and_never_repost,
    |db| async move {
        let w = World::new(&db).await;
        let publisher = w.misbehaving(Misbehaviour::LookupDown, config());
        let a = w.account("ada").await;
        let id = w.schedule(&[&a], "landed, unconfirmed", T0).await;
        w.fault(&a, 1, "timeout", 0).await;

        // The call lands but its answer is lost; every later look-up fails.
        let mut seen = Vec::new();
        for _ in 0..MAX_ATTEMPTS {
            let out = publisher.run_due().await;
            assert_eq!(out.len(), 1, "{out:?}");
            if let Processed::RetryAt(at) = out[0] {
                w.set(at);
            }
            seen.push(out[0].clone());
        }
        assert_eq!(seen.last(), Some(&Processed::Failed), "{seen:?}");
        assert_eq!(w.timeline(&a).await.len(), 1, "never posted blindly again");
        let mut expected = vec!["unknown"];
        expected.extend(["lookup_failed"; MAX_ATTEMPTS as usize - 1]);
        assert_eq!(w.outcomes(&id, &a).await, expected);
        let t = w.target(&id, &a).await;
        assert_eq!(t.status, TargetStatus::Failed);
        assert_eq!(t.attempts, MAX_ATTEMPTS);
        let error = t.error.expect("the reason is kept");
        assert_eq!(error.code, "network_unavailable");
        assert!(error.message.contains("search is down"), "{error:?}");
        assert_eq!(w.next_job_at().await, None, "the job is gone");
    }
);

both!(
    a_hanging_lookup_times_out_and_is_recorded_as_failed,
    |db| async move {
        let w = World::new(&db).await;
        let config = WorkerConfig {
            call_timeout: Duration::from_millis(200),
            ..config()
        };
        let publisher = w.misbehaving(Misbehaviour::LookupHangs, config);
        let a = w.account("ada").await;
        let id = w.schedule(&[&a], "landed, unconfirmed", T0).await;
        w.fault(&a, 1, "timeout", 0).await;
        let at = retry_at(&publisher.run_due().await);
        w.set(at);

        // The look-up is bounded by the call timeout, well inside the lease.
        let out = tokio::time::timeout(Duration::from_secs(10), publisher.run_due())
            .await
            .expect("a hanging look-up must not hold the job past the call timeout");
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(matches!(out[0], Processed::RetryAt(_)), "{out:?}");
        assert_eq!(w.outcomes(&id, &a).await, vec!["unknown", "lookup_failed"]);
        let t = w.target(&id, &a).await;
        assert_eq!(t.status, TargetStatus::Pending);
        assert_eq!(t.attempts, 2);
        assert_eq!(
            t.error.map(|e| e.code),
            Some("network_unavailable".to_owned())
        );
        assert_eq!(w.timeline(&a).await.len(), 1, "never posted blindly again");
    }
);

both!(
    a_network_error_with_nuls_and_no_end_is_recorded_cleaned_and_bounded,
    |db| async move {
        let w = World::new(&db).await;
        let publisher = w.misbehaving(Misbehaviour::GarbledErrors(Default::default()), config());
        let a = w.account("ada").await;
        let id = w.schedule(&[&a], "to a garbled network", T0).await;

        // The transient error is recorded on the attempt and the target, and retried.
        let at = retry_at(&publisher.run_due().await);
        w.set(at);
        // The refusal fails the target, with the network's words kept.
        assert_eq!(publisher.run_due().await, vec![Processed::Failed]);
        assert_eq!(w.outcomes(&id, &a).await, vec!["failed", "failed"]);
        let clean = |text: &str| {
            assert!(
                text.starts_with("bad gateway [31m  xxx"),
                "{:?}",
                &text[..40]
            );
            assert!(!text.chars().any(char::is_control), "no control characters");
            assert!(
                text.chars().count() <= crier_networks::MAX_ERROR_TEXT,
                "bounded"
            );
        };
        for attempt in w.store.attempts(&id, &a.id).await.unwrap() {
            clean(&attempt.error.expect("the attempt's error"));
        }
        let t = w.target(&id, &a).await;
        assert_eq!(t.status, TargetStatus::Failed);
        let error = t.error.expect("the reason is kept");
        assert_eq!(error.code, "network_rejected");
        clean(&error.message);
        assert_eq!(w.next_job_at().await, None, "the job is gone");
    }
);

both!(
    a_post_id_that_cannot_be_kept_fails_the_target_once,
    |db| async move {
        let w = World::new(&db).await;
        let publisher = w.misbehaving(Misbehaviour::HostileIds, config());
        let a = w.account("ada").await;
        let id = w.schedule(&[&a], "to a hostile server", T0).await;

        // Not retried for ever (on PostgreSQL the id could not be stored): failed, once.
        assert_eq!(publisher.run_due().await, vec![Processed::Failed]);
        assert_eq!(w.outcomes(&id, &a).await, vec!["failed"]);
        let t = w.target(&id, &a).await;
        assert_eq!(t.status, TargetStatus::Failed);
        let error = t.error.expect("the reason is kept");
        assert_eq!(error.code, "network_rejected");
        assert!(error.message.contains("cannot keep"), "{error:?}");
        assert_eq!(w.timeline(&a).await.len(), 1, "sent once");
        assert_eq!(w.next_job_at().await, None, "the job is gone");
    }
);

both!(
    a_post_url_that_is_no_link_is_left_out_and_the_post_is_published,
    |db| async move {
        let w = World::new(&db).await;
        let link = "https://social.example.test/@ada/1";
        for (i, (url, kept)) in [
            ("javascript:alert(document.cookie)", None),
            ("data:text/html,<script>alert(1)</script>", None),
            ("https://example.test/post\u{0}1", None),
            ("https://example.test/post\n/1", None),
            ("/relative/post/1", None),
            ("", None),
            // A link is kept as the network gave it.
            (link, Some(link)),
        ]
        .into_iter()
        .enumerate()
        {
            let publisher = w.misbehaving(Misbehaviour::ScriptUrl(url), config());
            let a = w.account(&format!("ada{i}")).await;
            let id = w.schedule(&[&a], "a link that may not be one", T0).await;
            assert_eq!(
                publisher.run_due().await,
                vec![Processed::Published],
                "{url:?}"
            );
            let t = w.target(&id, &a).await;
            assert_eq!(t.status, TargetStatus::Published, "{url:?}");
            assert!(t.external_id.is_some(), "{url:?}: the post's id is kept");
            assert_eq!(t.url.as_deref(), kept, "{url:?}");
            assert_eq!(w.timeline(&a).await.len(), 1, "sent once");
        }
    }
);

/// Claims the post's job, as a worker that then crashes would (the attempt it records next turns
/// the post `publishing`);
/// returns the end of the claim's lease and the idempotency key the publisher uses for part 0.
async fn crashed_worker_claims(w: &World, id: &PostId, a: &Account) -> (Job, String) {
    let mut jobs = w.store.claim_jobs(w.now(), LEASE_MS, 10).await.unwrap();
    assert_eq!(jobs.len(), 1);
    let key = idem(id, a, 0);
    (jobs.remove(0), key)
}

/// What a worker records before its call, as the crashed worker did.
async fn begin(w: &World, job: &Job, key: &str) -> crier_core::ids::AttemptId {
    w.store
        .begin_attempt(job, 0, key, w.now())
        .await
        .unwrap()
        .expect("the post still publishes")
}

both!(
    a_worker_that_stalled_past_its_lease_sends_nothing_once_another_claimed_the_job,
    |db| async move {
        let w = World::new(&db).await;
        let a = w.account("ada").await;
        let id = w.schedule(&[&a], "stalled", T0).await;
        let (stale, key) = crashed_worker_claims(&w, &id, &a).await;
        // The first worker stalls (a slow media read, a paused VM) past its lease; another
        // node claims the job meanwhile.
        w.set(stale.locked_until + 1);
        let (fresh, _) = crashed_worker_claims(&w, &id, &a).await;
        assert_eq!(fresh.id, stale.id);
        assert_ne!(fresh.locked_until, stale.locked_until);

        // The stalled worker wakes: nothing is recorded, so nothing may be sent, and neither
        // its lease renewal nor its clean-up touches the job the other node holds.
        assert_eq!(
            w.store
                .begin_attempt(&stale, 0, &key, w.now())
                .await
                .unwrap(),
            None
        );
        assert!(
            !w.store
                .renew_lease(&stale, w.now() + LEASE_MS)
                .await
                .unwrap()
        );
        // Nor can it record parts over what the holder records.
        let stale_parts = vec!["from-the-stalled-worker".to_owned()];
        assert!(
            !w.store
                .record_parts(&stale, &stale_parts, Some("https://stale.example/1"))
                .await
                .unwrap()
        );
        w.store.drop_held_job(&stale).await.unwrap();
        assert_eq!(w.outcomes(&id, &a).await, Vec::<String>::new());
        let t = w.target(&id, &a).await;
        assert_eq!(t.status, TargetStatus::Pending);
        assert!(t.part_ids.is_empty(), "{:?}", t.part_ids);
        assert_eq!(t.url, None);

        // The node that holds the job now publishes it, once.
        begin(&w, &fresh, &key).await;
        assert_eq!(w.outcomes(&id, &a).await, vec!["in_flight"]);
        assert!(
            w.store
                .renew_lease(&fresh, w.now() + LEASE_MS)
                .await
                .unwrap()
        );
        let mut fresh = fresh;
        fresh.locked_until = w.now() + LEASE_MS;
        let parts = vec!["from-the-holder".to_owned()];
        assert!(w.store.record_parts(&fresh, &parts, None).await.unwrap());
        assert_eq!(w.target(&id, &a).await.part_ids, parts);
    }
);

both!(
    a_worker_whose_lease_ran_out_mid_call_records_no_outcome_over_the_node_that_holds_the_job,
    |db| async move {
        let w = World::new(&db).await;
        let a = w.account("ada").await;
        let id = w.schedule(&[&a], "slow call", T0).await;
        let (stale, key) = crashed_worker_claims(&w, &id, &a).await;
        begin(&w, &stale, &key).await;
        // Its call takes past the lease; another node claims the job meanwhile.
        w.set(stale.locked_until + 1);
        let (fresh, _) = crashed_worker_claims(&w, &id, &a).await;
        let failed = crier_store::TargetOutcome::Failed(crier_store::TargetError {
            code: "network_error".into(),
            message: "the call failed".into(),
        });
        let published = crier_store::TargetOutcome::Published {
            external_id: "x1".into(),
            url: "https://sandbox.crier.invalid/x1".into(),
            part_ids: vec!["x1".into()],
        };
        // The stalled worker's outcome, retry or failure, is not written over the other node's
        // job: nothing changes.
        let error = crier_store::TargetError {
            code: "network_error".into(),
            message: "the call failed".into(),
        };
        w.store
            .retry_job(&stale, w.now() + HOUR, &error)
            .await
            .unwrap();
        let finished = w.store.finish_target(&stale, &failed, w.now()).await;
        assert_eq!(finished.unwrap(), None);
        let target = w.target(&id, &a).await;
        assert_eq!(target.status, TargetStatus::Publishing);
        assert_eq!(target.error, None);
        assert_eq!(w.post(&id).await.status, PostStatus::Publishing);
        assert_eq!(
            w.store.claim_jobs(w.now(), LEASE_MS, 10).await.unwrap(),
            vec![]
        );

        // The node that holds the job records its outcome.
        let finished = w.store.finish_target(&fresh, &published, w.now()).await;
        assert_eq!(finished.unwrap(), Some(PostStatus::Published));
        assert_eq!(w.target(&id, &a).await.status, TargetStatus::Published);
    }
);

// Calls that start together are recorded in one batch (`batch.rs`), each under its own
// checks: a cancelled post's, a stalled worker's (its lease gone) and a forged job's (another
// workspace's) record nothing, and the others each record one attempt and move their target
// and post once.
both!(
    calls_starting_together_begin_each_under_its_own_checks,
    |db| async move {
        let w = World::new(&db).await;
        let (a, b) = (w.account("ada").await, w.account("bob").await);
        let mut posts = Vec::new();
        for i in 0..60 {
            let accounts: &[&Account] = if i % 2 == 0 { &[&a] } else { &[&a, &b] };
            posts.push(w.schedule(accounts, &format!("together {i}"), T0).await);
        }
        let jobs = w.store.claim_jobs(T0, LEASE_MS, 1000).await.unwrap();
        assert_eq!(jobs.len(), 90);
        let index = |id: &PostId| posts.iter().position(|p| p == id).unwrap();
        // Every fifth post is cancelled after the claim.
        let cancelled: BTreeSet<PostId> = posts.iter().step_by(5).cloned().collect();
        for id in &cancelled {
            let cancel = Transition::new(PostStatus::Scheduled, PostStatus::Draft, T0);
            assert!(w.store.transition(&w.ws, id, &cancel).await.unwrap());
        }
        let other = w
            .store
            .create_workspace("other", "free", T0)
            .await
            .unwrap()
            .id;
        // The jobs as their callers hold them: bob's targets of every third post by a worker
        // whose lease is not the job's, and ada's of every seventh under another workspace.
        let held: Vec<(Job, &str)> = jobs
            .iter()
            .map(|job| {
                let mut job = job.clone();
                let i = index(job.post_id.as_ref().unwrap());
                let on_bob = job.account_id.as_ref() == Some(&b.id);
                if cancelled.contains(&posts[i]) {
                    (job, "cancelled")
                } else if on_bob && i % 3 == 0 {
                    job.locked_until -= 1;
                    (job, "stale")
                } else if !on_bob && i % 7 == 0 {
                    job.workspace_id = other.clone();
                    (job, "forged")
                } else {
                    (job, "ok")
                }
            })
            .collect();
        let mut versions = std::collections::HashMap::new();
        for id in &posts {
            versions.insert(id.clone(), w.post(id).await.version);
        }
        let began = futures::future::join_all(held.iter().map(|(job, _)| {
            let store = w.store.clone();
            let key = format!(
                "{}:{}:0",
                job.post_id.as_ref().unwrap(),
                job.account_id.as_ref().unwrap()
            );
            async move { store.begin_attempt(job, 0, &key, T0 + SECOND).await }
        }))
        .await;
        let mut moved = BTreeSet::new();
        for ((job, case), out) in held.iter().zip(began) {
            let (post, account) = (
                job.post_id.clone().unwrap(),
                job.account_id.clone().unwrap(),
            );
            let out = out.expect("recorded");
            let attempts = w.store.attempts(&post, &account).await.unwrap();
            let target = w
                .post(&post)
                .await
                .targets
                .into_iter()
                .find(|t| t.account_id == account)
                .unwrap();
            if *case == "ok" {
                let id = out.unwrap_or_else(|| panic!("{post} {account}: the call may go out"));
                assert_eq!(attempts.len(), 1, "{post} {account}");
                assert_eq!(attempts[0].id, id);
                assert_eq!(attempts[0].outcome.as_str(), "in_flight");
                assert_eq!(attempts[0].idem_key, format!("{post}:{account}:0"));
                assert_eq!(attempts[0].started_at, T0 + SECOND);
                assert_eq!(target.status, TargetStatus::Publishing);
                assert_eq!(target.attempts, 1);
                moved.insert(post);
            } else {
                assert_eq!(out, None, "{case}: {post} {account}");
                assert_eq!(attempts, vec![], "{case}: nothing recorded");
                assert_eq!(target.status, TargetStatus::Pending, "{case}");
                assert_eq!(target.attempts, 0, "{case}");
            }
        }
        for id in &posts {
            let stored = w.post(id).await;
            let (status, version) = if cancelled.contains(id) {
                (PostStatus::Draft, versions[id])
            } else if moved.contains(id) {
                // Moved once, however many of its targets began.
                assert_eq!(stored.updated_at, T0 + SECOND, "{id}");
                (PostStatus::Publishing, versions[id] + 1)
            } else {
                (PostStatus::Scheduled, versions[id])
            };
            assert_eq!((stored.status, stored.version), (status, version), "{id}");
        }
        // Posts 21 (ada forged, bob stale) and 42 (ada forged) had every target refused.
        for i in [21, 42] {
            assert!(!moved.contains(&posts[i]) && !cancelled.contains(&posts[i]));
        }

        // An edit replaced a claimed job; the new job is claimed too, and both workers start
        // their call at once: only the new job's call is recorded, once.
        let id = w.schedule(&[&a], "replaced", T0).await;
        let old = w.store.claim_jobs(T0, LEASE_MS, 10).await.unwrap();
        let edit = Transition {
            enqueue_at: Some(T0),
            ..Transition::new(PostStatus::Scheduled, PostStatus::Scheduled, T0)
        };
        assert!(w.store.transition(&w.ws, &id, &edit).await.unwrap());
        let new = w.store.claim_jobs(T0, LEASE_MS, 10).await.unwrap();
        assert_eq!((old.len(), new.len()), (1, 1));
        assert_ne!(old[0].id, new[0].id);
        let key = idem(&id, &a, 0);
        let (stale, fresh) = futures::join!(
            w.store.begin_attempt(&old[0], 0, &key, T0 + SECOND),
            w.store.begin_attempt(&new[0], 0, &key, T0 + SECOND)
        );
        assert_eq!(
            stale.unwrap(),
            None,
            "the replaced job's call may not go out"
        );
        let fresh = fresh.unwrap().expect("the new job's call goes out");
        let attempts = w.store.attempts(&id, &a.id).await.unwrap();
        assert_eq!(
            attempts.iter().map(|a| &a.id).collect::<Vec<_>>(),
            vec![&fresh]
        );
        assert_eq!(w.target(&id, &a).await.attempts, 1);
    }
);

// On PostgreSQL `begin_attempt` is one statement whose snapshot is taken before it waits for
// the post's lock. An edit (the post stays `scheduled`, its job replaced) or a cancel that
// holds the lock and commits while the statement waits must still win: nothing is recorded
// and nothing may be sent. A transaction that holds the lock and changes nothing lets it go.
both!(
    a_change_committed_while_the_attempt_waits_for_the_post_lock_wins,
    |db| async move {
        if db.backend() != crier_store::Backend::Postgres {
            return; // SQLite's writes are serialised: no statement waits on a row lock.
        }
        let w = World::new(&db).await;
        let a = w.account("ada").await;
        for (change, wins) in [("edit", true), ("cancel", true), ("nothing", false)] {
            let id = w.schedule(&[&a], change, w.now()).await;
            let (job, key) = crashed_worker_claims(&w, &id, &a).await;
            let mut other = sqlx::AnyConnection::connect(&db.url).await.unwrap();
            sqlx::query("BEGIN").execute(&mut other).await.unwrap();
            sqlx::query("SELECT id FROM posts WHERE id = $1 FOR UPDATE")
                .bind(id.as_str())
                .fetch_one(&mut other)
                .await
                .unwrap();
            let store = w.store.clone();
            let held = job.clone();
            let now = w.now();
            let attempt =
                tokio::spawn(async move { store.begin_attempt(&held, 0, &key, now).await });
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert!(
                !attempt.is_finished(),
                "{change}: waits for the post's lock"
            );
            match change {
                "edit" => {
                    sqlx::query(
                        "UPDATE posts SET body = 'edited', version = version + 1 WHERE id = $1",
                    )
                    .bind(id.as_str())
                    .execute(&mut other)
                    .await
                    .unwrap();
                    sqlx::query("UPDATE jobs SET id = $2, locked_until = 0 WHERE post_id = $1")
                        .bind(id.as_str())
                        .bind(format!("{}_edited", job.id))
                        .execute(&mut other)
                        .await
                        .unwrap();
                }
                "cancel" => {
                    sqlx::query("UPDATE posts SET status = 'draft' WHERE id = $1")
                        .bind(id.as_str())
                        .execute(&mut other)
                        .await
                        .unwrap();
                    sqlx::query("DELETE FROM jobs WHERE post_id = $1")
                        .bind(id.as_str())
                        .execute(&mut other)
                        .await
                        .unwrap();
                }
                _ => {}
            }
            sqlx::query("COMMIT").execute(&mut other).await.unwrap();
            let began = attempt.await.unwrap().unwrap();
            let outcomes = w.outcomes(&id, &a).await;
            if wins {
                assert_eq!(began, None, "{change}: the change wins");
                assert_eq!(outcomes, Vec::<String>::new(), "{change}");
                assert_eq!(w.target(&id, &a).await.status, TargetStatus::Pending);
            } else {
                assert!(began.is_some(), "{change}: the attempt goes on");
                assert_eq!(outcomes, vec!["in_flight"], "{change}");
            }
            // The next post starts from an empty queue.
            sqlx::query("DELETE FROM jobs")
                .execute(&mut other)
                .await
                .unwrap();
        }
    }
);

both!(crash_after_the_call_landed, |db| async move {
    let w = World::new(&db).await;
    let a = w.account("ada").await;
    let id = w.schedule(&[&a], "landed", T0).await;
    let (job, key) = crashed_worker_claims(&w, &id, &a).await;
    let lease_end = job.locked_until;
    begin(&w, &job, &key).await;
    let landed = sandbox_publish(&w, &a, "landed", &key).await;
    // Crash: the result is never written.

    assert_eq!(w.publisher.run_due().await, vec![], "still leased");
    w.set(lease_end + 1);
    assert_eq!(w.publisher.run_due().await, vec![Processed::Published]);

    let timeline = w.timeline(&a).await;
    assert_eq!(timeline.len(), 1, "no duplicate: {timeline:?}");
    let t = w.target(&id, &a).await;
    assert_eq!(t.status, TargetStatus::Published);
    assert_eq!(t.external_id.as_deref(), Some(landed.external_id.as_str()));
    assert_eq!(t.url.as_deref(), Some(landed.url.as_str()));
    // The crashed call is on record as what the look-up found it was.
    assert_eq!(w.outcomes(&id, &a).await, vec!["published"]);
    assert_eq!(w.post(&id).await.status, PostStatus::Published);
});

both!(crash_before_the_call_landed, |db| async move {
    let w = World::new(&db).await;
    let a = w.account("ada").await;
    let id = w.schedule(&[&a], "lost on the way", T0).await;
    let (job, key) = crashed_worker_claims(&w, &id, &a).await;
    let lease_end = job.locked_until;
    begin(&w, &job, &key).await;
    // Crash before the call.

    w.set(lease_end + 1);
    assert_eq!(w.publisher.run_due().await, vec![Processed::Published]);

    let timeline = w.timeline(&a).await;
    assert_eq!(timeline.len(), 1, "{timeline:?}");
    assert_eq!(timeline[0].idem_key, key);
    let t = w.target(&id, &a).await;
    assert_eq!(t.status, TargetStatus::Published);
    assert_eq!(
        t.external_id.as_deref(),
        Some(timeline[0].external_id.as_str())
    );
    assert_eq!(w.outcomes(&id, &a).await, vec!["in_flight", "published"]);
});

/// A worker claimed the target's job, called, and recorded the call as published, then
/// crashed before the part's id reached the target. Returns its job and what landed.
async fn crashed_after_a_published_call(
    w: &World,
    id: &PostId,
    a: &Account,
    text: &str,
) -> (Job, crier_networks::PublishedPart) {
    let (job, key) = crashed_worker_claims(w, id, a).await;
    let attempt = begin(w, &job, &key).await;
    let landed = sandbox_publish(w, a, text, &key).await;
    w.store
        .finish_attempt(
            &attempt,
            crier_store::PublishAttemptOutcome::Published,
            Some(&landed.external_id),
            None,
            w.now(),
        )
        .await
        .unwrap();
    (job, landed)
}

both!(
    a_published_last_part_keeps_its_id_when_the_job_became_another_nodes,
    |db| async move {
        // The call lands, and meanwhile the job became another node's: the target's end, held
        // to this worker's lease, writes nothing. The call's success is a fact all the same:
        // its attempt says `published` with the id, and the next run takes the part from it
        // without calling again, even when the network's look-up cannot find it.
        let db = Arc::new(db);
        let w = World::new(&db).await;
        let a = w.account("ada").await;
        let id = w.schedule(&[&a], "landed, end not written", T0).await;
        let publisher = w.misbehaving(Misbehaviour::LosesTheLease(db.clone()), config());
        assert_eq!(publisher.run_due().await, vec![Processed::Dropped]);
        let timeline = w.timeline(&a).await;
        assert_eq!(timeline.len(), 1);
        let landed = timeline[0].external_id.clone();
        let attempts = w.store.attempts(&id, &a.id).await.unwrap();
        assert_eq!(attempts.len(), 1, "{attempts:?}");
        assert_eq!(attempts[0].outcome.as_str(), "published");
        assert_eq!(attempts[0].external_id.as_deref(), Some(landed.as_str()));
        assert_eq!(w.target(&id, &a).await.status, TargetStatus::Publishing);

        // The other node dies too; after its lease, a look-up that finds nothing.
        let until = db.query_i64("SELECT locked_until FROM jobs").await;
        w.set(until[0] + 1);
        let misses = w.misbehaving(Misbehaviour::LookupMisses, config());
        assert_eq!(misses.run_due().await, vec![Processed::Published]);
        assert_eq!(w.timeline(&a).await.len(), 1, "not sent again");
        let t = w.target(&id, &a).await;
        assert_eq!(t.status, TargetStatus::Published);
        assert_eq!(t.external_id.as_deref(), Some(landed.as_str()));
        assert_eq!(w.outcomes(&id, &a).await, vec!["published"]);
    }
);

/// Makes every target's end as published fail in storage (as a failed commit or a lock
/// timeout would); everything else is written.
async fn break_publishing_ends(db: &TestDb) {
    match db.backend() {
        crier_store::Backend::Sqlite => {
            db.execute(
                "CREATE TRIGGER break_ends BEFORE UPDATE ON post_targets
                 WHEN NEW.status = 'published'
                 BEGIN SELECT RAISE(ABORT, 'injected storage fault'); END",
            )
            .await
        }
        crier_store::Backend::Postgres => {
            db.execute(
                "CREATE FUNCTION break_ends() RETURNS trigger LANGUAGE plpgsql AS
                 $$ BEGIN RAISE EXCEPTION 'injected storage fault'; END $$;
                 CREATE TRIGGER break_ends BEFORE UPDATE ON post_targets
                 FOR EACH ROW WHEN (NEW.status = 'published')
                 EXECUTE FUNCTION break_ends();",
            )
            .await
        }
    }
}

both!(
    a_published_last_part_keeps_its_id_when_the_targets_end_fails,
    |db| async move {
        // The call lands and the target's end fails in storage: the job comes back after its
        // lease, and its attempt keeps the id, so the retry takes the part from it.
        let w = World::new(&db).await;
        let a = w.account("ada").await;
        let id = w.schedule(&[&a], "landed, end failed", T0).await;
        break_publishing_ends(&db).await;
        assert_eq!(
            w.publisher.run_due().await,
            vec![Processed::RetryAt(T0 + LEASE_MS)]
        );
        let timeline = w.timeline(&a).await;
        assert_eq!(timeline.len(), 1);
        let landed = timeline[0].external_id.clone();
        let attempts = w.store.attempts(&id, &a.id).await.unwrap();
        assert_eq!(attempts.len(), 1, "{attempts:?}");
        assert_eq!(attempts[0].outcome.as_str(), "published");
        assert_eq!(attempts[0].external_id.as_deref(), Some(landed.as_str()));

        // Storage is back; after the lease, a look-up that finds nothing.
        let fix = match db.backend() {
            crier_store::Backend::Sqlite => "DROP TRIGGER break_ends",
            crier_store::Backend::Postgres => "DROP TRIGGER break_ends ON post_targets",
        };
        db.execute(fix).await;
        w.set(T0 + LEASE_MS + 1);
        let misses = w.misbehaving(Misbehaviour::LookupMisses, config());
        assert_eq!(misses.run_due().await, vec![Processed::Published]);
        assert_eq!(w.timeline(&a).await.len(), 1, "not sent again");
        let t = w.target(&id, &a).await;
        assert_eq!(t.status, TargetStatus::Published);
        assert_eq!(t.external_id.as_deref(), Some(landed.as_str()));
        assert_eq!(w.outcomes(&id, &a).await, vec!["published"]);
    }
);

both!(
    a_call_starts_only_while_the_lease_outlasts_it_once_its_attempt_is_recorded,
    |db| async move {
        // `begin_attempt` waits for the post's lock (its batch, too, on a busy node): the lease
        // the worker checked before it runs on meanwhile. A call whose lease is nearly over
        // when its attempt is recorded must not start on it (another node may claim the job
        // and send the part again while it is under way): the lease is renewed first. And a
        // node whose clock watch held its claims meanwhile starts no call at all.
        if db.backend() != crier_store::Backend::Postgres {
            return; // SQLite's writes are serialised: no statement waits on a row lock.
        }
        let db = Arc::new(db);
        let w = World::new(&db).await;
        let call_timeout = config().call_timeout.as_millis() as i64;
        let lease_left = Arc::new(std::sync::Mutex::new(Vec::new()));
        let publisher = w.misbehaving(
            Misbehaviour::SlowLookup {
                clock: w.clock.clone(),
                by_ms: 0,
                db: db.clone(),
                lease_left: lease_left.clone(),
            },
            config(),
        );
        for (case, handle) in [("lease nearly over", "ada"), ("clock off", "bob")] {
            let a = w.account(handle).await;
            let id = w.schedule(&[&a], case, w.now()).await;
            let started = w.now();
            let mut other = sqlx::AnyConnection::connect(&db.url).await.unwrap();
            sqlx::query("BEGIN").execute(&mut other).await.unwrap();
            sqlx::query("SELECT id FROM posts WHERE id = $1 FOR UPDATE")
                .bind(id.as_str())
                .fetch_one(&mut other)
                .await
                .unwrap();
            let running = publisher.clone();
            let run = tokio::spawn(async move { running.run_due().await });
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert!(!run.is_finished(), "{case}: waits for the post's lock");
            if case == "clock off" {
                w.store.hold_claims(true);
            } else {
                // Less of the lease is left than a call may take.
                w.set(started + LEASE_MS - call_timeout / 2);
            }
            sqlx::query("COMMIT").execute(&mut other).await.unwrap();
            let out = run.await.unwrap();
            if case == "clock off" {
                assert_eq!(out, vec![Processed::RetryAt(started + LEASE_MS)], "{case}");
                assert!(w.timeline(&a).await.is_empty(), "{case}: no call");
                assert_eq!(w.outcomes(&id, &a).await, vec!["in_flight"], "{case}");
                w.store.hold_claims(false);
            } else {
                assert_eq!(out, vec![Processed::Published], "{case}");
                assert_eq!(w.timeline(&a).await.len(), 1, "{case}");
                let left = lease_left.lock().unwrap().clone();
                assert_eq!(left.len(), 1, "{case}: one call: {left:?}");
                assert!(
                    left[0] >= 2 * call_timeout,
                    "{case}: the call started with {} ms of its lease left",
                    left[0]
                );
            }
        }
    }
);

both!(
    a_late_call_outcome_does_not_undo_a_part_another_node_found,
    |db| async move {
        // A worker's call is still under way when its lease runs out; another node takes the
        // job over, looks the part up and finds it. The first call then times out: its
        // outcome does not turn the attempt on record from `published` back to `unknown`.
        let w = World::new(&db).await;
        let a = w.account("ada").await;
        let id = w.schedule(&[&a], "found meanwhile", T0).await;
        let (job, key) = crashed_worker_claims(&w, &id, &a).await;
        let attempt = begin(&w, &job, &key).await;
        let landed = sandbox_publish(&w, &a, "found meanwhile", &key).await;
        w.store
            .record_found_attempt(&id, &a.id, 0, &landed.external_id, w.now())
            .await
            .unwrap();
        w.store
            .finish_attempt(
                &attempt,
                crier_store::PublishAttemptOutcome::Unknown,
                None,
                Some("timed out"),
                w.now(),
            )
            .await
            .unwrap();
        assert_eq!(w.outcomes(&id, &a).await, vec!["published"]);
        let attempts = w.store.attempts(&id, &a.id).await.unwrap();
        assert_eq!(
            attempts[0].external_id.as_deref(),
            Some(landed.external_id.as_str())
        );
    }
);

both!(crash_after_the_result_before_the_part_id, |db| async move {
    // The attempt was finished as `published`, but the crash came before the part's id was
    // written to the target: the publisher must find the part, not post it again.
    let w = World::new(&db).await;
    let a = w.account("ada").await;
    let id = w.schedule(&[&a], "half written", T0).await;
    let (job, landed) = crashed_after_a_published_call(&w, &id, &a, "half written").await;

    w.set(job.locked_until + 1);
    assert_eq!(w.publisher.run_due().await, vec![Processed::Published]);
    let timeline = w.timeline(&a).await;
    assert_eq!(timeline.len(), 1, "no duplicate: {timeline:?}");
    let t = w.target(&id, &a).await;
    assert_eq!(t.external_id.as_deref(), Some(landed.external_id.as_str()));
    assert_eq!(t.part_ids, vec![landed.external_id.clone()]);
});

both!(
    a_target_whose_first_call_cannot_start_fails_a_day_after_it_fell_due,
    |db| async move {
        // Credentials this server's keys do not open (nodes started with other secret_keys):
        // nothing is sent and the job comes back after each lease, but not for ever.
        let w = World::new(&db).await;
        let a = w.account("ada").await;
        db.execute("UPDATE accounts SET credentials = 'sealed by another server'")
            .await;
        let id = w.schedule(&[&a], "never opened", T0).await;
        let day = crier_worker::GIVE_UP_AFTER_MS;
        let mut runs = 0;
        while w.now() < T0 + day {
            let out = w.publisher.run_due().await;
            let [Processed::RetryAt(at)] = out[..] else {
                panic!("the job comes back: {out:?}")
            };
            assert_eq!(w.target(&id, &a).await.status, TargetStatus::Pending);
            w.set((at + 1).max(T0 + day * runs / 4));
            runs += 1;
        }
        assert!(runs >= 4, "{runs}");
        assert_eq!(w.publisher.run_due().await, vec![Processed::Failed]);
        let t = w.target(&id, &a).await;
        assert_eq!(t.status, TargetStatus::Failed);
        let error = t.error.expect("the reason");
        assert_eq!(error.code, "credentials_unavailable");
        assert!(w.timeline(&a).await.is_empty());
        assert!(w.outcomes(&id, &a).await.is_empty());
        assert_eq!(w.post(&id).await.status, PostStatus::Failed);
    }
);

both!(
    a_draft_published_days_after_it_was_written_is_not_given_up_at_once,
    |db| async move {
        // Written at T0, published now two days later: it falls due now. Neither a node that
        // cannot open its credentials yet nor a network's 429 fails it on the spot.
        let w = World::new(&db).await;
        let sealed = w.account("ada").await;
        db.execute("UPDATE accounts SET credentials = 'sealed by another server'")
            .await;
        let throttled = w.account("bo").await;
        w.fault(&throttled, 1, "rate_limit", 60).await;
        let now = T0 + 2 * crier_worker::GIVE_UP_AFTER_MS;
        w.set(now);
        let mut ids = Vec::new();
        for account in [&sealed, &throttled] {
            let draft = new_post(&w.ws, &[account], "at last", &[], PostStatus::Draft, None);
            w.store.insert_post(&draft).await.unwrap();
            let publish_now = Transition {
                scheduled_at: Some(None),
                enqueue_at: Some(now),
                ..Transition::new(PostStatus::Draft, PostStatus::Publishing, now)
            };
            assert!(
                w.store
                    .transition(&w.ws, &draft.id, &publish_now)
                    .await
                    .unwrap()
            );
            ids.push(draft.id);
        }
        let out = w.publisher.run_due().await;
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(
            out.iter().all(|p| matches!(p, Processed::RetryAt(_))),
            "{out:?}"
        );
        assert_eq!(
            w.target(&ids[0], &sealed).await.status,
            TargetStatus::Pending
        );
        assert_eq!(
            w.target(&ids[1], &throttled).await.status,
            TargetStatus::Pending
        );
        // bo's network lets it through after its minute.
        w.set(now + 2 * MINUTE);
        w.publisher.run_due().await;
        assert_eq!(
            w.target(&ids[1], &throttled).await.status,
            TargetStatus::Published
        );
        assert_eq!(w.timeline(&throttled).await.len(), 1);
    }
);

both!(
    a_part_on_record_as_published_is_not_sent_again_when_the_look_up_misses_it,
    |db| async move {
        // As above, on a network whose look-up cannot find the part, or whose search is
        // down: the attempt on record is what says it landed, and with which id.
        let w = World::new(&db).await;
        let a = w.account("ada").await;
        for (n, how) in [Misbehaviour::LookupMisses, Misbehaviour::LookupDown]
            .into_iter()
            .enumerate()
        {
            let text = format!("recorded, not found {n}");
            let id = w.schedule(&[&a], &text, w.now()).await;
            let (job, landed) = crashed_after_a_published_call(&w, &id, &a, &text).await;
            w.set(job.locked_until + 1);
            let publisher = w.misbehaving(how, config());
            assert_eq!(publisher.run_due().await, vec![Processed::Published]);
            let t = w.target(&id, &a).await;
            assert_eq!(t.status, TargetStatus::Published);
            assert_eq!(t.external_id.as_deref(), Some(landed.external_id.as_str()));
            assert_eq!(t.part_ids, vec![landed.external_id.clone()]);
            assert_eq!(w.outcomes(&id, &a).await, vec!["published"]);
        }
        let timeline = w.timeline(&a).await;
        assert_eq!(timeline.len(), 2, "no duplicate: {timeline:?}");
    }
);

both!(
    a_job_that_panics_before_its_call_fails_with_internal_error,
    |db| async move {
        // A bug before the first call would meet the job again after every lease, with
        // nothing recorded; the target fails at once and says so, and nothing is sent.
        let w = World::new(&db).await;
        let a = w.account("ada").await;
        let id = w.schedule(&[&a], "meets a bug", T0).await;
        let publisher = w.misbehaving(Misbehaviour::PanicsBeforeTheCall, config());
        assert_eq!(publisher.run_due().await, vec![Processed::Failed]);
        let t = w.target(&id, &a).await;
        assert_eq!(t.status, TargetStatus::Failed);
        assert_eq!(t.error.expect("the reason").code, "internal_error");
        assert_eq!(w.post(&id).await.status, PostStatus::Failed);
        assert!(w.timeline(&a).await.is_empty());
        assert!(w.outcomes(&id, &a).await.is_empty());
        assert!(
            publisher
                .render_metrics()
                .await
                .contains("crier_publish_panics_total 1"),
        );
        // Nothing is left in the queue to come back.
        w.set(T0 + 2 * LEASE_MS);
        assert!(publisher.run_due().await.is_empty());
    }
);

both!(
    a_job_that_panics_after_its_call_is_left_to_the_look_up,
    |db| async move {
        // A bug after the call went out: the call may have landed (here it did), so the job
        // is not failed; it comes back after its lease, and the look-up finds the post.
        let w = World::new(&db).await;
        let a = w.account("ada").await;
        let id = w.schedule(&[&a], "landed, then a bug", T0).await;
        let publisher = w.misbehaving(Misbehaviour::PanicsAfterTheCall, config());
        let done = publisher.run_due().await;
        assert!(matches!(done[..], [Processed::RetryAt(_)]), "{done:?}");
        assert_eq!(w.target(&id, &a).await.status, TargetStatus::Publishing);
        assert_eq!(w.outcomes(&id, &a).await, vec!["in_flight"]);
        w.set(T0 + 2 * LEASE_MS);
        assert_eq!(w.publisher.run_due().await, vec![Processed::Published]);
        assert_eq!(w.target(&id, &a).await.status, TargetStatus::Published);
        assert_eq!(w.timeline(&a).await.len(), 1, "sent once");
    }
);

both!(
    a_job_that_panics_after_its_call_every_time_fails_a_day_after_it_fell_due,
    |db| async move {
        // The call landed and every look-up since meets the bug: the job comes back after each
        // lease (never sending again), and a day after the post fell due it fails, saying the
        // post may be on the network.
        let w = World::new(&db).await;
        let a = w.account("ada").await;
        let id = w.schedule(&[&a], "landed, then bugs", T0).await;
        let publisher = w.misbehaving(Misbehaviour::PanicsAfterTheCall, config());
        let mut at = T0;
        for _ in 0..3 {
            let done = publisher.run_due().await;
            assert!(matches!(done[..], [Processed::RetryAt(_)]), "{done:?}");
            at += 2 * LEASE_MS;
            w.set(at);
        }
        assert_eq!(w.target(&id, &a).await.status, TargetStatus::Publishing);
        w.set(T0 + crier_worker::GIVE_UP_AFTER_MS + 2 * LEASE_MS);
        assert_eq!(publisher.run_due().await, vec![Processed::Failed]);
        let t = w.target(&id, &a).await;
        assert_eq!(t.status, TargetStatus::Failed);
        let error = t.error.expect("the reason");
        assert_eq!(error.code, "internal_error");
        assert!(
            error.message.contains("may be on the network"),
            "{}",
            error.message
        );
        assert_eq!(w.timeline(&a).await.len(), 1, "sent once");
    }
);

// ---------------------------------------------------------------------------------------------
// The queue
// ---------------------------------------------------------------------------------------------

both!(
    a_node_holding_its_claims_claims_nothing_until_let_go,
    |db| async move {
        // What a node does while its clock is off the database's (`crier serve`'s clock
        // watch): due jobs stay in the queue for the other nodes (another process's store is
        // not held), and are claimed again once it lets go.
        let w = World::new(&db).await;
        let a = w.account("ada").await;
        let id = w.schedule(&[&a], "due", T0).await;
        w.store.hold_claims(true);
        assert!(w.publisher.run_due().await.is_empty());
        assert!(
            w.store
                .claim_jobs(T0, LEASE_MS, 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(w.target(&id, &a).await.status, TargetStatus::Pending);
        let other = db.connect_again().await;
        assert_eq!(other.claim_jobs(T0, LEASE_MS, 10).await.unwrap().len(), 1);
        w.set(T0 + LEASE_MS + 1);
        w.store.hold_claims(false);
        assert_eq!(w.publisher.run_due().await, vec![Processed::Published]);
        assert_eq!(w.timeline(&a).await.len(), 1);
    }
);

both!(
    a_claimed_job_is_not_claimed_again_before_its_lease_ends,
    |db| async move {
        let w = World::new(&db).await;
        let a = w.account("ada").await;
        let id = w.schedule(&[&a], "mine", T0).await;

        let jobs = w.store.claim_jobs(T0, LEASE_MS, 10).await.unwrap();
        assert_eq!(jobs.len(), 1);
        let job = &jobs[0];
        assert_eq!(job.post_id.as_ref(), Some(&id));
        assert_eq!(job.account_id.as_ref(), Some(&a.id));
        assert_eq!(job.run_at, T0);
        assert_eq!(job.locked_until, T0 + LEASE_MS);

        assert!(
            w.store
                .claim_jobs(T0, LEASE_MS, 10)
                .await
                .unwrap()
                .is_empty()
        );
        w.set(T0 + LEASE_MS - 1);
        assert!(
            w.store
                .claim_jobs(w.now(), LEASE_MS, 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(w.publisher.run_due().await, vec![]);
        assert!(w.timeline(&a).await.is_empty());

        w.set(T0 + LEASE_MS + 1);
        let again = w.store.claim_jobs(w.now(), LEASE_MS, 10).await.unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].id, job.id);
        assert_eq!(again[0].locked_until, T0 + 2 * LEASE_MS + 1);
    }
);

/// 20 live posts, each to the same 10 accounts, all due at `T0`.
async fn two_hundred_due_targets(w: &World) -> (Vec<Account>, Vec<Post>) {
    let mut accounts = Vec::new();
    for i in 0..10 {
        accounts.push(w.account_in(&format!("acct{i}"), true).await);
    }
    let refs: Vec<&Account> = accounts.iter().collect();
    let posts: Vec<Post> = (0..20)
        .map(|i| {
            new_post(
                &w.ws,
                &refs,
                &format!("post {i}"),
                &[],
                PostStatus::Scheduled,
                Some(T0),
            )
        })
        .collect();
    w.store.insert_posts(&posts).await.unwrap();
    (accounts, posts)
}

/// Every target published exactly once: one timeline entry per idempotency key, every post
/// `published`, the queue empty and the usage counter at 200.
async fn each_published_once(w: &World, accounts: &[Account], posts: &[Post]) {
    let mut keys = BTreeSet::new();
    let mut total = 0;
    for a in accounts {
        let timeline = w.timeline(a).await;
        total += timeline.len();
        for p in timeline {
            assert!(keys.insert(p.idem_key.clone()), "duplicate {}", p.idem_key);
        }
    }
    assert_eq!(total, 200);
    let expected: BTreeSet<String> = posts
        .iter()
        .flat_map(|p| accounts.iter().map(|a| idem(&p.id, a, 0)))
        .collect();
    assert_eq!(keys, expected);

    for p in posts {
        let post = w.post(&p.id).await;
        assert_eq!(post.status, PostStatus::Published, "post {}", p.id);
        for t in &post.targets {
            assert_eq!(t.status, TargetStatus::Published);
            assert_eq!(t.attempts, 1);
            assert!(t.external_id.is_some());
        }
    }
    assert_eq!(w.next_job_at().await, None);
    let usage = w.store.workspace_usage(&w.ws, "2027-01").await.unwrap();
    assert_eq!(usage.get(METRIC_POSTS_PUBLISHED), Some(&200));
}

both!(
    two_workers_publish_each_target_exactly_once,
    |db| async move {
        let w = World::new(&db).await;
        let (accounts, posts) = two_hundred_due_targets(&w).await;

        // A second node: its own connections to the same database, the same clock.
        let store2 = db.connect_again().await;
        let (other, _sandbox2) = publisher_on(&store2, &w.clock, config(), None);
        let one = w.publisher.clone();
        let h1 = tokio::spawn(async move { one.run_due().await });
        let h2 = tokio::spawn(async move { other.run_due().await });
        let (r1, r2) = (h1.await.unwrap(), h2.await.unwrap());
        assert_eq!(r1.len() + r2.len(), 200, "{r1:?} {r2:?}");
        assert!(
            r1.iter().chain(&r2).all(|p| *p == Processed::Published),
            "{r1:?} {r2:?}"
        );
        each_published_once(&w, &accounts, &posts).await;
        store2.close().await;
    }
);

both!(
    two_running_workers_publish_each_target_exactly_once,
    |db| async move {
        // The same on the production loop, `Publisher::run`, where each node works on many jobs
        // at once: targets of one post finish at the same moment on different nodes.
        let w = World::new(&db).await;
        let (accounts, posts) = two_hundred_due_targets(&w).await;
        let store2 = db.connect_again().await;
        let running = WorkerConfig {
            concurrency: 16,
            poll: Duration::from_millis(10),
            ..config()
        };
        let (one, _) = publisher_on(&w.store, &w.clock, running.clone(), None);
        let (other, _) = publisher_on(&store2, &w.clock, running, None);
        let cancel = tokio_util::sync::CancellationToken::new();
        let h1 = tokio::spawn(one.run(cancel.clone()));
        let h2 = tokio::spawn(other.run(cancel.clone()));
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while w.next_job_at().await.is_some() {
            assert!(
                std::time::Instant::now() < deadline,
                "the queue never emptied"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        cancel.cancel();
        h1.await.unwrap();
        h2.await.unwrap();
        each_published_once(&w, &accounts, &posts).await;
        store2.close().await;
    }
);

both!(a_disconnected_account_fails_its_target, |db| async move {
    let w = World::new(&db).await;
    let a = w.account("gone").await;
    let id = w.schedule(&[&a], "to nobody", T0).await;
    w.store.disconnect_account(&w.ws, &a.id, T0).await.unwrap();

    assert_eq!(w.publisher.run_due().await, vec![Processed::Failed]);
    let post = w.post(&id).await;
    assert_eq!(post.status, PostStatus::Failed);
    assert_eq!(post.targets[0].status, TargetStatus::Failed);
    assert_eq!(
        post.targets[0].error.as_ref().map(|e| e.code.as_str()),
        Some("account_disconnected")
    );
    assert!(w.timeline(&a).await.is_empty());
    assert!(w.outcomes(&id, &a).await.is_empty());
    assert_eq!(w.next_job_at().await, None);
});

both!(
    a_deleted_or_cancelled_post_is_not_published,
    |db| async move {
        let w = World::new(&db).await;
        let a = w.account("ada").await;
        let deleted = w.schedule(&[&a], "deleted", T0 + MINUTE).await;
        let cancelled = w.schedule(&[&a], "cancelled", T0 + MINUTE).await;
        assert!(
            w.store
                .delete_post(&w.ws, &deleted, PostStatus::Scheduled)
                .await
                .unwrap()
        );
        let cancel = Transition {
            scheduled_at: Some(None),
            ..Transition::new(PostStatus::Scheduled, PostStatus::Draft, T0)
        };
        assert!(
            w.store
                .transition(&w.ws, &cancelled, &cancel)
                .await
                .unwrap()
        );
        assert_eq!(w.next_job_at().await, None, "no job is left");

        w.set(T0 + HOUR);
        assert_eq!(w.publisher.run_due().await, vec![]);
        assert!(w.timeline(&a).await.is_empty());
        assert!(w.store.get_post(&w.ws, &deleted).await.unwrap().is_none());
        assert_eq!(w.post(&cancelled).await.status, PostStatus::Draft);
    }
);

// ---------------------------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------------------------

both!(collect_metrics_fills_published_targets, |db| async move {
    let w = World::new(&db).await;
    let a = w.account("ada").await;
    let gone = w.account("gone").await;
    let id = w.schedule(&[&a, &gone], "measure me", T0).await;
    let waiting = w.schedule(&[&a], "later", T0 + 24 * HOUR).await;
    w.store
        .disconnect_account(&w.ws, &gone.id, T0)
        .await
        .unwrap();
    let out = w.publisher.run_due().await;
    assert_eq!(out.len(), 2);
    assert!(out.contains(&Processed::Published) && out.contains(&Processed::Failed));
    let ext = w.target(&id, &a).await.external_id.unwrap();

    w.set(T0 + 3 * HOUR);
    assert_eq!(w.publisher.collect_metrics().await.unwrap(), 1);
    let m = w.store.post_metrics(&w.ws, &id).await.unwrap();
    assert_eq!(
        m,
        vec![(a.id.clone(), simulated_metrics(&ext, 3), T0 + 3 * HOUR)]
    );
    assert!(
        w.store
            .post_metrics(&w.ws, &waiting)
            .await
            .unwrap()
            .is_empty()
    );

    // Fresh metrics are left alone until `metrics_every` has passed.
    assert_eq!(w.publisher.collect_metrics().await.unwrap(), 0);
    w.set(T0 + 4 * HOUR + 1);
    assert_eq!(w.publisher.collect_metrics().await.unwrap(), 1);
    let m = w.store.post_metrics(&w.ws, &id).await.unwrap();
    assert_eq!(
        m,
        vec![(a.id.clone(), simulated_metrics(&ext, 4), T0 + 4 * HOUR + 1)]
    );
});

/// The sandbox behind a two-step network: the first step (an "upload") is kept in the part's
/// steps before the second (the post) is tried; the second fails once. The retry must find the
/// upload kept, not upload again, and a look-up must see the steps too.
struct TwoSteps {
    inner: Arc<Sandbox>,
    uploads: std::sync::atomic::AtomicUsize,
    fail_next_post: std::sync::atomic::AtomicBool,
    looked_up_with: std::sync::Mutex<Vec<Option<String>>>,
}

#[async_trait::async_trait]
impl Network for TwoSteps {
    fn rules(&self) -> &crier_networks::Rules {
        self.inner.rules()
    }

    fn connect_kind(&self) -> crier_networks::ConnectKind {
        crier_networks::ConnectKind::Instant
    }

    async fn publish(
        &self,
        s: Session<'_>,
        part: Part<'_>,
    ) -> Result<crier_networks::PublishedPart, NetworkError> {
        use std::sync::atomic::Ordering;
        if part.steps.get("upload").await?.is_none() {
            let n = self.uploads.fetch_add(1, Ordering::SeqCst);
            part.steps.put("upload", &format!("u-{n}")).await?;
        }
        if self.fail_next_post.swap(false, Ordering::SeqCst) {
            return Err(NetworkError::unavailable("the post step failed"));
        }
        self.inner.publish(s, part).await
    }

    async fn lookup(
        &self,
        s: Session<'_>,
        part: Part<'_>,
    ) -> Result<Option<crier_networks::PublishedPart>, NetworkError> {
        let kept = part.steps.get("upload").await?;
        self.looked_up_with.lock().unwrap().push(kept);
        self.inner.lookup(s, part).await
    }

    async fn metrics(
        &self,
        s: Session<'_>,
        external_id: &str,
    ) -> Result<crier_store::Metrics, NetworkError> {
        self.inner.metrics(s, external_id).await
    }
}

both!(
    a_parts_steps_outlive_its_attempt_and_reach_the_retry,
    |db| async move {
        let w = World::new(&db).await;
        let net = Arc::new(TwoSteps {
            inner: w.sandbox.clone(),
            uploads: Default::default(),
            fail_next_post: std::sync::atomic::AtomicBool::new(true),
            looked_up_with: Default::default(),
        });
        let networks = Networks::default().with(net.clone());
        let app = app_on(&w.store, Arc::new(w.clock.clone()), networks, None);
        let a = w.account("ada").await;
        let id = w.schedule(&[&a], "two steps", T0).await;
        // A new publisher (another node, after a restart) for each run: the steps live in the
        // store, not in a process.
        let first = Publisher::new(app.clone(), config()).run_due().await;
        let [Processed::RetryAt(at)] = first[..] else {
            panic!("a retry: {first:?}")
        };
        w.set(at);
        let second = Publisher::new(app, config()).run_due().await;
        assert_eq!(second, vec![Processed::Published]);
        assert_eq!(
            net.uploads.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "the retry reused the kept upload"
        );
        assert_eq!(
            *net.looked_up_with.lock().unwrap(),
            vec![Some("u-0".to_owned())],
            "the look-up before the retry saw the kept upload"
        );
        assert_eq!(
            w.store
                .publish_step(&id, &a.id, 0, "upload")
                .await
                .unwrap()
                .as_deref(),
            Some("u-0")
        );
        assert_eq!(w.timeline(&a).await.len(), 1);
    }
);

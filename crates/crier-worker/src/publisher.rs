use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt as _;

use crate::budget::{Budgets, DEFER_MS, Hold, Turn};
use crate::metrics::{PublishMetrics, outcome};
use crate::runner::{jitter, millis};
use crier_app::App;
use crier_core::accounts::AccountStatus;
use crier_core::ids::{AccountId, PostId, WorkspaceId};
use crier_core::posts::{PostStatus, TargetStatus};
use crier_networks::{Attachment, Network, NetworkError, Part, PublishedPart, Session};
use crier_store::{
    Account, Attempt, Job, Post, PublishAttemptOutcome, Target, TargetError, TargetOutcome,
};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Jobs processed at once by this node.
    pub concurrency: usize,
    /// How long a claimed job is ours; a crashed worker's jobs come back after it.
    pub lease: Duration,
    /// How long one network call may take (must be well under the lease).
    pub call_timeout: Duration,
    /// How often an idle worker looks for due jobs (other nodes may have enqueued some).
    pub poll: Duration,
    /// Attempts per target before it fails for good.
    pub max_attempts: i64,
    /// The first retry's delay; each further retry doubles it (with ±25% jitter).
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// How often published targets' metrics are refreshed.
    pub metrics_every: Duration,
    /// Calls in flight at once per network on this node (see `budget.rs`).
    pub per_network: usize,
    /// Calls in flight at once per account on this node.
    pub per_account: usize,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            concurrency: 1024,
            lease: Duration::from_secs(60),
            call_timeout: Duration::from_secs(15),
            poll: Duration::from_millis(200),
            max_attempts: 5,
            backoff: Duration::from_secs(5),
            max_backoff: Duration::from_secs(30 * 60),
            metrics_every: Duration::from_secs(3600),
            per_network: 1024,
            per_account: 4,
        }
    }
}

#[derive(Clone)]
pub struct Publisher {
    /// Storage, networks, clock, plans and the wake signal, as the binary composed them.
    app: App,
    config: WorkerConfig,
    /// Workspaces' plan names, as last read (plans change rarely: by an operator).
    plans: Arc<Mutex<HashMap<WorkspaceId, (String, i64)>>>,
    /// Calls in flight per network and account, and accounts paused by a 429.
    budgets: Arc<Budgets>,
    metrics: Arc<PublishMetrics>,
}

/// Claims one turn of the worker makes at most while the store says more may be due.
const CLAIMS_PER_TURN: usize = 8;
/// How long a workspace's plan is remembered.
const PLAN_TTL_MS: i64 = 60_000;
/// At most this many workspaces' plans are remembered; past it the memory starts afresh.
const PLANS_REMEMBERED: usize = 10_000;

/// One target's publishing: the connector, the account acting, its parts and media.
struct Call<'a> {
    network: &'a dyn Network,
    session: Session<'a>,
    parts: &'a [String],
    media: &'a [Attachment],
    /// Where the job's lease stands as its parts renew it (for [`Publisher::after_panic`]).
    lease: &'a AtomicI64,
}

/// What became of one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Processed {
    Published,
    Failed,
    RetryAt(i64),
    /// Let go without a call: its work was moot (the post or target is gone, done or
    /// cancelled), or its lease ran out and another node holds the job now.
    Dropped,
}

impl Publisher {
    pub fn new(app: App, config: WorkerConfig) -> Self {
        Self {
            app,
            budgets: Budgets::new(config.per_network, config.per_account),
            metrics: Arc::default(),
            config,
            plans: Arc::default(),
        }
    }

    /// Runs until `cancel`: claims due jobs and processes them, `concurrency` at a time. On
    /// cancel it stops claiming and lets jobs in hand finish their current step.
    pub async fn run(self, cancel: CancellationToken) {
        let claimer = self.clone();
        let worker = self.clone();
        crate::runner::run(
            self.config.concurrency,
            self.config.poll,
            Some(self.app.publish_wake().clone()),
            cancel,
            move |free| {
                let me = claimer.clone();
                async move { me.claim(free).await }
            },
            move |claim| {
                let me = worker.clone();
                async move {
                    me.process(claim).await;
                }
            },
        )
        .await
    }

    /// Claims due jobs, no more of an account than its room on this node, each with its
    /// hold on that room and the claim it came in (see [`ClaimBatch`]). A
    /// claim looks at a bounded number of workspaces; while the store says more may be due, it
    /// claims again (a few times at most), so that a claim that comes back short means nothing
    /// more is due or has room now.
    async fn claim(&self, limit: u32) -> Vec<Claim> {
        let mut out = Vec::new();
        for _ in 0..CLAIMS_PER_TURN {
            let want = limit.saturating_sub(out.len() as u32);
            if want == 0 {
                break;
            }
            let now = self.app.clock().now_ms();
            let claimed = self
                .app
                .store()
                .claim_jobs_within(
                    now,
                    millis(self.config.lease),
                    want,
                    &self.budgets.room(now),
                )
                .await;
            let claimed = match claimed {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "could not claim jobs");
                    break;
                }
            };
            let got = claimed.jobs.len();
            for job in claimed.jobs {
                let hold = job.account_id.as_ref().and_then(|a| self.budgets.hold(a));
                out.push((job, hold));
            }
            if !claimed.more || got == 0 {
                break;
            }
        }
        let batch = Arc::new(ClaimBatch {
            targets: out
                .iter()
                .filter_map(|(j, _)| Some((j.post_id.clone()?, j.account_id.clone()?)))
                .collect(),
            read: tokio::sync::OnceCell::new(),
        });
        out.into_iter()
            .map(|(job, hold)| Claim {
                job,
                hold,
                batch: batch.clone(),
            })
            .collect()
    }

    /// This node's publishing series and the queue's, for `/metrics` (see `metrics.rs`).
    pub async fn render_metrics(&self) -> String {
        let now = self.app.clock().now_ms();
        let queue = match self.app.store().queue_stats(now).await {
            Ok(q) => q,
            Err(e) => {
                tracing::warn!(error = %e, "queue metrics could not be read");
                Vec::new()
            }
        };
        self.metrics.render(&queue, self.budgets.in_flight())
    }

    /// Claims and processes every job due now, one after another. For tests and tools that
    /// drive the queue deterministically with an injected clock.
    pub async fn run_due(&self) -> Vec<Processed> {
        let mut out = Vec::new();
        loop {
            // A storage failure is logged by `claim` and ends the run like an empty queue.
            let claims = self.claim(64).await;
            if claims.is_empty() {
                break;
            }
            for claim in claims {
                out.push(self.process(claim).await);
            }
        }
        out
    }

    /// Processes one claimed job; never panics on a network's or storage's failure (the job
    /// stays leased and comes back), nor on a bug of its own (see [`Publisher::after_panic`]).
    async fn process(&self, claim: Claim) -> Processed {
        let mut job = claim.job.clone();
        self.metrics.started(self.app.clock().now_ms() - job.run_at);
        // A thread's parts renew the lease: what follows a panic must hold the job as it
        // stands, or the target's end (conditional on the lease) would write nothing.
        let lease = AtomicI64::new(job.locked_until);
        match std::panic::AssertUnwindSafe(self.try_process(claim, &lease))
            .catch_unwind()
            .await
        {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => {
                tracing::warn!(job = %job.id, error = %e, "job failed on storage; it will come back");
                Processed::RetryAt(job.locked_until)
            }
            Err(panic) => {
                job.locked_until = lease.load(Ordering::SeqCst);
                self.after_panic(&job, crier_core::error::panic_message(&*panic))
                    .await
            }
        }
    }

    /// Processing `job` panicked: a bug, which coming back after every lease would only meet
    /// again, with nothing recorded and the post later and later. When no call was made for
    /// the target in this round (since the author's last retry) it fails at once with
    /// `internal_error` (its author learns of it, and can retry it once the server is fixed);
    /// with a call on record it is left to its lease and the look-up that follows, as after a
    /// crash, since that call may have landed, until [`GIVE_UP_AFTER_MS`] after the post fell
    /// due (or the author's last retry, if later): then it fails too, saying the post may be
    /// on the network.
    async fn after_panic(&self, job: &Job, what: &str) -> Processed {
        tracing::error!(job = %job.id, panic = %what, "processing a publish job panicked");
        self.metrics.panicked();
        let retry = Processed::RetryAt(job.locked_until);
        let (Some(post_id), Some(account)) = (&job.post_id, &job.account_id) else {
            return retry;
        };
        let store = self.app.store();
        let read = async {
            let post = store.get_post(&job.workspace_id, post_id).await?;
            let history = store.attempts(post_id, account).await?;
            Ok::<_, crier_store::StoreError>((post, history))
        };
        let (post, history) = match read.await {
            Ok((Some(post), history)) => (post, history),
            Ok((None, _)) => return retry,
            Err(e) => {
                tracing::warn!(job = %job.id, error = %e, "could not read a job that panicked; it will come back");
                return retry;
            }
        };
        let round = round_start(&history);
        let message = if no_call_made(&history[round..]) {
            "crier failed while preparing this post (a bug, logged on the server); nothing was \
             sent. Retry it once the server is updated."
        } else if self.a_day_past(&post, retried_at(&history, round)) {
            "crier failed again and again after calling the network for this post (a bug, \
             logged on the server) for a day after it fell due; the post may be on the \
             network: check the account before you retry it."
        } else {
            return retry;
        };
        match self.fail_target(job, "internal_error", message).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(job = %job.id, error = %e, "could not fail a job that panicked; it will come back");
                retry
            }
        }
    }

    async fn try_process(&self, claim: Claim, lease: &AtomicI64) -> crier_store::Result<Processed> {
        let Claim {
            ref job,
            hold,
            batch,
        } = claim;
        let (post, account, history) = batch.read(self.app.store()).await?.of(job);
        let Some((post, target)) = still_due(job, post) else {
            self.app.store().drop_job(&job.id).await?;
            return Ok(Processed::Dropped);
        };
        let Some(account) = account.filter(|a| a.status == AccountStatus::Connected) else {
            return self
                .fail_target(job, "account_disconnected", "The account is not connected.")
                .await;
        };
        let Some(network) = self.app.networks().get(&account.platform).cloned() else {
            let message = format!("No connector for {}.", account.platform);
            return self
                .fail_target(job, "unsupported_platform", &message)
                .await;
        };
        let credentials = match self.app.tokens().open(&account) {
            Ok(c) => c.unwrap_or_default(),
            Err(e) => {
                // The operator's keys, not the account, are wrong (nodes with different
                // `secret_keys`): nothing is sent, the job comes back after its lease.
                tracing::error!(account = %account.id, error = %e.message, "credentials do not open with this server's secret_keys; check that every node has the same keys");
                if self.gives_up(&post, &history) {
                    let message = "The account's credentials could not be opened with this \
                                   server's secret keys for a day after the post fell due; \
                                   nothing was sent.";
                    return self
                        .fail_target(job, "credentials_unavailable", message)
                        .await;
                }
                return Ok(Processed::RetryAt(job.locked_until));
            }
        };
        let tenant = crier_app::Tenant {
            workspace: post.workspace_id.clone(),
            livemode: post.livemode,
        };
        let media = match self.app.media().attachments(&tenant, &post.media_ids).await {
            Ok(m) => m,
            Err(e) if e.code == crier_core::ErrorCode::InvalidRequest => {
                return self.fail_target(job, "media_rejected", &e.message).await;
            }
            Err(e) => {
                tracing::warn!(job = %job.id, error = %e.message, "media could not be read; the job will come back");
                if self.gives_up(&post, &history) {
                    let message = format!(
                        "The post's media could not be read for a day after it fell due \
                         ({}); nothing was sent.",
                        e.message
                    );
                    return self.fail_target(job, "media_unavailable", &message).await;
                }
                return Ok(Processed::RetryAt(job.locked_until));
            }
        };
        let parts = post.parts_for(&account.id);
        let metas: Vec<_> = media.iter().map(|a| a.meta.clone()).collect();
        let rules = network.rules_for(&account).await;
        if let Some(v) = rules.check(&parts, &metas).into_iter().next() {
            let message = format!("{}: {} ({})", v.field, v.message, v.rule);
            let code = if v.field.starts_with("media") {
                "media_rejected"
            } else {
                "invalid_content"
            };
            return self.fail_target(job, code, &message).await;
        }
        // The account's and network's room on this node; without it the job comes back in a
        // moment (or when the account's pause ends) and the slot takes other work.
        let now = self.app.clock().now_ms();
        let permit = match self.budgets.turn(&account.platform, &account.id, hold, now) {
            Turn::Go(permit) => permit,
            Turn::Paused(until) => {
                self.app.store().defer_job(job, until).await?;
                return Ok(Processed::RetryAt(until));
            }
            Turn::AccountFull => {
                self.app.store().defer_job(job, job.run_at).await?;
                return Ok(Processed::RetryAt(job.run_at));
            }
            Turn::NetworkFull => {
                // Real time, not the clock's: this only spaces out the claims of a node whose
                // network is saturated.
                tokio::time::sleep(std::time::Duration::from_millis(jitter(DEFER_MS, 2) as u64))
                    .await;
                self.app.store().defer_job(job, job.run_at).await?;
                return Ok(Processed::RetryAt(job.run_at));
            }
        };
        let session = Session {
            account: &account,
            credentials: &credentials,
        };
        let call = Call {
            network: &*network,
            session,
            parts: &parts,
            media: &media,
            lease,
        };
        self.publish_parts(job, &post, call, target, &history, permit)
            .await
    }

    /// Whether a target that cannot start its first call (credentials this node cannot open,
    /// media the store cannot read: the job comes back after each lease) fails instead: once
    /// [`GIVE_UP_AFTER_MS`] have passed since its post fell due, and only while no call was
    /// ever made for it (one may have landed, which only a look-up can tell).
    fn gives_up(&self, post: &Post, history: &[Attempt]) -> bool {
        no_call_made(history) && self.a_day_past(post, 0)
    }

    /// Whether [`GIVE_UP_AFTER_MS`] have passed since `post` fell due, or since `since` (an
    /// author's retry, epoch ms) when that is later. A post with no time (published now, or
    /// approved to publish now) fell due when that was asked, its last change (a draft written
    /// long before is not a day late; a change since, such as a target finishing, only
    /// moves the day later).
    fn a_day_past(&self, post: &Post, since: i64) -> bool {
        let due = post.scheduled_at.unwrap_or(post.updated_at).max(since);
        self.app.clock().now_ms() - due >= GIVE_UP_AFTER_MS
    }

    /// Fails the job's target for good with `code` and `message`.
    async fn fail_target(
        &self,
        job: &Job,
        code: &str,
        message: &str,
    ) -> crier_store::Result<Processed> {
        let outcome = TargetOutcome::Failed(TargetError {
            code: code.to_owned(),
            message: message.to_owned(),
        });
        let finished = self
            .app
            .store()
            .finish_target(job, &outcome, self.app.clock().now_ms())
            .await?;
        Ok(finished.map_or(Processed::Dropped, |_| Processed::Failed))
    }

    async fn publish_parts(
        &self,
        job: &Job,
        post: &Post,
        call: Call<'_>,
        target: Target,
        history: &[Attempt],
        permit: crate::budget::Permit,
    ) -> crier_store::Result<Processed> {
        let Call {
            network,
            session,
            parts,
            media,
            lease,
        } = call;
        let account = session.account;
        let no_overrides = crier_store::PostOverride::default();
        let options = post
            .overrides
            .get(account.id.as_str())
            .unwrap_or(&no_overrides);
        let (mut part_ids, mut url) = (target.part_ids, target.url);
        let round = round_start(history);
        // Before the target's first call only: once a call went out, it may have landed, and
        // only a look-up can tell.
        if no_call_made(history)
            && post.livemode
            && let Some(message) = self.over_quota(&post.workspace_id).await?
        {
            return self.fail_target(job, "quota_exceeded", &message).await;
        }
        let mut tries = Tries::of(history, round);
        let mut closing = None;
        // The job as this worker holds it: its lease moves with each part of a thread.
        let mut held = job.clone();
        while part_ids.len() < parts.len() {
            // A node whose clock went off the database's (the clock watch holds its claims)
            // makes no call, look-up or not: its lease may already be over by other nodes'
            // clocks. The job comes back after its lease, here once the clock is right again,
            // or elsewhere.
            if self.app.store().claims_held() {
                return Ok(Processed::RetryAt(held.locked_until));
            }
            let i = part_ids.len();
            let idem = format!("{}:{}:{i}", post.id, account.id);
            // Any earlier call for this part may have landed: in flight when we crashed,
            // unknown after a timeout, or published but not yet recorded on the target.
            let maybe_landed = history.iter().any(|a| a.part == i as i64);
            let steps = StoreSteps {
                app: &self.app,
                post: &post.id,
                account: &account.id,
                part: i as i64,
            };
            let part = Part {
                text: &parts[i],
                media: if i == 0 { media } else { &[] },
                thread: &part_ids,
                options,
                idem_key: &idem,
                steps: &steps,
            };
            if maybe_landed {
                // Bounded like a call, so a network whose search hangs cannot hold the job past
                // its lease; a timeout is a failed look-up.
                let lookup = network.lookup(session, part);
                let found = tokio::time::timeout(self.config.call_timeout, lookup)
                    .await
                    .unwrap_or(Err(NetworkError::Timeout))
                    .and_then(|found| found.map(keepable).transpose());
                // A call on record as published landed, with the id it answered, even when the
                // network's look-up cannot find it (a search by text and time, a search that is
                // down): its part id only missed the target (a crash or a failed write between
                // the two). The look-up, when it finds it, also gives its link.
                let recorded = history.iter().rev().find_map(|a| {
                    (a.part == i as i64 && a.outcome == PublishAttemptOutcome::Published)
                        .then_some(a.external_id.as_deref())
                        .flatten()
                });
                let found = match (found, recorded) {
                    (Ok(None) | Err(_), Some(id)) => Ok(Some(PublishedPart {
                        external_id: id.to_owned(),
                        url: String::new(),
                    })),
                    (found, _) => found,
                };
                match found {
                    Ok(Some(found)) => {
                        let id = found.external_id.clone();
                        if !self
                            .part_done(&held, &mut part_ids, &mut url, found, true)
                            .await?
                        {
                            return Ok(Processed::Dropped);
                        }
                        // The call whose answer was lost is on record as what it was; not when
                        // a call is on record as published already (that one landed, and a
                        // later one of unknown outcome is not the one found).
                        if recorded.is_none() {
                            self.app
                                .store()
                                .record_found_attempt(
                                    &post.id,
                                    &account.id,
                                    i as i64,
                                    &id,
                                    self.app.clock().now_ms(),
                                )
                                .await?;
                        }
                        continue;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        // On record, and it uses up the budget (a 429 does not, see
                        // `retry_or_fail`): a network that never answers
                        // look-ups fails the target in the end instead of retrying forever.
                        let outcome = match e {
                            NetworkError::RateLimited { .. } => PublishAttemptOutcome::RateLimited,
                            _ => PublishAttemptOutcome::LookupFailed,
                        };
                        self.app
                            .store()
                            .record_failed_lookup(
                                &post.id,
                                &account.id,
                                i as i64,
                                &idem,
                                (outcome, &e.text()),
                                self.app.clock().now_ms(),
                            )
                            .await?;
                        tries.count(&e, true);
                        return self.retry_or_fail(&held, account, &tries, &e).await;
                    }
                }
            }
            let now = self.app.clock().now_ms();
            // A thread's later parts renew the lease, while it is still ours. So does the first
            // part when what came since the claim (a slow look-up, media read or storage) left
            // less than two call timeouts of it: a call starts only while the job stays ours for
            // longer than the call can take, so no other node claims it and sends the part
            // again while ours may still land.
            if !self.keep_lease(&mut held, lease, now, i > 0).await? {
                return Ok(Processed::Dropped);
            }
            // Conditional on the post, the job, our lease on it and the target as they are now,
            // not as `still_due` read them: a cancel, delete or edit that committed since then
            // wins, and so does another node that claimed the job after our lease ran out;
            // nothing is sent.
            let Some(attempt) = self
                .app
                .store()
                .begin_attempt(&held, i as i64, &idem, now)
                .await?
            else {
                self.app.store().drop_held_job(&held).await?;
                return Ok(Processed::Dropped);
            };
            // `begin_attempt` waits for its batch and the post's lock (seconds, at worst), and
            // checks that the lease is still ours, not that it is still ahead: what is left of
            // it is checked again on the clock as it is now (and the clock watch's hold), or
            // another node could claim the job while the call is under way and send the part
            // again. A call that does not go out leaves its attempt `in_flight`, as a crash
            // before the call would: whoever runs the job next looks the part up first.
            if self.app.store().claims_held() {
                return Ok(Processed::RetryAt(held.locked_until));
            }
            let now = self.app.clock().now_ms();
            if !self.keep_lease(&mut held, lease, now, false).await? {
                return Ok(Processed::Dropped);
            }
            let call = network.publish(session, part);
            let result = match tokio::time::timeout(self.config.call_timeout, call).await {
                Ok(r) => r.and_then(keepable),
                Err(_) => Err(NetworkError::Timeout),
            };
            let now = self.app.clock().now_ms();
            self.metrics
                .call(&account.platform, outcome(result.as_ref().map(|_| ())));
            match result {
                Ok(published) => {
                    let last = i + 1 == parts.len();
                    if last {
                        // Recorded with the target's outcome, in one transaction.
                        closing = Some((attempt, published.external_id.clone()));
                    } else {
                        self.app
                            .store()
                            .finish_attempt(
                                &attempt,
                                PublishAttemptOutcome::Published,
                                Some(&published.external_id),
                                None,
                                now,
                            )
                            .await?;
                    }
                    if !self
                        .part_done(&held, &mut part_ids, &mut url, published, !last)
                        .await?
                    {
                        return Ok(Processed::Dropped);
                    }
                }
                Err(e) => {
                    let outcome = match e {
                        NetworkError::Timeout => PublishAttemptOutcome::Unknown,
                        NetworkError::RateLimited { .. } => PublishAttemptOutcome::RateLimited,
                        _ => PublishAttemptOutcome::Failed,
                    };
                    self.app
                        .store()
                        .finish_attempt(&attempt, outcome, None, Some(&e.text()), now)
                        .await?;
                    tries.count(&e, false);
                    return self.retry_or_fail(&held, account, &tries, &e).await;
                }
            }
        }
        // The calls are done: their budget is free for other jobs while this one is recorded.
        drop(permit);
        let outcome = TargetOutcome::Published {
            external_id: part_ids[0].clone(),
            url: url.unwrap_or_default(),
            part_ids,
        };
        let closing = closing
            .as_ref()
            .map(|(a, ext): &(_, String)| (a, ext.as_str()));
        let now = self.app.clock().now_ms();
        let finished = self
            .app
            .store()
            .finish_target_with(&held, &outcome, closing, now)
            .await;
        if let (Some((attempt, id)), Ok(None) | Err(_)) = (closing, &finished) {
            // The end was not written: the job is another node's now (or gone), or the write
            // failed. The call's success is a fact all the same, and its id is kept on its
            // attempt, so that the next run takes the part from it instead of calling again
            // when the network's look-up cannot find it.
            let part = parts.len() - 1;
            tracing::warn!(job = %held.id, post = %post.id, account = %account.id, part, external_id = %id, "the last part is published but the target's end was not written; its attempt keeps the id");
            if let Err(e) = self
                .app
                .store()
                .finish_attempt(
                    attempt,
                    PublishAttemptOutcome::Published,
                    Some(id),
                    None,
                    now,
                )
                .await
            {
                tracing::error!(job = %held.id, post = %post.id, account = %account.id, part, external_id = %id, error = %e, "could not record a published call; the next run looks the part up");
            }
        }
        Ok(finished?.map_or(Processed::Dropped, |_| Processed::Published))
    }

    /// Renews `held`'s lease to a whole one from `now` when `always`, or when less than two
    /// call timeouts of it are left; false when the job is no longer this worker's (its lease
    /// ran out and another node claimed it). Renewed only while it is still ours, whatever
    /// the clock says: a lease that is over by the clock but not yet claimed by another node
    /// is still this worker's, and renewing it keeps the others from it.
    async fn keep_lease(
        &self,
        held: &mut Job,
        lease: &AtomicI64,
        now: i64,
        always: bool,
    ) -> crier_store::Result<bool> {
        if !always && held.locked_until - now >= 2 * millis(self.config.call_timeout) {
            return Ok(true);
        }
        let until = now + millis(self.config.lease);
        if !self.app.store().renew_lease(held, until).await? {
            return Ok(false);
        }
        held.locked_until = until;
        lease.store(until, Ordering::SeqCst);
        Ok(true)
    }

    /// Why the workspace may not publish one more live post this month, if it may not: the
    /// requests that scheduled its posts checked the quota, but plans change and concurrent
    /// requests each see room for themselves.
    async fn over_quota(&self, ws: &WorkspaceId) -> crier_store::Result<Option<String>> {
        let now = self.app.clock().now_ms();
        let cached = {
            let plans = self.plans.lock().expect("plans lock");
            plans
                .get(ws)
                .filter(|(_, at)| now - at < PLAN_TTL_MS)
                .map(|(plan, _)| plan.clone())
        };
        let plan = match cached {
            Some(plan) => plan,
            None => {
                let Some(workspace) = self.app.store().get_workspace(ws).await? else {
                    return Ok(None);
                };
                let mut plans = self.plans.lock().expect("plans lock");
                if plans.len() >= PLANS_REMEMBERED {
                    plans.clear();
                }
                plans.insert(ws.clone(), (workspace.plan.clone(), now));
                workspace.plan
            }
        };
        // A plan the operator no longer configures has no quota to hold (the API refuses its
        // keys' requests anyway).
        let Some(plan) = self.app.plan(&plan) else {
            return Ok(None);
        };
        crier_app::quota::published_out(self.app.store(), ws, &plan, now).await
    }

    /// Adds a published part to the target's, recorded (`record`) while `held` is still this
    /// worker's job; false when it is not (nothing recorded: the job is another node's now).
    async fn part_done(
        &self,
        held: &Job,
        part_ids: &mut Vec<String>,
        url: &mut Option<String>,
        part: PublishedPart,
        record: bool,
    ) -> crier_store::Result<bool> {
        if part_ids.is_empty() {
            *url = (!part.url.is_empty()).then(|| part.url.clone());
        }
        part_ids.push(part.external_id);
        // The last part is recorded by `finish_target` itself; if we die before that, its
        // attempt is on record and the next run finds the part by lookup.
        if !record {
            return Ok(true);
        }
        self.app
            .store()
            .record_parts(held, part_ids, url.as_deref())
            .await
    }

    /// After a call or look-up failed with `e`: the target is tried again later, or fails
    /// for good when `e` cannot pass with time, or its retry budget is spent. A 429 does not
    /// spend the budget (the network asked for time; it slows only the account, see
    /// `budget.rs`), and waits at least as long as without a `Retry-After`, doubling with each
    /// try up to about an hour: a target the network keeps refusing 429 fails
    /// [`GIVE_UP_AFTER_MS`] after the first try of its round, after about 30 calls.
    async fn retry_or_fail(
        &self,
        job: &Job,
        account: &Account,
        tries: &Tries,
        e: &NetworkError,
    ) -> crier_store::Result<Processed> {
        let now = self.app.clock().now_ms();
        let code = e.code();
        let retry_after = match e {
            NetworkError::Unauthorized { .. } if account.refresh_at.is_some() => {
                // The token may have lapsed early: renew it now and try again after.
                self.app.store().refresh_soon(&account.id, now).await?;
                None
            }
            NetworkError::Unauthorized { .. } => {
                // Nothing can renew it: the user revoked crier's access at the network.
                self.app
                    .store()
                    .expire_account(&account.id, account.credentials.as_deref(), now)
                    .await?;
                return self.fail_target(job, code, &e.text()).await;
            }
            NetworkError::Rejected { .. } | NetworkError::MediaRejected { .. } => {
                return self.fail_target(job, code, &e.text()).await;
            }
            NetworkError::Unavailable { retry_after, .. } => *retry_after,
            NetworkError::RateLimited { retry_after } => *retry_after,
            NetworkError::Timeout => None,
        };
        let error = TargetError {
            code: code.to_owned(),
            message: e.text(),
        };
        let gave_up = match e {
            NetworkError::RateLimited { .. } => {
                (now - tries.began.unwrap_or(now) >= GIVE_UP_AFTER_MS).then(|| {
                    let landed = if tries.looking_up {
                        "; an earlier call may have landed: check the account before you retry it"
                    } else {
                        ""
                    };
                    format!("still rate limited a day after the first try; gave up{landed}")
                })
            }
            _ => (tries.failures >= self.config.max_attempts)
                .then(|| format!("gave up after {} attempts", tries.failures)),
        };
        if let Some(why) = gave_up {
            let message = crier_core::text::clip(
                &format!("{} ({why})", error.message),
                crier_networks::MAX_ERROR_TEXT,
            );
            return self.fail_target(job, code, &message).await;
        }
        // Every try of the round lengthens the wait, 429s included.
        let exp = millis(self.config.backoff)
            .saturating_mul(1 << (tries.failures + tries.throttled - 1).clamp(0, 20))
            .min(millis(self.config.max_backoff));
        // Longer pauses when the network pushes back or goes quiet.
        let pause = match e {
            NetworkError::RateLimited { .. } | NetworkError::Timeout => exp * 2,
            _ => exp,
        };
        let delay = match (retry_after, e) {
            // A network that keeps asking for no time at all is not called more often for it.
            (Some(ra), NetworkError::RateLimited { .. }) => millis(ra).max(jitter(pause, 4)),
            (Some(ra), _) => millis(ra).max(jitter(pause, 4) / 4),
            (None, _) => jitter(pause, 4),
        };
        let run_at = now + delay.max(0);
        if matches!(e, NetworkError::RateLimited { .. }) {
            // The account's other jobs on this node wait too, without calling.
            self.budgets.pause(&account.id, run_at, now);
        }
        self.app.store().retry_job(job, run_at, &error).await?;
        Ok(Processed::RetryAt(run_at))
    }

    /// Refreshes metrics of published targets whose last collection is older than
    /// `metrics_every`; returns how many were refreshed.
    pub async fn collect_metrics(&self) -> crier_store::Result<usize> {
        let now = self.app.clock().now_ms();
        let stale = now - millis(self.config.metrics_every);
        let due = self.app.store().targets_needing_metrics(stale, 500).await?;
        let mut n = 0;
        for (ws, post, account_id, external_id) in due {
            let Some(account) = self.app.store().get_account(&ws, &account_id).await? else {
                continue;
            };
            // A disconnected or expired account has no token to ask with.
            if account.status != AccountStatus::Connected {
                continue;
            }
            let Some(network) = self.app.networks().get(&account.platform) else {
                continue;
            };
            let Ok(credentials) = self.app.tokens().open(&account) else {
                continue;
            };
            let credentials = credentials.unwrap_or_default();
            let session = Session {
                account: &account,
                credentials: &credentials,
            };
            match network.metrics(session, &external_id).await {
                Ok(m) => {
                    self.app
                        .store()
                        .upsert_metrics(&ws, &post, &account_id, &m, now)
                        .await?;
                    n += 1;
                }
                Err(e) => tracing::debug!(error = %e, "metrics not available"),
            }
        }
        Ok(n)
    }

    /// Reads the follower count of connected accounts not read within `metrics_every`, as the
    /// reading of the UTC day; returns how many were read.
    pub async fn collect_followers(&self) -> crier_store::Result<usize> {
        let now = self.app.clock().now_ms();
        let stale = now - millis(self.config.metrics_every);
        let utc_day = |ms: i64| {
            crier_core::clock::from_ms(ms)
                .to_zoned(jiff::tz::TimeZone::UTC)
                .date()
                .to_string()
        };
        let day = utc_day(now);
        let due = self
            .app
            .store()
            .accounts_needing_followers(stale, &utc_day(stale), 200)
            .await?;
        let mut n = 0;
        for (ws, account_id) in due {
            let Some(account) = self.app.store().get_account(&ws, &account_id).await? else {
                continue;
            };
            let Some(network) = self.app.networks().get(&account.platform) else {
                continue;
            };
            let Ok(credentials) = self.app.tokens().open(&account) else {
                continue;
            };
            let credentials = credentials.unwrap_or_default();
            let session = Session {
                account: &account,
                credentials: &credentials,
            };
            let read = tokio::time::timeout(self.config.call_timeout, network.followers(session))
                .await
                .unwrap_or(Err(NetworkError::Timeout));
            let followers = match read {
                Ok(f) => f.map(|f| i64::try_from(f).unwrap_or(i64::MAX)),
                Err(e) => {
                    tracing::debug!(error = %e, "followers not available");
                    None
                }
            };
            // Visited either way, so accounts whose network says nothing never hold up others.
            self.app
                .store()
                .upsert_followers(&ws, &account_id, &day, followers, now)
                .await?;
            n += usize::from(followers.is_some());
        }
        Ok(n)
    }

    /// Runs the metrics collector until `cancel`.
    pub async fn run_metrics(self, cancel: CancellationToken) {
        let every = self.config.metrics_every.min(Duration::from_secs(300));
        loop {
            if let Err(e) = self.collect_metrics().await {
                tracing::warn!(error = %e, "metrics collection failed");
            }
            if let Err(e) = self.collect_followers().await {
                tracing::warn!(error = %e, "follower collection failed");
            }
            // Steps of published targets are kept a week (for a look when something went
            // wrong), then go; a failed target's stay while it may be retried.
            let week_ago = self.app.clock().now_ms() - STEPS_KEPT_MS;
            if let Err(e) = self.app.store().purge_publish_steps(week_ago).await {
                tracing::warn!(error = %e, "could not purge publishing steps");
            }
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(every) => {}
            }
        }
    }
}

/// How long the publishing steps of a finished target are kept.
const STEPS_KEPT_MS: i64 = 7 * 24 * 3600 * 1000;

/// A part's publishing steps, kept in the store (`publish_steps`), so they outlive a crash
/// and are there for whichever node retries the part.
struct StoreSteps<'a> {
    app: &'a App,
    post: &'a crier_core::ids::PostId,
    account: &'a crier_core::ids::AccountId,
    part: i64,
}

#[async_trait::async_trait]
impl crier_networks::Steps for StoreSteps<'_> {
    async fn get(&self, name: &str) -> Result<Option<String>, NetworkError> {
        self.app
            .store()
            .publish_step(self.post, self.account, self.part, name)
            .await
            .map_err(|e| NetworkError::unavailable(format!("publishing steps: {e}")))
    }

    async fn put(&self, name: &str, value: &str) -> Result<(), NetworkError> {
        crier_networks::check_step(name, value)?;
        let kept = self
            .app
            .store()
            .put_publish_step(
                self.post,
                self.account,
                self.part,
                name,
                value,
                crier_networks::MAX_STEPS,
                self.app.clock().now_ms(),
            )
            .await
            .map_err(|e| NetworkError::unavailable(format!("publishing steps: {e}")))?;
        if kept {
            Ok(())
        } else {
            Err(NetworkError::rejected(
                "too many publishing steps for one part",
            ))
        }
    }
}

/// A claimed job, its hold on its account's room on this node (if its claim took one), and
/// the claim it came in.
struct Claim {
    job: Job,
    hold: Option<Hold>,
    batch: Arc<ClaimBatch>,
}

/// The jobs of one claim and what they publish, read for them all by the first of them to
/// start (three queries: their posts with targets, accounts and attempts), rather than three
/// or four round trips for each job, and not in the claim loop, which goes on claiming
/// meanwhile. Reading them a moment before each job starts changes nothing: `begin_attempt`
/// checks the post, job, lease and target again under the post's lock, and only the job's
/// holder records attempts for its target.
struct ClaimBatch {
    /// The claimed jobs' targets (post, account).
    targets: Vec<(PostId, AccountId)>,
    read: tokio::sync::OnceCell<ClaimRead>,
}

struct ClaimRead {
    posts: HashMap<PostId, Post>,
    accounts: HashMap<AccountId, Account>,
    histories: HashMap<(PostId, AccountId), Vec<Attempt>>,
}

impl ClaimBatch {
    /// What the claim's jobs publish, read once (a read that failed is tried again by the
    /// next job to start; a job that sees it fail comes back after its lease).
    async fn read(&self, store: &crier_store::Store) -> crier_store::Result<&ClaimRead> {
        self.read
            .get_or_try_init(|| async {
                let posts: Vec<PostId> = self.targets.iter().map(|(p, _)| p.clone()).collect();
                let accounts: Vec<AccountId> =
                    self.targets.iter().map(|(_, a)| a.clone()).collect();
                Ok(ClaimRead {
                    posts: store.get_posts(&posts).await?,
                    accounts: store.get_accounts(&accounts).await?,
                    histories: store.attempts_of(&self.targets).await?,
                })
            })
            .await
    }
}

impl ClaimRead {
    /// `job`'s post and account (each only if in the job's workspace) and its target's
    /// attempts, oldest first.
    fn of(&self, job: &Job) -> (Option<Post>, Option<Account>, Vec<Attempt>) {
        let ws = &job.workspace_id;
        let post = job
            .post_id
            .as_ref()
            .and_then(|p| self.posts.get(p))
            .filter(|p| &p.workspace_id == ws)
            .cloned();
        let account = job
            .account_id
            .as_ref()
            .and_then(|a| self.accounts.get(a))
            .filter(|a| &a.workspace_id == ws)
            .cloned();
        let history = match (&job.post_id, &job.account_id) {
            (Some(p), Some(a)) => self
                .histories
                .get(&(p.clone(), a.clone()))
                .cloned()
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        (post, account, history)
    }
}

/// The job's post and target, if the target still waits to be published (`None`: the post or
/// target is gone, done, or the post was cancelled, and the job is dropped).
fn still_due(job: &Job, post: Option<Post>) -> Option<(Post, Target)> {
    let (post, account_id) = (post?, job.account_id.as_ref()?);
    // A scheduled post turns `publishing` with its first recorded attempt.
    if !matches!(post.status, PostStatus::Scheduled | PostStatus::Publishing) {
        return None;
    }
    let target = post
        .targets
        .iter()
        .find(|t| &t.account_id == account_id)
        .filter(|t| !matches!(t.status, TargetStatus::Published | TargetStatus::Failed))
        .cloned()?;
    Some((post, target))
}

/// Where a target's attempts of this round start: after the marker of the author's last
/// retry (a retry starts a new round, with its own retry budget).
fn round_start(history: &[Attempt]) -> usize {
    history
        .iter()
        .rposition(|a| a.outcome == PublishAttemptOutcome::Retry)
        .map_or(0, |i| i + 1)
}

/// When the author last retried the target (epoch ms; 0: never), given its [`round_start`].
fn retried_at(history: &[Attempt], round: usize) -> i64 {
    round.checked_sub(1).map_or(0, |i| history[i].started_at)
}

/// A target's tries in this round (since the author's last retry), which decide when it is
/// tried again and when it fails.
struct Tries {
    /// Calls and look-ups that failed: what the retry budget (`max_attempts`) counts. A
    /// thread's published parts do not use it up, nor do 429s.
    failures: i64,
    /// Calls and look-ups the network answered 429.
    throttled: i64,
    /// When the round's first try was made (epoch ms; `None`: this is its first).
    began: Option<i64>,
    /// The try that failed was a look-up: an earlier call may have landed.
    looking_up: bool,
}

impl Tries {
    fn of(history: &[Attempt], round: usize) -> Self {
        let (mut failures, mut throttled) = (0, 0);
        for a in &history[round..] {
            match a.outcome {
                PublishAttemptOutcome::Published => {}
                PublishAttemptOutcome::RateLimited => throttled += 1,
                _ => failures += 1,
            }
        }
        Self {
            failures,
            throttled,
            began: history[round..].first().map(|a| a.started_at),
            looking_up: false,
        }
    }

    /// Counts a try (a look-up when `looking_up`) that failed with `e`.
    fn count(&mut self, e: &NetworkError, looking_up: bool) {
        self.looking_up = looking_up;
        match e {
            NetworkError::RateLimited { .. } => self.throttled += 1,
            _ => self.failures += 1,
        }
    }
}

/// Whether a target's attempts show no call to the network (at most the markers of a
/// client's retries, recorded with a negative part).
fn no_call_made(history: &[Attempt]) -> bool {
    history.iter().all(|a| a.part < 0)
}

/// How long after its post fell due a target whose first call cannot start (see
/// [`Publisher::gives_up`]) keeps coming back before it fails: a post a day late is news to
/// its author, not a post to send unannounced.
pub const GIVE_UP_AFTER_MS: i64 = 24 * 60 * 60 * 1000;

/// The longest post id and URL crier keeps from a network.
const MAX_PART_ID: usize = 1000;
const MAX_PART_URL: usize = 4096;

/// A part as the network answered it, if crier can keep it. An id with control characters
/// (PostgreSQL cannot store a NUL; a retry would meet it again for ever), or longer than any
/// network's, is the network's fault: the target fails with it, and is not sent again. A URL
/// is a link shown in the dashboard and handed to API clients and webhooks: one that is not an
/// absolute `http(s)` URL crier can keep (`javascript:…`, control characters, too long) is left
/// out, and the post counts as published without a link.
fn keepable(mut part: PublishedPart) -> Result<PublishedPart, NetworkError> {
    use crier_core::text::is_storable;
    if !is_storable(&part.external_id, MAX_PART_ID) {
        return Err(NetworkError::rejected(
            "the network answered with a post id crier cannot keep (control characters or too \
             long); the post may be on the network",
        ));
    }
    if !is_link(&part.url) {
        part.url.clear();
    }
    Ok(part)
}

/// Whether `url` is a link crier shows: absolute `http` or `https`, within [`MAX_PART_URL`]
/// bytes, no control characters (which the URL parser would otherwise quietly drop).
fn is_link(url: &str) -> bool {
    crier_core::text::is_storable(url, MAX_PART_URL)
        && url::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
}

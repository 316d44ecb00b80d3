//! Polling: claiming due feeds (the claim is the lease), the poll loop, and turning a read's
//! unseen entries into feed items and their posts, recorded in one transaction.

use std::sync::Arc;

use crier_core::Clock;
use crier_core::clock::from_ms;
use crier_core::posts::PostStatus;
use crier_core::text::{clip, render_fitting, truncate};
use crier_networks::Networks;
use crier_store::{Account, Feed, FeedMode, FeedPollSuccess, NewFeedItem, Post, QueuePlan, Store};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::fetch::{Fetched, Fetcher};
use super::parse::{Entry, parse_entries};
use super::{FeedConfig, MAX_POSTS_PER_POLL, PollReport, Polled};
use crate::runner::millis;

const MAX_TITLE: usize = 300;
const MAX_SUMMARY: usize = 500;
const MAX_ERROR: usize = 500;

#[derive(Clone)]
pub struct FeedPoller {
    store: Store,
    networks: Networks,
    clock: Arc<dyn Clock>,
    config: FeedConfig,
    fetcher: Fetcher,
    /// Wakes this node's publisher when a feed made posts to publish now.
    publish_wake: Arc<Notify>,
}

impl FeedPoller {
    pub fn new(
        store: Store,
        networks: Networks,
        clock: Arc<dyn Clock>,
        config: FeedConfig,
        publish_wake: Arc<Notify>,
    ) -> Self {
        let fetcher = Fetcher::new(&config);
        Self {
            store,
            networks,
            clock,
            config,
            fetcher,
            publish_wake,
        }
    }

    /// Runs until `cancel`: claims due feeds and polls them, `concurrency` at a time. On cancel
    /// it stops claiming and lets polls in hand finish.
    pub async fn run(self, cancel: CancellationToken) {
        let claimer = self.clone();
        let worker = self.clone();
        crate::runner::run(
            self.config.concurrency.max(1),
            self.config.poll,
            None,
            cancel,
            move |free| {
                let me = claimer.clone();
                async move {
                    let now = me.clock.now_ms();
                    match me
                        .store
                        .claim_feeds(now, millis(me.config.lease), free)
                        .await
                    {
                        Ok(feeds) => feeds,
                        Err(e) => {
                            tracing::warn!(error = %e, "could not claim feeds");
                            Vec::new()
                        }
                    }
                }
            },
            move |feed| {
                let me = worker.clone();
                async move {
                    me.poll_feed(feed).await;
                }
            },
        )
        .await
    }

    /// Claims and polls every feed due now, one after another (each claimed just before its
    /// poll, so none waits out its lease in a queue). For tests and tools that drive the poller
    /// deterministically with an injected clock.
    pub async fn poll_due(&self) -> Vec<PollReport> {
        let mut out = Vec::new();
        loop {
            let now = self.clock.now_ms();
            let feeds = match self
                .store
                .claim_feeds(now, millis(self.config.lease), 1)
                .await
            {
                Ok(f) => f,
                Err(e) => {
                    tracing::warn!(error = %e, "could not claim feeds");
                    break;
                }
            };
            if feeds.is_empty() {
                break;
            }
            for feed in feeds {
                out.push(self.poll_feed(feed).await);
            }
        }
        out
    }

    /// Polls one claimed feed and records the outcome; never panics on a server's or
    /// storage's failure.
    pub async fn poll_feed(&self, feed: Feed) -> PollReport {
        let polled = match self.try_poll(&feed).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(feed = %feed.id, error = %e, "feed poll failed on storage; it will come back");
                Polled::Deferred(e.to_string())
            }
        };
        PollReport {
            feed_id: feed.id,
            polled,
        }
    }

    async fn try_poll(&self, feed: &Feed) -> crier_store::Result<Polled> {
        let now = self.clock.now_ms();
        let accounts = self.accounts(feed).await?;
        if accounts.is_empty() {
            return self
                .fail(
                    feed,
                    "None of the feed's accounts is connected.".into(),
                    now,
                )
                .await;
        }
        // One deadline for the whole fetch (redirects and body included), well inside the lease.
        let fetched =
            match tokio::time::timeout(self.config.fetch_timeout, self.fetcher.fetch(feed)).await {
                Ok(Ok(f)) => f,
                Ok(Err(e)) => return self.fail(feed, e, now).await,
                Err(_) => {
                    let secs = self.config.fetch_timeout.as_secs_f64();
                    let error = format!("The feed did not answer in full within {secs} s.");
                    return self.fail(feed, error, now).await;
                }
            };
        let (validators, entries) = match fetched {
            Fetched::NotModified => (None, Vec::new()),
            Fetched::Document {
                body,
                etag,
                last_modified,
            } => {
                let base = feed.url.clone();
                // Parsing several MiB of XML is CPU work: keep it off the async threads.
                match tokio::task::spawn_blocking(move || parse_entries(&body, &base)).await {
                    Ok(Ok(entries)) => (Some((etag, last_modified)), entries),
                    Ok(Err(e)) => return self.fail(feed, e, now).await,
                    Err(e) => {
                        return self
                            .fail(feed, format!("The feed could not be parsed: {e}."), now)
                            .await;
                    }
                }
            }
        };
        let read = validators.is_some();
        let items = if read {
            self.new_items(feed, &accounts, entries, now).await?
        } else {
            Vec::new()
        };
        let skipped = items.iter().filter(|i| i.post.is_none()).count();
        let publish_now = items.iter().any(|i| {
            i.post
                .as_ref()
                .is_some_and(|p| p.status == PostStatus::Publishing)
        });
        let success = FeedPollSuccess {
            now,
            next_poll_at: now + feed.poll_interval_seconds.max(1) * 1000,
            validators,
            items,
        };
        let Some(posts) = self
            .store
            .record_feed_success(feed, &feed.url, &success)
            .await?
        else {
            return Ok(Polled::Superseded);
        };
        if publish_now && !posts.is_empty() {
            self.publish_wake.notify_waiters();
        }
        if !posts.is_empty() {
            tracing::info!(feed = %feed.id, posts = posts.len(), "feed made posts");
        }
        Ok(if read {
            Polled::Read { posts, skipped }
        } else {
            Polled::NotModified
        })
    }

    /// Records a failed poll and when to try again.
    async fn fail(&self, feed: &Feed, error: String, now: i64) -> crier_store::Result<Polled> {
        let failures = feed.consecutive_failures + 1;
        let retry_at = now + self.backoff_ms(feed.poll_interval_seconds, failures);
        let error = clip(&error, MAX_ERROR);
        if !self
            .store
            .record_feed_failure(feed, &feed.url, &error, failures, now, retry_at)
            .await?
        {
            return Ok(Polled::Superseded);
        }
        tracing::info!(feed = %feed.id, failures, error = %error, "feed poll failed");
        Ok(Polled::Failed { error, retry_at })
    }

    /// The pause after `failures` failures in a row: the interval doubled per failure, at most
    /// `max_backoff` (or the interval, if that is longer).
    pub fn backoff_ms(&self, interval_seconds: i64, failures: i64) -> i64 {
        let interval = interval_seconds.max(1) * 1000;
        let cap = millis(self.config.max_backoff).max(interval);
        interval
            .saturating_mul(1i64 << failures.clamp(0, 30))
            .min(cap)
    }

    /// The feed's accounts that can still take posts: connected, and of the feed's mode.
    async fn accounts(&self, feed: &Feed) -> crier_store::Result<Vec<Account>> {
        let mut out = Vec::with_capacity(feed.account_ids.len());
        for id in &feed.account_ids {
            if let Some(a) = self.store.get_account(&feed.workspace_id, id).await?
                && a.status == "connected"
                && a.livemode == feed.livemode
            {
                out.push(a);
            }
        }
        Ok(out)
    }
    /// The entries of this read not seen before, oldest first, each with its post if it gets
    /// one.
    async fn new_items(
        &self,
        feed: &Feed,
        accounts: &[Account],
        entries: Vec<Entry>,
        now: i64,
    ) -> crier_store::Result<Vec<NewFeedItem>> {
        let keys: Vec<String> = entries.iter().map(|e| e.key.clone()).collect();
        let links: Vec<String> = entries.iter().filter_map(|e| e.link.clone()).collect();
        let (seen_ids, seen_links) = self
            .store
            .seen_feed_entries(&feed.workspace_id, &feed.id, &keys, &links)
            .await?;
        // Newest first, as `parse_entries` orders them.
        let unseen: Vec<Entry> = entries
            .into_iter()
            .filter(|e| {
                !seen_ids.contains(&e.key)
                    && !e.link.as_ref().is_some_and(|l| seen_links.contains(l))
            })
            .collect();
        let first_read = feed.seeded_at.is_none();
        let older = |e: &Entry| e.date.is_some_and(|d| d < feed.baseline_at);
        let mut wanted = 0;
        let decisions: Vec<bool> = unseen
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let post = if first_read {
                    (i as i64) < feed.backfill || (e.date.is_some() && !older(e))
                } else {
                    !older(e)
                };
                let post = post && wanted < MAX_POSTS_PER_POLL;
                wanted += post as usize;
                post
            })
            .collect();

        let mut plan = Plan::default();
        if wanted > 0 && feed.mode != FeedMode::Draft {
            let ws = self.store.get_workspace(&feed.workspace_id).await?;
            plan.approval = ws.as_ref().is_some_and(|w| w.require_approval);
            if feed.mode == FeedMode::Queue
                && let Some(ws) = &ws
            {
                plan.queue = self.store.queue_plan(ws, feed.livemode, now).await?;
            }
        }

        let mut items = Vec::with_capacity(unseen.len());
        // Oldest first: queue slots and post ids follow the feed's order.
        for (entry, post_it) in unseen.into_iter().zip(decisions).rev() {
            let post = if post_it {
                self.build_post(feed, accounts, &entry, now, &mut plan)
            } else {
                None
            };
            let title = clip(&entry.title, MAX_TITLE);
            items.push(NewFeedItem {
                entry_id: entry.key,
                link: entry.link,
                title: (!title.is_empty()).then_some(title),
                published_at: entry.date,
                post,
            });
        }
        Ok(items)
    }

    fn build_post(
        &self,
        feed: &Feed,
        accounts: &[Account],
        entry: &Entry,
        now: i64,
        plan: &mut Plan,
    ) -> Option<Post> {
        let fits = |text: &str| {
            let parts = [text.to_owned()];
            accounts.iter().all(|a| {
                self.networks
                    .get(&a.platform)
                    .is_none_or(|n| n.rules().check(&parts, 0).is_ok())
            })
        };
        let (body, fit) = render_fitting(
            &feed.template,
            &truncate(&entry.title, MAX_TITLE),
            entry.link.as_deref().unwrap_or(""),
            &truncate(&entry.summary, MAX_SUMMARY),
            fits,
        );
        if body.is_empty() {
            return None;
        }
        let waiting = if plan.approval {
            PostStatus::PendingApproval
        } else {
            PostStatus::Scheduled
        };
        let (status, scheduled_at) = match feed.mode {
            _ if !fit => {
                tracing::warn!(feed = %feed.id, entry = %entry.key, "the entry's text does not fit its networks; saved as a draft");
                (PostStatus::Draft, None)
            }
            FeedMode::Draft => (PostStatus::Draft, None),
            FeedMode::Publish if plan.approval => (PostStatus::PendingApproval, None),
            FeedMode::Publish => (PostStatus::Publishing, None),
            FeedMode::Queue => {
                match plan.queue.next_free(from_ms(now)) {
                    Some(at) => {
                        // Taken by this poll's later entries' reckoning too.
                        plan.queue.taken.push(at.as_millisecond());
                        (waiting, Some(at.as_millisecond()))
                    }
                    None => {
                        tracing::warn!(feed = %feed.id, "no free queue slot; the entry is saved as a draft");
                        (PostStatus::Draft, None)
                    }
                }
            }
        };
        Some(Post {
            status,
            scheduled_at,
            ..Post::draft(&feed.workspace_id, feed.livemode, accounts, body, now)
        })
    }
}

/// What scheduling the posts of one poll needs from the workspace.
struct Plan {
    approval: bool,
    /// Its queue, with the slots this poll's earlier posts took.
    queue: QueuePlan,
}

impl Default for Plan {
    fn default() -> Self {
        Self {
            approval: false,
            queue: QueuePlan {
                tz: jiff::tz::TimeZone::UTC,
                slots: Vec::new(),
                taken: Vec::new(),
            },
        }
    }
}

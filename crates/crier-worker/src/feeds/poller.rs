//! Polling: claiming due feeds (the claim is the lease), the poll loop, and turning a read's
//! unseen entries into feed items and their posts, recorded in one transaction.

use std::sync::Arc;

use crier_app::feeds::EntryPost;
use crier_app::{App, AppResult};
use crier_core::Clock;
use crier_core::posts::PostStatus;
use crier_core::text::{clip, clip_line, render_fitting, truncate};
use crier_store::{Account, Feed, FeedPollSuccess, NewFeedItem, Post, Store};
use tokio_util::sync::CancellationToken;

use super::fetch::{Fetched, Fetcher};
use super::parse::{Entry, parse_entries};
use super::{FeedConfig, MAX_POSTS_PER_POLL, PollReport, Polled};
use crate::runner::millis;

const MAX_TITLE: usize = 300;
const MAX_SUMMARY: usize = 500;
const MAX_ERROR: usize = 500;

/// Feeds of one workspace this node polls at once: its hundred feeds on a slow server take at
/// most this many of the node's slots.
pub const POLLS_PER_WORKSPACE: usize = 2;

#[derive(Clone)]
pub struct FeedPoller {
    /// Storage, networks, clock, plans and the publisher's wake signal, as the binary composed
    /// them; the rules of a feed's posts (`App::feeds`).
    app: App,
    store: Store,
    clock: Arc<dyn Clock>,
    config: FeedConfig,
    fetcher: Fetcher,
}

impl FeedPoller {
    pub fn new(app: App, config: FeedConfig) -> Self {
        Self {
            store: app.store().clone(),
            clock: app.clock_arc(),
            fetcher: Fetcher::new(&config),
            app,
            config,
        }
    }

    /// Runs until `cancel`: claims due feeds and polls them, `concurrency` at a time. On cancel
    /// it stops claiming and lets polls in hand finish.
    pub async fn run(self, cancel: CancellationToken) {
        let claimer = self.clone();
        let worker = self.clone();
        // The feeds this node is polling, by workspace.
        let polling = crier_core::tally::Tally::<String>::default();
        crate::runner::run(
            self.config.concurrency.max(1),
            self.config.poll,
            None,
            cancel,
            move |free| {
                let me = claimer.clone();
                let polling = polling.clone();
                async move {
                    let now = me.clock.now_ms();
                    // Workspaces polling their share already take no more this claim.
                    let busy = polling.at_least(POLLS_PER_WORKSPACE);
                    let feeds = match me
                        .store
                        .claim_feeds(now, millis(me.config.lease), free, &busy)
                        .await
                    {
                        Ok(feeds) => feeds,
                        Err(e) => {
                            tracing::warn!(error = %e, "could not claim feeds");
                            Vec::new()
                        }
                    };
                    // Every claimed feed is polled and counted: the claim itself kept each
                    // workspace under its share (one feed of a workspace, none of a busy one).
                    feeds
                        .into_iter()
                        .filter_map(|feed| {
                            let workspace = feed.workspace_id.as_str().to_owned();
                            let turn = polling.take(workspace, usize::MAX)?;
                            Some((feed, turn))
                        })
                        .collect::<Vec<_>>()
                }
            },
            move |(feed, turn)| {
                let me = worker.clone();
                async move {
                    me.poll_feed(feed).await;
                    drop(turn);
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
                .claim_feeds(now, millis(self.config.lease), 1, &[])
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
                tracing::warn!(feed = %feed.id, error = %e.message, "feed poll failed on storage; it will come back");
                Polled::Deferred(e.message.into_owned())
            }
        };
        PollReport {
            feed_id: feed.id,
            polled,
        }
    }

    async fn try_poll(&self, feed: &Feed) -> AppResult<Polled> {
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
            self.app.publish_wake().notify_waiters();
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
    async fn fail(&self, feed: &Feed, error: String, now: i64) -> AppResult<Polled> {
        let failures = feed.consecutive_failures + 1;
        let retry_at = now + self.backoff_ms(feed.poll_interval_seconds, failures);
        // A parse error may quote the document (a NUL would make it unstorable).
        let error = clip_line(&error, MAX_ERROR);
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
                && a.status == crier_core::accounts::AccountStatus::Connected
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
    ) -> AppResult<Vec<NewFeedItem>> {
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

        // Oldest first: queue slots and post ids follow the feed's order.
        let unseen: Vec<(Entry, Option<EntryPost>)> = unseen
            .into_iter()
            .zip(decisions)
            .rev()
            .map(|(entry, post_it)| {
                let draft = post_it
                    .then(|| self.draft(feed, accounts, &entry, now))
                    .flatten();
                (entry, draft)
            })
            .collect();
        let drafts: Vec<EntryPost> = unseen.iter().filter_map(|(_, d)| d.clone()).collect();
        // What each post becomes (draft, queued, publishing, waiting for approval) is the
        // application layer's decision, quota included; it answers in the order asked.
        let mut posts = self.app.feeds().place(feed, drafts, now).await?.into_iter();

        let mut items = Vec::with_capacity(unseen.len());
        for (entry, draft) in unseen {
            let post = draft.and_then(|_| posts.next());
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

    /// The entry's post as a draft of the feed's workspace and mode, and whether its text fits
    /// every account's network; `None` when the text renders empty.
    fn draft(
        &self,
        feed: &Feed,
        accounts: &[Account],
        entry: &Entry,
        now: i64,
    ) -> Option<EntryPost> {
        let fits = |text: &str| {
            let parts = [text.to_owned()];
            accounts.iter().all(|a| {
                self.app
                    .networks()
                    .get(&a.platform)
                    .is_none_or(|n| n.rules().check(&parts, &[]).is_empty())
            })
        };
        let (body, fits) = render_fitting(
            &feed.template,
            &truncate(&entry.title, MAX_TITLE),
            entry.link.as_deref().unwrap_or(""),
            &truncate(&entry.summary, MAX_SUMMARY),
            fits,
        );
        (!body.is_empty()).then(|| EntryPost {
            post: Post::draft(&feed.workspace_id, feed.livemode, accounts, body, now),
            fits,
        })
    }
}

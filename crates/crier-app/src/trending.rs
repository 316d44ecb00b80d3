//! Trending topics, for every caller (`GET /v1/trending`, the AI engines' ideas and hashtags):
//! what the networks a workspace is on publish as trending, merged with the workspace's own
//! rising hashtags; and the refresh of the networks' lists, which a worker runs.
//!
//! Networks: a connector that publishes trends ([`crier_networks::Network::trend_scope`]) is
//! read per source (a Mastodon instance's list serves every account there; a Bluesky list is
//! its account's own) and cached by the store. [`Trending::refresh_due`] fetches the sources
//! that are due, at most [`RefreshConfig::max_sources`] a run, [`FETCH_CONCURRENCY`] at a time,
//! each with the session of one live connected account that uses it and within the call
//! timeout; a source that fails keeps its previous topics and its error is logged and kept,
//! and the run goes on. Sources no live account claimed for [`RefreshConfig::keep_unused`] are
//! purged.
//!
//! The workspace's own rising topics ([`rising`]): the hashtags of its newest
//! [`MAX_POSTS`] posts of the last [`RECENT_DAYS`] + [`EARLIER_DAYS`] days, each counted once
//! per post, the recent window (the last 7 days) against the earlier one (the 28 days before).
//! With `r`/`e` a tag's posts in each window, `R`/`E` the windows' tag counts and `V` the tags
//! seen in either, the smoothed shares are `(r+1)/(R+V)` and `(e+1)/(E+V)` (add-one smoothing
//! over the tags seen, so a new workspace without an earlier window still has a baseline), and
//! the tag's lift is their ratio. Tags used in the recent window with a lift above 1 are
//! rising; the score is the lift. Source `workspace`.
//!
//! Merging: scores are comparable within one list only, so each list's are normalised to 0–1
//! by its own best (`score / max`; a list whose best is 0 scores 0 throughout), rounded to 4
//! decimals. The same topic from several lists (compared case-insensitively, without `#` and
//! whitespace: `#SuperBowl` is `Super Bowl`) is listed once, with its best score and that
//! list's source. The result is sorted by score, then topic, then source.
//!
//! Modes: a live caller gets the networks' lists of its live connected accounts and the rising
//! topics of its live posts; a test-mode caller reaches no real network (test mode connects
//! only sandbox accounts), so it gets the rising topics of its test-mode posts only.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use crier_ai::Trend;
use crier_networks::{MAX_TRENDS, Network, NetworkError, Session, TrendingTopic, trend_topic};
use crier_store::{DueTrendSource, PostText, TrendTopic};
use futures::StreamExt;

use crate::{App, AppResult, Caller};

/// The source of the workspace's own rising topics.
pub const WORKSPACE: &str = "workspace";
/// The days of the recent window.
pub const RECENT_DAYS: i64 = 7;
/// The days of the earlier window, just before the recent one.
pub const EARLIER_DAYS: i64 = 28;
/// The most posts read for the workspace's rising topics (the newest).
pub const MAX_POSTS: u32 = 500;
/// The most rising topics of the workspace listed.
pub const MAX_WORKSPACE_TOPICS: usize = 20;
/// The most sources of one network read for one workspace.
pub const MAX_SOURCES_READ: u32 = 100;
/// Sources fetched at once by one run.
pub const FETCH_CONCURRENCY: usize = 8;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// How the networks' lists are refreshed.
#[derive(Debug, Clone)]
pub struct RefreshConfig {
    /// How long a fetched list (or a failure) stands before the source is due again.
    pub every: Duration,
    /// The longest one network call may take.
    pub call_timeout: Duration,
    /// The most sources fetched in one run (the longest waiting first).
    pub max_sources: usize,
    /// Sources no live connected account needed for this long are purged.
    pub keep_unused: Duration,
}

impl Default for RefreshConfig {
    fn default() -> Self {
        Self {
            every: Duration::from_secs(30 * 60),
            call_timeout: Duration::from_secs(15),
            max_sources: 100,
            keep_unused: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// What one refresh run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Refreshed {
    /// Sources whose topics were replaced.
    pub fetched: usize,
    /// Sources whose fetch failed (their topics were kept).
    pub failed: usize,
    /// Sources purged as unused.
    pub purged: u64,
}

/// A page of the merged topics.
#[derive(Debug, Clone, PartialEq)]
pub struct TrendPage {
    pub items: Vec<Trend>,
    pub has_more: bool,
}

/// What became of one due source.
enum Outcome {
    Stored,
    /// The network failed; the source's topics were kept.
    Failed,
    /// Another node claimed it first.
    Taken,
}

/// The trending rules over one [`App`].
pub struct Trending<'a> {
    pub(crate) app: &'a App,
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Trending<'_> {
    /// The caller's trending topics, hottest first, at most `limit` (see the module docs).
    pub async fn topics(&self, c: &Caller, limit: usize) -> AppResult<Vec<Trend>> {
        Ok(self.page(c, limit, 0).await?.items)
    }

    /// `limit` of the caller's trending topics after the first `offset`, and whether more
    /// follow.
    pub async fn page(&self, c: &Caller, limit: usize, offset: usize) -> AppResult<TrendPage> {
        let mut lists: Vec<(&'static str, Vec<f64>, Vec<String>)> = Vec::new();
        if c.livemode() {
            let networks = self.app.networks();
            for platform in networks.platforms() {
                let Some(scope) = networks.get(platform).and_then(|n| n.trend_scope()) else {
                    continue;
                };
                let cached = self
                    .app
                    .store()
                    .workspace_trends(c.workspace(), platform, scope, MAX_SOURCES_READ)
                    .await?;
                // One list per source (rows come grouped by source, in position order).
                let mut by_source: Vec<(String, Vec<f64>, Vec<String>)> = Vec::new();
                for t in cached {
                    match by_source.last_mut() {
                        Some((s, scores, topics)) if *s == t.source => {
                            scores.push(t.score);
                            topics.push(t.topic);
                        }
                        _ => by_source.push((t.source, vec![t.score], vec![t.topic])),
                    }
                }
                lists.extend(by_source.into_iter().map(|(_, s, t)| (platform, s, t)));
            }
        }
        // The workspace's own rising tags come from all its posts: a key limited to some
        // brands or accounts does not see them (the networks' public lists it does).
        if !c.restriction.is_limited() {
            let now = self.app.clock().now_ms();
            let since = now - (RECENT_DAYS + EARLIER_DAYS) * DAY_MS;
            let posts = self
                .app
                .store()
                .recent_post_texts(&c.tenant, since, MAX_POSTS)
                .await?;
            let (topics, scores): (Vec<String>, Vec<f64>) = rising(&posts, now).into_iter().unzip();
            lists.push((WORKSPACE, scores, topics));
        }
        let merged = merge(&lists);
        let items: Vec<Trend> = merged.iter().skip(offset).take(limit).cloned().collect();
        let has_more = merged.len() > offset.saturating_add(items.len());
        Ok(TrendPage { items, has_more })
    }

    /// Fetches the sources that are due and stores what each network answers; purges unused
    /// sources. A source that fails keeps its topics (logged, its error kept); a storage error
    /// ends the run with that error once the fetches in hand are done.
    pub async fn refresh_due(&self, config: &RefreshConfig) -> AppResult<Refreshed> {
        let store = self.app.store();
        let now = self.app.clock().now_ms();
        // Each network's longest waiting, then across networks the longest waiting of all, so
        // that one network with many sources does not starve another.
        let mut due: Vec<(Arc<dyn Network>, &'static str, DueTrendSource)> = Vec::new();
        let networks = self.app.networks();
        let limit = config.max_sources.min(u32::MAX as usize) as u32;
        for platform in networks.platforms() {
            let Some(network) = networks.get(platform) else {
                continue;
            };
            let Some(scope) = network.trend_scope() else {
                continue;
            };
            let found = store.due_trend_sources(platform, scope, now, limit).await?;
            due.extend(found.into_iter().map(|d| (network.clone(), platform, d)));
        }
        due.sort_by(|a, b| {
            (a.2.due_since.unwrap_or(0), &a.2.source)
                .cmp(&(b.2.due_since.unwrap_or(0), &b.2.source))
        });
        due.truncate(config.max_sources);
        // At most FETCH_CONCURRENCY fetches in flight (no closure in the stream's type: the
        // futures are made here, which keeps the whole future `Send` for any lifetime).
        let mut pending = due.into_iter();
        let mut running = futures::stream::FuturesUnordered::new();
        let mut outcomes: Vec<AppResult<Outcome>> = Vec::new();
        loop {
            while running.len() < FETCH_CONCURRENCY {
                let Some((network, platform, d)) = pending.next() else {
                    break;
                };
                running.push(self.refresh_one(network, platform, d, config));
            }
            match running.next().await {
                Some(outcome) => outcomes.push(outcome),
                None => break,
            }
        }
        let mut done = Refreshed::default();
        let mut first_error = None;
        for o in outcomes {
            match o {
                Ok(Outcome::Stored) => done.fetched += 1,
                Ok(Outcome::Failed) => done.failed += 1,
                Ok(Outcome::Taken) => {}
                Err(e) => {
                    done.failed += 1;
                    first_error.get_or_insert(e);
                }
            }
        }
        done.purged = store
            .purge_trend_sources(now.saturating_sub(millis(config.keep_unused)))
            .await?;
        match first_error {
            Some(e) => Err(e),
            None => Ok(done),
        }
    }

    /// Claims and fetches one source; `Err`: storage failed.
    async fn refresh_one(
        &self,
        network: Arc<dyn Network>,
        platform: &'static str,
        d: DueTrendSource,
        config: &RefreshConfig,
    ) -> AppResult<Outcome> {
        let store = self.app.store();
        let now = self.app.clock().now_ms();
        // The lease outlives the call (and the session's opening) with room to spare; a node
        // that dies mid-fetch leaves the source to another after it.
        let lease = millis(config.call_timeout)
            .saturating_mul(2)
            .saturating_add(10_000);
        if !store
            .claim_trend_source(&d.source, platform, now, now.saturating_add(lease))
            .await?
        {
            return Ok(Outcome::Taken);
        }
        let read = self.fetch(network.as_ref(), &d, config.call_timeout).await;
        let at = self.app.clock().now_ms();
        let next = at.saturating_add(millis(config.every));
        match read {
            Ok(topics) => {
                // A source purged meanwhile takes nothing; it is needed again next run.
                store.store_trends(&d.source, &topics, at, next).await?;
                Ok(Outcome::Stored)
            }
            Err(message) => {
                tracing::warn!(source = %d.source, error = %message, "trending topics not refreshed; the previous ones stay");
                store
                    .trend_fetch_failed(&d.source, &message, at, next)
                    .await?;
                Ok(Outcome::Failed)
            }
        }
    }

    /// The source's topics, read with the session of its account, fit to store.
    async fn fetch(
        &self,
        network: &dyn Network,
        d: &DueTrendSource,
        timeout: Duration,
    ) -> Result<Vec<TrendTopic>, String> {
        let account = self
            .app
            .store()
            .get_account(&d.workspace_id, &d.account_id)
            .await
            .map_err(|e| format!("the account {} could not be read: {e}", d.account_id))?
            .ok_or_else(|| format!("the account {} is gone", d.account_id))?;
        let credentials = self
            .app
            .tokens()
            .open(&account)
            .map_err(|e| e.message.into_owned())?
            .unwrap_or_default();
        let session = Session {
            account: &account,
            credentials: &credentials,
        };
        let read = tokio::time::timeout(timeout, network.trending(session))
            .await
            .unwrap_or(Err(NetworkError::Timeout))
            .map_err(|e| format!("{}: {}", e.code(), e.text()))?;
        Ok(fit(read))
    }
}

/// What a connector answered, held to the cache's bounds whatever it sent: usable topics with
/// finite scores, no repeats, at most [`MAX_TRENDS`].
fn fit(topics: Vec<TrendingTopic>) -> Vec<TrendTopic> {
    let mut seen = HashSet::new();
    topics
        .into_iter()
        .filter(|t| t.score.is_finite())
        .filter_map(|t| {
            let topic = trend_topic(&t.topic)?;
            seen.insert(topic.to_lowercase()).then_some(TrendTopic {
                topic,
                score: t.score.max(0.0),
            })
        })
        .take(MAX_TRENDS)
        .collect()
}

/// The key two topics are the same by: lower case, without `#` and whitespace.
fn same_topic_key(topic: &str) -> String {
    topic
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '#')
        .flat_map(char::to_lowercase)
        .collect()
}

/// The lists `(source, scores, topics)` merged: normalised per list, the same topic once with
/// its best score, sorted (see the module docs).
fn merge(lists: &[(&'static str, Vec<f64>, Vec<String>)]) -> Vec<Trend> {
    let mut all: Vec<Trend> = Vec::new();
    for (source, scores, topics) in lists {
        let best = scores.iter().copied().fold(0.0_f64, f64::max);
        for (score, topic) in scores.iter().zip(topics) {
            let normalised = if best > 0.0 { score / best } else { 0.0 };
            all.push(Trend {
                topic: topic.clone(),
                source: (*source).to_owned(),
                score: (normalised.clamp(0.0, 1.0) * 10_000.0).round() / 10_000.0,
            });
        }
    }
    all.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.topic.to_lowercase().cmp(&b.topic.to_lowercase()))
            .then_with(|| a.source.cmp(&b.source))
    });
    let mut seen = HashSet::new();
    all.retain(|t| {
        let key = same_topic_key(&t.topic);
        !key.is_empty() && seen.insert(key)
    });
    all
}

/// The workspace's rising hashtags at `now` from its posts (see the module docs): `#tag` and
/// its lift, the highest first, at most [`MAX_WORKSPACE_TOPICS`].
pub fn rising(posts: &[PostText], now: i64) -> Vec<(String, f64)> {
    let recent_from = now - RECENT_DAYS * DAY_MS;
    let earlier_from = recent_from - EARLIER_DAYS * DAY_MS;
    // tag (lower case) -> (as first seen, recent posts, earlier posts)
    let mut tags: HashMap<String, (String, u64, u64)> = HashMap::new();
    let (mut recent_total, mut earlier_total) = (0u64, 0u64);
    for p in posts {
        let recent = p.created_at >= recent_from && p.created_at <= now;
        let earlier = p.created_at >= earlier_from && p.created_at < recent_from;
        if !recent && !earlier {
            continue;
        }
        let mut in_post = HashSet::new();
        for text in std::iter::once(&p.body).chain(&p.thread) {
            for span in crier_networks::bluesky::facets::detect(text) {
                let crier_networks::bluesky::facets::Feature::Tag(tag) = span.feature else {
                    continue;
                };
                let Some(topic) = trend_topic(&format!("#{tag}")) else {
                    continue;
                };
                let key = topic.to_lowercase();
                if in_post.insert(key.clone()) {
                    let entry = tags.entry(key).or_insert((topic, 0, 0));
                    if recent {
                        entry.1 += 1;
                        recent_total += 1;
                    } else {
                        entry.2 += 1;
                        earlier_total += 1;
                    }
                }
            }
        }
    }
    let v = tags.len() as f64;
    let mut out: Vec<(String, f64, u64)> = tags
        .into_values()
        .filter(|(_, r, _)| *r > 0)
        .filter_map(|(topic, r, e)| {
            let recent_share = (r as f64 + 1.0) / (recent_total as f64 + v);
            let earlier_share = (e as f64 + 1.0) / (earlier_total as f64 + v);
            let lift = recent_share / earlier_share;
            (lift > 1.0).then_some((topic, lift, r))
        })
        .collect();
    out.sort_by(|a, b| {
        b.1.total_cmp(&a.1)
            .then(b.2.cmp(&a.2))
            .then_with(|| a.0.cmp(&b.0))
    });
    out.truncate(MAX_WORKSPACE_TOPICS);
    out.into_iter().map(|(t, lift, _)| (t, lift)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;

    fn post(days_ago: f64, body: &str) -> PostText {
        PostText {
            created_at: NOW - (days_ago * DAY_MS as f64) as i64,
            body: body.into(),
            thread: Vec::new(),
        }
    }

    #[test]
    fn rising_tags_beat_their_earlier_share() {
        let posts = vec![
            post(1.0, "Launch! #Launch #rust"),
            post(2.0, "More #launch news"),
            post(3.0, "#launch again, and #launch twice in one post"),
            post(10.0, "#rust #rust"),
            post(12.0, "#rust"),
            post(20.0, "#rust and #old"),
            post(40.0, "#launch outside both windows"),
        ];
        let got = rising(&posts, NOW);
        // Recent: launch 3, rust 1 (R = 4); earlier: rust 3, old 1 (E = 4); V = 3.
        // launch: (4/7) / (1/7) = 4; rust: (2/7) / (4/7) = 0.5 (not rising); old: not recent.
        assert_eq!(got, vec![("#Launch".to_owned(), 4.0)]);
    }

    #[test]
    fn a_new_workspace_rises_on_what_it_uses_most() {
        let posts = vec![
            post(1.0, "#a #b"),
            post(2.0, "#a"),
            post(3.0, "#a"),
            post(4.0, "https://example.com/#notatag #c"),
        ];
        // R = 5 (a 3, b 1, c 1), E = 0, V = 3: a = (4/8)/(1/3) = 1.5; b, c = 0.75.
        assert_eq!(rising(&posts, NOW), vec![("#a".to_owned(), 1.5)]);
        assert!(rising(&[], NOW).is_empty());
    }

    #[test]
    fn at_most_twenty_rising_tags() {
        let posts: Vec<PostText> = (0..30)
            .flat_map(|i| {
                let recent = format!("#t{i:02} #t{i:02}x");
                vec![post(1.0, &recent), post(1.5, &recent)]
            })
            .chain(std::iter::once(post(10.0, "#filler #other")))
            .collect();
        assert_eq!(rising(&posts, NOW).len(), MAX_WORKSPACE_TOPICS);
    }

    #[test]
    fn lists_are_normalised_deduplicated_and_sorted() {
        let lists = vec![
            (
                "mastodon",
                vec![40.0, 10.0, 0.0],
                vec!["#rust".into(), "#SuperBowl".into(), "#quiet".into()],
            ),
            (
                "bluesky",
                vec![20.0, 19.0, 18.0],
                vec!["Super Bowl".into(), "Eclipse".into(), "rust".into()],
            ),
            ("mastodon", vec![0.0], vec!["#zero".into()]),
            (
                "workspace",
                vec![4.0, 2.0],
                vec!["#launch".into(), "#Rust".into()],
            ),
        ];
        let got: Vec<(String, String, f64)> = merge(&lists)
            .into_iter()
            .map(|t| (t.topic, t.source, t.score))
            .collect();
        assert_eq!(
            got,
            vec![
                ("#launch".into(), "workspace".into(), 1.0),
                ("#rust".into(), "mastodon".into(), 1.0),
                ("Super Bowl".into(), "bluesky".into(), 1.0),
                ("Eclipse".into(), "bluesky".into(), 0.95),
                ("#quiet".into(), "mastodon".into(), 0.0),
                ("#zero".into(), "mastodon".into(), 0.0),
            ]
        );
    }

    #[test]
    fn what_a_connector_sends_is_held_to_the_bounds() {
        let mut sent = vec![
            TrendingTopic {
                topic: "  ok ".into(),
                score: f64::NAN,
            },
            TrendingTopic {
                topic: "ok".into(),
                score: 3.0,
            },
            TrendingTopic {
                topic: "OK".into(),
                score: 2.0,
            },
            TrendingTopic {
                topic: "x".repeat(101),
                score: 1.0,
            },
            TrendingTopic {
                topic: "neg".into(),
                score: -5.0,
            },
        ];
        sent.extend((0..30).map(|i| TrendingTopic {
            topic: format!("t{i}"),
            score: 1.0,
        }));
        let kept = fit(sent);
        assert_eq!(kept.len(), MAX_TRENDS);
        assert_eq!(kept[0].topic, "ok");
        assert_eq!(kept[0].score, 3.0);
        assert_eq!(kept[1].topic, "neg");
        assert_eq!(kept[1].score, 0.0);
        assert_eq!(kept[2].topic, "t0");
    }
}

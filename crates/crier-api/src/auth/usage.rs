//! `last_used_at`, request counts, per-key daily counts and the recent request log, gathered
//! in memory on the request path and written to storage in one batch every few seconds (and
//! at shutdown), so an authenticated read does no database write.
//!
//! A key's counts ([`KeyCounts`]) hang off its cached record, so a request counts under its
//! own key's lock, without a look-up in a map of every key (with 10,000 keys in rotation the
//! maps cost more than the rest of the accounting). Every record of one key on this node (a
//! record is made again after its cache entry expires or the key changes) shares the key's
//! counts, found by key id when the record is made. Counts with something since the last
//! flush are queued once; the flush takes the queue and the counts.
//!
//! Bounds: the registry of counts holds one entry per key id that a live record holds (the
//! others are dropped a flush after their last count), the queue each of them at most once; records are made
//! only for stored keys that a request presented, so both are bounded by the keys in use and
//! nothing unauthenticated can add to them. A key's daily counts hold one entry per UTC day
//! since the last flush (two around midnight). The request log holds at
//! most [`MAX_PENDING_LOG`] entries between flushes; past that an entry is dropped and
//! counted (`crier_request_log_dropped_total`), so a burst costs log entries, never memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crier_core::ids::{KeyId, WorkspaceId};
use crier_store::{DailyUsage, KeyUsage, RequestLogEntry, Store, UsageBatch};

use super::cache::KeyRecord;

/// Request log entries a node holds between flushes at most (about 200 bytes each).
pub const MAX_PENDING_LOG: usize = 10_000;

const DAY_MS: i64 = 86_400_000;

/// `m` locked. Nothing panics while these locks are held; should something, what they guard
/// is still whole, so a poisoned lock is taken as it is.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Requests, errors and rate-limited requests of one UTC day (days since the epoch).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Day {
    day: i64,
    requests: i64,
    errors: i64,
    rate_limited: i64,
}

/// What a key did since the last flush.
#[derive(Debug, Default)]
struct Counts {
    /// Requests its rate limits allowed, and the last one's time.
    requests: i64,
    last_used_at: Option<i64>,
    /// Every authenticated request by day (one day, two around midnight).
    days: Vec<Day>,
}

impl Counts {
    fn add_day(&mut self, add: Day) {
        match self.days.iter_mut().find(|d| d.day == add.day) {
            Some(d) => {
                d.requests += add.requests;
                d.errors += add.errors;
                d.rate_limited += add.rate_limited;
            }
            None => self.days.push(add),
        }
    }

    fn add(&mut self, other: Counts) {
        self.requests += other.requests;
        self.last_used_at = self.last_used_at.max(other.last_used_at);
        for d in other.days {
            self.add_day(d);
        }
    }
}

/// A key's counts since the last flush, and whether they are queued for it (see the module's
/// documentation). Counts are never non-empty without being queued.
#[derive(Debug)]
pub struct KeyCounts {
    key_id: KeyId,
    workspace_id: WorkspaceId,
    state: Mutex<(Counts, bool)>,
}

impl KeyCounts {
    fn new(key_id: &KeyId, workspace_id: &WorkspaceId) -> Self {
        Self {
            key_id: key_id.clone(),
            workspace_id: workspace_id.clone(),
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, (Counts, bool)> {
        lock(&self.state)
    }
}

#[derive(Default)]
pub struct UsageRecorder {
    /// Each key's counts by id, shared by its records on this node.
    counters: Mutex<HashMap<KeyId, Arc<KeyCounts>>>,
    /// Counts with something since the last flush, each once.
    queued: Mutex<Vec<Arc<KeyCounts>>>,
    log: Mutex<Vec<RequestLogEntry>>,
}

/// How a finished request counts in a key's daily usage.
fn counts(status: u16) -> (i64, i64) {
    match status {
        429 => (0, 1),
        s if s >= 400 => (1, 0),
        _ => (0, 0),
    }
}

impl UsageRecorder {
    /// The counts of the key `key_id` (of `workspace_id`), for a record of it being made.
    pub fn counts_for(&self, key_id: &KeyId, workspace_id: &WorkspaceId) -> Arc<KeyCounts> {
        let mut counters = lock(&self.counters);
        counters
            .entry(key_id.clone())
            .or_insert_with(|| Arc::new(KeyCounts::new(key_id, workspace_id)))
            .clone()
    }

    /// Adds `f`'s change to `counts`, and queues them for the next flush if they are not
    /// queued yet.
    fn count(&self, counts: &Arc<KeyCounts>, f: impl FnOnce(&mut Counts)) {
        let queue = {
            let mut c = counts.lock();
            f(&mut c.0);
            !std::mem::replace(&mut c.1, true)
        };
        if queue {
            lock(&self.queued).push(counts.clone());
        }
    }

    /// Counts a request `key`'s rate limits allowed, at `now_ms` (nothing for a record without
    /// counts: a session).
    pub fn record(&self, key: &KeyRecord, now_ms: i64) {
        let Some(counts) = &key.counts else { return };
        self.count(counts, |c| {
            c.requests += 1;
            c.last_used_at = c.last_used_at.max(Some(now_ms));
        });
    }

    /// Counts a finished authenticated request: in its key's daily usage (API keys; sessions
    /// are not keys and have no counts) and in the request log. Returns how many log entries
    /// were dropped because the pending log was full (0 or 1).
    /// The day is the UTC day of `entry.at`.
    pub fn finish(&self, key: &KeyRecord, entry: RequestLogEntry) -> u64 {
        if let Some(key_counts) = &key.counts {
            let (errors, rate_limited) = counts(u16::try_from(entry.status).unwrap_or(0));
            let day = Day {
                day: entry.at.div_euclid(DAY_MS),
                requests: 1,
                errors,
                rate_limited,
            };
            self.count(key_counts, |c| c.add_day(day));
        }
        let mut log = lock(&self.log);
        if log.len() >= MAX_PENDING_LOG {
            return 1;
        }
        log.push(entry);
        0
    }

    /// Request log entries waiting for the next flush.
    pub fn pending_log(&self) -> usize {
        lock(&self.log).len()
    }

    /// Takes every queued key's counts (they are no longer queued). First drops from the
    /// registry the counts that nothing else holds: no record and not the queue (they are
    /// empty: counts with something are queued), so a key no longer in use is gone from it a
    /// flush after its last count.
    fn take(&self) -> Vec<(Arc<KeyCounts>, Counts)> {
        lock(&self.counters).retain(|_, c| Arc::strong_count(c) > 1);
        let queued = std::mem::take(&mut *lock(&self.queued));
        queued
            .into_iter()
            .map(|counts| {
                let c = {
                    let mut c = counts.lock();
                    c.1 = false;
                    std::mem::take(&mut c.0)
                };
                (counts, c)
            })
            .collect()
    }

    /// Writes what was gathered, in one transaction. On failure the batch goes back into the
    /// pending counts, so a database hiccup loses nothing (except log entries past
    /// [`MAX_PENDING_LOG`], dropped then). Returns the number of keys written and the number
    /// of log entries dropped.
    pub async fn flush(&self, store: &Store, period: &str) -> (crier_store::Result<usize>, u64) {
        let taken = self.take();
        let log = std::mem::take(&mut *lock(&self.log));
        let mut keys = Vec::new();
        let mut daily = Vec::new();
        for (counts, c) in &taken {
            let (key_id, workspace_id) = (&counts.key_id, &counts.workspace_id);
            if let Some(last_used_at) = c.last_used_at {
                keys.push(KeyUsage {
                    key_id: key_id.clone(),
                    workspace_id: workspace_id.clone(),
                    last_used_at,
                    requests: c.requests,
                });
            }
            daily.extend(c.days.iter().map(|d| DailyUsage {
                key_id: key_id.clone(),
                workspace_id: workspace_id.clone(),
                day: crier_core::clock::utc_day(d.day * DAY_MS),
                requests: d.requests,
                errors: d.errors,
                rate_limited: d.rate_limited,
            }));
        }
        let batch = UsageBatch {
            keys: &keys,
            daily: &daily,
            log: &log,
        };
        if batch.is_empty() {
            return (Ok(0), 0);
        }
        if let Err(e) = store.record_activity(batch, period).await {
            for (counts, c) in taken {
                self.count(&counts, |mine| mine.add(c));
            }
            let mut pending = lock(&self.log);
            // The older entries go back first; what no longer fits is dropped.
            let room = MAX_PENDING_LOG.saturating_sub(pending.len());
            let dropped = log.len().saturating_sub(room) as u64;
            let newer = std::mem::take(&mut *pending);
            *pending = log.into_iter().take(room).chain(newer).collect();
            pending.truncate(MAX_PENDING_LOG);
            return (Err(e), dropped);
        }
        (Ok(keys.len()), 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crier_core::Role;
    use crier_core::ids::{KeyId, UserId, WorkspaceId};

    /// A key's record with counts of its own.
    fn key(i: usize) -> Arc<KeyRecord> {
        let mut r = record(i);
        r.counts = Some(Arc::new(KeyCounts::new(&r.row.id, &r.row.workspace_id)));
        Arc::new(r)
    }

    /// The counts of a record that has them.
    fn counts_of(k: &KeyRecord) -> MutexGuard<'_, (Counts, bool)> {
        k.counts.as_ref().expect("a record with counts").lock()
    }

    fn record(i: usize) -> KeyRecord {
        let ws = crier_store::Workspace {
            id: WorkspaceId::from_trusted("ws_1".into()),
            name: "w".into(),
            plan: "free".into(),
            timezone: "UTC".into(),
            require_approval: false,
            created_at: 0,
            updated_at: 0,
        };
        let plan = Arc::new(crier_core::Plan::defaults().remove("free").unwrap());
        KeyRecord::for_user(
            &UserId::from_trusted("usr_1".into()),
            KeyId::from_trusted(format!("key_{i}")),
            &ws,
            Role::Owner,
            plan,
            0,
        )
    }

    fn entry(k: &KeyRecord, i: usize, status: i64, at: i64) -> RequestLogEntry {
        RequestLogEntry {
            request_id: format!("req_{i:026}"),
            workspace_id: k.row.workspace_id.clone(),
            key_id: k.row.id.clone(),
            method: "GET".into(),
            path: "/v1/keys".into(),
            status,
            error_code: None,
            duration_ms: 1,
            at,
        }
    }

    /// A queued key: its id, allowed requests and (day, requests, errors, rate limited).
    type Pending = (String, i64, Vec<(i64, i64, i64, i64)>);

    /// The queued keys' counts, without taking them.
    fn pending(usage: &UsageRecorder) -> Vec<Pending> {
        let queued = usage.queued.lock().unwrap();
        queued
            .iter()
            .map(|k| {
                let c = k.lock();
                assert!(c.1, "queued counts are marked queued");
                let days = c.0.days.iter();
                let days = days.map(|d| (d.day, d.requests, d.errors, d.rate_limited));
                (k.key_id.to_string(), c.0.requests, days.collect())
            })
            .collect()
    }

    #[test]
    fn the_pending_log_is_bounded_and_counts_what_it_drops() {
        let usage = UsageRecorder::default();
        let keys: Vec<_> = (0..3).map(key).collect();
        let mut dropped = 0;
        for i in 0..MAX_PENDING_LOG + 250 {
            let k = &keys[i % 3];
            dropped += usage.finish(k, entry(k, i, 200, 0));
        }
        assert_eq!(usage.pending_log(), MAX_PENDING_LOG);
        assert_eq!(dropped, 250);
        // The daily counts still count every request, each key queued once.
        let p = pending(&usage);
        assert_eq!(p.len(), 3);
        let total: i64 = p.iter().flat_map(|(_, _, d)| d).map(|d| d.1).sum();
        assert_eq!(total, (MAX_PENDING_LOG + 250) as i64);
    }

    #[test]
    fn statuses_count_as_errors_or_rate_limited_by_day() {
        let usage = UsageRecorder::default();
        // A session's record has no counts.
        let (k, session) = (key(0), Arc::new(record(1)));
        for status in [200, 201, 204, 304, 400, 401, 404, 409, 429, 429, 500, 503] {
            usage.finish(&k, entry(&k, 0, status, 5));
        }
        // The next UTC day has counts of its own.
        usage.finish(&k, entry(&k, 1, 429, DAY_MS + 5));
        // A session's requests are logged but have no daily counts.
        usage.finish(&session, entry(&session, 2, 500, 5));
        usage.record(&session, 9);
        usage.record(&k, 7);
        usage.record(&k, 3);
        assert_eq!(
            pending(&usage),
            vec![("key_0".into(), 2, vec![(0, 12, 6, 2), (1, 1, 0, 1)])]
        );
        assert_eq!(counts_of(&k).0.last_used_at, Some(7));
        assert_eq!(usage.pending_log(), 14);
    }

    #[test]
    fn a_flush_takes_the_counts_and_requeues_a_key_counted_after_it() {
        let usage = UsageRecorder::default();
        let k = key(0);
        usage.record(&k, 1);
        let taken = usage.take();
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].1.requests, 1);
        assert!(pending(&usage).is_empty());
        assert!(!counts_of(&k).1);
        usage.record(&k, 2);
        assert_eq!(pending(&usage), vec![("key_0".into(), 1, vec![])]);
        // Counts given back (a failed write) add to what came since, still queued once.
        for (key, c) in taken {
            usage.count(&key, |mine| mine.add(c));
        }
        assert_eq!(pending(&usage), vec![("key_0".into(), 2, vec![])]);
    }

    #[test]
    fn every_record_of_a_key_shares_its_counts_and_unheld_counts_are_dropped() {
        let usage = UsageRecorder::default();
        let with_registry = |i| {
            let mut r = record(i);
            r.counts = Some(usage.counts_for(&r.row.id, &r.row.workspace_id));
            Arc::new(r)
        };
        // A key's record made again (its cache entry expired or the key changed) while the
        // old one is still in use: one entry in the queue, the counts of both.
        let (old, new, other) = (with_registry(0), with_registry(0), with_registry(1));
        usage.record(&old, 1);
        usage.record(&new, 2);
        usage.record(&other, 3);
        assert_eq!(
            pending(&usage),
            vec![("key_0".into(), 2, vec![]), ("key_1".into(), 1, vec![])]
        );
        // Once no record holds a key's counts, the flush after the one that took them drops
        // them from the registry.
        drop((old, new));
        assert_eq!(usage.take().len(), 2);
        assert_eq!(usage.counters.lock().unwrap().len(), 2);
        assert!(usage.take().is_empty());
        let held: Vec<String> = usage
            .counters
            .lock()
            .unwrap()
            .keys()
            .map(|k| k.to_string())
            .collect();
        assert_eq!(held, vec!["key_1".to_string()]);
        // A record made later starts from empty counts, still shared with key 1's.
        let again = with_registry(1);
        assert!(Arc::ptr_eq(
            again.counts.as_ref().unwrap(),
            other.counts.as_ref().unwrap()
        ));
        assert!(pending(&usage).is_empty());
    }
}

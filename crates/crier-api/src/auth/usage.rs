//! `last_used_at`, request counts, per-key daily counts and the recent request log, gathered
//! in memory on the request path and written to storage in one batch every few seconds (and
//! at shutdown), so an authenticated read does no database write.
//!
//! Bounds: the per-key maps hold one entry per key (per UTC day for the daily counts) that
//! authenticated since the last flush, so they are bounded by the workspace's real keys and
//! nothing unauthenticated can add to them. The request log holds at most
//! [`MAX_PENDING_LOG`] entries between flushes; past that an entry is dropped and counted
//! (`crier_request_log_dropped_total`), so a burst costs log entries, never memory.

use std::collections::HashMap;
use std::sync::Mutex;

use crier_core::ids::{KeyId, WorkspaceId};
use crier_store::{DailyUsage, KeyUsage, RequestLogEntry, Store, UsageBatch};

/// Request log entries a node holds between flushes at most (about 200 bytes each).
pub const MAX_PENDING_LOG: usize = 10_000;

const DAY_MS: i64 = 86_400_000;

#[derive(Default)]
struct Activity {
    /// Key → its counts per day since the last flush (one day, two around midnight), each with
    /// its day as days since the epoch, so a request finds its counts without allocating.
    daily: HashMap<KeyId, Vec<(i64, DailyUsage)>>,
    log: Vec<RequestLogEntry>,
}

#[derive(Default)]
pub struct UsageRecorder {
    pending: Mutex<HashMap<KeyId, KeyUsage>>,
    activity: Mutex<Activity>,
}

/// How a finished request counts in a key's daily usage.
fn counts(status: u16) -> (i64, i64) {
    match status {
        429 => (0, 1),
        s if s >= 400 => (1, 0),
        _ => (0, 0),
    }
}

/// Adds `add` to `into`'s counts of the same day, or appends it.
fn merge_daily(into: &mut Vec<(i64, DailyUsage)>, day: i64, add: DailyUsage) {
    match into.iter_mut().find(|(d, _)| *d == day) {
        Some((_, e)) => {
            e.requests += add.requests;
            e.errors += add.errors;
            e.rate_limited += add.rate_limited;
        }
        None => into.push((day, add)),
    }
}

impl UsageRecorder {
    pub fn record(&self, key: &KeyId, workspace: &WorkspaceId, now_ms: i64) {
        let mut pending = self.pending.lock().expect("usage lock");
        match pending.get_mut(key) {
            Some(u) => {
                u.requests += 1;
                u.last_used_at = u.last_used_at.max(now_ms);
            }
            None => {
                pending.insert(
                    key.clone(),
                    KeyUsage {
                        key_id: key.clone(),
                        workspace_id: workspace.clone(),
                        last_used_at: now_ms,
                        requests: 1,
                    },
                );
            }
        }
    }

    /// Counts a finished authenticated request: in its key's daily usage when `daily` (API
    /// keys; sessions are not keys) and in the request log. Returns how many log entries were
    /// dropped because the pending log was full (0 or 1).
    /// The day is the UTC day of `entry.at`.
    pub fn finish(&self, entry: RequestLogEntry, daily: bool) -> u64 {
        let (errors, rate_limited) = counts(u16::try_from(entry.status).unwrap_or(0));
        let day = entry.at.div_euclid(DAY_MS);
        let one = || DailyUsage {
            key_id: entry.key_id.clone(),
            workspace_id: entry.workspace_id.clone(),
            day: crier_core::clock::utc_day(entry.at),
            requests: 1,
            errors,
            rate_limited,
        };
        let mut a = self.activity.lock().expect("usage lock");
        if daily {
            match a.daily.get_mut(&entry.key_id) {
                Some(days) => match days.iter_mut().find(|(d, _)| *d == day) {
                    Some((_, d)) => {
                        d.requests += 1;
                        d.errors += errors;
                        d.rate_limited += rate_limited;
                    }
                    None => days.push((day, one())),
                },
                None => {
                    a.daily.insert(entry.key_id.clone(), vec![(day, one())]);
                }
            }
        }
        if a.log.len() >= MAX_PENDING_LOG {
            return 1;
        }
        a.log.push(entry);
        0
    }

    /// Request log entries waiting for the next flush.
    pub fn pending_log(&self) -> usize {
        self.activity.lock().expect("usage lock").log.len()
    }

    /// Writes what was gathered, in one transaction. On failure the batch goes back into the
    /// pending counts, so a database hiccup loses nothing (except log entries past
    /// [`MAX_PENDING_LOG`], dropped then). Returns the number of keys written and the number
    /// of log entries dropped.
    pub async fn flush(&self, store: &Store, period: &str) -> (crier_store::Result<usize>, u64) {
        let keys: Vec<KeyUsage> = {
            let mut pending = self.pending.lock().expect("usage lock");
            std::mem::take(&mut *pending).into_values().collect()
        };
        let (daily, log): (Vec<(i64, DailyUsage)>, Vec<RequestLogEntry>) = {
            let mut a = self.activity.lock().expect("usage lock");
            let a = std::mem::take(&mut *a);
            (a.daily.into_values().flatten().collect(), a.log)
        };
        let days: Vec<DailyUsage> = daily.iter().map(|(_, d)| d.clone()).collect();
        let batch = UsageBatch {
            keys: &keys,
            daily: &days,
            log: &log,
        };
        if batch.is_empty() {
            return (Ok(0), 0);
        }
        if let Err(e) = store.record_activity(batch, period).await {
            {
                let mut pending = self.pending.lock().expect("usage lock");
                for u in &keys {
                    let entry = pending.entry(u.key_id.clone()).or_insert(KeyUsage {
                        requests: 0,
                        ..u.clone()
                    });
                    entry.requests += u.requests;
                    entry.last_used_at = entry.last_used_at.max(u.last_used_at);
                }
            }
            let mut a = self.activity.lock().expect("usage lock");
            for (day, d) in daily {
                merge_daily(a.daily.entry(d.key_id.clone()).or_default(), day, d);
            }
            // The older entries go back first; what no longer fits is dropped.
            let room = MAX_PENDING_LOG.saturating_sub(a.log.len());
            let dropped = log.len().saturating_sub(room) as u64;
            let newer = std::mem::take(&mut a.log);
            a.log = log.into_iter().take(room).chain(newer).collect();
            a.log.truncate(MAX_PENDING_LOG);
            return (Err(e), dropped);
        }
        (Ok(keys.len()), 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: usize, status: i64) -> RequestLogEntry {
        RequestLogEntry {
            request_id: format!("req_{i:026}"),
            workspace_id: WorkspaceId::from_trusted("ws_1".into()),
            key_id: KeyId::from_trusted(format!("key_{}", i % 3)),
            method: "GET".into(),
            path: "/v1/keys".into(),
            status,
            error_code: None,
            duration_ms: 1,
            at: 0,
        }
    }

    #[test]
    fn the_pending_log_is_bounded_and_counts_what_it_drops() {
        let usage = UsageRecorder::default();
        let mut dropped = 0;
        for i in 0..MAX_PENDING_LOG + 250 {
            dropped += usage.finish(entry(i, 200), true);
        }
        assert_eq!(usage.pending_log(), MAX_PENDING_LOG);
        assert_eq!(dropped, 250);
        // The daily counts still count every request, merged per key and day.
        let a = usage.activity.lock().unwrap();
        assert_eq!(a.daily.len(), 3);
        let total: i64 = a.daily.values().flatten().map(|(_, d)| d.requests).sum();
        assert_eq!(total, (MAX_PENDING_LOG + 250) as i64);
    }

    #[test]
    fn statuses_count_as_errors_or_rate_limited() {
        let usage = UsageRecorder::default();
        for status in [200, 201, 204, 304, 400, 401, 404, 409, 429, 429, 500, 503] {
            usage.finish(entry(0, status), true);
        }
        // A session's requests are logged but have no daily counts.
        usage.finish(entry(1, 500), false);
        let a = usage.activity.lock().unwrap();
        assert_eq!(a.daily.len(), 1);
        let (_, d) = &a.daily.values().next().unwrap()[0];
        assert_eq!((d.requests, d.errors, d.rate_limited), (12, 6, 2));
        assert_eq!(a.log.len(), 13);
    }
}

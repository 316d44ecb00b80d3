//! What this process sent, by idempotency key, so [`super::Mastodon::lookup`] can find a
//! status whose answer was lost.
//!
//! Mastodon has no search by idempotency key: the key only makes the instance replay the
//! first status for a repeated `POST /api/v1/statuses` (for about an hour, while its Redis
//! entry lives). So before each POST we note the text, the status it replies to and the time;
//! a look-up reads the account's latest statuses, keeps those created since the attempt began
//! (less a few minutes of clock skew) that reply to the same status, and compares each one's
//! source text (`GET /api/v1/statuses/:id/source`) with what we sent, exactly.
//!
//! Limits, honestly: the notes live in memory (bounded, [`MAX_ATTEMPTS`], for [`TTL_MS`]). After
//! a restart a look-up finds nothing, and the caller's retry sends the POST again with the same
//! `Idempotency-Key`, which the instance answers with the first status while it remembers the
//! key; only a retry after both a restart and the instance's hour can publish twice. Two
//! statuses with the same text replying to the same status in the window cannot be told apart;
//! the newest is taken.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use crate::PublishedPart;

/// Attempts remembered at most; the oldest goes first.
pub const MAX_ATTEMPTS: usize = 4096;
/// How long an attempt is remembered.
pub const TTL_MS: i64 = 24 * 60 * 60 * 1000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub text: String,
    pub in_reply_to: Option<String>,
    pub started_at: i64,
    /// Set once the instance answered with the status.
    pub published: Option<PublishedPart>,
}

#[derive(Default)]
pub struct Attempts {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    map: HashMap<(String, String), Attempt>,
    order: VecDeque<(String, String)>,
}

impl Attempts {
    /// Notes an attempt (again: a retry keeps the first start time, so the window covers every
    /// attempt at the part).
    pub fn begin(&self, account: &str, idem_key: &str, attempt: Attempt) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let key = (account.to_owned(), idem_key.to_owned());
        if let Some(existing) = inner.map.get_mut(&key) {
            existing.text = attempt.text;
            existing.in_reply_to = attempt.in_reply_to;
            return;
        }
        let now = attempt.started_at;
        while inner.order.len() >= MAX_ATTEMPTS
            || inner
                .order
                .front()
                .and_then(|k| inner.map.get(k))
                .is_some_and(|a| a.started_at + TTL_MS <= now)
        {
            let Some(old) = inner.order.pop_front() else {
                break;
            };
            inner.map.remove(&old);
        }
        inner.order.push_back(key.clone());
        inner.map.insert(key, attempt);
    }

    pub fn published(&self, account: &str, idem_key: &str, part: &PublishedPart) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(a) = inner
            .map
            .get_mut(&(account.to_owned(), idem_key.to_owned()))
        {
            a.published = Some(part.clone());
        }
    }

    pub fn get(&self, account: &str, idem_key: &str, now: i64) -> Option<Attempt> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner
            .map
            .get(&(account.to_owned(), idem_key.to_owned()))
            .filter(|a| a.started_at + TTL_MS > now)
            .cloned()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(at: i64) -> Attempt {
        Attempt {
            text: "t".into(),
            in_reply_to: None,
            started_at: at,
            published: None,
        }
    }

    #[test]
    fn bounded_and_expiring() {
        let a = Attempts::default();
        for i in 0..MAX_ATTEMPTS + 5 {
            a.begin("acct", &format!("k{i}"), attempt(0));
        }
        assert_eq!(a.len(), MAX_ATTEMPTS);
        assert!(a.get("acct", "k0", 0).is_none());
        assert!(a.get("acct", "k5", 0).is_some());
        assert!(a.get("other", "k5", 0).is_none(), "per account");
        assert!(a.get("acct", "k5", TTL_MS).is_none(), "expired");
        // A new attempt after the TTL clears the expired ones.
        a.begin("acct", "fresh", attempt(TTL_MS));
        assert_eq!(a.len(), 1);
    }

    #[test]
    fn a_retry_keeps_the_first_start() {
        let a = Attempts::default();
        a.begin("acct", "k", attempt(10));
        a.begin("acct", "k", attempt(20));
        assert_eq!(a.get("acct", "k", 30).unwrap().started_at, 10);
        let part = PublishedPart {
            external_id: "1".into(),
            url: "u".into(),
        };
        a.published("acct", "k", &part);
        assert_eq!(a.get("acct", "k", 30).unwrap().published, Some(part));
    }
}

//! One node's publishing budgets: how many network calls may be in flight per network and per
//! account, and which accounts a network told to slow down (a 429) until when.
//!
//! A network call takes from 100 ms to seconds, so a node keeps many in flight (the worker's
//! `concurrency`), and what bounds them is each network's and account's own capacity, not one
//! small pool. A job whose account has no room goes back to the queue as it is (keeping its
//! place), and the claim skips that account until it has room ([`Budgets::no_room`]); a job of a
//! paused account comes back when the pause ends; a job whose network has no room goes back
//! after a moment ([`DEFER_MS`]). None of them makes a call or uses an attempt. So a
//! 10,000-post burst on one account keeps at most `per_account` of the node's slots busy, and a
//! 429 slows only the account that got it.
//!
//! Every map here is bounded: counts are removed when they reach zero, pauses when they end,
//! and at most [`MAX_PAUSED`] pauses are kept (past that a 429 is handled by the job's own
//! retry delay alone).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crier_core::ids::AccountId;

/// How long a job whose network had no room waits before it goes back to the queue.
pub const DEFER_MS: i64 = 250;
/// Accounts a claim skips at most (the rest are taken and put back, see [`Turn::Later`]).
pub const MAX_EXCLUDED: usize = 256;
/// Accounts remembered as paused at most.
pub const MAX_PAUSED: usize = 100_000;

#[derive(Debug, Default)]
struct State {
    networks: HashMap<String, usize>,
    accounts: HashMap<AccountId, usize>,
    paused: HashMap<AccountId, i64>,
}

/// The budgets of one node (see the module).
#[derive(Debug)]
pub struct Budgets {
    per_network: usize,
    per_account: usize,
    state: Mutex<State>,
}

/// What a job may do now.
#[derive(Debug)]
pub enum Turn {
    /// Call the network; the budget is given back when this is dropped.
    Go(Permit),
    /// The account is paused (a 429) until this time (epoch ms): come back then.
    Paused(i64),
    /// The account has no room now: go back to the queue as you are (the claim skips the
    /// account until it has room, see [`Budgets::no_room`]).
    AccountFull,
    /// The network has no room now: go back to the queue after a moment ([`DEFER_MS`]).
    NetworkFull,
}

/// A call's place in its network's and account's budgets, given back on drop.
#[derive(Debug)]
pub struct Permit {
    budgets: Arc<Budgets>,
    platform: String,
    account: AccountId,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut s = self.budgets.state.lock().expect("budgets lock");
        release(&mut s.networks, &self.platform);
        release(&mut s.accounts, &self.account);
    }
}

fn release<K: std::hash::Hash + Eq>(counts: &mut HashMap<K, usize>, key: &K) {
    if let Some(n) = counts.get_mut(key) {
        *n -= 1;
        if *n == 0 {
            counts.remove(key);
        }
    }
}

impl Budgets {
    pub fn new(per_network: usize, per_account: usize) -> Arc<Self> {
        Arc::new(Self {
            per_network: per_network.max(1),
            per_account: per_account.max(1),
            state: Mutex::default(),
        })
    }

    /// A turn for a call of `account` on `platform` at `now` (epoch ms).
    pub fn turn(self: &Arc<Self>, platform: &str, account: &AccountId, now: i64) -> Turn {
        let mut s = self.state.lock().expect("budgets lock");
        if let Some(until) = s.paused.get(account).copied() {
            if until > now {
                return Turn::Paused(until);
            }
            s.paused.remove(account);
        }
        if s.accounts.get(account).copied().unwrap_or(0) >= self.per_account {
            return Turn::AccountFull;
        }
        if s.networks.get(platform).copied().unwrap_or(0) >= self.per_network {
            return Turn::NetworkFull;
        }
        *s.networks.entry(platform.to_owned()).or_default() += 1;
        *s.accounts.entry(account.clone()).or_default() += 1;
        Turn::Go(Permit {
            budgets: self.clone(),
            platform: platform.to_owned(),
            account: account.clone(),
        })
    }

    /// The network answered 429 for `account`: no call for it before `until` on this node.
    pub fn pause(&self, account: &AccountId, until: i64, now: i64) {
        let mut s = self.state.lock().expect("budgets lock");
        if s.paused.len() >= MAX_PAUSED {
            s.paused.retain(|_, t| *t > now);
            if s.paused.len() >= MAX_PAUSED {
                return;
            }
        }
        let t = s.paused.entry(account.clone()).or_insert(until);
        *t = (*t).max(until);
    }

    /// Accounts with no room on this node now (at their limit of calls in flight, or paused),
    /// at most [`MAX_EXCLUDED`]: the claim leaves their jobs in the queue instead of taking
    /// them only to put them back.
    pub fn no_room(&self, now: i64) -> Vec<AccountId> {
        let s = self.state.lock().expect("budgets lock");
        s.accounts
            .iter()
            .filter(|(_, n)| **n >= self.per_account)
            .map(|(a, _)| a)
            .chain(s.paused.iter().filter(|(_, t)| **t > now).map(|(a, _)| a))
            .take(MAX_EXCLUDED)
            .cloned()
            .collect()
    }

    /// Calls in flight now (all networks), for metrics and tests.
    pub fn in_flight(&self) -> usize {
        self.state
            .lock()
            .expect("budgets lock")
            .networks
            .values()
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acct(n: u32) -> AccountId {
        AccountId::from_trusted(format!("acct_{n}"))
    }

    #[test]
    fn accounts_and_networks_have_their_own_room() {
        let b = Budgets::new(3, 2);
        let go = |p: &str, a: u32| match b.turn(p, &acct(a), 0) {
            Turn::Go(permit) => Ok(permit),
            other => Err(other),
        };
        let p1 = go("x", 1).unwrap();
        let _p2 = go("x", 1).unwrap();
        assert!(
            matches!(go("x", 1), Err(Turn::AccountFull)),
            "the account's two are in flight"
        );
        assert_eq!(b.no_room(0), vec![acct(1)]);
        let _p3 = go("x", 2).unwrap();
        assert!(
            matches!(go("x", 3), Err(Turn::NetworkFull)),
            "the network's three are in flight"
        );
        assert!(go("bluesky", 3).is_ok(), "another network is not slowed");
        drop(p1);
        assert!(go("x", 3).is_ok(), "a finished call gives its room back");
        assert!(b.no_room(0).is_empty());
    }

    #[test]
    fn a_pause_holds_only_its_account_until_it_ends_and_maps_empty() {
        let b = Budgets::new(10, 10);
        b.pause(&acct(1), 5_000, 0);
        assert!(matches!(b.turn("x", &acct(1), 1_000), Turn::Paused(5_000)));
        assert_eq!(b.no_room(1_000), vec![acct(1)]);
        assert!(matches!(b.turn("x", &acct(2), 1_000), Turn::Go(_)));
        match b.turn("x", &acct(1), 5_000) {
            Turn::Go(p) => drop(p),
            other => panic!("{other:?}"),
        }
        let s = b.state.lock().unwrap();
        assert!(s.networks.is_empty() && s.accounts.is_empty() && s.paused.is_empty());
    }
}

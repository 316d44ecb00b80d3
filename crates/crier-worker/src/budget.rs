//! One node's publishing budgets: how many jobs may be in hand per account and network calls in
//! flight per network, and which accounts a network told to slow down (a 429) until when.
//!
//! A network call takes from 100 ms to seconds, so a node keeps many in flight (the worker's
//! `concurrency`), and what bounds them is each network's and account's own capacity, not one
//! small pool. An account's room is taken when its job is claimed ([`Budgets::hold`]) and
//! given back when the job's calls are done: the claim asks for no more of an account's jobs
//! than its room, and for none on a network with no room ([`Budgets::room`]), so a node does
//! not take jobs only to put them back, and one network's backlog does not hold up another's
//! jobs behind it in the queue. A job
//! that still finds no room (past what a claim can name) goes back to the queue as it is,
//! keeping its place; a job of a paused account comes back when the pause ends; a job whose
//! network has no room goes back after a moment ([`DEFER_MS`]). None of them makes a call or
//! uses an attempt. So a 10,000-post burst on one account keeps at most `per_account` of the
//! node's slots busy, and a 429 slows only the account that got it.
//!
//! Every map here is bounded: counts are removed when they reach zero, pauses when they end,
//! and at most [`MAX_PAUSED`] pauses are kept (past that a 429 is handled by the job's own
//! retry delay alone).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crier_core::ids::AccountId;
use crier_store::{AccountRoom, MAX_ROOM_ACCOUNTS};

/// How long a job whose network had no room waits before it goes back to the queue.
pub const DEFER_MS: i64 = 250;
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
    /// account until it has room, see [`Budgets::room`]).
    AccountFull,
    /// The network has no room now: go back to the queue after a moment ([`DEFER_MS`]).
    NetworkFull,
}

/// One job's place in its account's room, given back on drop.
#[derive(Debug)]
pub struct Hold {
    budgets: Arc<Budgets>,
    account: AccountId,
}

impl Drop for Hold {
    fn drop(&mut self) {
        let mut s = self.budgets.state.lock().expect("budgets lock");
        release(&mut s.accounts, &self.account);
    }
}

/// A call's place in its network's and account's budgets, given back on drop.
#[derive(Debug)]
pub struct Permit {
    _hold: Hold,
    budgets: Arc<Budgets>,
    platform: String,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut s = self.budgets.state.lock().expect("budgets lock");
        release(&mut s.networks, &self.platform);
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

    /// A place in `account`'s room for a job just claimed, if it has one.
    pub fn hold(self: &Arc<Self>, account: &AccountId) -> Option<Hold> {
        let mut s = self.state.lock().expect("budgets lock");
        let n = s.accounts.entry(account.clone()).or_default();
        if *n >= self.per_account {
            return None;
        }
        *n += 1;
        Some(Hold {
            budgets: self.clone(),
            account: account.clone(),
        })
    }

    /// A turn for a call of `account` on `platform` at `now` (epoch ms), with the job's
    /// `hold` on the account's room if its claim got one (else one is taken now).
    pub fn turn(
        self: &Arc<Self>,
        platform: &str,
        account: &AccountId,
        hold: Option<Hold>,
        now: i64,
    ) -> Turn {
        {
            let mut s = self.state.lock().expect("budgets lock");
            if let Some(until) = s.paused.get(account).copied() {
                if until > now {
                    return Turn::Paused(until);
                }
                s.paused.remove(account);
            }
        }
        let Some(hold) = hold.or_else(|| self.hold(account)) else {
            return Turn::AccountFull;
        };
        let mut s = self.state.lock().expect("budgets lock");
        if s.networks.get(platform).copied().unwrap_or(0) >= self.per_network {
            return Turn::NetworkFull;
        }
        *s.networks.entry(platform.to_owned()).or_default() += 1;
        Turn::Go(Permit {
            _hold: hold,
            budgets: self.clone(),
            platform: platform.to_owned(),
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

    /// What a claim may take of each account now: nothing of accounts at their limit or
    /// paused, the rest of their room of accounts with jobs in hand (at most
    /// [`MAX_ROOM_ACCOUNTS`] of each; past that a job taken beyond its account's room goes
    /// back to the queue), and nothing of any account on a network with every call it may
    /// have in flight (its backlog would otherwise fill the claim ahead of other networks'
    /// jobs, each taken only to go back).
    pub fn room(&self, now: i64) -> AccountRoom {
        let s = self.state.lock().expect("budgets lock");
        let none = s
            .accounts
            .iter()
            .filter(|(_, n)| **n >= self.per_account)
            .map(|(a, _)| a)
            .chain(s.paused.iter().filter(|(_, t)| **t > now).map(|(a, _)| a))
            .take(MAX_ROOM_ACCOUNTS)
            .cloned()
            .collect();
        let some = s
            .accounts
            .iter()
            .filter(|(a, n)| **n < self.per_account && s.paused.get(*a).is_none_or(|t| *t <= now))
            .take(MAX_ROOM_ACCOUNTS)
            .map(|(a, n)| (a.clone(), (self.per_account - n) as u32))
            .collect();
        let full_networks = s
            .networks
            .iter()
            .filter(|(_, n)| **n >= self.per_network)
            .map(|(p, _)| p.clone())
            .collect();
        AccountRoom {
            per_account: u32::try_from(self.per_account).unwrap_or(u32::MAX),
            none,
            some,
            full_networks,
        }
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
        let go = |p: &str, a: u32| match b.turn(p, &acct(a), None, 0) {
            Turn::Go(permit) => Ok(permit),
            other => Err(other),
        };
        let p1 = go("x", 1).unwrap();
        let _p2 = go("x", 1).unwrap();
        assert!(
            matches!(go("x", 1), Err(Turn::AccountFull)),
            "the account's two are in flight"
        );
        assert_eq!(b.room(0).none, vec![acct(1)]);
        let _p3 = go("x", 2).unwrap();
        assert!(
            matches!(go("x", 3), Err(Turn::NetworkFull)),
            "the network's three are in flight"
        );
        assert!(go("bluesky", 3).is_ok(), "another network is not slowed");
        assert_eq!(b.room(0).full_networks, vec!["x".to_owned()]);
        drop(p1);
        assert!(b.room(0).full_networks.is_empty());
        assert!(go("x", 3).is_ok(), "a finished call gives its room back");
        assert!(b.room(0).none.is_empty());
    }

    #[test]
    fn a_pause_holds_only_its_account_until_it_ends_and_maps_empty() {
        let b = Budgets::new(10, 10);
        b.pause(&acct(1), 5_000, 0);
        assert!(matches!(
            b.turn("x", &acct(1), None, 1_000),
            Turn::Paused(5_000)
        ));
        assert_eq!(b.room(1_000).none, vec![acct(1)]);
        assert!(matches!(b.turn("x", &acct(2), None, 1_000), Turn::Go(_)));
        match b.turn("x", &acct(1), None, 5_000) {
            Turn::Go(p) => drop(p),
            other => panic!("{other:?}"),
        }
        let s = b.state.lock().unwrap();
        assert!(s.networks.is_empty() && s.accounts.is_empty() && s.paused.is_empty());
    }

    #[test]
    fn a_claim_holds_room_until_the_job_is_done() {
        let b = Budgets::new(10, 3);
        let h1 = b.hold(&acct(1)).unwrap();
        let _h2 = b.hold(&acct(1)).unwrap();
        let room = b.room(0);
        assert_eq!(room.per_account, 3);
        assert_eq!(room.some, vec![(acct(1), 1)]);
        assert!(room.none.is_empty());
        // A held job's turn uses its hold, not more room.
        let p = match b.turn("x", &acct(1), Some(h1), 0) {
            Turn::Go(p) => p,
            other => panic!("{other:?}"),
        };
        assert_eq!(b.room(0).some, vec![(acct(1), 1)]);
        let _h3 = b.hold(&acct(1)).unwrap();
        assert!(b.hold(&acct(1)).is_none(), "three in hand");
        assert_eq!(b.room(0).none, vec![acct(1)]);
        assert!(matches!(b.turn("x", &acct(1), None, 0), Turn::AccountFull));
        drop(p);
        assert_eq!(b.room(0).some, vec![(acct(1), 1)]);
        assert_eq!(b.in_flight(), 0);
    }

    #[test]
    fn a_shorter_pause_does_not_cut_a_longer_one() {
        let b = Budgets::new(10, 10);
        b.pause(&acct(1), 9_000, 0);
        b.pause(&acct(1), 2_000, 0);
        assert!(matches!(
            b.turn("x", &acct(1), None, 5_000),
            Turn::Paused(9_000)
        ));
    }
}

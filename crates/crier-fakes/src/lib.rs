//! Stateful fakes of the networks crier cannot reach from its test machines, one module per
//! network, each written from the network's official API reference (cited at the top of its
//! module). A fake keeps what it was given (posts, uploads, containers), answers with the
//! network's JSON shapes, error bodies, rate-limit headers and status codes, enforces its
//! documented limits, runs the network's OAuth 2.0 server ([`kit::OAuthServer`]), and can be
//! told to fail, hang, lose an answer or rate-limit ([`kit::Faults`]).
//!
//! [`FakeNetwork`] is what the network conformance suite (`crier-worker/tests/conformance.rs`)
//! needs of a fake: a network is done when its connector passes that suite against its fake.

pub mod facebook;
pub mod instagram;
pub mod kit;
pub mod linkedin;
pub mod threads;
pub mod tiktok;
pub mod x;
pub mod youtube;

use std::sync::Arc;

use crier_core::Clock;
use crier_networks::{Network, OAuthClient};

pub use kit::{Fault, Faults, OAuthServer};

/// What a connector can publish, as the suite tries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Features {
    /// A post of text alone (YouTube and TikTok take only video).
    pub text: bool,
    /// Replies that make a thread.
    pub threads: bool,
    pub images: bool,
    pub video: bool,
}

/// One post as the fake holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakePost {
    /// The id the connector answered as `external_id`.
    pub id: String,
    /// The account (user, page, channel) it was posted as.
    pub author: String,
    pub text: String,
    /// The id of the post it replies to.
    pub reply_to: Option<String>,
    /// The media it carries, as the network's content types (`image/png`, `video/mp4`).
    pub media: Vec<String>,
}

/// A network's fake, as the conformance suite drives it.
#[async_trait::async_trait]
pub trait FakeNetwork: Send + Sync {
    /// The platform name (`x`, `linkedin`).
    fn platform(&self) -> &'static str;

    /// The fake's base URL (a connector's `HostedConfig::base`).
    fn base(&self) -> url::Url;

    /// The network's connector, pointed at this fake, on `clock`.
    fn connector(&self, clock: Arc<dyn Clock>) -> Arc<dyn Network>;

    /// The OAuth client the operator would configure for this network.
    fn client(&self) -> OAuthClient {
        kit::client()
    }

    fn features(&self) -> Features;

    /// Every post the fake holds, oldest first.
    fn posts(&self) -> Vec<FakePost>;

    fn faults(&self) -> &Faults;

    /// The method and path of the call that creates a post (the one whose answer the suite
    /// loses or rate-limits), as a [`Fault`] path (may end with `*`).
    fn publish_call(&self) -> (&'static str, String);

    /// A refusal in the network's shape saying "slow down" with its reset `reset_secs` from
    /// now, for the create call.
    fn rate_limited(&self, reset_secs: u64) -> Fault;

    /// Whether the network says when a rate limit resets (a header, a usage figure); where it
    /// does not, the connector's documented fallback pause stands.
    fn sends_reset(&self) -> bool {
        true
    }

    /// The network's documented errors for the create call, each with the code crier must
    /// map it to (`network_rejected`, `account_disconnected`, …).
    fn documented_errors(&self) -> Vec<(Fault, &'static str)>;

    /// The user revokes crier's access at the network: every token stops working.
    fn revoke_access(&self);

    /// Likes (or the network's nearest measure) given to a post, for metrics.
    fn like(&self, id: &str, n: u64);

    /// The fake's account(s) (user, channel, page) are followed by `n` from now on.
    fn set_followers(&self, n: u64);

    /// Whether the account the suite connects (the first of an approval) has a follower
    /// count its connector reads. LinkedIn members do not (see the LinkedIn connector's
    /// `followers`): their connector answers `None`.
    fn reports_followers(&self) -> bool {
        true
    }

    /// What the connector reads after [`FakeNetwork::set_followers`]`(n)`: `n`, or the
    /// network's rounding of it (YouTube rounds subscriber counts down to three significant
    /// figures); `None` where [`FakeNetwork::reports_followers`] says no.
    fn followers_read_as(&self, n: u64) -> Option<u64> {
        self.reports_followers().then_some(n)
    }
}

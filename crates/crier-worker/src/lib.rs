//! Workers that run inside `crier serve`: the publisher, which takes due publish jobs from the
//! durable queue and publishes each target exactly once, and the metrics collector.
//!
//! Exactly once, step by step, for each part of a target (a thread has several):
//! 1. If an earlier attempt at this part may have landed (recorded `in_flight` and never
//!    finished because we crashed, or `unknown` after a timeout), ask the network for our
//!    idempotency key first; if it has the part, take it and move on. Never re-post blindly.
//! 2. Record the attempt (`in_flight`) and extend the job's lease, then call the network.
//! 3. Record the result right after: `published` (and the part's id on the target), `failed`
//!    (retry with backoff and jitter, honouring `Retry-After`, until the last attempt, after
//!    which the target fails with its reason kept), `rate_limited` (a 429: retried the same
//!    way without spending the retry budget, for at most a day) or `unknown` (a timeout:
//!    reconcile next). A failed look-up is recorded too (`lookup_failed`, or `rate_limited`).
//! 4. When every part is out, the target is published, its job deleted and the post's status
//!    recomputed, in one transaction.

pub mod agents;
pub mod budget;
pub mod clips;
pub mod feeds;
pub mod metrics;
/// The SSRF-guarded outbound client (it lives with the network connectors, which use it too).
pub use crier_networks::http;
mod publisher;
mod runner;
pub mod tokens;
pub mod trending;
pub mod webhooks;

pub use publisher::{GIVE_UP_AFTER_MS, Processed, Publisher, WorkerConfig};

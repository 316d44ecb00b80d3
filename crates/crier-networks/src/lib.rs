//! Social networks behind one trait. Each declares its rules (how it counts length, its limits,
//! whether it threads) and how it publishes one part, finds a part by our idempotency key after
//! a lost answer, and reads metrics.
//!
//! Verified how: the built-in `sandbox` network (this crate, [`sandbox`]) is exercised end to
//! end by the test suites. Real networks get connectors here, each tested against a faithful
//! local server that speaks its documented protocol.

pub mod sandbox;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crier_core::text::{self, Counting};
use crier_store::{Account, Metrics};

/// A network's limits on what a post may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    pub platform: &'static str,
    pub counting: Counting,
    pub max_length: usize,
    pub max_media: usize,
    pub threads: bool,
    pub max_thread_parts: usize,
}

/// What is wrong with a post for one network: the field at fault and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// `body`, `thread[2]` or `media_ids`.
    pub field: String,
    pub message: String,
}

impl Rules {
    /// Checks the parts (body first, then the thread) and media of one target.
    pub fn check(&self, parts: &[String], media: usize) -> Result<(), Violation> {
        if parts.len() > 1 && !self.threads {
            return Err(Violation {
                field: "thread".into(),
                message: format!("{} does not support threads", self.platform),
            });
        }
        if parts.len() > self.max_thread_parts {
            return Err(Violation {
                field: "thread".into(),
                message: format!(
                    "{} takes at most {} parts in a thread",
                    self.platform, self.max_thread_parts
                ),
            });
        }
        for (i, part) in parts.iter().enumerate() {
            let field = if i == 0 {
                "body".to_owned()
            } else {
                format!("thread[{}]", i - 1)
            };
            if part.trim().is_empty() {
                return Err(Violation {
                    field,
                    message: "must not be empty".into(),
                });
            }
            let len = text::length(part, self.counting);
            if len > self.max_length {
                return Err(Violation {
                    field,
                    message: format!(
                        "is {len} characters as {} counts them; the limit is {}",
                        self.platform, self.max_length
                    ),
                });
            }
        }
        if media > self.max_media {
            return Err(Violation {
                field: "media_ids".into(),
                message: format!("{} takes at most {} media", self.platform, self.max_media),
            });
        }
        Ok(())
    }
}

/// One part as the network has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedPart {
    pub external_id: String,
    pub url: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// The network refused for now; try again (after `retry_after` if it said).
    #[error("{message}")]
    Transient {
        message: String,
        retry_after: Option<Duration>,
    },
    /// The network limits our rate; try after `retry_after`.
    #[error("rate limited by the network")]
    RateLimited { retry_after: Option<Duration> },
    /// No answer in time: the call may or may not have landed.
    #[error("the network did not answer in time")]
    Timeout,
    /// The network will never accept this as it is.
    #[error("{message}")]
    Permanent { code: String, message: String },
}

#[async_trait::async_trait]
pub trait Network: Send + Sync {
    fn rules(&self) -> &Rules;

    /// Publishes one part, as a reply to `reply_to` for thread parts. `idem_key` identifies this
    /// part for [`Network::lookup`].
    async fn publish(
        &self,
        account: &Account,
        text: &str,
        reply_to: Option<&str>,
        idem_key: &str,
    ) -> Result<PublishedPart, PublishError>;

    /// Finds the part published with `idem_key`, if the network has it.
    async fn lookup(
        &self,
        account: &Account,
        idem_key: &str,
    ) -> Result<Option<PublishedPart>, PublishError>;

    async fn metrics(&self, account: &Account, external_id: &str) -> Result<Metrics, PublishError>;
}

/// The networks this process knows, by platform name.
#[derive(Clone, Default)]
pub struct Networks(BTreeMap<&'static str, Arc<dyn Network>>);

impl Networks {
    pub fn with(mut self, network: Arc<dyn Network>) -> Self {
        self.0.insert(network.rules().platform, network);
        self
    }

    pub fn get(&self, platform: &str) -> Option<&Arc<dyn Network>> {
        self.0.get(platform)
    }

    pub fn platforms(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.0.keys().copied()
    }
}

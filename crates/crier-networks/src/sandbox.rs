//! The built-in sandbox network: posting stores the post in crier's own timeline for the
//! account, with a real external id and URL; threads are reply chains; metrics are simulated
//! and deterministic (a function of the post's id and age); and it can be told to fail, time
//! out or rate-limit the next N calls, so retries can be exercised.
//!
//! A `timeout` fault lands the post and then loses the answer, which is the hard case for
//! exactly-once publishing: the caller must ask [`Network::lookup`] before trying again.

use std::time::Duration;

use crier_core::Clock;
use crier_core::text::Counting;
use crier_store::{Account, FaultKind, Metrics, SandboxPost, Store};

use crate::{Network, PublishError, PublishedPart, Rules};

pub const PLATFORM: &str = "sandbox";

pub static RULES: Rules = Rules {
    platform: PLATFORM,
    counting: Counting::Graphemes,
    max_length: 300,
    max_media: 4,
    threads: true,
    max_thread_parts: 25,
};

pub struct Sandbox {
    store: Store,
    clock: std::sync::Arc<dyn Clock>,
    base_url: String,
}

impl Sandbox {
    pub fn new(store: Store, clock: std::sync::Arc<dyn Clock>) -> Self {
        Self {
            store,
            clock,
            base_url: "https://sandbox.crier.invalid".into(),
        }
    }

    fn part(&self, account: &Account, p: &SandboxPost) -> PublishedPart {
        PublishedPart {
            external_id: p.external_id.clone(),
            url: format!("{}/@{}/{}", self.base_url, account.handle, p.external_id),
        }
    }

    async fn injected_fault(
        &self,
        account: &Account,
    ) -> Result<Option<crier_store::Fault>, PublishError> {
        self.store
            .sandbox_take_fault(&account.id)
            .await
            .map_err(|e| transient(e.to_string()))
    }
}

fn transient(message: String) -> PublishError {
    PublishError::Transient {
        message,
        retry_after: None,
    }
}

fn retry_after(seconds: i64) -> Option<Duration> {
    (seconds > 0).then(|| Duration::from_secs(seconds as u64))
}

#[async_trait::async_trait]
impl Network for Sandbox {
    fn rules(&self) -> &Rules {
        &RULES
    }

    async fn publish(
        &self,
        account: &Account,
        text: &str,
        reply_to: Option<&str>,
        idem_key: &str,
    ) -> Result<PublishedPart, PublishError> {
        let fault = self.injected_fault(account).await?;
        match fault.as_ref().map(|f| f.kind) {
            Some(FaultKind::Error) => {
                return Err(PublishError::Transient {
                    message: "sandbox: injected error".into(),
                    retry_after: retry_after(fault.as_ref().map_or(0, |f| f.retry_after_seconds)),
                });
            }
            Some(FaultKind::RateLimit) => {
                return Err(PublishError::RateLimited {
                    retry_after: retry_after(fault.as_ref().map_or(0, |f| f.retry_after_seconds)),
                });
            }
            _ => {}
        }
        if let Some(parent) = reply_to {
            let exists = self
                .store
                .sandbox_get(&account.id, parent)
                .await
                .map_err(|e| transient(e.to_string()))?;
            if exists.is_none() {
                return Err(PublishError::Permanent {
                    code: "reply_target_missing".into(),
                    message: format!("sandbox: no post {parent} to reply to"),
                });
            }
        }
        let post = SandboxPost {
            external_id: crier_core::ids::new_id("sbx"),
            account_id: account.id.clone(),
            idem_key: idem_key.to_owned(),
            body: text.to_owned(),
            reply_to: reply_to.map(str::to_owned),
            created_at: self.clock.now_ms(),
        };
        self.store
            .sandbox_insert(&post)
            .await
            .map_err(|e| transient(e.to_string()))?;
        if fault.is_some() {
            // `timeout`: the post landed, the answer is lost.
            return Err(PublishError::Timeout);
        }
        Ok(self.part(account, &post))
    }

    async fn lookup(
        &self,
        account: &Account,
        idem_key: &str,
    ) -> Result<Option<PublishedPart>, PublishError> {
        let found = self
            .store
            .sandbox_lookup(&account.id, idem_key)
            .await
            .map_err(|e| transient(e.to_string()))?;
        Ok(found.map(|p| self.part(account, &p)))
    }

    async fn metrics(&self, account: &Account, external_id: &str) -> Result<Metrics, PublishError> {
        let post = self
            .store
            .sandbox_get(&account.id, external_id)
            .await
            .map_err(|e| transient(e.to_string()))?
            .ok_or_else(|| PublishError::Permanent {
                code: "not_found".into(),
                message: format!("sandbox: no post {external_id}"),
            })?;
        let age_hours = ((self.clock.now_ms() - post.created_at).max(0) / 3_600_000).min(24 * 30);
        Ok(simulated_metrics(external_id, age_hours))
    }
}

/// Deterministic metrics: a seed from the post id, growing with the post's age in hours.
pub fn simulated_metrics(external_id: &str, age_hours: i64) -> Metrics {
    let seed = external_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let base = (seed % 50) as i64 + 10;
    let grow = age_hours + 1;
    Metrics {
        impressions: base * 20 * grow,
        likes: base * grow / 2,
        reposts: base * grow / 10,
        replies: base * grow / 20,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulated_metrics_are_deterministic_and_grow() {
        let a = simulated_metrics("sbx_abc", 0);
        assert_eq!(a, simulated_metrics("sbx_abc", 0));
        let later = simulated_metrics("sbx_abc", 5);
        assert!(later.impressions > a.impressions && later.likes > a.likes);
        assert_ne!(a, simulated_metrics("sbx_abd", 0));
    }

    #[test]
    fn rules_name_the_field_at_fault() {
        let ok = vec!["hello".to_owned()];
        assert_eq!(RULES.check(&ok, 0), Ok(()));
        let long = vec!["x".repeat(301)];
        assert_eq!(RULES.check(&long, 0).unwrap_err().field, "body");
        let emoji = vec!["👨\u{200D}👩\u{200D}👧\u{200D}👦".repeat(300)];
        assert_eq!(
            RULES.check(&emoji, 0),
            Ok(()),
            "300 family emoji are 300 graphemes"
        );
        let thread = vec!["a".into(), "b".into(), "x".repeat(301)];
        assert_eq!(RULES.check(&thread, 0).unwrap_err().field, "thread[1]");
        assert_eq!(RULES.check(&ok, 5).unwrap_err().field, "media_ids");
        assert_eq!(
            RULES.check(&["  ".to_owned()], 0).unwrap_err().field,
            "body"
        );
    }
}

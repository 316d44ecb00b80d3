//! The built-in sandbox network: posting stores the post in crier's own timeline for the
//! account, with a real external id and URL; threads are reply chains; metrics are simulated
//! and deterministic (a function of the post's id and age); and it can be told to fail, time
//! out or rate-limit the next N calls, so retries can be exercised.
//!
//! A `timeout` fault lands the post and then loses the answer, which is the hard case for
//! exactly-once publishing: the caller must ask [`Network::lookup`] before trying again.

use std::sync::LazyLock;
use std::time::Duration;

use crier_core::Clock;
use crier_core::text::Counting;
use crier_store::{Account, FaultKind, Metrics, SandboxPost, Store};

use crate::{ConnectKind, MediaRules, Network, NetworkError, Part, PublishedPart, Rules, Session};

pub const PLATFORM: &str = "sandbox";

/// The limits of a typical network: 300 graphemes, threads of 25, four images or one video.
pub static RULES: LazyLock<Rules> = LazyLock::new(|| Rules {
    platform: PLATFORM,
    counting: Counting::Graphemes,
    max_length: 300,
    threads: true,
    max_thread_parts: 25,
    media: MediaRules {
        min_count: 0,
        max_count: 4,
        image_types: ["image/png", "image/jpeg", "image/gif", "image/webp"]
            .map(str::to_owned)
            .to_vec(),
        max_image_bytes: 5 * 1024 * 1024,
        max_image_side: 8192,
        video_types: ["video/mp4", "video/quicktime", "video/webm"]
            .map(str::to_owned)
            .to_vec(),
        max_video_bytes: 100 * 1024 * 1024,
        max_video_ms: 180_000,
        max_videos: 1,
        mix: false,
        max_alt_text: 2000,
    },
    options: Vec::new(),
    // Ours: the sandbox takes what Bluesky takes, with a bound of ours on the count.
    hashtags: crate::rules::HashtagRules {
        max_count: 10,
        recommended: 2,
        max_length: 64,
    },
});

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

    /// The account's simulated latency, waited out, and then its next injected fault, if any.
    async fn injected_fault(
        &self,
        account: &Account,
    ) -> Result<Option<crier_store::Fault>, NetworkError> {
        let (latency_ms, fault) = self
            .store
            .sandbox_take_fault(&account.id)
            .await
            .map_err(|e| transient(e.to_string()))?;
        if latency_ms > 0 {
            tokio::time::sleep(Duration::from_millis(latency_ms as u64)).await;
        }
        Ok(fault)
    }
}

fn transient(message: String) -> NetworkError {
    NetworkError::unavailable(message)
}

fn retry_after(seconds: i64) -> Option<Duration> {
    (seconds > 0).then(|| Duration::from_secs(seconds as u64))
}

#[async_trait::async_trait]
impl Network for Sandbox {
    fn rules(&self) -> &Rules {
        &RULES
    }

    fn connect_kind(&self) -> ConnectKind {
        ConnectKind::Instant
    }

    async fn publish(&self, s: Session<'_>, part: Part<'_>) -> Result<PublishedPart, NetworkError> {
        let account = s.account;
        let reply_to = part.thread.last().map(String::as_str);
        let fault = self.injected_fault(account).await?;
        match fault.as_ref().map(|f| f.kind) {
            Some(FaultKind::Error) => {
                return Err(NetworkError::Unavailable {
                    message: "sandbox: injected error".into(),
                    retry_after: retry_after(fault.as_ref().map_or(0, |f| f.retry_after_seconds)),
                });
            }
            Some(FaultKind::RateLimit) => {
                return Err(NetworkError::RateLimited {
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
                return Err(NetworkError::rejected(format!(
                    "sandbox: no post {parent} to reply to"
                )));
            }
        }
        let post = SandboxPost {
            external_id: crier_core::ids::new_id("sbx"),
            account_id: account.id.clone(),
            idem_key: part.idem_key.to_owned(),
            body: part.text.to_owned(),
            media_ids: part.media.iter().map(|m| m.meta.id.clone()).collect(),
            reply_to: reply_to.map(str::to_owned),
            created_at: self.clock.now_ms(),
        };
        self.store
            .sandbox_insert(&post)
            .await
            .map_err(|e| transient(e.to_string()))?;
        if fault.is_some() {
            // `timeout`: the post landed, the answer is lost.
            return Err(NetworkError::Timeout);
        }
        Ok(self.part(account, &post))
    }

    async fn lookup(
        &self,
        s: Session<'_>,
        part: Part<'_>,
    ) -> Result<Option<PublishedPart>, NetworkError> {
        let idem_key = part.idem_key;
        let account = s.account;
        let found = self
            .store
            .sandbox_lookup(&account.id, idem_key)
            .await
            .map_err(|e| transient(e.to_string()))?;
        Ok(found.map(|p| self.part(account, &p)))
    }

    async fn metrics(&self, s: Session<'_>, external_id: &str) -> Result<Metrics, NetworkError> {
        let account = s.account;
        let post = self
            .store
            .sandbox_get(&account.id, external_id)
            .await
            .map_err(|e| transient(e.to_string()))?
            .ok_or_else(|| NetworkError::rejected(format!("sandbox: no post {external_id}")))?;
        let age_hours = ((self.clock.now_ms() - post.created_at).max(0) / 3_600_000).min(24 * 30);
        Ok(simulated_metrics(external_id, age_hours))
    }

    async fn followers(&self, s: Session<'_>) -> Result<Option<u64>, NetworkError> {
        Ok(Some(simulated_followers(s.account, self.clock.now_ms())))
    }
}

/// Deterministic followers: a seed from the account id, growing by a few each day since it
/// was connected.
pub fn simulated_followers(account: &Account, now: i64) -> u64 {
    let seed = account.id.as_str().bytes().fold(0x8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let days = ((now - account.created_at).max(0) / 86_400_000) as u64;
    100 + seed % 900 + days * (1 + seed % 7)
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
        let first = |parts: &[String], media: &[crate::MediaMeta]| {
            RULES.check(parts, media).first().map(|v| v.field.clone())
        };
        let ok = vec!["hello".to_owned()];
        assert_eq!(first(&ok, &[]), None);
        let long = vec!["x".repeat(301)];
        assert_eq!(first(&long, &[]).as_deref(), Some("body"));
        assert_eq!(
            RULES.check(&long, &[])[0].rule,
            "sandbox.text.max_graphemes"
        );
        let emoji = vec!["👨\u{200D}👩\u{200D}👧\u{200D}👦".repeat(300)];
        assert_eq!(
            first(&emoji, &[]),
            None,
            "300 family emoji are 300 graphemes"
        );
        let thread = vec!["a".into(), "b".into(), "x".repeat(301)];
        assert_eq!(first(&thread, &[]).as_deref(), Some("thread[1]"));
        let image = crate::MediaMeta {
            id: "med_1".into(),
            content_type: "image/png".into(),
            size: 10,
            width: Some(1),
            height: Some(1),
            duration_ms: None,
            alt_text: None,
            filename: "a.png".into(),
        };
        let five = vec![image.clone(); 5];
        assert_eq!(first(&ok, &five).as_deref(), Some("media_ids"));
        assert_eq!(first(&["  ".to_owned()], &[]).as_deref(), Some("body"));
    }
}

//! Webhook delivery per the Standard Webhooks specification: `webhook-id` (the event id, kept
//! by every retry so receivers can deduplicate), `webhook-timestamp`, and `webhook-signature`
//! (`v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, one per live secret: during a secret
//! rotation's overlap both are sent).
//!
//! Attempts follow a schedule with jitter (immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h,
//! 10 h), honouring `Retry-After`; `410 Gone` disables the endpoint, and so does failing
//! without a single success for 5 days (with a `webhook_endpoint.disabled` event). Every
//! attempt is recorded with its status, latency and a bounded excerpt of the response.
//! Requests go through the SSRF-guarded client (`crate::http`) and follow no redirects.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::runner::{jitter, millis};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use crier_app::{Keyring, webhook_secrets};
use crier_core::Clock;
use crier_core::ids::DeliveryId;
use crier_store::{AttemptOutcome, Job, Store, WebhookAttempt};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tokio_util::sync::CancellationToken;

use crate::http;

#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub concurrency: usize,
    pub lease: Duration,
    pub timeout: Duration,
    pub poll: Duration,
    /// Delay before attempt n+1 after attempt n failed; its length is the number of attempts.
    pub schedule: Vec<Duration>,
    /// An endpoint failing without a success for this long is disabled.
    pub disable_after: Duration,
    pub allow_private_networks: bool,
    /// Bytes of the response kept with each attempt.
    pub excerpt_bytes: usize,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        let s = Duration::from_secs;
        Self {
            concurrency: 64,
            lease: s(60),
            timeout: s(15),
            poll: Duration::from_millis(200),
            schedule: vec![
                s(0),
                s(5),
                s(5 * 60),
                s(30 * 60),
                s(2 * 3600),
                s(5 * 3600),
                s(10 * 3600),
                s(10 * 3600),
            ],
            disable_after: s(5 * 24 * 3600),
            allow_private_networks: false,
            excerpt_bytes: 1024,
        }
    }
}

/// The `webhook-signature` value for one secret (`whsec_<base64>`), or `None` for a malformed
/// secret.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let key = STANDARD.decode(secret.strip_prefix("whsec_")?).ok()?;
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).ok()?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// A new endpoint secret: `whsec_` and 32 random bytes in base64.
pub fn new_secret() -> String {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).expect("the OS random number generator failed");
    format!("whsec_{}", STANDARD.encode(key))
}

/// How long a delivery whose signing secret does not open on this node waits before it is
/// tried again (by any node).
const SECRET_UNOPENED_WAIT_MS: i64 = 60_000;

#[derive(Clone)]
pub struct Deliverer {
    store: Store,
    clock: Arc<dyn Clock>,
    /// Opens the endpoints' signing secrets (`crier_app::webhook_secrets`).
    keyring: Keyring,
    config: WebhookConfig,
    client: reqwest::Client,
}

impl Deliverer {
    pub fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        keyring: Keyring,
        config: WebhookConfig,
    ) -> Self {
        let client = http::client(config.timeout, config.allow_private_networks);
        Self {
            store,
            clock,
            keyring,
            config,
            client,
        }
    }

    /// Delivers due jobs until `cancel`, `concurrency` at a time.
    pub async fn run(self, cancel: CancellationToken) {
        let claimer = self.clone();
        let worker = self.clone();
        crate::runner::run(
            self.config.concurrency,
            self.config.poll,
            None,
            cancel,
            move |free| {
                let me = claimer.clone();
                async move { me.claim(free).await }
            },
            move |(job, delivery)| {
                let me = worker.clone();
                async move {
                    me.deliver(&job, &delivery).await;
                }
            },
        )
        .await
    }

    /// Sends `key.expiring` once a minute for keys that expire within 7 days, until `cancel`.
    pub async fn run_key_expiry(self, cancel: CancellationToken) {
        loop {
            let now = self.clock.now_ms();
            if let Err(e) = self.store.emit_key_expiring(now, 7 * 86_400_000).await {
                tracing::warn!(error = %e, "key expiry check failed");
            }
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(Duration::from_secs(60)) => {}
            }
        }
    }

    async fn claim(&self, limit: u32) -> Vec<(Job, DeliveryId)> {
        crate::runner::claim_refs(
            &self.store,
            crier_store::JobKind::Webhook,
            self.clock.now_ms(),
            self.config.lease,
            limit,
            DeliveryId::parse,
        )
        .await
    }

    /// Delivers every job due now, concurrently; for tests and tools with an injected clock.
    pub async fn run_due(&self) -> Vec<AttemptOutcome> {
        let mut out = Vec::new();
        loop {
            let jobs = self.claim(256).await;
            if jobs.is_empty() {
                return out;
            }
            let mut set = tokio::task::JoinSet::new();
            for (job, delivery) in jobs {
                let me = self.clone();
                set.spawn(async move { me.deliver(&job, &delivery).await });
            }
            while let Some(r) = set.join_next().await {
                if let Ok(Some(o)) = r {
                    out.push(o);
                }
            }
        }
    }

    /// One attempt of one delivery; returns what became of it (`None` when storage failed and
    /// the job will come back after its lease).
    pub async fn deliver(&self, job: &Job, delivery: &DeliveryId) -> Option<AttemptOutcome> {
        match self.try_deliver(job, delivery).await {
            Ok(o) => Some(o),
            Err(e) => {
                tracing::warn!(delivery = %delivery, error = %e, "delivery failed on storage");
                None
            }
        }
    }

    async fn try_deliver(
        &self,
        job: &Job,
        delivery: &DeliveryId,
    ) -> crier_store::Result<AttemptOutcome> {
        let now = self.clock.now_ms();
        let Some((d, endpoint, event)) = self.store.delivery_context(delivery).await? else {
            self.store.drop_job(&job.id).await?;
            return Ok(AttemptOutcome::GiveUp);
        };
        let Some(endpoint) = endpoint.filter(|e| e.enabled) else {
            self.store
                .abandon_delivery(&job.id, &d.id, "the endpoint is disabled or deleted", now)
                .await?;
            return Ok(AttemptOutcome::GiveUp);
        };
        let body = serde_json::to_vec(&event.body()).expect("an event body");
        let timestamp = now / 1000;
        // A secret this server cannot open (or sign with) is not left out: nothing is sent
        // unsigned or signed with less than the receiver may expect. The delivery waits, with
        // no attempt counted against it or its endpoint, until this node has the key it was
        // sealed with (a node started with too few `secret_keys`; another node may take it).
        let secrets = webhook_secrets::signing_secrets(&self.keyring, &endpoint, now);
        let signatures: Option<Vec<String>> = secrets.as_ref().ok().and_then(|secrets| {
            secrets
                .iter()
                .map(|s| sign(s, event.id.as_str(), timestamp, &body))
                .collect()
        });
        let Some(signatures) = signatures else {
            let later = now + SECRET_UNOPENED_WAIT_MS;
            tracing::warn!(delivery = %d.id, endpoint = %endpoint.id,
                "webhook delivery waits: the endpoint's signing secret does not open with this \
                 node's secret_keys; give every node the keys secrets were sealed with");
            self.store.defer_job(job, later).await?;
            return Ok(AttemptOutcome::Retry(later));
        };
        let started = Instant::now();
        let checked = http::check_stored_url(&endpoint.url, self.config.allow_private_networks)
            .map_err(|e| format!("refused: {e}"));
        let result = match checked {
            Err(e) => Err(e),
            Ok(url) => self
                .client
                .post(url)
                .header("content-type", "application/json")
                .header("webhook-id", event.id.as_str())
                .header("webhook-timestamp", timestamp.to_string())
                .header("webhook-signature", signatures.join(" "))
                .body(body)
                .send()
                .await
                .map_err(|e| describe(&e)),
        };
        let attempt_no = d.attempts + 1;
        let mut attempt = WebhookAttempt {
            attempt: attempt_no,
            status: None,
            error: None,
            latency_ms: 0,
            response_excerpt: None,
            created_at: now,
        };
        let mut retry_after = None;
        match result {
            Ok(mut resp) => {
                attempt.status = Some(i64::from(resp.status().as_u16()));
                retry_after = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                let mut excerpt = Vec::new();
                while excerpt.len() < self.config.excerpt_bytes {
                    match resp.chunk().await {
                        Ok(Some(chunk)) => excerpt.extend_from_slice(&chunk),
                        _ => break,
                    }
                }
                excerpt.truncate(self.config.excerpt_bytes);
                attempt.response_excerpt = Some(excerpt_text(&excerpt, self.config.excerpt_bytes));
            }
            Err(e) => attempt.error = Some(e),
        }
        attempt.latency_ms = started.elapsed().as_millis() as i64;
        let outcome = self.outcome(&attempt, retry_after, endpoint.failing_since, now);
        self.store
            .record_delivery_attempt(&job.id, &d, &attempt, &outcome, now)
            .await?;
        Ok(outcome)
    }

    fn outcome(
        &self,
        attempt: &WebhookAttempt,
        retry_after: Option<Duration>,
        failing_since: Option<i64>,
        now: i64,
    ) -> AttemptOutcome {
        match attempt.status {
            Some(s) if (200..300).contains(&s) => return AttemptOutcome::Succeeded,
            Some(410) => return AttemptOutcome::Disable("the endpoint answered 410 Gone".into()),
            _ => {}
        }
        let failing_for = now - failing_since.unwrap_or(now);
        if failing_for >= millis(self.config.disable_after) {
            return AttemptOutcome::Disable(format!(
                "every delivery failed for {} days",
                self.config.disable_after.as_secs() / 86_400
            ));
        }
        let Some(delay) = self.config.schedule.get(attempt.attempt as usize) else {
            return AttemptOutcome::GiveUp;
        };
        let mut ms = jitter(millis(*delay), 10);
        if let Some(ra) = retry_after {
            ms = ms.max(millis(ra.min(Duration::from_secs(24 * 3600))));
        }
        AttemptOutcome::Retry(now + ms.max(0))
    }
}

/// The response's first bytes as text of at most `max` bytes: a cut inside a multi-byte
/// character, or bytes that are not UTF-8, become U+FFFD (3 bytes) when decoded, which could
/// take the text past its bound, so it ends at the last whole character within it. A NUL
/// (a binary answer), which PostgreSQL cannot store in text, becomes U+FFFD too.
fn excerpt_text(bytes: &[u8], max: usize) -> String {
    let mut text = String::from_utf8_lossy(bytes).replace('\0', "\u{FFFD}");
    if text.len() > max {
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}

fn describe(e: &reqwest::Error) -> String {
    use std::error::Error;
    let mut msg = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "could not connect".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = e.source();
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg.chars().take(500).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_the_standard_webhooks_example() {
        // The example from the Standard Webhooks specification.
        let sig = sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(
            sig.as_deref(),
            Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        );
        assert_eq!(sign("nope", "id", 1, b""), None);
    }

    #[test]
    fn excerpts_stay_within_their_bound() {
        let euros = "€".repeat(400);
        let cut = &euros.as_bytes()[..1024];
        assert_eq!(excerpt_text(cut, 1024), "€".repeat(341));
        assert!(excerpt_text(&[0xff; 1024], 1024).len() <= 1024);
        assert_eq!(excerpt_text(b"ok", 1024), "ok");
        assert_eq!(excerpt_text(b"o\0k\n", 1024), "o\u{FFFD}k\n");
        assert!(excerpt_text(&[0; 1024], 1024).len() <= 1024);
    }

    #[test]
    fn new_secrets_are_whsec_base64_of_32_bytes() {
        let s = new_secret();
        let raw = STANDARD.decode(s.strip_prefix("whsec_").unwrap()).unwrap();
        assert_eq!(raw.len(), 32);
        assert_ne!(s, new_secret());
    }
}

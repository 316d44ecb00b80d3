//! Webhook endpoints' signing secrets at rest: sealed with the server's secret keys
//! (`secret_keys`), bound to their endpoint, as network tokens are. A copy of the database
//! alone no longer lets anyone sign events that a user's endpoint would trust.
//!
//! A secret is shown once, when it is made (`whsec_` and 32 random bytes); only the sealed
//! value is stored. A stored `whsec_…` is one kept before secrets were sealed: it still signs,
//! and [`reseal`] seals it. After the operator puts a new key in front of `secret_keys`,
//! [`reseal`] (run by every worker node with the token refresher) seals every secret again
//! with it, so the old key can go (see [`crate::reseal`]); it also forgets previous secrets
//! whose overlap ended.

use crier_core::ids::WebhookId;
use crier_store::Endpoint;

use crate::reseal::{PAGE, Resealed};
use crate::secrets::{Keyring, SealError};
use crate::{App, AppResult};

/// What a secret kept before sealing starts with (also every secret's own prefix).
const PLAIN_PREFIX: &str = "whsec_";

fn aad(endpoint: &WebhookId) -> String {
    format!("webhook-secret:{endpoint}")
}

/// `secret` (`whsec_…`) as stored for `endpoint`.
pub fn seal(keyring: &Keyring, endpoint: &WebhookId, secret: &str) -> String {
    keyring.seal(secret.as_bytes(), &aad(endpoint))
}

/// The secret a stored value holds: opened with the keyring, or as kept before sealing.
pub fn open(keyring: &Keyring, endpoint: &WebhookId, stored: &str) -> Result<String, SealError> {
    if stored.starts_with(PLAIN_PREFIX) {
        return Ok(stored.to_owned());
    }
    let plain = keyring.open(stored, &aad(endpoint))?;
    String::from_utf8(plain).map_err(|_| SealError)
}

/// The secrets `endpoint` signs with at `now` (the current one, and the previous one while its
/// overlap lasts), opened; `Err` when one does not open with this server's keys.
pub fn signing_secrets(
    keyring: &Keyring,
    endpoint: &Endpoint,
    now: i64,
) -> Result<Vec<String>, SealError> {
    endpoint
        .signing_secrets(now)
        .into_iter()
        .map(|stored| open(keyring, &endpoint.id, stored))
        .collect()
}

/// Seals again, with the current key, the secrets of endpoints stored otherwise (with an
/// older key, or before sealing), looking at up to ten pages by id, and forgets previous
/// secrets whose overlap ended. Secrets this server cannot open are left, and do not stop the
/// others.
pub async fn reseal(app: &App) -> AppResult<Resealed> {
    let keyring = app.keyring();
    let store = app.store();
    store.forget_previous_secrets(app.clock().now_ms()).await?;
    let prefix = format!("v1.{}.", keyring.current_id());
    let mut after = String::new();
    let mut out = Resealed::default();
    for _ in 0..10 {
        let page = store
            .endpoints_sealed_otherwise(&prefix, &after, PAGE)
            .await?;
        let Some(last) = page.last() else { break };
        after = last.id.to_string();
        for e in &page {
            let again = |stored: &str| -> Result<String, SealError> {
                if stored.starts_with(&prefix) {
                    return Ok(stored.to_owned());
                }
                Ok(seal(keyring, &e.id, &open(keyring, &e.id, stored)?))
            };
            let (Ok(secret), Ok(previous)) = (
                again(&e.secret),
                e.previous_secret.as_deref().map(again).transpose(),
            ) else {
                out.unopened += 1;
                continue;
            };
            let old = (e.secret.as_str(), e.previous_secret.as_deref());
            if store
                .reseal_endpoint(&e.id, old, (&secret, previous.as_deref()))
                .await?
            {
                out.sealed_again += 1;
            }
        }
        if page.len() < PAGE as usize {
            break;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_for_its_own_endpoint_only() {
        let keyring = Keyring::ephemeral();
        let (a, b) = (WebhookId::generate(), WebhookId::generate());
        let stored = seal(&keyring, &a, "whsec_abc");
        assert!(!stored.contains("whsec_abc"));
        assert_eq!(open(&keyring, &a, &stored).unwrap(), "whsec_abc");
        assert!(
            open(&keyring, &b, &stored).is_err(),
            "bound to its endpoint"
        );
        assert!(open(&Keyring::ephemeral(), &a, &stored).is_err());
        // Kept before sealing: used as it is.
        assert_eq!(open(&keyring, &a, "whsec_old").unwrap(), "whsec_old");
        assert!(open(&keyring, &a, "something else").is_err());
    }
}

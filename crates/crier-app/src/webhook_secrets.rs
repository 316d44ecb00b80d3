//! Webhook endpoints' signing secrets at rest: sealed with the server's secret keys
//! (`secret_keys`), bound to their endpoint, as network tokens are. A copy of the database
//! alone no longer lets anyone sign events that a user's endpoint would trust.
//!
//! A secret is shown once, when it is made (`whsec_` and 32 random bytes); only the sealed
//! value is stored. A stored `whsec_…` is one kept before secrets were sealed: it still signs,
//! and worker nodes seal it ([`seal_plain`]). After the operator puts a new key in front of `secret_keys` on
//! every node, [`reseal`] (through `crier admin secret-keys reseal`) seals every secret again
//! with it, so the old key can go (see [`crate::reseal`]). Previous secrets are forgotten once
//! their overlap ends ([`forget_ended`], run by every worker node).

use crier_core::ids::WebhookId;
use crier_store::Endpoint;

use crate::reseal::{self, One, PAGE, Resealed};
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

/// Forgets previous secrets whose overlap ended (they sign nothing any more); returns how
/// many. Run by every worker node with the token refresher.
pub async fn forget_ended(app: &App) -> AppResult<u64> {
    Ok(app
        .store()
        .forget_previous_secrets(app.clock().now_ms())
        .await?)
}

/// Seals again, with the current key, the secrets of endpoints stored otherwise (with an
/// older key, or before sealing), page by page by id. A secret this server cannot open is
/// left, and does not stop the others (nor the endpoint's other secret).
pub async fn reseal(app: &App) -> AppResult<Resealed> {
    seal_where(app, false).await
}

/// Seals, with the current key, the secrets kept as shown by an earlier version (`whsec_…`),
/// and nothing else: run by every worker node with the token refresher. (Moving values from
/// one key to another is the operator's step, [`reseal`], once every node has the new key.)
pub async fn seal_plain(app: &App) -> AppResult<Resealed> {
    seal_where(app, true).await
}

/// [`reseal`] (`plain_only`: only the values stored as shown, [`seal_plain`]).
async fn seal_where(app: &App, plain_only: bool) -> AppResult<Resealed> {
    let keyring = app.keyring();
    let store = app.store();
    let prefix = &keyring.current_prefix();
    let moves = move |stored: &str| {
        if plain_only {
            stored.starts_with(PLAIN_PREFIX)
        } else {
            !stored.starts_with(prefix)
        }
    };
    reseal::paged(
        PAGE,
        String::new(),
        |after: String| async move {
            Ok(if plain_only {
                store.endpoints_stored_plain(&after, PAGE).await?
            } else {
                store
                    .endpoints_sealed_otherwise(prefix, &after, PAGE)
                    .await?
            })
        },
        |e: &Endpoint| e.id.to_string(),
        |e: Endpoint| async move {
            // Each value on its own: (sealed again or as it was, whether it opened).
            let again = |stored: &str| -> (String, bool) {
                if !moves(stored) {
                    return (stored.to_owned(), true);
                }
                match open(keyring, &e.id, stored) {
                    Ok(plain) => (seal(keyring, &e.id, &plain), true),
                    Err(SealError) => (stored.to_owned(), false),
                }
            };
            let (secret, opened) = again(&e.secret);
            let previous = e.previous_secret.as_deref().map(again);
            let all_opened = opened && previous.as_ref().is_none_or(|(_, o)| *o);
            let previous = previous.map(|(p, _)| p);
            let old = (e.secret.as_str(), e.previous_secret.as_deref());
            let new = (secret.as_str(), previous.as_deref());
            let done = new != old && store.reseal_endpoint(&e.id, old, new).await?;
            Ok(match (all_opened, done) {
                (false, _) => One::Unopened,
                (true, true) => One::SealedAgain,
                (true, false) => One::Changed,
            })
        },
    )
    .await
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

//! Browsers that signed in before (OWASP's "device cookies"): a guesser cannot lock a person
//! out of their own account.
//!
//! Every sign-in spends one of its account's login budget (5 a minute, 50 a day), so about 50
//! wrong passwords a day for a known email used to answer `429` to its owner too. Now a
//! successful sign-in in the dashboard leaves a cookie naming this browser and the account, and
//! a later sign-in to that account that presents it spends the browser's own budget (the same
//! 5 and 50) instead of the account's: the guesser, who has no such cookie, exhausts only the
//! budget shared by browsers the account does not know.
//!
//! The cookie is sealed with the server's keyring ([`crier_app::Keyring`], shared by every
//! node and rotated with it) and bound to the account's normalised email by associated data, so
//! it cannot be made without a successful sign-in, does not reveal the email, and opens for no
//! other account. It holds a random id (the browser's budget is keyed by it) and when it was
//! made; it lasts [`LIFETIME_MS`], and each successful sign-in replaces it with a new one.

use crier_app::Keyring;

/// The cookie's name.
pub const COOKIE: &str = "crier_browser";

/// How long a browser stays known after its last successful sign-in: 180 days.
pub const LIFETIME_MS: i64 = 180 * 86_400 * 1000;

/// The associated data binding a browser's cookie to one account.
fn bound_to(email: &str) -> String {
    format!("browser:{}", crier_store::users::email_key(email))
}

/// A new cookie value for a browser that just signed in to `email`'s account.
pub fn issue(keyring: &Keyring, email: &str, now_ms: i64) -> String {
    let mut plain = [0u8; 24];
    getrandom::fill(&mut plain[..16]).expect("the OS random source");
    plain[16..].copy_from_slice(&now_ms.to_be_bytes());
    keyring.seal(&plain, &bound_to(email))
}

/// The id of the browser whose cookie `value` is, when it was issued for `email`'s account,
/// under a key of `keyring`, and less than [`LIFETIME_MS`] ago; `None` for anything else (a
/// made-up, altered, expired or another account's cookie: the attempt spends the account's
/// budget, as without a cookie).
pub fn open(keyring: &Keyring, value: &str, email: &str, now_ms: i64) -> Option<[u8; 16]> {
    // A sealed value of 24 bytes is about 90 characters; anything much longer is not one.
    if value.len() > 200 {
        return None;
    }
    let plain = keyring.open(value, &bound_to(email)).ok()?;
    let plain: [u8; 24] = plain.try_into().ok()?;
    let issued = i64::from_be_bytes(plain[16..].try_into().ok()?);
    if issued > now_ms + 60_000 || now_ms - issued >= LIFETIME_MS {
        return None;
    }
    plain[..16].try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cookie_opens_only_for_its_account_its_keyring_and_its_lifetime() {
        let keys = Keyring::ephemeral();
        let now = 1_800_000_000_000;
        let c = issue(&keys, "Ada@Example.com", now);
        let id = open(&keys, &c, "ada@example.com", now).expect("the same account");
        assert_eq!(open(&keys, &c, "ADA@example.com", now + 1000), Some(id));
        assert_ne!(
            open(
                &keys,
                &issue(&keys, "ada@example.com", now),
                "ada@example.com",
                now
            ),
            Some(id),
            "each sign-in makes a new browser id"
        );
        assert_eq!(open(&keys, &c, "bob@example.com", now), None);
        assert_eq!(
            open(&Keyring::ephemeral(), &c, "ada@example.com", now),
            None
        );
        assert!(open(&keys, &c, "ada@example.com", now + LIFETIME_MS - 1).is_some());
        assert_eq!(open(&keys, &c, "ada@example.com", now + LIFETIME_MS), None);
        assert_eq!(open(&keys, &c, "ada@example.com", now - 120_000), None);
        let mut altered = c.clone().into_bytes();
        let last = altered.len() - 2;
        altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(altered).unwrap();
        assert_eq!(open(&keys, &altered, "ada@example.com", now), None);
        assert_eq!(open(&keys, "", "ada@example.com", now), None);
        assert_eq!(
            open(&keys, &"v1.".repeat(1000), "ada@example.com", now),
            None
        );
        // A rotated keyring still opens what the older key sealed.
        let newer = Keyring::parse(&Keyring::generate_spec("next"))
            .unwrap()
            .with_older(&keys);
        assert_eq!(newer.current_id(), "next");
        assert_eq!(open(&newer, &c, "ada@example.com", now), Some(id));
    }
}

//! The API key format: `sk_live_` or `sk_test_`, 30 base62 characters from the OS CSPRNG, then
//! 6 base62 characters encoding the CRC32 of everything before them.
//!
//! The checksum lets us (and leak scanners) refuse a mistyped or made-up key without touching
//! storage; it is public, so it is no secret and proves nothing about validity. What proves a
//! key is its SHA-256 digest matching a stored one. The secret itself is only ever held in
//! [`SecretKey`], whose `Debug` is redacted.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::base62;

pub const LIVE_PREFIX: &str = "sk_live_";
pub const TEST_PREFIX: &str = "sk_test_";
pub const RANDOM_LEN: usize = 30;
pub const CHECKSUM_LEN: usize = 6;
pub const KEY_LEN: usize = LIVE_PREFIX.len() + RANDOM_LEN + CHECKSUM_LEN;
/// How many leading characters identify a key in lists (`sk_live_4fQz`).
pub const DISPLAY_PREFIX_LEN: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyMode {
    Live,
    Test,
}

impl KeyMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Live => "live",
            Self::Test => "test",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "live" => Some(Self::Live),
            "test" => Some(Self::Test),
            _ => None,
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Self::Live => LIVE_PREFIX,
            Self::Test => TEST_PREFIX,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyFormatError {
    #[error("the key does not have the shape of a crier API key")]
    Shape,
    #[error("the key's checksum does not match")]
    Checksum,
}

/// A whole API key. Shown to its owner once; never logged, never stored.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey(String);

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({}…)", self.display_prefix())
    }
}

impl SecretKey {
    /// A new key with 30 characters of OS randomness (about 178 bits).
    pub fn generate(mode: KeyMode) -> Self {
        let mut s = String::with_capacity(KEY_LEN);
        s.push_str(mode.prefix());
        push_random(&mut s, RANDOM_LEN);
        let crc = crc32fast::hash(s.as_bytes());
        base62::encode_fixed(crc as u128, CHECKSUM_LEN, &mut s);
        Self(s)
    }

    /// Checks shape and checksum; no storage involved.
    pub fn parse(s: &str) -> Result<Self, KeyFormatError> {
        check_format(s)?;
        Ok(Self(s.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn mode(&self) -> KeyMode {
        if self.0.starts_with(LIVE_PREFIX) {
            KeyMode::Live
        } else {
            KeyMode::Test
        }
    }

    pub fn display_prefix(&self) -> &str {
        &self.0[..DISPLAY_PREFIX_LEN]
    }

    pub fn digest(&self) -> KeyDigest {
        KeyDigest::of(&self.0)
    }
}

/// Appends `n` base62 characters from the OS CSPRNG (about 5.95 bits each). Rejection sampling
/// keeps every character uniform over the 62 symbols.
pub fn push_random(s: &mut String, n: usize) {
    let target = s.len() + n;
    let mut buf = [0u8; 64];
    while s.len() < target {
        getrandom::fill(&mut buf).expect("the OS random number generator failed");
        for b in buf {
            if b < 248 && s.len() < target {
                s.push(base62::ALPHABET[(b % 62) as usize] as char);
            }
        }
    }
}

/// A bearer secret other than an API key: `prefix` then 32 random base62 characters (about
/// 190 bits): session tokens (`sess_`), invitation tokens (`inv_`), device codes (`dc_`).
/// Stored only as their [`KeyDigest`].
pub fn random_token(prefix: &str) -> String {
    let mut s = String::with_capacity(prefix.len() + TOKEN_RANDOM_LEN);
    s.push_str(prefix);
    push_random(&mut s, TOKEN_RANDOM_LEN);
    s
}

/// Random characters in a [`random_token`].
pub const TOKEN_RANDOM_LEN: usize = 32;

/// Whether `s` has the shape of a [`random_token`] with `prefix` (cheap, no storage).
pub fn is_token(s: &str, prefix: &str) -> bool {
    s.len() == prefix.len() + TOKEN_RANDOM_LEN
        && s.starts_with(prefix)
        && s.as_bytes()[prefix.len()..]
            .iter()
            .all(|c| base62::digit(*c).is_some())
}

/// Validates a presented key without allocating; returns its mode.
pub fn check_format(s: &str) -> Result<KeyMode, KeyFormatError> {
    let b = s.as_bytes();
    if b.len() != KEY_LEN {
        return Err(KeyFormatError::Shape);
    }
    let mode = if s.starts_with(LIVE_PREFIX) {
        KeyMode::Live
    } else if s.starts_with(TEST_PREFIX) {
        KeyMode::Test
    } else {
        return Err(KeyFormatError::Shape);
    };
    let body = &b[LIVE_PREFIX.len()..];
    if !body.iter().all(|c| base62::digit(*c).is_some()) {
        return Err(KeyFormatError::Shape);
    }
    let (payload, checksum) = b.split_at(KEY_LEN - CHECKSUM_LEN);
    let mut stated: u64 = 0;
    for c in checksum {
        stated = stated * 62 + base62::digit(*c).expect("checked above") as u64;
    }
    if stated != crc32fast::hash(payload) as u64 {
        return Err(KeyFormatError::Checksum);
    }
    Ok(mode)
}

/// SHA-256 of a key: the only form in which a key is stored or cached.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyDigest(pub [u8; 32]);

impl KeyDigest {
    pub fn of(key: &str) -> Self {
        Self(Sha256::digest(key.as_bytes()).into())
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(s: &str) -> Option<Self> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(Self(out))
    }

    /// Constant-time comparison, for the rare place a digest is compared outside a hash map.
    pub fn ct_eq(&self, other: &Self) -> bool {
        use subtle::ConstantTimeEq;
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyDigest({}…)", &hex::encode(&self.0[..4]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn generated_keys_have_the_contract_shape() {
        for mode in [KeyMode::Live, KeyMode::Test] {
            let k = SecretKey::generate(mode);
            assert_eq!(k.expose().len(), 44);
            assert_eq!(k.mode(), mode);
            assert_eq!(check_format(k.expose()), Ok(mode));
            assert_eq!(k.display_prefix().len(), 12);
            assert!(k.display_prefix().starts_with(mode.prefix()));
            assert!(!format!("{k:?}").contains(&k.expose()[12..]));
        }
        assert_ne!(
            SecretKey::generate(KeyMode::Live),
            SecretKey::generate(KeyMode::Live)
        );
    }

    #[test]
    fn known_bad_shapes_are_refused() {
        let k = SecretKey::generate(KeyMode::Live);
        let s = k.expose();
        assert_eq!(check_format(""), Err(KeyFormatError::Shape));
        assert_eq!(check_format(&s[..43]), Err(KeyFormatError::Shape));
        assert_eq!(
            check_format(&s.replace("sk_live_", "sk_prod_")),
            Err(KeyFormatError::Shape)
        );
        let mut bad = s.to_owned();
        bad.replace_range(20..21, "-");
        assert_eq!(check_format(&bad), Err(KeyFormatError::Shape));
    }

    #[test]
    fn digest_round_trips_through_hex() {
        let d = KeyDigest::of("x");
        assert_eq!(KeyDigest::from_hex(&d.to_hex()), Some(d));
        assert!(d.ct_eq(&d));
        assert_eq!(KeyDigest::from_hex("zz"), None);
    }

    proptest! {
        #[test]
        fn parser_never_panics(s in ".{0,80}") {
            let _ = check_format(&s);
        }

        #[test]
        fn parser_never_panics_on_near_keys(s in "sk_(live|test)_[0-9A-Za-z]{30,40}") {
            let _ = check_format(&s);
        }

        #[test]
        fn any_single_changed_character_fails(pos in 0usize..KEY_LEN, repl in "[0-9A-Za-z_]") {
            let key = SecretKey::generate(KeyMode::Live);
            let mut chars: Vec<char> = key.expose().chars().collect();
            let r = repl.chars().next().unwrap();
            prop_assume!(chars[pos] != r);
            chars[pos] = r;
            let changed: String = chars.into_iter().collect();
            prop_assert!(check_format(&changed).is_err(), "{changed} passed");
        }
    }
}

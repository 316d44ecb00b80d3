//! Secrets at rest: network tokens, PKCE verifiers and registered clients' secrets are sealed
//! with XChaCha20-Poly1305 before the store sees them, and bound to what they belong to by
//! associated data (an account's network identity, a state's hash), so a sealed value copied to
//! another row does not open.
//!
//! A sealed value is `v1.{key id}.{base64url(nonce ‖ ciphertext)}`. The keyring holds the
//! current key (which seals) and older ones (which still open), so the key can be rotated: add
//! a new key first in `CRIER_SECRET_KEYS`, keep the old one after it until every value was
//! re-sealed (a reconnect or token refresh re-seals with the current key).

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};

/// The keys that seal and open secrets at rest.
#[derive(Clone)]
pub struct Keyring {
    current: String,
    keys: BTreeMap<String, XChaCha20Poly1305>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("current", &self.current)
            .field("key_ids", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyringError {
    #[error(
        "secret keys are `id=base64url(32 bytes)` separated by commas, the current one first: {0}"
    )]
    Format(String),
    #[error("could not read or create the secret key file {path}: {message}")]
    File { path: String, message: String },
}

/// A sealed value that does not open: a wrong or missing key, or tampered data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a sealed secret does not open (unknown key id or tampered value)")]
pub struct SealError;

impl Keyring {
    /// From `id=key,id=key…` (keys base64url, 32 bytes), the current key first.
    pub fn parse(spec: &str) -> Result<Self, KeyringError> {
        let mut keys = BTreeMap::new();
        let mut current = None;
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (id, key) = item
                .split_once('=')
                .ok_or_else(|| KeyringError::Format("an item has no `=`".into()))?;
            let id = id.trim();
            if id.is_empty()
                || id.len() > 32
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(KeyringError::Format(format!(
                    "key id `{id}` must be 1 to 32 letters, digits, `-` or `_`"
                )));
            }
            let raw = B64
                .decode(key.trim().trim_end_matches('='))
                .map_err(|_| KeyringError::Format(format!("key `{id}` is not base64url")))?;
            let raw: [u8; 32] = raw
                .try_into()
                .map_err(|_| KeyringError::Format(format!("key `{id}` is not 32 bytes")))?;
            if keys
                .insert(id.to_owned(), XChaCha20Poly1305::new(&Key::from(raw)))
                .is_some()
            {
                return Err(KeyringError::Format(format!("key id `{id}` appears twice")));
            }
            current.get_or_insert_with(|| id.to_owned());
        }
        let current = current.ok_or_else(|| KeyringError::Format("no key given".into()))?;
        Ok(Self { current, keys })
    }

    /// A new random key's spec, `id=key`.
    pub fn generate_spec(id: &str) -> String {
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw).expect("the OS random number generator failed");
        format!("{id}={}", B64.encode(raw))
    }

    /// The keyring in `path`, creating the file with one new key (mode 0600) if it does not
    /// exist. Returns whether it was created, so the caller can tell the operator to back it up.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), KeyringError> {
        let err = |e: std::io::Error| KeyringError::File {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        match std::fs::read_to_string(path) {
            Ok(spec) => Ok((Self::parse(spec.trim())?, false)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let spec = Self::generate_spec("k1");
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                use std::io::Write;
                let mut file = options.open(path).map_err(err)?;
                file.write_all(format!("{spec}\n").as_bytes())
                    .and_then(|()| file.sync_all())
                    .map_err(err)?;
                Ok((Self::parse(&spec)?, true))
            }
            Err(e) => Err(err(e)),
        }
    }

    /// A keyring of one random key, for tests and tools.
    pub fn ephemeral() -> Self {
        Self::parse(&Self::generate_spec("test")).expect("a generated key")
    }

    /// This keyring with `older`'s keys added after its own (to open what they sealed), for
    /// rotations; ids already here win.
    pub fn with_older(mut self, older: &Keyring) -> Self {
        for (id, key) in &older.keys {
            self.keys.entry(id.clone()).or_insert_with(|| key.clone());
        }
        self
    }

    /// Every key id, the current one included.
    pub fn key_ids(&self) -> Vec<&str> {
        self.keys.keys().map(String::as_str).collect()
    }

    pub fn current_id(&self) -> &str {
        &self.current
    }

    /// What every value sealed with the current key starts with: a value that does not was
    /// sealed with another key (or not sealed at all).
    pub fn current_prefix(&self) -> String {
        format!("v1.{}.", self.current)
    }

    /// `sealed` opened and sealed again with the current key, bound to the same `aad` (after a
    /// rotation).
    pub fn seal_again(&self, sealed: &str, aad: &str) -> Result<String, SealError> {
        Ok(self.seal(&self.open(sealed, aad)?, aad))
    }

    /// Seals `plaintext`, bound to `aad`.
    pub fn seal(&self, plaintext: &[u8], aad: &str) -> String {
        let cipher = &self.keys[&self.current];
        let mut nonce = [0u8; 24];
        getrandom::fill(&mut nonce).expect("the OS random number generator failed");
        let ct = cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: aad.as_bytes(),
                },
            )
            .expect("XChaCha20-Poly1305 seals any length we give it");
        let mut raw = nonce.to_vec();
        raw.extend_from_slice(&ct);
        format!("{}{}", self.current_prefix(), B64.encode(raw))
    }

    /// Opens a value [`Keyring::seal`] made with the same `aad`.
    pub fn open(&self, sealed: &str, aad: &str) -> Result<Vec<u8>, SealError> {
        let mut it = sealed.splitn(3, '.');
        let (Some("v1"), Some(id), Some(data)) = (it.next(), it.next(), it.next()) else {
            return Err(SealError);
        };
        let cipher = self.keys.get(id).ok_or(SealError)?;
        let raw = B64.decode(data).map_err(|_| SealError)?;
        if raw.len() < 24 {
            return Err(SealError);
        }
        let (nonce, ct) = raw.split_at(24);
        let nonce: [u8; 24] = nonce.try_into().map_err(|_| SealError)?;
        cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: ct,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| SealError)
    }

    /// Seals a value as JSON.
    pub fn seal_json<T: serde::Serialize>(&self, value: &T, aad: &str) -> String {
        let json = serde_json::to_vec(value).expect("a serialisable value");
        self.seal(&json, aad)
    }

    pub fn open_json<T: serde::de::DeserializeOwned>(
        &self,
        sealed: &str,
        aad: &str,
    ) -> Result<T, SealError> {
        serde_json::from_slice(&self.open(sealed, aad)?).map_err(|_| SealError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key_and_associated_data() {
        let ring = Keyring::ephemeral();
        let sealed = ring.seal(b"token", "acct_1");
        assert!(sealed.starts_with("v1.test."));
        assert!(!sealed.contains("token"));
        assert_eq!(ring.open(&sealed, "acct_1").unwrap(), b"token");
        assert_eq!(ring.open(&sealed, "acct_2"), Err(SealError));
        assert_ne!(
            sealed,
            ring.seal(b"token", "acct_1"),
            "a fresh nonce each time"
        );
        let other = Keyring::ephemeral();
        assert_eq!(other.open(&sealed, "acct_1"), Err(SealError));
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            ring.open(std::str::from_utf8(&tampered).unwrap(), "acct_1"),
            Err(SealError)
        );
        assert_eq!(ring.open("v1.test", "acct_1"), Err(SealError));
        assert_eq!(ring.open("garbage", "acct_1"), Err(SealError));
    }

    #[test]
    fn rotation_keeps_old_values_open() {
        let old = Keyring::generate_spec("k1");
        let ring1 = Keyring::parse(&old).unwrap();
        let sealed = ring1.seal(b"x", "a");
        let ring2 = Keyring::parse(&format!("{},{old}", Keyring::generate_spec("k2"))).unwrap();
        assert_eq!(ring2.current_id(), "k2");
        assert_eq!(ring2.open(&sealed, "a").unwrap(), b"x");
        assert!(ring2.seal(b"x", "a").starts_with("v1.k2."));
    }

    #[test]
    fn bad_specs_are_refused() {
        for spec in ["", "k1", "k1=short", "bad id=AAAA", "k1=!!!"] {
            assert!(Keyring::parse(spec).is_err(), "{spec}");
        }
        let k = Keyring::generate_spec("k1");
        assert!(Keyring::parse(&format!("{k},{k}")).is_err());
    }

    #[test]
    fn a_key_file_is_created_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret-keys");
        let (ring, created) = Keyring::load_or_create(&path).unwrap();
        assert!(created);
        let (again, created) = Keyring::load_or_create(&path).unwrap();
        assert!(!created);
        let sealed = ring.seal(b"x", "a");
        assert_eq!(again.open(&sealed, "a").unwrap(), b"x");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}

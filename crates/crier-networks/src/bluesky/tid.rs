//! The record key of a part: a TID derived from the part's idempotency key, so every attempt
//! at one part targets the same record (`app.bsky.feed.post/{rkey}`) and the repository itself
//! refuses a second copy.
//!
//! A TID is 13 characters of base32-sortable (`234567abcdefghijklmnopqrstuvwxyz`) encoding a
//! 64-bit integer: the top bit 0, 53 bits of microseconds since the epoch, 10 bits of clock id.
//! Ours takes both from SHA-256 of the key. The timestamp is kept inside 2020-01-01 + 2^47 µs
//! (about 4.5 years, so before mid-2024): always a plausible past time, never one in the future
//! that an indexer might hold back. Record keys only need to be unique per collection in one
//! repository; 57 bits of hash make a collision between two parts of one account negligible.

use sha2::{Digest, Sha256};

const ALPHABET: &[u8; 32] = b"234567abcdefghijklmnopqrstuvwxyz";
/// 2020-01-01T00:00:00Z in microseconds.
const BASE_US: u64 = 1_577_836_800_000_000;

pub fn from_key(idem_key: &str) -> String {
    let digest = Sha256::digest(idem_key.as_bytes());
    let h = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
    let micros = BASE_US + (h >> 17) % (1 << 47);
    let clock_id = h & 0x3ff;
    encode((micros << 10) | clock_id)
}

fn encode(mut v: u64) -> String {
    let mut out = [0u8; 13];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(v & 31) as usize];
        v >>= 5;
    }
    String::from_utf8(out.to_vec()).expect("ASCII")
}

/// The TID syntax (for record keys we read back).
pub fn is_tid(s: &str) -> bool {
    s.len() == 13
        && s.bytes().all(|b| ALPHABET.contains(&b))
        && b"234567abcdefghij".contains(&s.as_bytes()[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_valid_and_distinct() {
        let a = from_key("tgt_1:0");
        assert_eq!(a, from_key("tgt_1:0"));
        assert!(is_tid(&a), "{a}");
        assert_ne!(a, from_key("tgt_1:1"));
        for i in 0..2000 {
            let t = from_key(&format!("k{i}"));
            assert!(is_tid(&t), "{t}");
            // The timestamp is in [2020, 2024.5).
            let v = t.bytes().fold(0u64, |acc, b| {
                (acc << 5) | ALPHABET.iter().position(|x| *x == b).unwrap() as u64
            });
            let micros = v >> 10;
            assert!((BASE_US..BASE_US + (1 << 47)).contains(&micros));
        }
        assert!(!is_tid("1234567890123"));
        assert!(!is_tid("zzzzzzzzzzzzz"), "top bit set");
    }
}

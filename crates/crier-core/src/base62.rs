//! Fixed-width base62 in ASCII order (`0-9A-Za-z`), so that encoded numbers sort like the
//! numbers themselves. Used by ids (time-ordered) and by the key checksum.

pub const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Writes `value` as exactly `width` base62 digits (most significant first) into `out`.
/// Digits beyond `width` are dropped, so callers pick a width that holds their range.
pub fn encode_fixed(mut value: u128, width: usize, out: &mut String) {
    let mut buf = [b'0'; 32];
    assert!(width <= buf.len(), "base62 width {width} too large");
    for slot in buf[..width].iter_mut().rev() {
        *slot = ALPHABET[(value % 62) as usize];
        value /= 62;
    }
    out.extend(buf[..width].iter().map(|b| *b as char));
}

/// The value of one base62 digit, or `None` for any other byte.
pub fn digit(b: u8) -> Option<u32> {
    match b {
        b'0'..=b'9' => Some((b - b'0') as u32),
        b'A'..=b'Z' => Some((b - b'A') as u32 + 10),
        b'a'..=b'z' => Some((b - b'a') as u32 + 36),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_width_keeps_order() {
        let mut prev = String::new();
        for v in [
            0u128,
            1,
            61,
            62,
            3843,
            3844,
            u32::MAX as u128,
            u128::MAX / 2,
            u128::MAX,
        ] {
            let mut s = String::new();
            encode_fixed(v, 22, &mut s);
            assert_eq!(s.len(), 22);
            assert!(s > prev, "{s} should sort after {prev}");
            prev = s;
        }
    }

    #[test]
    fn digits_round_trip() {
        for (i, b) in ALPHABET.iter().enumerate() {
            assert_eq!(digit(*b), Some(i as u32));
        }
        assert_eq!(digit(b'_'), None);
    }
}

//! How each network counts the length of a post. They disagree, and a post that fits one can
//! be refused by another, so validation counts per target:
//!
//! - **Graphemes** (Bluesky, the sandbox): user-perceived characters, so a family emoji made of
//!   seven code points joined by ZWJ counts as one, and `e` + a combining accent as one.
//! - **Graphemes with links as 23** (Mastodon): every `http(s)://` link counts as 23.
//! - **Weighted** (X, twitter-text v3): text is NFC-normalised; code points in the Latin and
//!   general punctuation ranges weigh 1, everything else 2, an emoji sequence 2, a link 23.
//! - **Code points** (networks that count Unicode scalar values).

use unicode_normalization::UnicodeNormalization;
use unicode_segmentation::UnicodeSegmentation;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counting {
    Graphemes,
    GraphemesLinks23,
    Weighted,
    CodePoints,
}

/// The length a link counts for on networks that shorten links.
pub const LINK_LENGTH: usize = 23;

pub fn length(text: &str, counting: Counting) -> usize {
    match counting {
        Counting::Graphemes => text.graphemes(true).count(),
        Counting::CodePoints => text.chars().count(),
        Counting::GraphemesLinks23 => with_links(text, |s| s.graphemes(true).count()),
        Counting::Weighted => {
            let nfc: String = text.nfc().collect();
            with_links(&nfc, weighted)
        }
    }
}

/// Counts `text` with each link as [`LINK_LENGTH`] and the rest with `count`.
fn with_links(text: &str, count: impl Fn(&str) -> usize) -> usize {
    let mut total = 0;
    let mut rest = text;
    while let Some(start) = find_link(rest) {
        total += count(&rest[..start]);
        let end = rest[start..]
            .find(char::is_whitespace)
            .map_or(rest.len(), |e| start + e);
        total += LINK_LENGTH;
        rest = &rest[end..];
    }
    total + count(rest)
}

fn find_link(s: &str) -> Option<usize> {
    s.match_indices("http").map(|(i, _)| i).find(|&i| {
        // A link starts a word, has a scheme, and something after the scheme.
        let after = &s[i..];
        let scheme_len = if after.starts_with("https://") {
            8
        } else if after.starts_with("http://") {
            7
        } else {
            return false;
        };
        (i == 0 || s[..i].ends_with(char::is_whitespace))
            && after[scheme_len..]
                .chars()
                .next()
                .is_some_and(|c| !c.is_whitespace())
    })
}

fn weighted(text: &str) -> usize {
    text.graphemes(true)
        .map(|g| {
            if is_emoji(g) {
                2
            } else {
                g.chars().map(char_weight).sum()
            }
        })
        .sum()
}

fn char_weight(c: char) -> usize {
    match c as u32 {
        0..=4351 | 8192..=8205 | 8208..=8223 | 8242..=8247 => 1,
        _ => 2,
    }
}

fn is_emoji(g: &str) -> bool {
    g.chars().any(|c| {
        matches!(c as u32,
            0x1F000..=0x1FAFF | 0x2600..=0x27BF | 0x2B00..=0x2BFF)
    }) || g.contains('\u{FE0F}')
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAMILY: &str = "👨\u{200D}👩\u{200D}👧\u{200D}👦";
    const E_ACUTE_COMBINING: &str = "e\u{0301}";

    #[test]
    fn graphemes_count_what_people_see() {
        assert_eq!(length("hello", Counting::Graphemes), 5);
        assert_eq!(length(FAMILY, Counting::Graphemes), 1);
        assert_eq!(length(FAMILY, Counting::CodePoints), 7);
        assert_eq!(length(E_ACUTE_COMBINING, Counting::Graphemes), 1);
        assert_eq!(length(E_ACUTE_COMBINING, Counting::CodePoints), 2);
        assert_eq!(
            length("🇩🇪", Counting::Graphemes),
            1,
            "a flag is two regional indicators"
        );
        assert_eq!(length("👍🏽", Counting::Graphemes), 1, "skin tone modifier");
    }

    #[test]
    fn links_count_as_23_where_networks_shorten_them() {
        let long = format!("see https://example.com/{} now", "a".repeat(100));
        assert_eq!(length(&long, Counting::GraphemesLinks23), 4 + 23 + 4);
        assert_eq!(length("http://x.io", Counting::GraphemesLinks23), 23);
        assert_eq!(
            length(
                "two https://a.io and http://b.io",
                Counting::GraphemesLinks23
            ),
            4 + 23 + 5 + 23
        );
        // Not a link: no host, or glued to a word.
        assert_eq!(length("https://", Counting::GraphemesLinks23), 8);
        assert_eq!(length("xhttps://a.io", Counting::GraphemesLinks23), 13);
        assert_eq!(
            length("xhttps://a.io https://b.io", Counting::GraphemesLinks23),
            14 + 23
        );
        assert_eq!(length(&long, Counting::Graphemes), long.chars().count());
    }

    #[test]
    fn weighted_counting_follows_twitter_text() {
        assert_eq!(length("hello", Counting::Weighted), 5);
        assert_eq!(length("日本語", Counting::Weighted), 6, "CJK weighs 2");
        assert_eq!(
            length(FAMILY, Counting::Weighted),
            2,
            "an emoji sequence weighs 2"
        );
        assert_eq!(length("🙂", Counting::Weighted), 2);
        assert_eq!(
            length(E_ACUTE_COMBINING, Counting::Weighted),
            1,
            "NFC composes e + accent into é"
        );
        assert_eq!(
            length("a https://example.com/very/long/path b", Counting::Weighted),
            2 + 23 + 2
        );
        assert_eq!(
            length("“quoted”", Counting::Weighted),
            8,
            "general punctuation weighs 1"
        );
    }
}

//! Rich-text facets: links, mentions and hashtags found in a post's text, each with its span as
//! UTF-8 byte offsets (`byteStart` inclusive, `byteEnd` exclusive), which is how the AT Protocol
//! addresses text (not characters, not UTF-16 units).
//!
//! Detection follows the official client's rules in spirit: a token starts at the text's start
//! or after whitespace or an opening parenthesis; trailing punctuation is not part of it. Only
//! `http(s)://` links are linked (a bare domain stays text); a mention is `@` and a handle with
//! at least one dot; a tag is `#` and up to 64 characters, not all digits.

/// What a span of the text is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Feature {
    Link(String),
    /// The handle, without the `@`; resolved to a DID before publishing.
    Mention(String),
    /// The tag, without the `#`.
    Tag(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
    pub feature: Feature,
}

/// The longest tag, in characters (the lexicon's limit is 640 bytes / 64 graphemes).
const MAX_TAG_CHARS: usize = 64;

/// Handles are at most 253 characters (the DNS name limit).
const MAX_HANDLE: usize = 253;

fn starts_token(text: &str, at: usize) -> bool {
    text[..at]
        .chars()
        .next_back()
        .is_none_or(|c| c.is_whitespace() || c == '(')
}

/// The end of the run of non-whitespace characters from `at`.
fn run_end(text: &str, at: usize) -> usize {
    text[at..]
        .char_indices()
        .find(|(_, c)| c.is_whitespace())
        .map_or(text.len(), |(i, _)| at + i)
}

fn trim_trailing_punct(s: &str) -> &str {
    s.trim_end_matches(['.', ',', ';', ':', '!', '?', '"', '\''])
}

/// Every link, mention and tag in `text`, in order, without overlaps.
pub fn detect(text: &str) -> Vec<Span> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < text.len() {
        let rest = &text[i..];
        let c = rest.chars().next().expect("in bounds");
        if starts_token(text, i)
            && let Some(span) = link_at(text, i)
                .or_else(|| mention_at(text, i))
                .or_else(|| tag_at(text, i))
        {
            i = span.end;
            out.push(span);
            continue;
        }
        i += c.len_utf8();
    }
    out
}

fn link_at(text: &str, at: usize) -> Option<Span> {
    let rest = &text[at..];
    let lower = rest.get(..8).unwrap_or(rest).to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return None;
    }
    let mut candidate = trim_trailing_punct(&text[at..run_end(text, at)]);
    // A closing parenthesis belongs to the link only when the link opened one.
    while candidate.ends_with(')')
        && candidate.matches('(').count() < candidate.matches(')').count()
    {
        candidate = trim_trailing_punct(&candidate[..candidate.len() - 1]);
    }
    let parsed = url::Url::parse(candidate).ok()?;
    parsed.host_str().filter(|h| !h.is_empty())?;
    Some(Span {
        start: at,
        end: at + candidate.len(),
        feature: Feature::Link(candidate.to_owned()),
    })
}

fn mention_at(text: &str, at: usize) -> Option<Span> {
    let handle_start = at + text[at..].strip_prefix('@').map(|_| 1)?;
    let len = text[handle_start..]
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'.' || *b == b'-')
        .count();
    let handle = text[handle_start..handle_start + len].trim_end_matches(['.', '-']);
    if !is_handle(handle) {
        return None;
    }
    Some(Span {
        start: at,
        end: handle_start + handle.len(),
        feature: Feature::Mention(handle.to_ascii_lowercase()),
    })
}

/// The handle syntax: dot-separated labels of letters, digits and inner hyphens, at least two,
/// the last not starting with a digit.
pub fn is_handle(handle: &str) -> bool {
    if handle.is_empty() || handle.len() > MAX_HANDLE {
        return false;
    }
    let labels: Vec<&str> = handle.split('.').collect();
    if labels.len() < 2 {
        return false;
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    labels.iter().all(|l| label_ok(l))
        && !labels
            .last()
            .is_some_and(|l| l.starts_with(|c: char| c.is_ascii_digit()))
}

fn tag_at(text: &str, at: usize) -> Option<Span> {
    let rest = &text[at..];
    let marker = if rest.starts_with('#') {
        1
    } else if rest.starts_with('＃') {
        '＃'.len_utf8()
    } else {
        return None;
    };
    let body_start = at + marker;
    let run = &text[body_start..run_end(text, body_start)];
    let tag = run.trim_end_matches(|c: char| c.is_ascii_punctuation());
    if tag.is_empty()
        || tag.chars().count() > MAX_TAG_CHARS
        || tag.chars().all(|c| c.is_ascii_digit())
        || tag.starts_with('\u{fe0f}')
    {
        return None;
    }
    Some(Span {
        start: at,
        end: body_start + tag.len(),
        feature: Feature::Tag(tag.to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(text: &str) -> Vec<(usize, usize, Feature)> {
        detect(text)
            .into_iter()
            .map(|s| (s.start, s.end, s.feature))
            .collect()
    }

    #[test]
    fn offsets_are_utf8_bytes() {
        // "é" is 2 bytes, "👋" 4: the link starts at byte 12, not character 8.
        let text = "héllo 👋 https://example.com/a?b=c.";
        let s = spans(text);
        assert_eq!(
            s,
            vec![(12, 37, Feature::Link("https://example.com/a?b=c".into()))]
        );
        assert_eq!(&text[12..37], "https://example.com/a?b=c");
    }

    #[test]
    fn links_mentions_and_tags() {
        let text =
            "hi @alice.test and @Bob.example.com! see (https://x.org/p_(1)) #rust #2024 #été, #";
        let s = spans(text);
        let got: Vec<&str> = s.iter().map(|(a, b, _)| &text[*a..*b]).collect();
        assert_eq!(
            got,
            vec![
                "@alice.test",
                "@Bob.example.com",
                "https://x.org/p_(1)",
                "#rust",
                "#été"
            ]
        );
        assert_eq!(s[1].2, Feature::Mention("bob.example.com".into()));
        assert_eq!(s[4].2, Feature::Tag("été".into()));
    }

    #[test]
    fn tokens_need_a_boundary_and_a_valid_shape() {
        assert!(spans("mail me@alice.test").is_empty(), "not after a letter");
        assert!(spans("@alice alone").is_empty(), "a handle has a dot");
        assert!(
            spans("@alice.123").is_empty(),
            "the last label is not numeric"
        );
        assert!(spans("a#tag").is_empty());
        assert!(spans("#123").is_empty(), "all digits is not a tag");
        assert!(spans(&format!("#{}", "x".repeat(65))).is_empty());
        assert!(spans("ftp://example.com").is_empty());
        assert!(spans("https://").is_empty());
        assert_eq!(spans(&format!("#{}", "x".repeat(64))).len(), 1);
        assert_eq!(
            spans("@alice.test."),
            vec![(0, 11, Feature::Mention("alice.test".into()))]
        );
    }
}

//! The commentary of a post in LinkedIn's "little text format"
//! (learn.microsoft.com/linkedin/marketing/community-management/shares/little-text-format).
//!
//! In `little`, `\ | { } @ [ ] ( ) < > # * _ ~` are reserved: unescaped, LinkedIn parses them
//! as elements or, worse, cuts the post at the first one it cannot parse. So the text a user
//! wrote is escaped with a backslash before each reserved character, except for what the user
//! meant as `little` elements, which pass through as written:
//!
//! - a mention, `@[Name](urn:li:person:…)` or `@[Name](urn:li:organization:…)`;
//! - a hashtag, `#` directly followed by a letter or digit (`#rust`);
//! - a link, `http://` or `https://` up to the next whitespace (escaping inside it would break
//!   the link LinkedIn makes of it).

/// The reserved characters of `little`.
pub const RESERVED: &[char] = &[
    '\\', '|', '{', '}', '@', '[', ']', '(', ')', '<', '>', '#', '*', '_', '~',
];

/// `text` as `little` commentary (see the module).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        let kept = mention_len(rest)
            .or_else(|| link_len(rest))
            .or_else(|| hashtag_len(rest));
        if let Some(n) = kept {
            out.push_str(&rest[..n]);
            rest = &rest[n..];
            continue;
        }
        if RESERVED.contains(&c) {
            out.push('\\');
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// The text a `little` commentary shows (escapes removed; mentions as written).
pub fn unescape(little: &str) -> String {
    let mut out = String::with_capacity(little.len());
    let mut chars = little.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// The length of a mention at the start of `s`: `@[name](urn:li:person|organization:id)`,
/// the name without `]` or a line break, the id without `)` or whitespace.
fn mention_len(s: &str) -> Option<usize> {
    let after = s.strip_prefix("@[")?;
    let close = after.find("](")?;
    let name = &after[..close];
    if name.is_empty() || name.contains(['[', ']', '\n']) {
        return None;
    }
    let urn_start = &after[close + 2..];
    let end = urn_start.find(')')?;
    let urn = &urn_start[..end];
    let id = urn
        .strip_prefix("urn:li:person:")
        .or_else(|| urn.strip_prefix("urn:li:organization:"))?;
    if id.is_empty() || id.contains(char::is_whitespace) {
        return None;
    }
    Some(2 + close + 2 + end + 1)
}

/// The length of a link at the start of `s`.
fn link_len(s: &str) -> Option<usize> {
    if !(s.starts_with("https://") || s.starts_with("http://")) {
        return None;
    }
    Some(s.find(char::is_whitespace).unwrap_or(s.len()))
}

/// The length of a hashtag's `#` at the start of `s` (the word after it is escaped as text).
fn hashtag_len(s: &str) -> Option<usize> {
    let after = s.strip_prefix('#')?;
    after
        .chars()
        .next()
        .filter(|c| c.is_alphanumeric())
        .map(|_| 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_characters_are_escaped_but_mentions_hashtags_and_links_pass() {
        assert_eq!(
            escape("a (b) [c] *d* _e_ ~f~ <g> {h} |i| \\j"),
            "a \\(b\\) \\[c\\] \\*d\\* \\_e\\_ \\~f\\~ \\<g\\> \\{h\\} \\|i\\| \\\\j"
        );
        assert_eq!(escape("mail me@example.com"), "mail me\\@example.com");
        assert_eq!(
            escape("hi @[Crier Co](urn:li:organization:2414183) and @[Ann](urn:li:person:a1B2)!"),
            "hi @[Crier Co](urn:li:organization:2414183) and @[Ann](urn:li:person:a1B2)!"
        );
        assert_eq!(
            escape("@[x](urn:li:group:1)"),
            "\\@\\[x\\]\\(urn:li:group:1\\)"
        );
        assert_eq!(escape("#rust # 1 #"), "#rust \\# 1 \\#");
        assert_eq!(
            escape("see https://x.example/a_(b) now (ok)"),
            "see https://x.example/a_(b) now \\(ok\\)"
        );
        assert_eq!(escape("Launch day: crier ships"), "Launch day: crier ships");
    }

    #[test]
    fn unescaping_gives_back_the_text() {
        for t in [
            "a (b) \\ _x_ #tag @me",
            "plain",
            "@[A](urn:li:person:1) (x)",
        ] {
            assert_eq!(unescape(&escape(t)), t);
        }
    }
}

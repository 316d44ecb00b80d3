//! Text helpers of the domain, pure and unit-tested here.
//!
//! **Lengths.** How each network counts the length of a post. They disagree, and a post that
//! fits one can be refused by another, so validation counts per target:
//!
//! - **Graphemes** (Bluesky, the sandbox): user-perceived characters, so a family emoji made of
//!   seven code points joined by ZWJ counts as one, and `e` + a combining accent as one.
//! - **Graphemes with links as 23** (Mastodon): every `http(s)://` link counts as 23.
//! - **Weighted** (X, twitter-text v3): text is NFC-normalised; code points in the Latin and
//!   general punctuation ranges weigh 1, everything else 2, an emoji sequence 2, a link 23.
//! - **Code points** (networks that count Unicode scalar values).
//!
//! **Plain text from feeds.** [`html_to_text`] turns an entry's HTML into one line in a single
//! pass (hostile documents must not make it quadratic), [`truncate`] shortens at a word
//! boundary, and [`render`] / [`render_fitting`] fill a post template, shortening the summary
//! and then the title until the text fits.

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

// ---------------------------------------------------------------------------------------------
// Plain text from feeds
// ---------------------------------------------------------------------------------------------

/// One line: runs of whitespace and control characters (a feed may carry NUL, which
/// PostgreSQL cannot store, or escape sequences) become one space, none at either end.
pub fn collapse_whitespace(s: &str) -> String {
    s.split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Elements whose boundaries do not separate words.
const INLINE: &[&str] = &[
    "a", "abbr", "b", "bdi", "bdo", "cite", "code", "data", "dfn", "em", "i", "kbd", "mark", "q",
    "s", "samp", "small", "span", "strong", "sub", "sup", "time", "u", "var", "wbr",
];

/// HTML to one line of plain text: tags dropped (block boundaries become spaces), scripts,
/// styles and comments removed, character references decoded, whitespace collapsed.
pub fn html_to_text(html: &str) -> String {
    // ASCII lowercasing keeps every byte offset, so one lowercased copy serves every look-up
    // (lowercasing the rest of the document at each tag made hostile feeds quadratic).
    let lower = html.to_ascii_lowercase();
    let mut out = String::with_capacity(html.len());
    let mut at = 0;
    // Once a `<` has no `>` after it, none of the later ones has either.
    let mut gt_ahead = true;
    while let Some(lt) = html[at..].find('<').map(|i| at + i) {
        out.push_str(&html[at..lt]);
        let tag = &lower[lt..];
        let skip_to = |end: &str| tag.find(end).map_or(html.len(), |i| lt + i + end.len());
        at = if tag.starts_with("<!--") {
            out.push(' ');
            skip_to("-->")
        } else if tag.starts_with("<script") {
            out.push(' ');
            skip_to("</script>")
        } else if tag.starts_with("<style") {
            out.push(' ');
            skip_to("</style>")
        } else if let Some(gt) = gt_ahead.then(|| tag.find('>')).flatten() {
            let name: String = tag[1..gt]
                .trim_start_matches('/')
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            if !INLINE.contains(&name.as_str()) {
                out.push(' ');
            }
            lt + gt + 1
        } else {
            // A lone `<` is text.
            gt_ahead = false;
            out.push('<');
            lt + 1
        };
    }
    out.push_str(&html[at..]);
    collapse_whitespace(&decode_entities(&out))
}

fn decode_entities(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let tail = &rest[amp..];
        let decoded = tail.get(1..tail.len().min(12)).and_then(|t| {
            let end = t.find(';')?;
            let name = &t[..end];
            let c = match name {
                "amp" => '&',
                "lt" => '<',
                "gt" => '>',
                "quot" => '"',
                "apos" => '\'',
                "nbsp" => ' ',
                "hellip" => '…',
                "mdash" => '—',
                "ndash" => '–',
                "lsquo" => '‘',
                "rsquo" => '’',
                "ldquo" => '“',
                "rdquo" => '”',
                _ => {
                    let code = if let Some(hex) =
                        name.strip_prefix("#x").or_else(|| name.strip_prefix("#X"))
                    {
                        u32::from_str_radix(hex, 16).ok()?
                    } else {
                        name.strip_prefix('#')?.parse().ok()?
                    };
                    char::from_u32(code)?
                }
            };
            Some((c, end + 2))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &tail[len..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// At most `max` characters, cut at a word boundary when one is near, ending in `…`.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    if max <= 1 {
        return String::new();
    }
    let cut: String = s.chars().take(max - 1).collect();
    let at_boundary = s.chars().nth(max - 1).is_some_and(char::is_whitespace);
    let cut = match cut.rfind(char::is_whitespace) {
        Some(i) if !at_boundary && i >= cut.len() * 2 / 3 => &cut[..i],
        _ => &cut[..],
    };
    let cut = cut.trim_end_matches(|c: char| c.is_whitespace() || ",;:-–—".contains(c));
    if cut.is_empty() {
        String::new()
    } else {
        format!("{cut}…")
    }
}

/// `s` trimmed, then [`truncate`]d.
pub fn clip(s: &str, max: usize) -> String {
    truncate(s.trim(), max)
}

/// Whether an identifier another party gave (a network's post or account id, a URL, an OAuth
/// client id) can be stored and matched as it is: at most `max` bytes and no control
/// characters (PostgreSQL cannot store a NUL in text).
pub fn is_storable(s: &str, max: usize) -> bool {
    s.len() <= max && !s.contains(char::is_control)
}

/// Text from another party (a network's error, a feed's parse error) as crier records it: its
/// control characters (NUL, which PostgreSQL cannot store in text, escape sequences, line
/// breaks) as spaces, then [`clip`]ped to `max` characters.
pub fn clip_line(s: &str, max: usize) -> String {
    let line: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    clip(&line, max)
}

/// The template with `{title}`, `{link}` and `{summary}` replaced (once, left to right, so a
/// value that contains a placeholder stays as it is), trimmed.
pub fn render(template: &str, title: &str, link: &str, summary: &str) -> String {
    let mut out = String::with_capacity(template.len() + title.len() + link.len() + summary.len());
    let mut rest = template;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let (value, len) = [("{title}", title), ("{link}", link), ("{summary}", summary)]
            .into_iter()
            .find(|(p, _)| tail.starts_with(p))
            .map(|(p, v)| (v, p.len()))
            .unwrap_or(("{", 1));
        out.push_str(value);
        rest = &tail[len..];
    }
    out.push_str(rest);
    out.trim().to_owned()
}

/// Renders the template so that `fits` accepts it, shortening the summary first and then the
/// title, each at a word boundary (the link never). Returns the text and whether it fits.
pub fn render_fitting(
    template: &str,
    title: &str,
    link: &str,
    summary: &str,
    fits: impl Fn(&str) -> bool,
) -> (String, bool) {
    let full = render(template, title, link, summary);
    if fits(&full) {
        return (full, true);
    }
    if template.contains("{summary}")
        && let Some(text) = largest_fitting(summary.chars().count(), &fits, |n| {
            render(template, title, link, &truncate(summary, n))
        })
    {
        return (text, true);
    }
    if template.contains("{title}")
        && let Some(text) = largest_fitting(title.chars().count(), &fits, |n| {
            render(template, &truncate(title, n), link, "")
        })
    {
        return (text, true);
    }
    (full, false)
}

/// The text `build(n)` for the largest `n` in `0..=max` that fits, if even `build(0)` does.
fn largest_fitting(
    max: usize,
    fits: impl Fn(&str) -> bool,
    build: impl Fn(usize) -> String,
) -> Option<String> {
    let first = build(0);
    if !fits(&first) {
        return None;
    }
    let last = build(max);
    if fits(&last) {
        return Some(last);
    }
    let (mut lo, mut hi) = (0, max);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if fits(&build(mid)) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Some(build(lo))
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

    #[test]
    fn html_becomes_plain_text() {
        assert_eq!(
            html_to_text(
                "<p>Hello <b>wor</b>ld &amp; <a href=\"x\">friends</a></p><p>Next&#8230; &#x2014; done</p>"
            ),
            "Hello world & friends Next… — done"
        );
        assert_eq!(
            html_to_text("a<script>alert('<p>')</script>b<!-- <c> -->c<style>p{}</style>"),
            "a b c"
        );
        assert_eq!(html_to_text("1 < 2 &bogus; &"), "1 < 2 &bogus; &");
        assert_eq!(html_to_text("a < b <!-- c"), "a < b");
    }

    /// Hostile summaries: every shape here once took time quadratic in the document's size
    /// (the rest of the document lowercased or searched again at each `<`); 200,000 of each
    /// would not finish in any test run.
    #[test]
    fn hostile_html_is_read_in_one_pass() {
        let n = 200_000;
        // Byte 16 of each tag falls inside an `é`.
        let accented = "<p>éx".repeat(n);
        assert_eq!(
            html_to_text(&accented)
                .chars()
                .filter(|c| *c == 'é')
                .count(),
            n
        );
        let comments = "<!---->x".repeat(n);
        assert_eq!(html_to_text(&comments).matches('x').count(), n);
        let scripts = "<SCRIPT></script>x".repeat(n);
        assert_eq!(html_to_text(&scripts).matches('x').count(), n);
        let lone = "<".repeat(n);
        assert_eq!(html_to_text(&lone), lone);
        assert_eq!(
            decode_entities("&lt;b&gt; &quot;x&quot; &#39;y&#39;"),
            "<b> \"x\" 'y'"
        );
    }

    #[test]
    fn truncation_cuts_at_words() {
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(
            truncate("The quick brown fox jumps over the lazy dog", 20),
            "The quick brown fox…"
        );
        assert_eq!(truncate("abcdefghij", 5), "abcd…");
        assert_eq!(truncate("abc", 1), "");
        assert!(truncate(&"é".repeat(100), 10).chars().count() <= 10);
    }

    #[test]
    fn templates_render_once_and_fit() {
        assert_eq!(
            render("{title} {link} {x} {", "A {link}", "https://e.x/1", "s"),
            "A {link} https://e.x/1 {x} {"
        );
        let fits = |t: &str| t.chars().count() <= 40;
        let (text, ok) = render_fitting(
            "{title}: {summary} {link}",
            "Title",
            "https://e.x/a",
            "one two three four five six seven eight nine ten",
            fits,
        );
        assert!(ok);
        assert!(text.chars().count() <= 40, "{text}");
        assert!(text.starts_with("Title: one two"), "{text}");
        assert!(text.ends_with("… https://e.x/a"), "{text}");
        // Without room for any summary, the title shrinks; the link stays whole.
        let fits = |t: &str| t.chars().count() <= 24;
        let (text, ok) = render_fitting(
            "{title} {summary} {link}",
            "A rather long title here",
            "https://e.x/a",
            "summary",
            fits,
        );
        assert!(ok, "{text}");
        assert!(text.ends_with("https://e.x/a"), "{text}");
        assert!(text.chars().count() <= 24, "{text}");
        // A template whose fixed text is too long cannot fit.
        let (_, ok) = render_fitting(&"x".repeat(50), "t", "l", "s", |t: &str| t.len() <= 10);
        assert!(!ok);
    }
}

//! Plain text for the knowledge base: a document's source (text, Markdown, HTML) reduced to
//! blocks (paragraphs and headings), the blocks packed into passages, and a search query
//! reduced to plain terms. Everything here is one pass over its input (or a fixed number of
//! them): documents are up to 500,000 characters and may be hostile.

use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};
use unicode_segmentation::UnicodeSegmentation;

/// A paragraph or a heading: whitespace collapsed, control characters removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub text: String,
    pub heading: bool,
}

/// What a source reduced to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Extracted {
    pub blocks: Vec<Block>,
    /// A title the source gives itself: an HTML `<title>`, else the first heading.
    pub title: Option<String>,
}

impl Extracted {
    fn from_blocks(blocks: Vec<Block>, title: Option<String>) -> Self {
        let title = title
            .filter(|t| !t.is_empty())
            .or_else(|| blocks.iter().find(|b| b.heading).map(|b| b.text.clone()));
        Self { blocks, title }
    }
}

/// Whitespace runs become one space, other control characters go (PostgreSQL cannot store
/// NUL, and none of them is text), the ends are trimmed.
pub fn clean(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for word in s.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.extend(word.chars().filter(|c| !c.is_control()));
    }
    // A word made only of control characters left a trailing space.
    out.truncate(out.trim_end().len());
    out
}

fn push_block(blocks: &mut Vec<Block>, raw: &str, heading: bool) {
    let text = clean(raw);
    if !text.is_empty() {
        blocks.push(Block { text, heading });
    }
}

/// Plain text: paragraphs are separated by blank lines.
pub fn text_blocks(text: &str) -> Extracted {
    let mut blocks = Vec::new();
    let mut para = String::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            push_block(&mut blocks, &para, false);
            para.clear();
        } else {
            para.push_str(line);
            para.push('\n');
        }
    }
    push_block(&mut blocks, &para, false);
    Extracted::from_blocks(blocks, None)
}

/// Markdown (CommonMark with tables, strikethrough, task lists and footnotes): its text
/// without syntax. Headings are blocks of their own (passages start at them); link and image
/// targets go, their text and alt text stay; code keeps its text; HTML inside is read as HTML.
pub fn markdown_blocks(md: &str) -> Extracted {
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_FOOTNOTES;
    let mut blocks = Vec::new();
    let mut cur = String::new();
    let mut heading = false;
    // The raw HTML of an HTML block, read as HTML once it ends.
    let mut html: Option<String> = None;
    for event in Parser::new_ext(md, options) {
        if let Some(h) = &mut html {
            match event {
                Event::Html(s) | Event::Text(s) => h.push_str(&s),
                Event::End(TagEnd::HtmlBlock) => {
                    blocks.extend(html_blocks(h).blocks);
                    html = None;
                }
                _ => {}
            }
            continue;
        }
        match event {
            Event::Start(Tag::HtmlBlock) => {
                push_block(&mut blocks, &cur, heading);
                cur.clear();
                html = Some(String::new());
            }
            Event::Start(Tag::Heading { .. }) => {
                push_block(&mut blocks, &cur, false);
                cur.clear();
                heading = true;
            }
            Event::End(TagEnd::Heading(_)) => {
                push_block(&mut blocks, &cur, true);
                cur.clear();
                heading = false;
            }
            Event::Start(
                Tag::Paragraph
                | Tag::Item
                | Tag::BlockQuote(_)
                | Tag::CodeBlock(_)
                | Tag::TableHead
                | Tag::TableRow
                | Tag::FootnoteDefinition(_),
            )
            | Event::End(
                TagEnd::Paragraph
                | TagEnd::Item
                | TagEnd::BlockQuote(_)
                | TagEnd::CodeBlock
                | TagEnd::TableHead
                | TagEnd::TableRow
                | TagEnd::FootnoteDefinition,
            )
            | Event::Rule => {
                push_block(&mut blocks, &cur, heading);
                cur.clear();
            }
            Event::End(TagEnd::TableCell) => cur.push(' '),
            Event::Text(s) | Event::Code(s) => cur.push_str(&s),
            Event::SoftBreak | Event::HardBreak => cur.push(' '),
            // An inline tag (`<b>`, `<br>`) is markup only; the text around it is events.
            Event::InlineHtml(_) => cur.push(' '),
            _ => {}
        }
    }
    if let Some(h) = &html {
        blocks.extend(html_blocks(h).blocks);
    }
    push_block(&mut blocks, &cur, heading);
    Extracted::from_blocks(blocks, None)
}

/// Elements whose boundaries do not separate words (as in `crier_core::text::html_to_text`).
const INLINE: &[&str] = &[
    "a", "abbr", "b", "bdi", "bdo", "cite", "code", "data", "dfn", "em", "i", "kbd", "mark", "q",
    "s", "samp", "small", "span", "strong", "sub", "sup", "time", "u", "var", "wbr", "font", "img",
];

/// Elements whose content is not text: skipped to their end tag.
const SKIPPED: &[&str] = &["script", "style", "noscript", "template", "title"];

/// HTML: the text of each block element (paragraphs, list items, cells, headings, ...), with
/// scripts, styles and comments removed and character references decoded; `<title>` becomes
/// the title. One pass: the document is lowercased once (byte offsets stay), each tag is
/// looked at once, and once a `<` has no `>` after it no later one is searched for; each block
/// is finished by `html_to_text`, which is linear too.
pub fn html_blocks(html: &str) -> Extracted {
    let lower = html.to_ascii_lowercase();
    let mut blocks = Vec::new();
    let mut title = None;
    // Text of the current block, inline tags removed, character references not yet decoded.
    let mut seg = String::new();
    let mut heading = false;
    let mut at = 0;
    let mut gt_ahead = true;
    let finish = |seg: &mut String, blocks: &mut Vec<Block>, heading: bool| {
        if !seg.trim().is_empty() {
            push_block(blocks, &crier_core::text::html_to_text(seg), heading);
        }
        seg.clear();
    };
    while let Some(lt) = html[at..].find('<').map(|i| at + i) {
        seg.push_str(&html[at..lt]);
        let tag = &lower[lt..];
        if tag.starts_with("<!--") {
            at = tag.find("-->").map_or(html.len(), |i| lt + i + 3);
            seg.push(' ');
            continue;
        }
        // A `<` that cannot open a tag (HTML's tag open state: a letter, `/`, `!` or `?` must
        // follow), or with no `>` after it, is text. It goes into the block escaped, so that
        // `html_to_text` does not read it and a later `>` as a tag.
        let opens = tag
            .as_bytes()
            .get(1)
            .is_some_and(|b| b.is_ascii_alphabetic() || matches!(b, b'/' | b'!' | b'?'));
        let gt = (opens && gt_ahead).then(|| tag.find('>')).flatten();
        let Some(gt) = gt else {
            if opens {
                gt_ahead = false;
            }
            seg.push_str("&lt;");
            at = lt + 1;
            continue;
        };
        let closing = tag[1..].starts_with('/');
        let name: &str = {
            let body = tag[1..gt].trim_start_matches('/');
            let end = body
                .find(|c: char| !c.is_ascii_alphanumeric())
                .unwrap_or(body.len());
            &body[..end]
        };
        at = lt + gt + 1;
        if !closing && SKIPPED.contains(&name) {
            let end_tag = format!("</{name}");
            let end = lower[at..].find(&end_tag).map_or(html.len(), |i| at + i);
            if name == "title" && title.is_none() {
                title = Some(clean(&crier_core::text::html_to_text(&html[at..end])));
            }
            at = lower[end..].find('>').map_or(html.len(), |i| end + i + 1);
            seg.push(' ');
            continue;
        }
        if INLINE.contains(&name) {
            continue;
        }
        let is_heading = matches!(name, "h1" | "h2" | "h3" | "h4" | "h5" | "h6");
        if is_heading && !closing {
            finish(&mut seg, &mut blocks, heading);
            heading = true;
        } else if is_heading {
            finish(&mut seg, &mut blocks, true);
            heading = false;
        } else {
            finish(&mut seg, &mut blocks, heading);
        }
    }
    seg.push_str(&html[at..]);
    finish(&mut seg, &mut blocks, heading);
    Extracted::from_blocks(blocks, title)
}

/// Blocks packed into passages of at most `max` characters, in order: a heading starts a new
/// passage; paragraphs join while they fit (separated by a blank line); a paragraph longer than
/// `max` is cut between sentences, a sentence longer than `max` between words, and only a run
/// of more than `max` characters without whitespace inside it.
pub fn passages(blocks: &[Block], max: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut cur_len = 0usize;
    let mut flush = |cur: &mut String, cur_len: &mut usize| {
        if *cur_len > 0 {
            out.push(std::mem::take(cur));
            *cur_len = 0;
        }
    };
    for block in blocks {
        if block.heading {
            flush(&mut cur, &mut cur_len);
        }
        let len = block.text.chars().count();
        let units: Vec<(&str, usize)> = if len <= max {
            vec![(block.text.as_str(), len)]
        } else {
            units_within(&block.text, max)
        };
        for (i, (unit, unit_len)) in units.into_iter().enumerate() {
            let sep = if i == 0 { "\n\n" } else { " " };
            if cur_len > 0 && cur_len + sep.len() + unit_len > max {
                flush(&mut cur, &mut cur_len);
            }
            if cur_len > 0 {
                cur.push_str(sep);
                cur_len += sep.len();
            }
            cur.push_str(unit);
            cur_len += unit_len;
        }
    }
    flush(&mut cur, &mut cur_len);
    out
}

/// A long paragraph as pieces of at most `max` characters: its sentences, a sentence too long
/// as its words, a word too long as cuts of `max` characters. Each with its length.
fn units_within(text: &str, max: usize) -> Vec<(&str, usize)> {
    let mut units = Vec::new();
    for sentence in text.split_sentence_bounds() {
        let sentence = sentence.trim();
        if sentence.is_empty() {
            continue;
        }
        let len = sentence.chars().count();
        if len <= max {
            units.push((sentence, len));
            continue;
        }
        for word in sentence.split_whitespace() {
            let mut rest = word;
            loop {
                match rest.char_indices().nth(max) {
                    None => {
                        units.push((rest, rest.chars().count()));
                        break;
                    }
                    Some((cut, _)) => {
                        units.push((&rest[..cut], max));
                        rest = &rest[cut..];
                    }
                }
            }
        }
    }
    // Sentences and words of one paragraph rejoin with single spaces, so consecutive small
    // units are packed by the caller.
    units
}

/// PostgreSQL's English stop words (`english.stop`), dropped from queries on both backends so
/// a query means the same on each (PostgreSQL drops them from documents too).
const STOP_WORDS: &[&str] = &[
    "i",
    "me",
    "my",
    "myself",
    "we",
    "our",
    "ours",
    "ourselves",
    "you",
    "your",
    "yours",
    "yourself",
    "yourselves",
    "he",
    "him",
    "his",
    "himself",
    "she",
    "her",
    "hers",
    "herself",
    "it",
    "its",
    "itself",
    "they",
    "them",
    "their",
    "theirs",
    "themselves",
    "what",
    "which",
    "who",
    "whom",
    "this",
    "that",
    "these",
    "those",
    "am",
    "is",
    "are",
    "was",
    "were",
    "be",
    "been",
    "being",
    "have",
    "has",
    "had",
    "having",
    "do",
    "does",
    "did",
    "doing",
    "a",
    "an",
    "the",
    "and",
    "but",
    "if",
    "or",
    "because",
    "as",
    "until",
    "while",
    "of",
    "at",
    "by",
    "for",
    "with",
    "about",
    "against",
    "between",
    "into",
    "through",
    "during",
    "before",
    "after",
    "above",
    "below",
    "to",
    "from",
    "up",
    "down",
    "in",
    "out",
    "on",
    "off",
    "over",
    "under",
    "again",
    "further",
    "then",
    "once",
    "here",
    "there",
    "when",
    "where",
    "why",
    "how",
    "all",
    "any",
    "both",
    "each",
    "few",
    "more",
    "most",
    "other",
    "some",
    "such",
    "no",
    "nor",
    "not",
    "only",
    "own",
    "same",
    "so",
    "than",
    "too",
    "very",
    "s",
    "t",
    "can",
    "will",
    "just",
    "don",
    "should",
    "now",
];

/// The most terms a query is searched for.
pub const MAX_TERMS: usize = 32;

/// A query as search terms: runs of letters and digits, lower-cased, without stop words and
/// repeats, at most [`MAX_TERMS`]. Nothing else survives, so no term carries search syntax
/// (quotes, `*`, `-`, `:`, `NEAR`, parentheses) on either backend.
pub fn query_terms(q: &str) -> Vec<String> {
    let mut terms: Vec<String> = Vec::new();
    for word in q.split(|c: char| !c.is_alphanumeric()) {
        if word.is_empty() {
            continue;
        }
        let term = word.to_lowercase();
        if STOP_WORDS.contains(&term.as_str()) || terms.contains(&term) {
            continue;
        }
        // Lower-casing can yield characters that are not alphanumeric (a combining mark);
        // such a term is dropped rather than trusted.
        if !term.chars().all(char::is_alphanumeric) {
            continue;
        }
        terms.push(term);
        if terms.len() == MAX_TERMS {
            break;
        }
    }
    terms
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(e: &Extracted) -> Vec<(&str, bool)> {
        e.blocks
            .iter()
            .map(|b| (b.text.as_str(), b.heading))
            .collect()
    }

    #[test]
    fn plain_text_splits_at_blank_lines() {
        let e = text_blocks("First line\nsame paragraph.\n\n  \n\tSecond\u{0} one.\r\n\r\nThird");
        assert_eq!(
            texts(&e),
            vec![
                ("First line same paragraph.", false),
                ("Second one.", false),
                ("Third", false)
            ]
        );
        assert_eq!(e.title, None);
    }

    #[test]
    fn markdown_loses_its_syntax_and_keeps_headings() {
        let md = "# Refund policy\n\nYou can return **any** item within [30 days](https://x.example/r).\n\
                  \n## Exceptions\n\n- Gift cards\n- Sale items ![tag](t.png)\n\n> Quoted `code`\n\n\
                  ```\nfn main() {}\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n<div><p>Raw &amp; html</p></div>\n\nLast";
        let e = markdown_blocks(md);
        assert_eq!(
            texts(&e),
            vec![
                ("Refund policy", true),
                ("You can return any item within 30 days.", false),
                ("Exceptions", true),
                ("Gift cards", false),
                ("Sale items tag", false),
                ("Quoted code", false),
                ("fn main() {}", false),
                ("a b", false),
                ("1 2", false),
                ("Raw & html", false),
                ("Last", false),
            ]
        );
        assert_eq!(e.title.as_deref(), Some("Refund policy"));
        // Setext headings too.
        let e = markdown_blocks("Opening hours\n=============\n\nDaily.");
        assert_eq!(texts(&e), vec![("Opening hours", true), ("Daily.", false)]);
    }

    #[test]
    fn html_keeps_blocks_and_headings() {
        let html = "<html><head><title>Our &amp; bakery</title><style>p{}</style></head><body>\
            <nav>Home</nav><h1>Opening <em>hours</em></h1><p>Mon&ndash;Fri <b>7</b>am.</p>\
            <script>var p = '<p>';</script><ul><li>Sat</li><li>Sun</li></ul>\
            <!-- <p>hidden</p> -->a < b<br>c</body></html>";
        let e = html_blocks(html);
        assert_eq!(e.title.as_deref(), Some("Our & bakery"));
        assert_eq!(
            texts(&e),
            vec![
                ("Home", false),
                ("Opening hours", true),
                ("Mon–Fri 7am.", false),
                ("Sat", false),
                ("Sun", false),
                ("a < b", false),
                ("c", false),
            ]
        );
        // No <title>: the first heading.
        assert_eq!(
            html_blocks("<p>x</p><h2>Shipping</h2>").title.as_deref(),
            Some("Shipping")
        );
        // A lone `<` and an unclosed comment.
        assert_eq!(texts(&html_blocks("1 < 2 <!-- x")), vec![("1 < 2", false)]);
        assert_eq!(
            texts(&html_blocks("<p>1 < 2 and 3 > 2, a<b</p><p>&amp;lt;</p>")),
            vec![("1 < 2 and 3 > 2, a", false), ("&lt;", false)]
        );
    }

    /// Hostile shapes that would be quadratic if any step searched the rest of the document
    /// again at each tag: 200,000 of each must finish in a test run.
    #[test]
    fn hostile_sources_are_read_in_one_pass() {
        let n = 100_000;
        let start = std::time::Instant::now();
        assert_eq!(html_blocks(&"<p>x".repeat(n)).blocks.len(), n);
        assert_eq!(html_blocks(&"<".repeat(n)).blocks.len(), 1);
        assert_eq!(html_blocks(&"<script>x".repeat(n)).blocks.len(), 0);
        assert_eq!(html_blocks(&"<!--x".repeat(n)).blocks.len(), 0);
        assert_eq!(html_blocks(&"<title>x".repeat(n)).blocks.len(), 0);
        let _ = markdown_blocks(&"[".repeat(n));
        let _ = markdown_blocks(&"*a ".repeat(n));
        let _ = markdown_blocks(&"> ".repeat(n));
        let _ = markdown_blocks(&"[a](".repeat(n));
        let _ = markdown_blocks(&"<div>\n".repeat(n));
        let words = "word ".repeat(n);
        assert!(!passages(&text_blocks(&words).blocks, 1000).is_empty());
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "{:?}",
            start.elapsed()
        );
    }

    fn block(text: &str, heading: bool) -> Block {
        Block {
            text: text.into(),
            heading,
        }
    }

    #[test]
    fn passages_pack_paragraphs_and_start_at_headings() {
        let blocks = [
            block("Intro.", false),
            block("Hours", true),
            block("Open daily.", false),
            block("Closed on holidays.", false),
            block("Prices", true),
            block("Bread 3 euros.", false),
        ];
        assert_eq!(
            passages(&blocks, 1000),
            vec![
                "Intro.",
                "Hours\n\nOpen daily.\n\nClosed on holidays.",
                "Prices\n\nBread 3 euros."
            ]
        );
        // Paragraphs that do not fit together go to the next passage.
        assert_eq!(
            passages(&[block("aaaa", false), block("bbbb", false)], 9),
            vec!["aaaa", "bbbb"]
        );
        assert_eq!(
            passages(&[block("aaa", false), block("bbbb", false)], 9),
            vec!["aaa\n\nbbbb"]
        );
    }

    #[test]
    fn long_paragraphs_are_cut_between_sentences_then_words() {
        let sentence = "The quick brown fox jumps over the lazy dog. ";
        let para = sentence.repeat(40);
        let ps = passages(&[block(para.trim(), false)], 200);
        assert!(ps.len() > 1);
        for p in &ps {
            assert!(p.chars().count() <= 200, "{p}");
            assert!(p.ends_with("dog."), "cut between sentences: {p}");
            assert!(p.starts_with("The quick"), "{p}");
        }
        // All text kept, in order.
        assert_eq!(ps.join(" "), para.trim());

        // One sentence with no full stop: cut between words, never inside one.
        let words = "alpha beta gamma delta ".repeat(30);
        let ps = passages(&[block(words.trim(), false)], 50);
        for p in &ps {
            assert!(p.chars().count() <= 50, "{p}");
            for w in p.split(' ') {
                assert!(["alpha", "beta", "gamma", "delta"].contains(&w), "{w}");
            }
        }
        assert_eq!(ps.join(" "), words.trim());

        // A run without whitespace longer than the limit is the one thing cut inside.
        let blob = "é".repeat(120);
        let ps = passages(&[block(&blob, false)], 50);
        assert_eq!(
            ps.iter().map(|p| p.chars().count()).collect::<Vec<_>>(),
            vec![50, 50, 20]
        );
    }

    #[test]
    fn queries_become_plain_terms() {
        assert_eq!(
            query_terms("When do you OPEN on Sundays?"),
            vec!["open", "sundays"]
        );
        assert_eq!(
            query_terms("\"refund\" NEAR(x y) text:policy -gift * ( ) ^ café's"),
            vec!["refund", "near", "x", "y", "text", "policy", "gift", "café"]
        );
        assert!(query_terms("   ").is_empty());
        assert!(query_terms("what is the and of it?").is_empty());
        assert!(query_terms("\"*-:^()").is_empty());
        let many: String = (0..100).map(|i| format!("w{i} ")).collect();
        assert_eq!(query_terms(&many).len(), MAX_TERMS);
        assert_eq!(query_terms("Open open OPEN"), vec!["open"]);
    }
}

//! The text machinery the built-in engine shares: the pieces a post may be cut between
//! ([`tokens`]), words for keywords ([`words`]), hashtags, links and emoji as the networks see
//! them, and the stop words. Every function here is one pass over its input (or a sort of it).

use std::collections::HashSet;
use std::sync::LazyLock;

use crier_core::text::{self, Counting};
use unicode_segmentation::UnicodeSegmentation;

/// How good a place the end of a token is to end a part (or a shortened text).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Break {
    /// Between two words, or two characters of a language written without spaces.
    Word,
    /// After `,`, `;`, `:` or a dash.
    Clause,
    /// After `.`, `!`, `?`, `…` (or their CJK forms), or at a line break.
    Sentence,
    /// At a blank line.
    Paragraph,
}

/// A piece of text that is never cut: a whitespace-separated word, or one character (grapheme)
/// of a CJK word written without spaces. A word containing `://` (a link, as the networks
/// count links to the next whitespace) is always one token.
#[derive(Debug, Clone)]
pub(crate) struct Token<'a> {
    pub text: &'a str,
    /// What joins it to the token before it inside one part: `""` (CJK), `" "`, `"\n"` or
    /// `"\n\n"`. Each of these characters counts 1 on every network.
    pub sep: &'static str,
    /// Its length as the network counts it, alone. The length of tokens joined by their
    /// separators is never more than the sum (separators are chosen so that they never join
    /// a grapheme with their neighbours), and callers check the exact length anyway.
    pub len: usize,
    /// How good a place right after this token is to end a part.
    pub brk: Break,
}

impl Token<'_> {
    pub fn is_link(&self) -> bool {
        is_link(self.text)
    }
}

/// Whether a grapheme is whitespace only (a space followed by a combining mark is not: it is
/// one character that people see).
fn is_space(g: &str) -> bool {
    g.chars().all(char::is_whitespace)
}

fn newlines(g: &str) -> usize {
    // `\r\n` is one grapheme and one line break.
    g.chars()
        .filter(|c| matches!(c, '\n' | '\u{2028}' | '\u{2029}'))
        .count()
        .max(usize::from(g == "\r"))
}

/// The tokens of `text`, in order, with the separators that join them and their lengths as
/// `counting` counts. One pass over the graphemes, then one over each word.
pub(crate) fn tokens(text: &str, counting: Counting) -> Vec<Token<'_>> {
    // Words: maximal runs of graphemes that are not whitespace, with the line breaks before.
    let mut words: Vec<(&str, usize)> = Vec::new();
    let mut start: Option<usize> = None;
    let mut breaks = 0;
    for (i, g) in text.grapheme_indices(true) {
        if is_space(g) {
            if let Some(s) = start.take() {
                words.push((&text[s..i], breaks));
                breaks = 0;
            }
            breaks += newlines(g);
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        words.push((&text[s..], breaks));
    }

    let mut out: Vec<Token<'_>> = Vec::with_capacity(words.len());
    for (w, (word, breaks)) in words.into_iter().enumerate() {
        let sep: &'static str = match breaks {
            _ if w == 0 => "",
            0 => " ",
            1 => "\n",
            _ => "\n\n",
        };
        if (sep == "\n\n" || sep == "\n")
            && let Some(prev) = out.last_mut()
        {
            prev.brk = if sep == "\n\n" {
                Break::Paragraph
            } else {
                Break::Sentence.max(prev.brk)
            };
        }
        let mut first = true;
        for piece in cjk_pieces(word) {
            let mut sep = if first { sep } else { "" };
            if sep == " " {
                let prev = out.last().map(|t| t.text);
                if prev.is_some_and(|p| !stays_apart(p, " ", piece)) {
                    // A space would join a grapheme with a neighbour; a line break never does.
                    sep = "\n";
                }
            }
            first = false;
            out.push(Token {
                text: piece,
                sep,
                len: text::length(piece, counting),
                brk: ending(piece),
            });
        }
    }
    out
}

/// Whether `sep` between `a` and `b` stays graphemes of its own (no combining mark or prepended
/// character joins it to a neighbour).
pub(crate) fn stays_apart(a: &str, sep: &str, b: &str) -> bool {
    let (Some(x), Some(y)) = (a.graphemes(true).next_back(), b.graphemes(true).next()) else {
        return true;
    };
    let joined = format!("{x}{sep}{y}");
    joined.graphemes(true).count() == 2 + sep.graphemes(true).count()
}

/// The separator to put between `a` and `b` where a space is wanted.
pub(crate) fn space_between(a: &str, b: &str) -> &'static str {
    if stays_apart(a, " ", b) { " " } else { "\n" }
}

/// A word cut into its CJK characters (the places a line may break in Chinese and Japanese),
/// or whole. Links are never cut.
fn cjk_pieces(word: &str) -> Vec<&str> {
    if word.contains("://") || !word.chars().any(is_cjk) {
        return vec![word];
    }
    let mut out = Vec::new();
    let mut start = 0;
    let mut prev: Option<&str> = None;
    for (i, g) in word.grapheme_indices(true) {
        if let Some(p) = prev {
            let cjk_edge = p.chars().any(is_cjk) || g.chars().any(is_cjk);
            let glued = g.chars().next().is_some_and(no_break_before)
                || p.chars().next_back().is_some_and(no_break_after);
            if cjk_edge && !glued {
                out.push(&word[start..i]);
                start = i;
            }
        }
        prev = Some(g);
    }
    out.push(&word[start..]);
    out
}

/// Han, kana, CJK punctuation and full-width forms: scripts written without spaces.
pub(crate) fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3000..=0x303F // CJK symbols and punctuation
        | 0x3040..=0x30FF // Hiragana, Katakana
        | 0x3400..=0x4DBF
        | 0x4E00..=0x9FFF
        | 0xF900..=0xFAFF
        | 0xFF00..=0xFFEF // full-width forms
        | 0x20000..=0x2FFFF)
}

/// Closing punctuation and marks that must not start a line.
fn no_break_before(c: char) -> bool {
    "、。，．,.!?！？：；:;)）]」』】〉》〕ーゝゞヽヾ々…‥・”’\"'%％".contains(c)
}

/// Opening punctuation that must not end a line.
fn no_break_after(c: char) -> bool {
    "(（[「『【〈《〔“‘\"'".contains(c)
}

const CLOSERS: &[char] = &[
    '"', '\'', '”', '’', ')', ']', '}', '»', '」', '』', '）', '*', '_',
];

/// Abbreviations that end with a period but rarely end a sentence.
const ABBREVIATIONS: &[&str] = &[
    "e.g.", "i.e.", "mr.", "mrs.", "ms.", "dr.", "prof.", "vs.", "st.", "no.", "z.b.", "bzw.",
    "ca.", "approx.", "etc.,",
];

fn ending(word: &str) -> Break {
    if is_link(word) {
        return Break::Word;
    }
    let core = word.trim_end_matches(CLOSERS);
    let Some(last) = core.chars().next_back() else {
        return Break::Word;
    };
    match last {
        '.' => {
            let lower = core.to_lowercase();
            let initial = core.chars().count() == 2 && core.starts_with(char::is_uppercase);
            if ABBREVIATIONS.contains(&lower.as_str()) || initial {
                Break::Word
            } else {
                Break::Sentence
            }
        }
        '!' | '?' | '…' | '。' | '！' | '？' | '‼' | '⁉' => Break::Sentence,
        ',' | ';' | ':' | '、' | '，' | '；' | '：' | '–' | '—' => Break::Clause,
        '-' if core == "-" => Break::Clause,
        _ => Break::Word,
    }
}

/// Joins `tokens` with their separators (the first one's is dropped).
pub(crate) fn join(tokens: &[Token<'_>]) -> String {
    let mut out = String::with_capacity(tokens.iter().map(|t| t.text.len() + 2).sum());
    for (i, t) in tokens.iter().enumerate() {
        if i > 0 {
            out.push_str(t.sep);
        }
        out.push_str(t.text);
    }
    out
}

/// A link as the networks count one: a word starting with `http://` or `https://` and
/// something after it.
pub(crate) fn is_link(word: &str) -> bool {
    let rest = word
        .strip_prefix("https://")
        .or_else(|| word.strip_prefix("http://"));
    rest.is_some_and(|r| r.chars().next().is_some_and(|c| !c.is_whitespace()))
}

/// The links of a text, in order.
pub(crate) fn links(text: &str) -> Vec<&str> {
    text.split_whitespace().filter(|w| is_link(w)).collect()
}

/// The hashtags of a text as networks find them, in order, with their byte offsets: `#` at
/// the start of the text or after a character that is not a letter, digit, `_`, `/` or `)`
/// (so a link's fragment is no tag), then letters, digits and `_`, at least one a letter.
pub(crate) fn hashtags_in(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut prev: Option<char> = None;
    // Where the current whitespace-separated word starts: a `#` inside a link is no tag.
    let mut word_start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c.is_whitespace() {
            word_start = i + c.len_utf8();
        }
        let starts = c == '#'
            && prev.is_none_or(|p| !(p.is_alphanumeric() || p == '_' || p == '/' || p == ')'));
        let word = &text[word_start..];
        let in_link =
            word_start < i && (word.starts_with("http://") || word.starts_with("https://"));
        if starts && !in_link {
            let mut end = i + 1;
            while let Some(&(j, d)) = chars.peek() {
                if d.is_alphanumeric() || d == '_' {
                    end = j + d.len_utf8();
                    chars.next();
                } else {
                    break;
                }
            }
            if text[i + 1..end].chars().any(char::is_alphabetic) {
                out.push((i, &text[i..end]));
            }
            prev = text[..end].chars().next_back();
            continue;
        }
        prev = Some(c);
    }
    out
}

/// Whether a grapheme is an emoji (as twitter-text counts them: pictographs, dingbats, and
/// anything with the emoji presentation selector).
pub(crate) fn is_emoji(g: &str) -> bool {
    g.chars().any(|c| {
        matches!(c as u32,
            0x1F000..=0x1FAFF | 0x2600..=0x27BF | 0x2B00..=0x2BFF)
    }) || g.contains('\u{FE0F}')
}

pub(crate) fn emoji_count(text: &str) -> usize {
    text.graphemes(true).filter(|g| is_emoji(g)).count()
}

/// One word of a text for keywords: what is left of a whitespace-separated word without
/// links, mentions, e-mail addresses, hashtags, punctuation and possessive `'s`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Word {
    /// Letters and digits as written (`OpenSource` for `open-source`).
    pub text: String,
    /// Lower case.
    pub lower: String,
    /// Whether it starts a sentence (its capital letter says nothing then).
    pub sentence_start: bool,
}

impl Word {
    /// Capitalised where a sentence does not start: a name (`Berlin`, `Rust`), or an acronym.
    pub fn is_proper(&self) -> bool {
        let upper_start = self.text.chars().next().is_some_and(char::is_uppercase);
        let acronym = self.text.chars().count() >= 2
            && self
                .text
                .chars()
                .all(|c| c.is_uppercase() || c.is_ascii_digit());
        (upper_start && !self.sentence_start) || acronym
    }
}

/// The words of a text, in order.
pub(crate) fn words(text: &str) -> Vec<Word> {
    let mut out = Vec::new();
    let mut sentence_start = true;
    for chunk in text.split_whitespace() {
        let ends = ending(chunk) >= Break::Sentence;
        let skip = is_link(chunk)
            || chunk.contains('@')
            || chunk.starts_with('#')
            || chunk.contains("://")
            || chunk.starts_with("www.");
        if !skip {
            let trimmed = chunk.trim_matches(|c: char| !c.is_alphanumeric());
            let trimmed = trimmed
                .strip_suffix("'s")
                .or_else(|| trimmed.strip_suffix("’s"))
                .unwrap_or(trimmed);
            let mut text = String::with_capacity(trimmed.len());
            let mut upper_next = false;
            let compound = trimmed.contains('-');
            for c in trimmed.chars() {
                if c == '-' {
                    upper_next = true;
                } else if c.is_alphanumeric() {
                    // `open-source` → `OpenSource`: each part of a compound capitalised.
                    if compound && (upper_next || text.is_empty()) {
                        text.extend(c.to_uppercase());
                    } else {
                        text.push(c);
                    }
                    upper_next = false;
                }
            }
            if !text.is_empty() {
                out.push(Word {
                    lower: text.to_lowercase(),
                    text,
                    sentence_start,
                });
            }
        }
        sentence_start = ends;
    }
    out
}

/// Whether a lower-case word is a keyword: at least three characters, a letter among them, not
/// a stop word (English, with the commonest German, French and Spanish ones).
pub(crate) fn is_keyword(lower: &str) -> bool {
    lower.chars().count() >= 3
        && lower.chars().any(char::is_alphabetic)
        && !STOP_WORDS.contains(lower)
}

/// Stop words: English: function words, and the verbs and adjectives every post has.
const STOP_EN: &str = "\
    a about above after again against all almost also always am an and another any anyone \
    anything are aren arent around as at back be because been before being below best better \
    between big both but by came can cant cannot come comes could couldnt day days did didnt \
    do does doesnt doing done dont down during each else even ever every few first for from \
    further get gets getting give go goes going good got great had hadnt has hasnt have \
    havent having he hed hell her here heres hers herself hes hey hi him himself his how \
    hows however i id if ill im in into is isnt it its itself ive just know last let lets \
    like little look lot lots made make makes many may me might more most much must mustnt \
    my myself need never new next no nor not now of off often ok okay old on once one only \
    or other others ought our ours ourselves out over own part people please pretty put \
    quite rather really right said same say says see seen she shed shell shes should \
    shouldnt since so some something soon still such sure take than thank thanks that thats \
    the their theirs them themselves then there theres these they theyd theyll theyre theyve \
    thing things think this those though through time to today too under until up upon us \
    use used using very via want was wasnt way we wed well went were werent weve what whats \
    when whens where wheres whether which while who whom whos why whys will with within \
    without wont work would wouldnt yeah yes yet you youd youll your youre yours yourself \
    yourselves youve year years week weeks";

/// Stop words: German.
const STOP_DE: &str = "\
    aber alle als auch auf aus bei bin bis bist das dass dein dem den der des die dies diese \
    doch dort du durch ein eine einem einen einer eines er es für hat haben ich ihr ihre im \
    ist ja kann kein mit nach nicht noch nur oder sehr sein sich sie sind über um und uns \
    unser unsere vom von vor war was weil wenn wie wir wird zu zum zur";

/// Stop words: French.
const STOP_FR: &str = "\
    au aux avec ce ces cette dans de des du elle en est et il ils je la le les leur lui mais \
    mes moi mon ne nos notre nous ou où par pas plus pour qui que sa se ses son sont sur ta \
    tes toi ton tous tout très tu un une vos votre vous";

/// Stop words: Spanish.
const STOP_ES: &str = "\
    al como con del el ella ellos es esta este esto hay las lo los mas más muy nosotros para \
    pero por porque se sin sobre su sus también todo todos tu tus una uno y ya yo";

/// Every stop word, lower case, without apostrophes (`dont`, as [`words`] leaves them).
pub(crate) static STOP_WORDS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    [STOP_EN, STOP_DE, STOP_FR, STOP_ES]
        .iter()
        .flat_map(|s| s.split_whitespace())
        .collect()
});

/// `text` with at most `max` graphemes, `…` at the end when it was cut (for quoting a word in a
/// message).
pub(crate) fn preview(text: &str, max: usize) -> String {
    let mut g = text.graphemes(true);
    let head: String = g.by_ref().take(max).collect();
    if g.next().is_some() {
        format!("{head}…")
    } else {
        head
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_keep_links_and_graphemes_and_know_their_breaks() {
        let toks = tokens(
            "Hi there, friend.\n\nSee https://e.x/a?b=1. 👨\u{200D}👩\u{200D}👧 e\u{301}",
            Counting::GraphemesLinks23,
        );
        let got: Vec<(&str, &str, usize, Break)> =
            toks.iter().map(|t| (t.sep, t.text, t.len, t.brk)).collect();
        assert_eq!(
            got,
            vec![
                ("", "Hi", 2, Break::Word),
                (" ", "there,", 6, Break::Clause),
                (" ", "friend.", 7, Break::Paragraph),
                ("\n\n", "See", 3, Break::Word),
                (" ", "https://e.x/a?b=1.", 23, Break::Word),
                (" ", "👨\u{200D}👩\u{200D}👧", 1, Break::Word),
                (" ", "e\u{301}", 1, Break::Word),
            ]
        );
    }

    #[test]
    fn cjk_words_break_between_characters_but_not_before_closing_punctuation() {
        let toks = tokens("日本語です。次へ", Counting::Weighted);
        let texts: Vec<&str> = toks.iter().map(|t| t.text).collect();
        assert_eq!(texts, vec!["日", "本", "語", "で", "す。", "次", "へ"]);
        assert_eq!(toks[4].brk, Break::Sentence);
        assert!(toks.iter().skip(1).all(|t| t.sep.is_empty()));
        assert_eq!(join(&toks), "日本語です。次へ");
        let url = tokens("見てhttps://e.x/日本", Counting::Weighted);
        assert_eq!(url.len(), 1, "a word with a link in it stays whole");
    }

    #[test]
    fn a_space_never_joins_a_combining_mark() {
        // A tab then a combining mark: the mark stands alone in the original; a space would
        // take it over, so the separator is a line break.
        let toks = tokens("a\t\u{301}b", Counting::Graphemes);
        assert_eq!(toks.len(), 2);
        assert_eq!(toks[1].sep, "\n");
        assert_eq!(join(&toks).graphemes(true).count(), 4);
    }

    #[test]
    fn hashtags_are_found_like_networks_find_them() {
        let text = "#Rust and #open_source, not#this nor https://e.x/#frag or #2024 (#tag) #日本";
        let tags: Vec<&str> = hashtags_in(text).into_iter().map(|(_, t)| t).collect();
        assert_eq!(tags, vec!["#Rust", "#open_source", "#tag", "#日本"]);
    }

    #[test]
    fn words_drop_links_mentions_and_punctuation() {
        let w = words("Open-source is great. Ask @me about Rust's https://x.io #tags, e.g. NASA!");
        let texts: Vec<&str> = w.iter().map(|w| w.text.as_str()).collect();
        assert_eq!(
            texts,
            vec![
                "OpenSource",
                "is",
                "great",
                "Ask",
                "about",
                "Rust",
                "eg",
                "NASA"
            ]
        );
        assert!(w[3].sentence_start && !w[3].is_proper());
        assert!(w[5].is_proper());
        assert!(w[7].is_proper());
        assert!(is_keyword("rust") && !is_keyword("the") && !is_keyword("ab"));
        for w in [
            "dont",
            "yourselves",
            "und",
            "über",
            "nous",
            "también",
            "zur",
        ] {
            assert!(STOP_WORDS.contains(w), "{w}");
        }
        assert!(STOP_WORDS.len() > 400);
    }
}

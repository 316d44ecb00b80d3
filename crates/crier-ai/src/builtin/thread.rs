//! Splitting a text into a thread, and shortening a text to fit one post.
//!
//! Both cut only between tokens ([`super::words::tokens`]): between whitespace-separated words,
//! or between the characters of a CJK word written without spaces. A link, an emoji sequence
//! (ZWJ families, flags, skin tones) or a letter with combining accents is never cut, and every
//! length is the network's own ([`crier_core::text::length`] with the rules' counting).
//!
//! **Numbering.** A thread of more than one part ends each part with ` i/n` (a space, the
//! part's number, `/`, the number of parts): `… first part 1/3`. The numbering counts towards
//! the part's length. A text that fits one post is returned as one part, trimmed, without
//! numbering.
//!
//! **Where parts end.** Parts are filled greedily, then ended at the best boundary in their
//! second half: a blank line or the end of a sentence; failing that, a clause (`,` `;` `:` or a
//! dash) in their last third; failing that, the last word that fits. If that takes more parts
//! than allowed, the text is split again at words only (the fewest parts possible). Inside a
//! part, runs of spaces become one space and line breaks are kept (at most one blank line).

use crier_core::text::length;
use crier_networks::rules::Rules;
use unicode_segmentation::UnicodeSegmentation;

use super::words::{Break, Token, join, preview, space_between, stays_apart, tokens};
use crate::AiError;

/// The parts of a thread for `text` on the network of `rules`, numbered ` 1/3` when there is
/// more than one; at most `max_parts` parts, and at most the network's own limit (one where the
/// network has no threads).
///
/// Errors ([`AiError::Invalid`], `param` `text` or `max_parts`): an empty text, `max_parts` 0,
/// a word (or link) longer than a part has room for, or a text that needs more parts than
/// allowed; each message gives the numbers.
pub fn thread(text: &str, rules: &Rules, max_parts: usize) -> Result<Vec<String>, AiError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(invalid("text", "must not be empty".into()));
    }
    if max_parts == 0 {
        return Err(invalid("max_parts", "must be at least 1".into()));
    }
    let p = rules.platform;
    let max = rules.max_length;
    let whole = length(text, rules.counting);
    if whole <= max {
        return Ok(vec![text.to_owned()]);
    }
    let limit = if rules.threads {
        max_parts.min(rules.max_thread_parts).max(1)
    } else {
        1
    };
    if limit == 1 {
        let why = if rules.threads {
            "with max_parts 1 it must fit one post".to_owned()
        } else {
            format!("{p} takes no threads")
        };
        return Err(invalid(
            "text",
            format!(
                "is {whole} characters as {p} counts them, more than the {max} of one post, and {why}"
            ),
        ));
    }
    let toks = tokens(text, rules.counting);
    let mut digits = 1;
    loop {
        // ` 12/12`: a space, the part's number, `/`, the count (every character counts 1).
        let width = 2 + 2 * digits;
        if width >= max {
            return Err(invalid(
                "text",
                format!("{p}'s limit of {max} characters leaves no room for a part's numbering"),
            ));
        }
        let budget = max - width;
        let mut bodies = pack(&toks, budget, rules, true).map_err(|e| e.explain(rules, budget))?;
        if bodies.len() > limit {
            bodies = pack(&toks, budget, rules, false).map_err(|e| e.explain(rules, budget))?;
        }
        let n = bodies.len();
        if n == 1 {
            // Only runs of whitespace made it too long: one part, no numbering.
            return Ok(bodies);
        }
        if n.to_string().len() > digits {
            digits += 1;
            continue;
        }
        if n > limit {
            return Err(invalid(
                "text",
                format!(
                    "needs {n} parts of at most {max} characters as {p} counts them (numbering \
                     included), and at most {limit} are allowed"
                ),
            ));
        }
        let parts: Vec<String> = bodies
            .into_iter()
            .enumerate()
            .map(|(i, body)| {
                let number = format!("{}/{n}", i + 1);
                let sep = space_between(&body, &number);
                format!("{body}{sep}{number}")
            })
            .collect();
        if let Some(part) = parts.iter().find(|x| length(x, rules.counting) > max) {
            // The separators never join graphemes, so a part is never longer than its
            // measured body and numbering; this refuses rather than return a part that breaks.
            return Err(invalid(
                "text",
                format!(
                    "could not be split: a part came to {} characters as {p} counts them",
                    length(part, rules.counting)
                ),
            ));
        }
        return Ok(parts);
    }
}

/// `text` shortened to fit the network's limit (as the network counts), cut at the end of a
/// sentence or at a word, ending in `…` when it was cut; the text itself when it fits (trimmed,
/// if only the trimming was needed).
///
/// A link is never cut: when the text starts with a link too long for the post, the result is
/// just `…`. A single word longer than the post is cut between its graphemes. The result never
/// exceeds the limit (it is empty if even `…` does not fit).
pub fn fit(text: &str, rules: &Rules) -> String {
    let max = rules.max_length;
    let counting = rules.counting;
    if length(text, counting) <= max {
        return text.to_owned();
    }
    let trimmed = text.trim();
    if length(trimmed, counting) <= max {
        return trimmed.to_owned();
    }
    const ELLIPSIS: &str = "…";
    let ellipsis = length(ELLIPSIS, counting);
    if ellipsis > max {
        return String::new();
    }
    let toks = tokens(trimmed, counting);
    let budget = max - ellipsis;
    let first_cut = |t: &Token<'_>| {
        if t.is_link() {
            ELLIPSIS.to_owned()
        } else {
            cut_word(t.text, budget, rules) + ELLIPSIS
        }
    };
    let fill = filled(&toks, 0, budget);
    if fill.end == toks.len() {
        // Only runs of whitespace made it too long.
        let all = join(&toks);
        if length(&all, counting) <= max {
            return all;
        }
    }
    if fill.end == 0 {
        return first_cut(&toks[0]);
    }
    let mut end = choose_end(&fill, budget, true);
    loop {
        let out = finish(&toks[..end], ELLIPSIS);
        if length(&out, counting) <= max {
            return out;
        }
        if end == 1 {
            return first_cut(&toks[0]);
        }
        end -= 1;
    }
}

/// The tokens joined, with `…` after them: a trailing clause mark or a single period gives way
/// to it; after a link it follows a space.
fn finish(toks: &[Token<'_>], ellipsis: &str) -> String {
    let body = join(toks);
    let last_is_link = toks.last().is_some_and(Token::is_link);
    if last_is_link {
        let sep = space_between(&body, ellipsis);
        return format!("{body}{sep}{ellipsis}");
    }
    let mut body = body.trim_end_matches([',', ';', ':', '–', '—', '-']);
    if body.ends_with('.') && !body.ends_with("..") {
        body = &body[..body.len() - 1];
    }
    if body.is_empty() {
        return ellipsis.to_owned();
    }
    // `…` glued to the last word, unless that would join it to the word's last grapheme.
    let sep = if stays_apart(body, "", ellipsis) {
        ""
    } else {
        space_between(body, ellipsis)
    };
    format!("{body}{sep}{ellipsis}")
}

/// The longest prefix of `word`'s graphemes that fits in `budget`.
fn cut_word(word: &str, budget: usize, rules: &Rules) -> String {
    let bounds: Vec<usize> = word
        .grapheme_indices(true)
        .map(|(i, _)| i)
        .chain([word.len()])
        .collect();
    // Lengths only grow with more graphemes: binary search for the most that fit.
    let (mut lo, mut hi) = (0, bounds.len() - 1);
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if length(&word[..bounds[mid]], rules.counting) <= budget {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    word[..bounds[lo]].to_owned()
}

/// The tokens from `start` that fit `budget` together.
struct Fill {
    start: usize,
    /// One past the last token that fits (`start` when not even the first does).
    end: usize,
    /// The estimated length of the tokens `start..k`, for each `k` in `start+1..=end`.
    used: Vec<usize>,
    brks: Vec<Break>,
}

fn filled(toks: &[Token<'_>], start: usize, budget: usize) -> Fill {
    let mut used = Vec::new();
    let mut brks = Vec::new();
    let mut total = 0;
    let mut end = start;
    while end < toks.len() {
        let t = &toks[end];
        let add = if end == start {
            t.len
        } else {
            t.sep.chars().count() + t.len
        };
        if total + add > budget {
            break;
        }
        total += add;
        used.push(total);
        brks.push(t.brk);
        end += 1;
    }
    Fill {
        start,
        end,
        used,
        brks,
    }
}

/// Where a part (or a shortened text) ends: with `prefer`, at the last sentence end or blank
/// line in the second half of the budget, else at the last clause in its last third, else as
/// late as fits.
fn choose_end(fill: &Fill, budget: usize, prefer: bool) -> usize {
    if !prefer {
        return fill.end;
    }
    let best = |strength: Break, from: usize| {
        (0..fill.used.len())
            .rev()
            .find(|&k| fill.brks[k] >= strength && fill.used[k] >= from)
            .map(|k| fill.start + k + 1)
    };
    best(Break::Sentence, budget / 2)
        .or_else(|| best(Break::Clause, budget * 2 / 3))
        .unwrap_or(fill.end)
}

/// A token that does not fit a part on its own.
struct TooLong {
    text: String,
    len: usize,
    link: bool,
}

impl TooLong {
    fn explain(self, rules: &Rules, budget: usize) -> AiError {
        let what = if self.link { "the link" } else { "the word" };
        invalid(
            "text",
            format!(
                "cannot be split: {what} \"{}\" is {} characters as {} counts them, and a part \
                 of a thread has room for {budget} ({} less its numbering)",
                self.text, self.len, rules.platform, rules.max_length
            ),
        )
    }
}

/// The parts' bodies, each at most `budget` long as the network counts.
fn pack(
    toks: &[Token<'_>],
    budget: usize,
    rules: &Rules,
    prefer: bool,
) -> Result<Vec<String>, TooLong> {
    let too_long = |t: &Token<'_>| TooLong {
        text: preview(t.text, 40),
        len: length(t.text, rules.counting),
        link: t.is_link(),
    };
    let mut parts = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let fill = filled(toks, i, budget);
        if fill.end == i {
            return Err(too_long(&toks[i]));
        }
        let mut end = if fill.end == toks.len() {
            fill.end
        } else {
            choose_end(&fill, budget, prefer)
        };
        // The estimate is an upper bound; the exact length decides.
        let mut body = join(&toks[i..end]);
        while length(&body, rules.counting) > budget {
            if end == i + 1 {
                return Err(too_long(&toks[i]));
            }
            end -= 1;
            body = join(&toks[i..end]);
        }
        parts.push(body);
        i = end;
    }
    Ok(parts)
}

fn invalid(param: &'static str, message: String) -> AiError {
    AiError::Invalid { param, message }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crier_core::text::Counting;

    fn rules(counting: Counting, max: usize, parts: usize) -> Rules {
        let mut r = crier_networks::sandbox::RULES.clone();
        r.counting = counting;
        r.max_length = max;
        r.max_thread_parts = parts;
        r
    }

    fn message(e: AiError) -> (&'static str, String) {
        match e {
            AiError::Invalid { param, message } => (param, message),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_text_that_fits_is_one_part_without_numbering() {
        let r = rules(Counting::Graphemes, 20, 5);
        assert_eq!(
            thread("  Short text.  ", &r, 5).unwrap(),
            vec!["Short text."]
        );
    }

    #[test]
    fn parts_end_at_sentences_and_are_numbered() {
        let r = rules(Counting::Graphemes, 40, 10);
        let text =
            "The first sentence is here. The second one is a bit longer, with a clause. Third.";
        let parts = thread(text, &r, 10).unwrap();
        assert_eq!(
            parts,
            vec![
                "The first sentence is here. 1/3",
                "The second one is a bit longer, 2/3",
                "with a clause. Third. 3/3",
            ]
        );
    }

    #[test]
    fn too_many_parts_and_too_long_words_say_why() {
        let r = rules(Counting::Graphemes, 20, 2);
        let (param, msg) = message(thread(&"word ".repeat(20), &r, 10).unwrap_err());
        assert_eq!(param, "text");
        assert!(
            msg.contains("needs 7 parts") && msg.contains("at most 2"),
            "{msg}"
        );
        let (_, msg) =
            message(thread(&format!("a https://e.x/{}", "p".repeat(30)), &r, 2).unwrap_err());
        assert!(
            msg.contains("the link") && msg.contains("room for 16"),
            "{msg}"
        );
        let (param, _) = message(thread(" \n ", &r, 2).unwrap_err());
        assert_eq!(param, "text");
        let (param, _) = message(thread("x", &r, 0).unwrap_err());
        assert_eq!(param, "max_parts");
        let mut no_threads = r.clone();
        no_threads.threads = false;
        let (_, msg) = message(thread(&"word ".repeat(20), &no_threads, 10).unwrap_err());
        assert!(
            msg.contains("takes no threads") && msg.contains("99 characters"),
            "{msg}"
        );
    }

    #[test]
    fn whitespace_alone_makes_no_thread() {
        let r = rules(Counting::Graphemes, 20, 5);
        assert_eq!(
            thread("one     two     three", &r, 5).unwrap(),
            vec!["one two three"]
        );
    }

    #[test]
    fn numbering_grows_a_digit_when_the_parts_reach_ten() {
        let r = rules(Counting::Graphemes, 12, 50);
        let parts = thread(&"abcd ".repeat(30), &r, 50).unwrap();
        assert!(parts.len() >= 10);
        assert!(parts[0].ends_with(&format!(" 1/{}", parts.len())));
        assert!(
            parts.iter().all(|p| p.graphemes(true).count() <= 12),
            "{parts:?}"
        );
    }

    #[test]
    fn x_counts_cjk_twice_and_links_as_23() {
        let r = crier_networks::x::RULES.clone();
        let text = format!(
            "{} https://example.com/{}",
            "日本語".repeat(60),
            "a".repeat(200)
        );
        let parts = thread(&text, &r, 25).unwrap();
        assert!(parts.len() >= 2);
        for p in &parts {
            assert!(length(p, Counting::Weighted) <= 280, "{p}");
        }
        assert!(
            parts
                .last()
                .unwrap()
                .contains(&format!("https://example.com/{}", "a".repeat(200)))
        );
    }

    #[test]
    fn fit_cuts_at_a_sentence_or_word_and_marks_the_cut() {
        let r = rules(Counting::Graphemes, 30, 1);
        assert_eq!(fit("fits as it is ", &r), "fits as it is ");
        assert_eq!(
            fit("One sentence here. And another one that is long.", &r),
            "One sentence here…"
        );
        assert_eq!(
            fit("Words without any stops going on and on", &r),
            "Words without any stops going…"
        );
        assert_eq!(fit(&"x".repeat(50), &r), format!("{}…", "x".repeat(29)));
        assert_eq!(fit(&format!("https://e.x/{}", "a".repeat(40)), &r), "…");
        let link_end = fit(&format!("see https://e.x/a {}", "b ".repeat(20)), &r);
        assert!(link_end.starts_with("see https://e.x/a"), "{link_end}");
        let mut tiny = r.clone();
        tiny.max_length = 0;
        assert_eq!(fit("abc", &tiny), "");
    }
}

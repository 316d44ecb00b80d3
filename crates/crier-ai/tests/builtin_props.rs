//! Property tests of the built-in engine: thread parts and shortened texts always fit every
//! network's counting and never cut a word, a link or a grapheme; hashtags are always valid;
//! the optimiser's improved text always fits and never scores lower; ideas always fit.

use crier_ai::builtin::{fit, hashtags, ideas, learn, optimise, thread};
use crier_ai::{AiError, Learned, Persona, Trend, Voice};
use crier_core::text::length;
use crier_networks::rules::Rules;
use proptest::prelude::*;
use unicode_segmentation::UnicodeSegmentation;

/// Pieces of text: plain words, sentence and clause ends, emoji sequences (ZWJ families,
/// flags, skin tones), combining accents, CJK written without spaces, long links.
fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-zA-Z]{1,12}",
        2 => "[a-z]{1,10}[.!?,;:]",
        1 => "[A-Z]{4,8}!{1,3}",
        1 => Just("👨\u{200D}👩\u{200D}👧\u{200D}👦".to_owned()),
        1 => Just("🇩🇪🇯🇵".to_owned()),
        1 => Just("👍🏽".to_owned()),
        1 => Just("🧑🏿\u{200D}💻".to_owned()),
        1 => Just("e\u{301}te\u{301}".to_owned()),
        1 => Just("n\u{303}a\u{308}\u{301}o".to_owned()),
        1 => "[日本語のテキスト中文内容]{1,40}[。、]?",
        1 => "https://example\\.com/[a-z0-9/]{0,40}",
        1 => "#[a-zA-Z][a-zA-Z0-9_]{0,10}",
        1 => "[0-9]{1,4}",
    ]
}

fn separator() -> impl Strategy<Value = &'static str> {
    prop_oneof![8 => Just(" "), 1 => Just("  "), 1 => Just("\n"), 1 => Just("\n\n"), 1 => Just("\t")]
}

fn text(max_pieces: usize) -> impl Strategy<Value = String> {
    prop::collection::vec((piece(), separator()), 1..max_pieces).prop_map(|v| {
        v.into_iter()
            .map(|(p, s)| format!("{p}{s}"))
            .collect::<String>()
    })
}

/// Every network's rules, with the limit changed to force splitting and threads allowed.
fn rules_strategy() -> impl Strategy<Value = Rules> {
    let all: Vec<Rules> = crier_networks::documented_rules()
        .into_iter()
        .cloned()
        .collect();
    (prop::sample::select(all), 80usize..=400).prop_map(|(mut r, max)| {
        r.max_length = max;
        r.threads = true;
        r.max_thread_parts = 10_000;
        r
    })
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x3000..=0x30FF | 0x4E00..=0x9FFF)
}

/// What must survive, in order: each whitespace-separated word whole, except a CJK word,
/// which may be cut between its graphemes (a link never).
fn atoms(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for w in words(text) {
        if w.chars().any(is_cjk) && !w.contains("://") {
            out.extend(w.graphemes(true).map(str::to_owned));
        } else {
            out.push(w);
        }
    }
    out
}

/// Maximal runs of graphemes that are not whitespace.
fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for g in text.graphemes(true) {
        if g.chars().all(char::is_whitespace) {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
        } else {
            cur.push_str(g);
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn graphemes(text: &str) -> Vec<String> {
    text.graphemes(true)
        .filter(|g| !g.chars().all(char::is_whitespace))
        .map(str::to_owned)
        .collect()
}

/// A part without its numbering (` 2/5` or, after a character a space would join, `\n2/5`).
fn strip_numbering(part: &str, i: usize, n: usize) -> String {
    let number = format!("{}/{n}", i + 1);
    let body = part
        .strip_suffix(&number)
        .unwrap_or_else(|| panic!("part {i} {part:?} lacks its numbering {number}"));
    body.strip_suffix(' ')
        .or_else(|| body.strip_suffix('\n'))
        .unwrap_or_else(|| panic!("no separator before the numbering in {part:?}"))
        .to_owned()
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn thread_parts_fit_and_keep_every_word_link_and_grapheme_in_order(
        text in text(120),
        rules in rules_strategy(),
    ) {
        let parts = match thread(&text, &rules, 10_000) {
            Ok(parts) => parts,
            Err(AiError::Invalid { param, message }) => {
                // Only a text of whitespace is refused: every piece fits a part.
                prop_assert_eq!(param, "text");
                prop_assert!(text.trim().is_empty(), "{}", message);
                return Ok(());
            }
            Err(e) => panic!("{e:?}"),
        };
        let n = parts.len();
        for p in &parts {
            let len = length(p, rules.counting);
            prop_assert!(len <= rules.max_length, "{} > {}: {:?}", len, rules.max_length, p);
            prop_assert!(!p.trim().is_empty());
        }
        let bodies: Vec<String> = if n == 1 {
            if length(text.trim(), rules.counting) <= rules.max_length {
                prop_assert_eq!(&parts[0], text.trim());
            } else {
                // Too long only through runs of whitespace: one part, the runs collapsed.
                let words = |t: &str| t.split_whitespace().collect::<Vec<_>>().join(" ");
                prop_assert_eq!(words(&parts[0]), words(&text));
            }
            parts.clone()
        } else {
            parts.iter().enumerate().map(|(i, p)| strip_numbering(p, i, n)).collect()
        };
        let joined_atoms: Vec<String> = bodies.iter().flat_map(|b| atoms(b)).collect();
        prop_assert_eq!(joined_atoms, atoms(&text));
        let joined_graphemes: Vec<String> = bodies.iter().flat_map(|b| graphemes(b)).collect();
        prop_assert_eq!(joined_graphemes, graphemes(&text));
        for link in text.split_whitespace().filter(|w| w.starts_with("https://")) {
            prop_assert!(bodies.iter().any(|b| b.split_whitespace().any(|w| w == link)), "{}", link);
        }
    }

    #[test]
    fn thread_limits_are_kept_or_refused_with_numbers(
        text in text(200),
        rules in rules_strategy(),
        max_parts in 1usize..4,
    ) {
        match thread(&text, &rules, max_parts) {
            Ok(parts) => {
                prop_assert!(parts.len() <= max_parts);
                for p in &parts {
                    prop_assert!(length(p, rules.counting) <= rules.max_length);
                }
            }
            Err(AiError::Invalid { param, message }) => {
                prop_assert_eq!(param, "text");
                prop_assert!(
                    text.trim().is_empty() || message.chars().any(|c| c.is_ascii_digit()),
                    "{}", message
                );
            }
            Err(e) => panic!("{e:?}"),
        }
    }

    #[test]
    fn fit_fits_and_is_a_prefix_by_words(
        text in text(120),
        rules in rules_strategy(),
    ) {
        let out = fit(&text, &rules);
        prop_assert!(length(&out, rules.counting) <= rules.max_length, "{:?}", out);
        if length(&text, rules.counting) <= rules.max_length {
            prop_assert_eq!(&out, &text);
            return Ok(());
        }
        if out == text.trim() || atoms(&out) == atoms(&text) {
            // Only whitespace was too much.
            return Ok(());
        }
        let body = out.strip_suffix('…').unwrap_or_else(|| panic!("no … in {out:?}")).trim_end();
        let got = atoms(body);
        let want = atoms(&text);
        prop_assert!(got.len() <= want.len());
        if let Some((last, rest)) = got.split_last() {
            prop_assert_eq!(rest, &want[..rest.len()]);
            prop_assert!(want[rest.len()].starts_with(last.as_str()), "{:?} vs {:?}", last, want[rest.len()]);
        }
        let g = graphemes(body);
        prop_assert_eq!(&g[..], &graphemes(&text)[..g.len()]);
    }

    #[test]
    fn hashtags_are_valid_on_every_network_and_never_repeat(
        text in text(60),
        trends in prop::collection::vec("#?[A-Za-z]{2,10}( [A-Za-z]{2,10})?", 0..6),
        top in prop::collection::vec("#[A-Za-z][A-Za-z0-9_]{1,12}", 0..5),
        count in 0usize..31,
    ) {
        let trends: Vec<Trend> = trends
            .into_iter()
            .map(|t| Trend { topic: t, source: "bluesky".into(), score: 1.0 })
            .collect();
        let persona = Persona {
            learned: Learned { top_hashtags: top, ..Learned::default() },
            ..Persona::default()
        };
        let existing: Vec<String> = text
            .split_whitespace()
            .filter(|w| w.starts_with('#'))
            .map(|w| w.to_lowercase())
            .collect();
        for rules in crier_networks::documented_rules() {
            let tags = hashtags(&text, &trends, &persona, rules, count);
            prop_assert!(tags.len() <= count.min(rules.hashtags.max_count));
            let mut seen = std::collections::HashSet::new();
            for t in &tags {
                prop_assert!(rules.hashtags.accepts(t), "{} on {}", t, rules.platform);
                prop_assert!(seen.insert(t.to_lowercase()), "{} twice", t);
                prop_assert!(!existing.contains(&t.to_lowercase()), "{} is in the text", t);
            }
            prop_assert_eq!(&tags, &hashtags(&text, &trends, &persona, rules, count));
        }
    }

    #[test]
    fn the_improved_text_fits_and_never_scores_lower(
        text in text(150),
        rules in rules_strategy(),
        avoid in prop::collection::vec("[a-z]{3,8}", 0..3),
    ) {
        prop_assume!(!text.trim().is_empty());
        let persona = Persona {
            voice: Voice { words_to_avoid: avoid, ..Voice::default() },
            ..Persona::default()
        };
        let o = optimise(&text, &rules, &persona);
        prop_assert!(o.score <= 100);
        prop_assert!(length(&o.text, rules.counting) <= rules.max_length, "{:?}", o.text);
        let again = optimise(&o.text, &rules, &persona);
        prop_assert!(again.score >= o.score, "{} < {}: {:?} -> {:?}", again.score, o.score, text, o.text);
        prop_assert!(o.suggestions.iter().all(|s| s.rule.starts_with("optimise.")));
        prop_assert_eq!(o, optimise(&text, &rules, &persona));
    }

    #[test]
    fn ideas_fit_and_have_distinct_titles(
        topic in prop::option::of("[A-Za-z ]{0,80}"),
        trends in prop::collection::vec("#?[A-Za-z]{2,12}( [A-Za-z]{2,10})?", 0..6),
        topics in prop::collection::vec("[a-z]{3,10}", 0..4),
        passages in prop::collection::vec(text(40), 0..3),
        rules in rules_strategy(),
        count in 0usize..31,
    ) {
        let trends: Vec<Trend> = trends
            .into_iter()
            .map(|t| Trend { topic: t, source: "mastodon".into(), score: 2.0 })
            .collect();
        let persona = Persona {
            learned: Learned { topics, ..Learned::default() },
            ..Persona::default()
        };
        let got = ideas(topic.as_deref(), &trends, &persona, &passages, &rules, count);
        prop_assert!(got.len() <= count);
        let mut titles = std::collections::HashSet::new();
        for idea in &got {
            prop_assert!(titles.insert(idea.title.to_lowercase()), "{} twice", idea.title);
            prop_assert!(length(&idea.draft, rules.counting) <= rules.max_length);
            prop_assert!(!idea.draft.trim().is_empty() && !idea.angle.is_empty());
        }
        prop_assert_eq!(got, ideas(topic.as_deref(), &trends, &persona, &passages, &rules, count));
    }

    #[test]
    fn learned_shares_are_shares(posts in prop::collection::vec(text(20), 0..12)) {
        let refs: Vec<&str> = posts.iter().map(String::as_str).collect();
        let l = learn(&refs);
        prop_assert_eq!(l.posts, posts.len());
        prop_assert!(l.top_hashtags.len() <= 10 && l.topics.len() <= 10);
        for (_, share) in &l.tone_markers {
            prop_assert!((0.0..=1.0).contains(share));
        }
    }
}

#[test]
fn a_word_longer_than_a_part_is_refused_with_its_length() {
    let rules = crier_networks::bluesky::RULES.clone();
    let word = "a".repeat(400);
    match thread(&format!("Look: {word}"), &rules, 10) {
        Err(AiError::Invalid { param, message }) => {
            assert_eq!(param, "text");
            assert!(message.contains("400 characters"), "{message}");
            assert!(message.contains("room for 296"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

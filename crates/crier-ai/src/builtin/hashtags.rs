//! Hashtags for a text, without a model.
//!
//! Candidates come from three places, and a tag found in several adds up:
//! - **keywords** of the text: every occurrence of a word that is not a stop word, weighted up
//!   for length (a proxy for rarity), for noun endings (`-tion`, `-ment`, `-ware`, ...) and for
//!   names (capitalised where no sentence starts, or an acronym), down for adverbs and past
//!   forms (`-ly`, `-ed`);
//! - **trending topics** the text mentions (as one word, `opensource`, or as the words of the
//!   topic in a row, `open source`), hottest first: they weigh most, and a topic of several
//!   words becomes one camel-case tag (`#OpenSource`);
//! - **the brand's own top hashtags** the text mentions, written the way the brand writes them.
//!
//! Tags the text already has are not suggested again, and they count towards the network's
//! maximum; tags with a word the brand voice avoids are left out; every tag is valid on the
//! network ([`crier_networks::rules::HashtagRules::accepts`]). Deduplication is by lower case;
//! order is by weight, then by where the word first appears, then alphabetical.

use std::collections::{HashMap, HashSet};

use crier_networks::rules::Rules;

use super::words::{hashtags_in, is_keyword, words};
use crate::{Persona, Trend};

const NOUN_ENDINGS: &[&str] = &[
    "tion", "sion", "ment", "ness", "ity", "ism", "ist", "ship", "ware", "ology", "ence", "ance",
    "ics", "dom", "hood", "ure",
];

#[derive(Debug)]
struct Candidate {
    /// The tag without `#`, as it will be written.
    form: String,
    /// Where the form came from: 0 the brand's tags, 1 a trend, 2 a name in the text, 3 a word.
    form_rank: u8,
    score: f64,
    /// The index of the first word of the text it stands for.
    first: usize,
}

/// Up to `count` hashtags (with `#`) for `text` on the network of `rules` (never more than the
/// network takes beside the tags the text already has), best first.
pub fn hashtags(
    text: &str,
    trends: &[Trend],
    persona: &Persona,
    rules: &Rules,
    count: usize,
) -> Vec<String> {
    let present: HashSet<String> = hashtags_in(text)
        .into_iter()
        .map(|(_, t)| t[1..].to_lowercase())
        .collect();
    let n = count.min(rules.hashtags.max_count.saturating_sub(present.len()));
    if n == 0 {
        return Vec::new();
    }
    let words = words(text);
    let lowers: Vec<&str> = words.iter().map(|w| w.lower.as_str()).collect();
    let mut cands: HashMap<String, Candidate> = HashMap::new();
    let mut add = |key: String, form: String, form_rank: u8, score: f64, first: usize| {
        let c = cands.entry(key).or_insert_with(|| Candidate {
            form: form.clone(),
            form_rank,
            score: 0.0,
            first,
        });
        c.score += score;
        c.first = c.first.min(first);
        if form_rank < c.form_rank {
            c.form = form;
            c.form_rank = form_rank;
        }
    };

    for (i, w) in words.iter().enumerate() {
        if !is_keyword(&w.lower) {
            continue;
        }
        let len = w.lower.chars().count().min(12) as f64;
        let mut weight = 1.0 + 0.1 * len;
        let ending = |e: &str| w.lower.len() > e.len() + 2 && w.lower.ends_with(e);
        if ending("ly") {
            weight *= 0.5;
        } else if ending("ed") {
            weight *= 0.6;
        } else if NOUN_ENDINGS.iter().any(|e| ending(e)) {
            weight *= 1.3;
        }
        let (form, rank) = if w.is_proper() {
            weight *= 1.5;
            (w.text.clone(), 2)
        } else {
            (w.lower.clone(), 3)
        };
        add(w.lower.clone(), form, rank, weight, i);
    }

    // The words of a topic of several words that matched: `#OpenSource` makes `#source`
    // redundant.
    let mut covered: HashSet<String> = HashSet::new();
    for (rank, t) in trends.iter().enumerate() {
        if let Some((form, parts)) = topic_tag(&t.topic)
            && let Some((hits, first)) = mentions(&lowers, &parts)
        {
            let score = 4.0 + 2.0 / (1.0 + rank as f64) + hits as f64;
            if parts.len() > 1 {
                covered.extend(parts.iter().cloned());
            }
            add(parts.concat(), form, 1, score, first);
        }
    }
    for (rank, tag) in persona.learned.top_hashtags.iter().enumerate() {
        if let Some((form, parts)) = topic_tag(tag)
            && let Some((hits, first)) = mentions(&lowers, &parts)
        {
            let score = 3.0 + 1.0 / (1.0 + rank as f64) + hits as f64;
            // The brand's own spelling, when it is one word as written.
            let own = tag.trim().trim_start_matches('#');
            let form = if own.chars().all(|c| c.is_alphanumeric() || c == '_') {
                own.to_owned()
            } else {
                form
            };
            if parts.len() > 1 {
                covered.extend(parts.iter().cloned());
            }
            add(parts.concat(), form, 0, score, first);
        }
    }

    let avoid: Vec<String> = persona
        .voice
        .words_to_avoid
        .iter()
        .map(|w| {
            w.chars()
                .filter(|c| c.is_alphanumeric())
                .collect::<String>()
                .to_lowercase()
        })
        .filter(|w| w.chars().count() >= 3)
        .collect();
    let mut out: Vec<(String, Candidate)> = cands
        .into_iter()
        .filter(|(key, c)| {
            !present.contains(key)
                && (c.form_rank < 2 || !covered.contains(key))
                && !present.contains(&c.form.to_lowercase())
                && !avoid.iter().any(|a| key.contains(a.as_str()))
                && rules.hashtags.accepts(&format!("#{}", c.form))
        })
        .collect();
    out.sort_by(|(ka, a), (kb, b)| {
        b.score
            .total_cmp(&a.score)
            .then(a.first.cmp(&b.first))
            .then(ka.cmp(kb))
    });
    let mut seen = HashSet::new();
    out.into_iter()
        .filter(|(_, c)| seen.insert(c.form.to_lowercase()))
        .take(n)
        .map(|(_, c)| format!("#{}", c.form))
        .collect()
}

/// A topic (`Open Source`, `#OpenSource`, `rust-lang`) as a tag (`OpenSource`, `rustlang`
/// as one word stays as written) and the lower-case words it stands for
/// (`["open", "source"]`).
pub(crate) fn topic_tag(topic: &str) -> Option<(String, Vec<String>)> {
    let topic = topic.trim().trim_start_matches('#');
    let pieces: Vec<&str> = topic
        .split(|c: char| !c.is_alphanumeric())
        .filter(|p| !p.is_empty())
        .collect();
    let form = match pieces.as_slice() {
        [] => return None,
        [one] => (*one).to_owned(),
        many => many.iter().map(|p| capitalised(p)).collect(),
    };
    let parts: Vec<String> = pieces
        .iter()
        .flat_map(|p| camel_words(p))
        .map(|p| p.to_lowercase())
        .collect();
    (parts.len() <= 8).then_some((form, parts))
}

fn capitalised(word: &str) -> String {
    let mut c = word.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// `OpenSource` → `Open`, `Source`; `NASA` and `rustlang` stay whole.
fn camel_words(word: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut prev_lower = false;
    for (i, c) in word.char_indices() {
        if c.is_uppercase() && prev_lower {
            out.push(&word[start..i]);
            start = i;
        }
        prev_lower = c.is_lowercase() || c.is_ascii_digit();
    }
    out.push(&word[start..]);
    out
}

/// How often the text's words mention `parts` (as one joined word, or the words in a row),
/// and where first; `None` when never.
fn mentions(lowers: &[&str], parts: &[String]) -> Option<(usize, usize)> {
    let joined = parts.concat();
    if joined.chars().count() < 2 {
        return None;
    }
    let mut hits = 0;
    let mut first = None;
    for i in 0..lowers.len() {
        let one = lowers[i] == joined;
        let row = parts.len() > 1
            && i + parts.len() <= lowers.len()
            && parts.iter().zip(&lowers[i..]).all(|(p, w)| p == w);
        if one || row {
            hits += 1;
            first.get_or_insert(i);
        }
    }
    first.map(|f| (hits, f))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Learned, Voice};

    fn trend(topic: &str) -> Trend {
        Trend {
            topic: topic.into(),
            source: "bluesky".into(),
            score: 1.0,
        }
    }

    #[test]
    fn keywords_prefer_long_nouns_and_names_and_skip_stop_words() {
        let r = crier_networks::bluesky::RULES.clone();
        let text = "We migrated our deployment pipeline to Kubernetes. The deployment took a \
                    week, and the pipeline is really quickly faster now.";
        let tags = hashtags(text, &[], &Persona::default(), &r, 3);
        assert_eq!(tags, vec!["#deployment", "#pipeline", "#Kubernetes"]);
    }

    #[test]
    fn trends_and_the_brands_tags_that_match_come_first_in_camel_case() {
        let r = crier_networks::mastodon::DEFAULT_RULES.clone();
        let persona = Persona {
            learned: Learned {
                top_hashtags: vec!["#RustLang".into(), "#cooking".into()],
                ..Learned::default()
            },
            ..Persona::default()
        };
        let text = "Why open source maintainers love rustlang: a thread about compilers.";
        let tags = hashtags(
            text,
            &[trend("Open Source"), trend("#elections")],
            &persona,
            &r,
            4,
        );
        assert_eq!(tags[..2], ["#OpenSource", "#RustLang"]);
        assert!(
            !tags.iter().any(|t| t == "#open" || t == "#source"),
            "{tags:?}"
        );
        assert!(!tags.iter().any(|t| t == "#elections" || t == "#cooking"));
        assert!(tags.contains(&"#compilers".to_owned()), "{tags:?}");
    }

    #[test]
    fn existing_tags_count_and_avoided_words_are_left_out() {
        let r = crier_networks::threads::RULES.clone();
        assert!(hashtags("Gardening tips #garden", &[], &Persona::default(), &r, 5).is_empty());
        let r = crier_networks::x::RULES.clone();
        let persona = Persona {
            voice: Voice {
                words_to_avoid: vec!["synergy".into()],
                ..Voice::default()
            },
            ..Persona::default()
        };
        let tags = hashtags(
            "Synergy synergy synergy and gardening #Gardening",
            &[],
            &persona,
            &r,
            5,
        );
        assert!(tags.is_empty(), "{tags:?}");
        let tags = hashtags("Gardening tips for balconies", &[], &persona, &r, 30);
        assert_eq!(tags, vec!["#gardening", "#balconies", "#tips"]);
    }

    #[test]
    fn topics_become_tags() {
        assert_eq!(
            topic_tag("open-source software"),
            Some((
                "OpenSourceSoftware".into(),
                vec!["open".into(), "source".into(), "software".into()]
            ))
        );
        assert_eq!(
            topic_tag("#OpenSource"),
            Some(("OpenSource".into(), vec!["open".into(), "source".into()]))
        );
        assert_eq!(topic_tag(" # "), None);
    }
}

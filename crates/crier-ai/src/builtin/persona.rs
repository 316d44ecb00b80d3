//! What a brand's published posts say about its voice.

use std::collections::{HashMap, HashSet};

use unicode_segmentation::UnicodeSegmentation;

use super::words::{emoji_count, hashtags_in, is_keyword, is_link, links, words};
use crate::Learned;

/// At most this many posts are read (the newest first, as the caller orders them).
pub const MAX_POSTS: usize = 500;
/// At most this many top hashtags and topics are kept.
pub const MAX_TOP: usize = 10;

const FIRST_PERSON_PLURAL: &[&str] = &[
    "we",
    "our",
    "ours",
    "us",
    "ourselves",
    "we're",
    "we've",
    "we'll",
    "we'd",
];
const SECOND_PERSON: &[&str] = &[
    "you",
    "your",
    "yours",
    "yourself",
    "yourselves",
    "you're",
    "you've",
    "you'll",
    "you'd",
    "y'all",
];

/// The persona learned from published post texts (at most the first [`MAX_POSTS`]):
///
/// - `median_length`: the median length in graphemes (of two middle values, their mean,
///   rounded down);
/// - `emoji_per_post`, `hashtags_per_post`: averages;
/// - `top_hashtags`: the most used, most first (ties: the one seen first), as first written;
/// - `topics`: the words most posts use (stop words, links, mentions and hashtags aside), most
///   posts first, then most uses, then first seen;
/// - `tone_markers`, each with the share of posts that show it, in this order: `questions`
///   (a `?`), `exclamations` (a `!`), `first_person_plural` (we, our, us), `second_person`
///   (you, your), `links`, `emoji`, `all_caps` (a word of four or more capital letters).
pub fn learn(texts: &[&str]) -> Learned {
    let texts = &texts[..texts.len().min(MAX_POSTS)];
    let n = texts.len();
    if n == 0 {
        return Learned::default();
    }
    let mut lengths: Vec<usize> = texts
        .iter()
        .map(|t| t.trim().graphemes(true).count())
        .collect();
    lengths.sort_unstable();
    let median_length = if n % 2 == 1 {
        lengths[n / 2]
    } else {
        (lengths[n / 2 - 1] + lengths[n / 2]) / 2
    };

    let mut emoji = 0;
    let mut tags_total = 0;
    // lower case → (uses, first seen, as first written)
    let mut tags: HashMap<String, (usize, usize, String)> = HashMap::new();
    // lower case → (posts, uses, first seen)
    let mut topics: HashMap<String, (usize, usize, usize)> = HashMap::new();
    let mut markers = [0usize; 7];
    let mut seen = 0usize;
    for text in texts {
        let e = emoji_count(text);
        emoji += e;
        let found = hashtags_in(text);
        tags_total += found.len();
        for (_, t) in found {
            seen += 1;
            let entry = tags
                .entry(t.to_lowercase())
                .or_insert_with(|| (0, seen, t.to_owned()));
            entry.0 += 1;
        }
        let mut in_post = HashSet::new();
        for w in words(text) {
            if !is_keyword(&w.lower) {
                continue;
            }
            seen += 1;
            let fresh = in_post.insert(w.lower.clone());
            let entry = topics.entry(w.lower).or_insert((0, 0, seen));
            entry.0 += usize::from(fresh);
            entry.1 += 1;
        }
        let plain: Vec<&str> = text.split_whitespace().filter(|w| !is_link(w)).collect();
        let lower: Vec<String> = plain
            .iter()
            .map(|w| {
                w.trim_matches(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '’'))
                    .replace('’', "'")
                    .to_lowercase()
            })
            .collect();
        let has = |list: &[&str]| lower.iter().any(|w| list.contains(&w.as_str()));
        let shows = [
            plain.iter().any(|w| w.contains(['?', '？'])),
            plain.iter().any(|w| w.contains(['!', '！'])),
            has(FIRST_PERSON_PLURAL),
            has(SECOND_PERSON),
            !links(text).is_empty(),
            e > 0,
            plain.iter().any(|w| {
                let letters = w.chars().filter(|c| c.is_alphabetic()).count();
                letters >= 4 && !w.starts_with(['#', '@']) && w.chars().all(|c| !c.is_lowercase())
            }),
        ];
        for (m, s) in markers.iter_mut().zip(shows) {
            *m += usize::from(s);
        }
    }

    let mut top_tags: Vec<(usize, usize, String)> = tags.into_values().collect();
    top_tags.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut top_topics: Vec<(String, (usize, usize, usize))> = topics.into_iter().collect();
    top_topics.sort_by(|(_, a), (_, b)| b.0.cmp(&a.0).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)));
    let share = |k: usize| k as f64 / n as f64;
    let names = [
        "questions",
        "exclamations",
        "first_person_plural",
        "second_person",
        "links",
        "emoji",
        "all_caps",
    ];
    Learned {
        posts: n,
        median_length,
        emoji_per_post: share(emoji),
        hashtags_per_post: share(tags_total),
        top_hashtags: top_tags
            .into_iter()
            .take(MAX_TOP)
            .map(|(_, _, t)| t)
            .collect(),
        topics: top_topics
            .into_iter()
            .take(MAX_TOP)
            .map(|(w, _)| w)
            .collect(),
        tone_markers: names
            .iter()
            .zip(markers)
            .map(|(name, k)| ((*name).to_owned(), share(k)))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_corpus_gives_the_expected_numbers() {
        let posts = [
            "We shipped the new garden planner! Try it today 🌱 #gardening",
            "What do you grow on your balcony? #Gardening #balcony",
            "Our garden planner now knows tomatoes 🍅🍅 https://example.com/tomatoes",
            "HUGE thanks to everyone who tried the planner. #gardening",
        ];
        let l = learn(&posts);
        assert_eq!(l.posts, 4);
        let mut lens: Vec<usize> = posts.iter().map(|p| p.graphemes(true).count()).collect();
        lens.sort();
        assert_eq!(l.median_length, (lens[1] + lens[2]) / 2);
        assert_eq!(l.emoji_per_post, 3.0 / 4.0);
        assert_eq!(l.hashtags_per_post, 4.0 / 4.0);
        assert_eq!(l.top_hashtags, vec!["#gardening", "#balcony"]);
        assert_eq!(l.topics[..2], ["planner".to_owned(), "garden".to_owned()]);
        let markers: Vec<(&str, f64)> = l
            .tone_markers
            .iter()
            .map(|(k, v)| (k.as_str(), *v))
            .collect();
        assert_eq!(
            markers,
            vec![
                ("questions", 0.25),
                ("exclamations", 0.25),
                ("first_person_plural", 0.5),
                ("second_person", 0.25),
                ("links", 0.25),
                ("emoji", 0.5),
                ("all_caps", 0.25),
            ]
        );
    }

    #[test]
    fn nothing_learned_from_nothing_and_at_most_500_posts_read() {
        assert_eq!(learn(&[]), Learned::default());
        let many = vec!["#one post"; 600];
        let l = learn(&many);
        assert_eq!(l.posts, 500);
        assert_eq!(l.top_hashtags, vec!["#one"]);
    }
}

//! Ideas for posts, without a model.
//!
//! **Subjects**, in this order and without repeats (case aside): the topic asked for, the
//! trending topics (hottest first), the brand's frequent topics, and the words the knowledge
//! passages use most. With none of them, the ideas are evergreen ones every brand can use.
//!
//! **Angles:** how-to, behind the scenes, a question to the audience, myth vs fact, a list, a
//! story, an announcement. Idea `i` takes subject `i mod S` and, for that subject, the next
//! angle it has not had, so a few subjects each get several angles and many subjects one each.
//!
//! **Drafts** are templates filled with the subject and, when a knowledge passage mentions it,
//! that passage's first sentence about it; they end with hashtags for the subject (see
//! [`super::hashtags`]) and go through the optimiser's safe fixes, so they fit the network and
//! avoid the brand's words to avoid. Same input, same ideas; titles are distinct.

use std::collections::{HashMap, HashSet};

use crier_networks::rules::Rules;
use unicode_segmentation::UnicodeSegmentation;

use super::hashtags::hashtags;
use super::optimise::improve;
use super::words::{Break, is_keyword, join, tokens, words};
use crate::{Idea, Persona, Trend};

/// The most ideas one call returns (seven angles for each of a handful of subjects is plenty).
pub const MAX_IDEAS: usize = 50;
/// The longest subject, in graphemes (a longer topic is cut at a word).
const MAX_SUBJECT: usize = 60;
/// The longest fact quoted from a passage, in graphemes.
const MAX_FACT: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Angle {
    HowTo,
    BehindTheScenes,
    Question,
    MythVsFact,
    List,
    Story,
    Announcement,
}

const ANGLES: [Angle; 7] = [
    Angle::HowTo,
    Angle::Question,
    Angle::BehindTheScenes,
    Angle::MythVsFact,
    Angle::List,
    Angle::Story,
    Angle::Announcement,
];

impl Angle {
    fn name(self) -> &'static str {
        match self {
            Angle::HowTo => "how-to",
            Angle::BehindTheScenes => "behind-the-scenes",
            Angle::Question => "question",
            Angle::MythVsFact => "myth-vs-fact",
            Angle::List => "list",
            Angle::Story => "story",
            Angle::Announcement => "announcement",
        }
    }

    fn title(self, s: &str) -> String {
        match self {
            Angle::HowTo => format!("How to get started with {s}"),
            Angle::BehindTheScenes => format!("Behind the scenes: how we work on {s}"),
            Angle::Question => format!("Ask your audience about {s}"),
            Angle::MythVsFact => format!("Myth vs fact: {s}"),
            Angle::List => format!("3 things to know about {s}"),
            Angle::Story => format!("What we learned from {s}"),
            Angle::Announcement => format!("News about {s}"),
        }
    }

    fn draft(self, s: &str, fact: Option<&str>) -> String {
        let or = |default: &str| fact.map_or_else(|| default.to_owned(), str::to_owned);
        match self {
            Angle::HowTo => format!(
                "New to {s}? Here is how to start. {}\nWhat would you add?",
                or("Pick one small step, try it this week, and share what you learn.")
            ),
            Angle::BehindTheScenes => format!(
                "A look behind the scenes at how we handle {s}. {}\nWhat should we show next?",
                or("Here is what a normal day looks like, and what surprised us.")
            ),
            Angle::Question => format!(
                "What is your biggest question about {s}? {}\nTell us in the replies: we will \
                 answer the best ones.",
                fact.map_or_else(String::new, |f| format!("Here is one we hear a lot: {f}"))
            ),
            Angle::MythVsFact => format!(
                "Myth: {s} is only for experts.\nFact: {}\nWhich myth would you bust next?",
                or("anyone can start small and learn along the way.")
            ),
            Angle::List => format!(
                "3 things to know about {s}: why it matters, where to start, and what to avoid. \
                 {}\nSave this for later.",
                or("")
            ),
            Angle::Story => format!(
                "The first time we tried {s}, it did not go to plan. {}\nHave you been there too?",
                or("Here is what we changed, and what we would do again.")
            ),
            Angle::Announcement => format!(
                "Announcing something new around {s}. {}\nFollow along so you don't miss it.",
                or("More details soon.")
            ),
        }
    }
}

/// Ideas every brand can use: (title, angle, draft).
const EVERGREEN: &[(&str, Angle, &str)] = &[
    (
        "A lesson learned the hard way",
        Angle::Story,
        "One lesson we learned the hard way: small steps beat big plans.\nWhat lesson did you \
         learn the hard way?",
    ),
    (
        "Ask what your audience wants to see",
        Angle::Question,
        "What should we post about next? Tell us in the replies.",
    ),
    (
        "Behind the scenes of this week",
        Angle::BehindTheScenes,
        "A quick look behind the scenes at what our team is working on this week.\nWhat would \
         you like to see more of?",
    ),
    (
        "Answer the question you hear most",
        Angle::HowTo,
        "How do we get started? It is the question we hear most, so here is our answer in three \
         steps.\nWhat would you add?",
    ),
    (
        "Bust a myth of your field",
        Angle::MythVsFact,
        "Myth: you need a big budget to get started.\nFact: showing up every week beats any \
         budget.\nWhich myth would you bust?",
    ),
    (
        "3 tools you rely on",
        Angle::List,
        "3 tools we could not work without, and why each one earns its place.\nWhich would you \
         add?",
    ),
    (
        "Celebrate a milestone",
        Angle::Announcement,
        "A small milestone worth celebrating, and a big thank you to everyone who helped.\nWhat \
         should we do next?",
    ),
    (
        "Introduce someone from the team",
        Angle::BehindTheScenes,
        "Meet the people behind the work: who they are, what they do, and what they love about \
         it.\nWho should we introduce next?",
    ),
];

/// Up to `count` ideas (at most [`MAX_IDEAS`]) from the topic, the trends, the persona and the
/// knowledge passages (see the module documentation); fewer when the subjects and angles run
/// out.
pub fn ideas(
    topic: Option<&str>,
    trends: &[Trend],
    persona: &Persona,
    passages: &[String],
    rules: &Rules,
    count: usize,
) -> Vec<Idea> {
    let count = count.min(MAX_IDEAS);
    let subjects = subjects(topic, trends, persona, passages);
    let mut out = Vec::with_capacity(count);
    let mut titles = HashSet::new();
    if subjects.is_empty() {
        for (title, angle, draft) in EVERGREEN.iter().take(count) {
            out.push(Idea {
                title: (*title).to_owned(),
                angle: angle.name().to_owned(),
                draft: improve(draft, rules, persona),
            });
        }
        return out;
    }
    let lower_passages: Vec<String> = passages.iter().map(|p| p.to_lowercase()).collect();
    let s = subjects.len();
    for i in 0..(s * ANGLES.len()) {
        if out.len() == count {
            break;
        }
        let subject = &subjects[i % s];
        let angle = ANGLES[(i / s + i % s) % ANGLES.len()];
        let title = angle.title(subject);
        if !titles.insert(title.to_lowercase()) {
            continue;
        }
        let fact = fact_about(subject, passages, &lower_passages);
        let mut draft = angle.draft(subject, fact.as_deref());
        if persona.learned.emoji_per_post >= 1.0 {
            draft = format!("{} {draft}", emoji_for(angle));
        }
        let about = format!("{subject}. {}", fact.as_deref().unwrap_or(""));
        let n = rules.hashtags.recommended.min(2);
        // The subject first, as one tag (`#DurableQueues`), then what the trends add.
        let mut topics = Vec::with_capacity(trends.len() + 1);
        topics.push(Trend {
            topic: subject.clone(),
            source: "idea".into(),
            score: 0.0,
        });
        topics.extend(trends.iter().cloned());
        let tags = hashtags(&about, &topics, persona, rules, n);
        if !tags.is_empty() {
            draft = format!("{draft}\n\n{}", tags.join(" "));
        }
        out.push(Idea {
            title,
            angle: angle.name().to_owned(),
            draft: improve(&draft, rules, persona),
        });
    }
    out
}

fn emoji_for(angle: Angle) -> &'static str {
    match angle {
        Angle::HowTo => "💡",
        Angle::BehindTheScenes => "👀",
        Angle::Question => "🤔",
        Angle::MythVsFact => "🔍",
        Angle::List => "📝",
        Angle::Story => "📖",
        Angle::Announcement => "📣",
    }
}

/// The subjects, in order, without repeats (see the module documentation).
fn subjects(
    topic: Option<&str>,
    trends: &[Trend],
    persona: &Persona,
    passages: &[String],
) -> Vec<String> {
    let avoid: Vec<String> = persona
        .voice
        .words_to_avoid
        .iter()
        .map(|w| w.trim().to_lowercase())
        .filter(|w| !w.is_empty())
        .collect();
    let mut out: Vec<String> = Vec::new();
    let mut seen = HashSet::new();
    let mut push = |s: String| {
        let s = clip_words(&s, MAX_SUBJECT);
        let key = s.to_lowercase();
        let avoided = avoid.iter().any(|a| key.contains(a.as_str()));
        if !s.is_empty() && !avoided && seen.insert(key) {
            out.push(s);
        }
    };
    if let Some(t) = topic {
        push(t.split_whitespace().collect::<Vec<_>>().join(" "));
    }
    for t in trends {
        push(humanise(&t.topic));
    }
    for t in persona.learned.topics.iter().take(5) {
        push(t.clone());
    }
    for w in passage_keywords(passages, 3) {
        push(w);
    }
    out
}

/// `#OpenSource` → `Open Source`; `rust_lang` → `rust lang`; a topic with spaces stays.
fn humanise(topic: &str) -> String {
    let t = topic.trim().trim_start_matches('#');
    if t.contains(char::is_whitespace) {
        return t.split_whitespace().collect::<Vec<_>>().join(" ");
    }
    let mut out = String::with_capacity(t.len() + 4);
    let mut prev_lower = false;
    for c in t.chars() {
        if c == '_' || c == '-' {
            out.push(' ');
            prev_lower = false;
            continue;
        }
        if c.is_uppercase() && prev_lower {
            out.push(' ');
        }
        prev_lower = c.is_lowercase() || c.is_ascii_digit();
        out.push(c);
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Up to `n` subjects the passages come back to: pairs of keywords in a row used at least
/// twice (`raised beds`), then single keywords used at least twice that are not part of a pair
/// already taken; most used first (ties: the first seen). A word used once is no subject.
fn passage_keywords(passages: &[String], n: usize) -> Vec<String> {
    let mut pairs: HashMap<String, (usize, usize)> = HashMap::new();
    let mut singles: HashMap<String, (usize, usize)> = HashMap::new();
    let mut at = 0;
    for p in passages {
        let ws = words(p);
        for (i, w) in ws.iter().enumerate() {
            if !is_keyword(&w.lower) || w.lower.chars().count() < 4 {
                continue;
            }
            at += 1;
            singles.entry(w.lower.clone()).or_insert((0, at)).0 += 1;
            if let Some(next) = ws.get(i + 1)
                && is_keyword(&next.lower)
                && !next.sentence_start
            {
                let pair = format!("{} {}", w.lower, next.lower);
                pairs.entry(pair).or_insert((0, at)).0 += 1;
            }
        }
    }
    let ranked = |m: HashMap<String, (usize, usize)>| {
        let mut all: Vec<(String, (usize, usize))> =
            m.into_iter().filter(|(_, (k, _))| *k >= 2).collect();
        all.sort_by(|(_, a), (_, b)| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        all.into_iter().map(|(w, _)| w).collect::<Vec<_>>()
    };
    let mut out: Vec<String> = ranked(pairs).into_iter().take(n).collect();
    for w in ranked(singles) {
        if out.len() >= n {
            break;
        }
        if !out.iter().any(|p| p.split(' ').any(|x| x == w)) {
            out.push(w);
        }
    }
    out
}

/// The first sentence of the first passage that mentions `subject` (case aside), cut to
/// [`MAX_FACT`].
fn fact_about(subject: &str, passages: &[String], lower: &[String]) -> Option<String> {
    let key = subject.to_lowercase();
    let i = lower.iter().position(|p| p.contains(&key))?;
    let passage = passages[i].as_str();
    let toks = tokens(passage, crier_core::text::Counting::Graphemes);
    // Sentences, the first that mentions the subject.
    let mut start = 0;
    for (k, t) in toks.iter().enumerate() {
        if t.brk >= Break::Sentence || k + 1 == toks.len() {
            let sentence = join(&toks[start..=k]);
            if sentence.to_lowercase().contains(&key) {
                return Some(clip_words(&sentence, MAX_FACT));
            }
            start = k + 1;
        }
    }
    None
}

/// At most `max` graphemes, cut at a word (with `…` when cut).
fn clip_words(text: &str, max: usize) -> String {
    let text = text.trim();
    if text.graphemes(true).count() <= max {
        return text.to_owned();
    }
    let mut out = String::new();
    for w in text.split_whitespace() {
        let next = if out.is_empty() {
            w.to_owned()
        } else {
            format!("{out} {w}")
        };
        if next.graphemes(true).count() + 1 > max {
            break;
        }
        out = next;
    }
    if out.is_empty() {
        out = text.graphemes(true).take(max - 1).collect();
    }
    format!("{out}…")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Learned, Voice};
    use crier_core::text::length;

    fn trend(topic: &str) -> Trend {
        Trend {
            topic: topic.into(),
            source: "mastodon".into(),
            score: 3.0,
        }
    }

    #[test]
    fn ideas_come_from_the_topic_and_trends_with_distinct_titles_and_fitting_drafts() {
        let r = crier_networks::x::RULES.clone();
        let passages = vec!["Composting at home takes six weeks. Worms help a lot.".to_owned()];
        let got = ideas(
            Some("composting"),
            &[trend("#OpenSource"), trend("balcony gardens")],
            &Persona::default(),
            &passages,
            &r,
            6,
        );
        let titles: Vec<&str> = got.iter().map(|i| i.title.as_str()).collect();
        assert_eq!(
            titles,
            vec![
                "How to get started with composting",
                "Ask your audience about Open Source",
                "Behind the scenes: how we work on balcony gardens",
                "Ask your audience about composting",
                "Behind the scenes: how we work on Open Source",
                "Myth vs fact: balcony gardens",
            ]
        );
        assert!(
            got[0].draft.contains("Composting at home takes six weeks."),
            "{}",
            got[0].draft
        );
        assert!(got[0].draft.contains("#composting"), "{}", got[0].draft);
        for idea in &got {
            assert!(
                length(&idea.draft, r.counting) <= r.max_length,
                "{}",
                idea.draft
            );
        }
        assert_eq!(
            got,
            ideas(
                Some("composting"),
                &[trend("#OpenSource"), trend("balcony gardens")],
                &Persona::default(),
                &passages,
                &r,
                6
            )
        );
    }

    #[test]
    fn without_trends_or_topic_the_persona_and_passages_give_the_subjects() {
        let r = crier_networks::threads::RULES.clone();
        let persona = Persona {
            learned: Learned {
                topics: vec!["tomatoes".into()],
                emoji_per_post: 2.0,
                ..Learned::default()
            },
            voice: Voice {
                words_to_avoid: vec!["secret".into()],
                ..Voice::default()
            },
        };
        let got = ideas(
            None,
            &[],
            &persona,
            &["Raised beds drain well. Raised beds warm up early.".to_owned()],
            &r,
            30,
        );
        assert!(got.len() > 7 && got.len() <= 14, "{}", got.len());
        assert!(got[0].title.ends_with("tomatoes"));
        assert!(
            got.iter()
                .any(|i| i.title == "How to get started with raised beds"),
            "{got:?}"
        );
        assert!(got[0].draft.starts_with('💡'), "{}", got[0].draft);
        let titles: HashSet<&str> = got.iter().map(|i| i.title.as_str()).collect();
        assert_eq!(titles.len(), got.len());
        for idea in &got {
            assert!(length(&idea.draft, r.counting) <= r.max_length);
            assert!(super::super::words::hashtags_in(&idea.draft).len() <= 1);
        }
    }

    #[test]
    fn with_nothing_at_all_the_ideas_are_evergreen() {
        let r = crier_networks::bluesky::RULES.clone();
        let got = ideas(None, &[], &Persona::default(), &[], &r, 3);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].title, "A lesson learned the hard way");
        assert_eq!(got[0].angle, "story");
        assert_eq!(
            ideas(Some("  "), &[], &Persona::default(), &[], &r, 20).len(),
            EVERGREEN.len()
        );
    }

    #[test]
    fn topics_read_like_words() {
        assert_eq!(humanise("#OpenSource"), "Open Source");
        assert_eq!(humanise("rust_lang"), "rust lang");
        assert_eq!(humanise("  balcony   gardens "), "balcony gardens");
        assert_eq!(clip_words("one two three", 9), "one two…");
    }
}

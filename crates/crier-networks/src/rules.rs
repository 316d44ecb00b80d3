//! What a network accepts: text length as it counts it, threads, and media (count, types,
//! size, dimensions, duration). One check answers every problem at once, each with a stable
//! rule id (`bluesky.text.max_graphemes`, `mastodon.media.max_count`), the field at fault and a
//! readable message: preflight shows them all, scheduling and publishing refuse on the first.

use crier_core::text::{self, Counting};

/// A network's limits on what a post may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    pub platform: &'static str,
    pub counting: Counting,
    pub max_length: usize,
    pub threads: bool,
    pub max_thread_parts: usize,
    pub media: MediaRules,
    /// The per-account options this network takes (`overrides.{account}.options`).
    pub options: Vec<OptionRule>,
    /// What the network takes as hashtags in a post's text.
    pub hashtags: HashtagRules,
}

/// A network's hashtags: how many one post takes, how many work best, and how long one may be.
///
/// Every network here reads a hashtag as `#` followed by letters, digits and `_` that are not
/// digits alone; [`HashtagRules::accepts`] asks for at least one letter (Mastodon's rule, the
/// strictest). Where a network documents no count or length of its own, the value is a
/// conservative one of ours, and the network's constant says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashtagRules {
    /// Most hashtags in one post: more are refused, or ignored (YouTube ignores them all).
    pub max_count: usize,
    /// How many usually do best (the optimiser's sweet spot); at most `max_count`.
    pub recommended: usize,
    /// Longest tag, in characters, without the `#`.
    pub max_length: usize,
}

impl HashtagRules {
    /// Whether `tag` (with its `#`) is a hashtag this network takes: `#`, then 1 to
    /// `max_length` letters, digits or `_`, at least one of them a letter.
    pub fn accepts(&self, tag: &str) -> bool {
        let Some(body) = tag.strip_prefix('#') else {
            return false;
        };
        let n = body.chars().count();
        n >= 1
            && n <= self.max_length
            && body.chars().all(|c| c.is_alphanumeric() || c == '_')
            && body.chars().any(char::is_alphabetic)
    }
}

/// One network-specific option a post may set per account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionRule {
    pub name: &'static str,
    pub kind: OptionKind,
    /// What it does, for the API docs.
    pub about: &'static str,
}

/// The values an option takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptionKind {
    /// Text of at most `max` characters (not empty).
    Text {
        max: usize,
    },
    /// One of these words.
    Choice(&'static [&'static str]),
    Bool,
    /// A list of at most `max_count` tags, each at most `max_len` characters, together at most
    /// `max_total` characters.
    Tags {
        max_count: usize,
        max_len: usize,
        max_total: usize,
    },
}

impl OptionRule {
    pub const fn text(name: &'static str, max: usize, about: &'static str) -> Self {
        Self {
            name,
            kind: OptionKind::Text { max },
            about,
        }
    }

    pub const fn choice(
        name: &'static str,
        choices: &'static [&'static str],
        about: &'static str,
    ) -> Self {
        Self {
            name,
            kind: OptionKind::Choice(choices),
            about,
        }
    }

    pub const fn flag(name: &'static str, about: &'static str) -> Self {
        Self {
            name,
            kind: OptionKind::Bool,
            about,
        }
    }

    /// Why `value` does not fit, if it does not.
    fn problem(&self, value: &serde_json::Value) -> Option<String> {
        match (&self.kind, value) {
            (OptionKind::Text { max }, serde_json::Value::String(t)) => {
                let n = t.chars().count();
                if t.trim().is_empty() {
                    Some("must not be empty".into())
                } else if n > *max {
                    Some(format!("is {n} characters; the limit is {max}"))
                } else if t.chars().any(|c| c.is_control() && c != '\n') {
                    Some("must not contain control characters".into())
                } else {
                    None
                }
            }
            (OptionKind::Text { max }, _) => {
                Some(format!("must be text of at most {max} characters"))
            }
            (OptionKind::Choice(choices), serde_json::Value::String(t))
                if choices.contains(&t.as_str()) =>
            {
                None
            }
            (OptionKind::Choice(choices), _) => {
                Some(format!("must be one of {}", choices.join(", ")))
            }
            (OptionKind::Bool, serde_json::Value::Bool(_)) => None,
            (OptionKind::Bool, _) => Some("must be true or false".into()),
            (
                OptionKind::Tags {
                    max_count,
                    max_len,
                    max_total,
                },
                serde_json::Value::Array(items),
            ) => {
                if items.len() > *max_count {
                    return Some(format!(
                        "has {} tags; the limit is {max_count}",
                        items.len()
                    ));
                }
                let mut total = 0;
                for item in items {
                    let Some(t) = item.as_str() else {
                        return Some("must be a list of texts".into());
                    };
                    let n = t.chars().count();
                    if t.trim().is_empty() || n > *max_len || t.chars().any(char::is_control) {
                        return Some(format!(
                            "each tag must be 1 to {max_len} characters without control characters"
                        ));
                    }
                    total += n;
                }
                (total > *max_total).then(|| {
                    format!("tags are {total} characters together; the limit is {max_total}")
                })
            }
            (OptionKind::Tags { .. }, _) => Some("must be a list of texts".into()),
        }
    }
}

/// A network's limits on the media of one post (the media go with the first part).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaRules {
    /// Media a post must have (1 where the network takes no post of text alone: Instagram,
    /// YouTube, TikTok).
    pub min_count: usize,
    /// Media per post, images and videos together.
    pub max_count: usize,
    /// Accepted image types (sniffed MIME types); empty: no images.
    pub image_types: Vec<String>,
    pub max_image_bytes: u64,
    /// Largest width and height of an image, in pixels (0: no limit).
    pub max_image_side: u32,
    /// Accepted video types; empty: no video.
    pub video_types: Vec<String>,
    pub max_video_bytes: u64,
    /// Longest video, in milliseconds (0: no limit).
    pub max_video_ms: u64,
    /// Videos per post.
    pub max_videos: usize,
    /// Whether images and a video may go in one post.
    pub mix: bool,
    /// Longest alt text, in characters (0: the network takes no alt text).
    pub max_alt_text: usize,
}

/// What the rules need to know of one media object (never its bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaMeta {
    pub id: String,
    /// Sniffed from the bytes.
    pub content_type: String,
    pub size: u64,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub duration_ms: Option<u64>,
    pub alt_text: Option<String>,
    pub filename: String,
}

impl MediaMeta {
    pub fn is_video(&self) -> bool {
        self.content_type.starts_with("video/")
    }
}

/// One thing wrong with a post for one network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Stable id: `{platform}.{area}.{rule}`.
    pub rule: String,
    /// `body`, `thread[2]`, `media_ids` or `media_ids[1]`.
    pub field: String,
    pub message: String,
}

impl Rules {
    fn violation(&self, rule: &str, field: impl Into<String>, message: String) -> Violation {
        Violation {
            rule: format!("{}.{rule}", self.platform),
            field: field.into(),
            message,
        }
    }

    /// Every problem of one target's parts (body first, then the thread) and media.
    pub fn check(&self, parts: &[String], media: &[MediaMeta]) -> Vec<Violation> {
        let mut out = Vec::new();
        let p = self.platform;
        if parts.len() > 1 && !self.threads {
            out.push(self.violation(
                "thread.unsupported",
                "thread",
                format!("{p} does not support threads"),
            ));
        } else if parts.len() > self.max_thread_parts {
            out.push(self.violation(
                "thread.max_parts",
                "thread",
                format!(
                    "{p} takes at most {} parts in a thread",
                    self.max_thread_parts
                ),
            ));
        }
        let length_rule = match self.counting {
            Counting::Graphemes => "text.max_graphemes",
            Counting::GraphemesLinks23 => "text.max_characters",
            Counting::Weighted => "text.max_weighted_length",
            Counting::CodePoints => "text.max_characters",
        };
        for (i, part) in parts.iter().enumerate() {
            let field = if i == 0 {
                "body".to_owned()
            } else {
                format!("thread[{}]", i - 1)
            };
            // A post of media alone is fine where the network takes media.
            if part.trim().is_empty() && (i != 0 || media.is_empty()) {
                out.push(self.violation("text.empty", field, "must not be empty".into()));
                continue;
            }
            let len = text::length(part, self.counting);
            if len > self.max_length {
                out.push(self.violation(
                    length_rule,
                    field,
                    format!(
                        "is {len} characters as {p} counts them; the limit is {}",
                        self.max_length
                    ),
                ));
            }
        }
        self.check_media(media, &mut out);
        out
    }

    /// Every problem of one account's network options: names the network does not take, and
    /// values that do not fit (`{platform}.options.unknown`, `{platform}.options.{name}`).
    pub fn check_options(
        &self,
        options: &std::collections::BTreeMap<String, serde_json::Value>,
    ) -> Vec<Violation> {
        let p = self.platform;
        let mut out = Vec::new();
        for (name, value) in options {
            let field = format!("options.{name}");
            match self.options.iter().find(|o| o.name == name) {
                None => {
                    let known: Vec<&str> = self.options.iter().map(|o| o.name).collect();
                    let takes = if known.is_empty() {
                        format!("{p} takes no options")
                    } else {
                        format!("{p} takes {}", known.join(", "))
                    };
                    out.push(self.violation(
                        "options.unknown",
                        field,
                        format!("is not an option of {p}; {takes}"),
                    ));
                }
                Some(rule) => {
                    if let Some(why) = rule.problem(value) {
                        out.push(self.violation(&format!("options.{name}"), field, why));
                    }
                }
            }
        }
        out
    }

    fn check_media(&self, media: &[MediaMeta], out: &mut Vec<Violation>) {
        let m = &self.media;
        let p = self.platform;
        if media.len() < m.min_count {
            out.push(self.violation(
                "media.required",
                "media_ids",
                format!(
                    "{p} takes no post without media; attach at least {}",
                    m.min_count
                ),
            ));
        }
        if media.len() > m.max_count {
            out.push(self.violation(
                "media.max_count",
                "media_ids",
                format!("{p} takes at most {} media in a post", m.max_count),
            ));
        }
        let videos = media.iter().filter(|x| x.is_video()).count();
        if videos > m.max_videos && !m.video_types.is_empty() {
            out.push(self.violation(
                "media.max_videos",
                "media_ids",
                format!("{p} takes at most {} video in a post", m.max_videos),
            ));
        }
        if videos > 0 && videos < media.len() && !m.mix {
            out.push(self.violation(
                "media.mixed",
                "media_ids",
                format!("{p} does not take images and a video in one post"),
            ));
        }
        for (i, x) in media.iter().enumerate() {
            let field = format!("media_ids[{i}]");
            let (types, max_bytes, kind) = if x.is_video() {
                (&m.video_types, m.max_video_bytes, "video")
            } else {
                (&m.image_types, m.max_image_bytes, "image")
            };
            if !types.iter().any(|t| t == &x.content_type) {
                let accepted = if types.is_empty() {
                    format!("{p} takes no {kind}")
                } else {
                    format!("{p} takes {}", types.join(", "))
                };
                out.push(self.violation(
                    "media.type",
                    field,
                    format!("{} is {}; {accepted}", x.id, x.content_type),
                ));
                continue;
            }
            if x.size > max_bytes {
                out.push(self.violation(
                    &format!("media.max_{kind}_bytes"),
                    field.clone(),
                    format!(
                        "{} is {} bytes; {p} takes {kind}s up to {max_bytes} bytes",
                        x.id, x.size
                    ),
                ));
            }
            if !x.is_video()
                && m.max_image_side > 0
                && (x.width.unwrap_or(0) > m.max_image_side
                    || x.height.unwrap_or(0) > m.max_image_side)
            {
                out.push(self.violation(
                    "media.max_image_side",
                    field.clone(),
                    format!(
                        "{} is {}x{} pixels; {p} takes at most {} on a side",
                        x.id,
                        x.width.unwrap_or(0),
                        x.height.unwrap_or(0),
                        m.max_image_side
                    ),
                ));
            }
            if x.is_video()
                && m.max_video_ms > 0
                && x.duration_ms.is_some_and(|d| d > m.max_video_ms)
            {
                out.push(self.violation(
                    "media.max_video_duration",
                    field.clone(),
                    format!(
                        "{} is {} ms long; {p} takes videos up to {} s",
                        x.id,
                        x.duration_ms.unwrap_or(0),
                        m.max_video_ms / 1000
                    ),
                ));
            }
            let alt = x.alt_text.as_deref().map_or(0, |a| a.chars().count());
            if m.max_alt_text > 0 && alt > m.max_alt_text {
                out.push(self.violation(
                    "media.max_alt_text",
                    field,
                    format!(
                        "{}'s alt text is {alt} characters; {p} takes up to {}",
                        x.id, m.max_alt_text
                    ),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules {
        Rules {
            platform: "net",
            counting: Counting::Graphemes,
            max_length: 10,
            threads: true,
            max_thread_parts: 3,
            media: MediaRules {
                min_count: 0,
                max_count: 2,
                image_types: vec!["image/png".into()],
                max_image_bytes: 100,
                max_image_side: 50,
                video_types: vec!["video/mp4".into()],
                max_video_bytes: 1000,
                max_video_ms: 10_000,
                max_videos: 1,
                mix: false,
                max_alt_text: 5,
            },
            options: vec![
                OptionRule::text("title", 5, "a title"),
                OptionRule::choice("privacy", &["public", "private"], "who sees it"),
            ],
            hashtags: HashtagRules {
                max_count: 2,
                recommended: 1,
                max_length: 5,
            },
        }
    }

    #[test]
    fn options_are_checked_by_name_and_kind() {
        let r = rules();
        let opts: std::collections::BTreeMap<String, serde_json::Value> = serde_json::from_value(
            serde_json::json!({"title": "toolong", "privacy": "friends", "colour": 1}),
        )
        .unwrap();
        let got: Vec<(String, String)> = r
            .check_options(&opts)
            .into_iter()
            .map(|v| (v.rule, v.field))
            .collect();
        assert_eq!(
            got,
            vec![
                ("net.options.unknown".into(), "options.colour".into()),
                ("net.options.privacy".into(), "options.privacy".into()),
                ("net.options.title".into(), "options.title".into()),
            ]
        );
        let ok = serde_json::from_value(serde_json::json!({"title": "hi", "privacy": "public"}))
            .unwrap();
        assert!(r.check_options(&ok).is_empty());
    }

    #[test]
    fn hashtags_are_letters_digits_and_underscores_with_a_letter() {
        let h = rules().hashtags;
        for ok in ["#rust", "#a_1", "#Öl", "#日本", "#x2024"] {
            assert!(h.accepts(ok), "{ok}");
        }
        for bad in [
            "rust", "#", "#2024", "#_", "#toolong", "#a-b", "#a b", "##ab", "#a.b",
        ] {
            assert!(!h.accepts(bad), "{bad}");
        }
    }

    #[test]
    fn every_network_has_sane_hashtag_rules() {
        for r in crate::documented_rules() {
            let h = r.hashtags;
            assert!(h.max_count >= 1, "{}", r.platform);
            assert!((1..=h.max_count).contains(&h.recommended), "{}", r.platform);
            assert!(h.max_length >= 20, "{}", r.platform);
        }
    }

    fn media(id: &str, ty: &str, size: u64) -> MediaMeta {
        MediaMeta {
            id: id.into(),
            content_type: ty.into(),
            size,
            width: Some(10),
            height: Some(10),
            duration_ms: Some(1000),
            alt_text: None,
            filename: "f".into(),
        }
    }

    #[test]
    fn every_problem_is_named_at_once_with_a_stable_rule_id() {
        let r = rules();
        let parts = vec!["x".repeat(11), "ok".into(), " ".into(), "a".into()];
        let mut big = media("m2", "image/png", 101);
        big.width = Some(51);
        big.alt_text = Some("toolong".into());
        let got = r.check(
            &parts,
            &[
                media("m0", "image/gif", 1),
                media("m1", "video/mp4", 1),
                big,
            ],
        );
        let ids: Vec<(&str, &str)> = got
            .iter()
            .map(|v| (v.rule.as_str(), v.field.as_str()))
            .collect();
        assert_eq!(
            ids,
            vec![
                ("net.thread.max_parts", "thread"),
                ("net.text.max_graphemes", "body"),
                ("net.text.empty", "thread[1]"),
                ("net.media.max_count", "media_ids"),
                ("net.media.mixed", "media_ids"),
                ("net.media.type", "media_ids[0]"),
                ("net.media.max_image_bytes", "media_ids[2]"),
                ("net.media.max_image_side", "media_ids[2]"),
                ("net.media.max_alt_text", "media_ids[2]"),
            ]
        );
        assert!(
            r.check(&["hi".into()], &[media("a", "image/png", 5)])
                .is_empty()
        );
        assert!(
            r.check(&["".into()], &[media("a", "image/png", 5)])
                .is_empty(),
            "media alone is a post"
        );
        let mut long = media("v", "video/mp4", 5);
        long.duration_ms = Some(10_001);
        assert_eq!(
            r.check(&["hi".into()], &[long])[0].rule,
            "net.media.max_video_duration"
        );
    }
}

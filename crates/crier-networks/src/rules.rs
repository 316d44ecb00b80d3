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
}

/// A network's limits on the media of one post (the media go with the first part).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaRules {
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

    fn check_media(&self, media: &[MediaMeta], out: &mut Vec<Violation>) {
        let m = &self.media;
        let p = self.platform;
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

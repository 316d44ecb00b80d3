//! What an instance says of itself (`GET /api/v2/instance`): its limits, as [`Rules`], and its
//! domain (the `@host` of its accounts' handles).
//!
//! Cached per instance in a bounded map with a TTL. An instance that cannot be read gets
//! Mastodon's documented defaults, cached for a short while too, so a dead instance costs one
//! bounded call per [`FAILED_TTL_MS`], not one per check. Every number an instance sends is
//! clamped to a sane range: the document is the instance's to write, not ours to trust.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use crier_core::text::Counting;

use crate::{MediaRules, Rules};

pub const PLATFORM: &str = "mastodon";

/// How long an instance's limits are kept.
pub const TTL_MS: i64 = 60 * 60 * 1000;
/// How long the defaults stand in for an instance that could not be read.
pub const FAILED_TTL_MS: i64 = 60 * 1000;
/// Instances kept at most; the oldest entry goes first.
pub const MAX_INSTANCES: usize = 1024;

/// Mastodon's documented defaults (docs.joinmastodon.org, `/api/v2/instance` and the media
/// API): 500 characters with every link counted as 23, four media (one video, not with
/// images), images up to 16 MB and 33,177,600 pixels (about 5760 a side), videos up to 99 MB,
/// alt text up to 1500 characters. Threads are reply chains.
pub static DEFAULT_RULES: LazyLock<Rules> = LazyLock::new(|| Rules {
    platform: PLATFORM,
    counting: Counting::GraphemesLinks23,
    max_length: 500,
    threads: true,
    // Mastodon has no limit on a reply chain; this bounds one post's job.
    max_thread_parts: 50,
    media: MediaRules {
        min_count: 0,
        max_count: 4,
        image_types: [
            "image/jpeg",
            "image/png",
            "image/gif",
            "image/webp",
            "image/heic",
            "image/heif",
            "image/avif",
        ]
        .map(str::to_owned)
        .to_vec(),
        max_image_bytes: 16 * 1024 * 1024,
        max_image_side: max_side(33_177_600),
        video_types: ["video/mp4", "video/quicktime", "video/webm"]
            .map(str::to_owned)
            .to_vec(),
        max_video_bytes: 99 * 1024 * 1024,
        max_video_ms: 0,
        max_videos: 1,
        mix: false,
        max_alt_text: 1500,
    },
    options: Vec::new(),
    // Mastodon documents neither a count nor a length: 10 and 64 are conservative values of
    // ours. Hashtags are how people find posts there, so a few do well.
    hashtags: crate::rules::HashtagRules {
        max_count: 10,
        recommended: 3,
        max_length: 64,
    },
});

/// The largest side of a square image within `pixels` (Mastodon limits the pixel count; the
/// rules speak of sides, so a long thin image under the pixel count may be refused here).
fn max_side(pixels: u64) -> u32 {
    (pixels as f64).sqrt().floor().min(u32::MAX as f64) as u32
}

/// What we keep of an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub rules: Rules,
    /// Its `domain`, when the document was read.
    pub domain: Option<String>,
    /// Its `characters_reserved_per_url`. The counting is fixed at 23 a link (every stock
    /// instance's value); an instance that says otherwise is counted as 23 anyway.
    pub url_weight: Option<u64>,
}

impl Instance {
    pub fn defaults() -> Self {
        Self {
            rules: DEFAULT_RULES.clone(),
            domain: None,
            url_weight: None,
        }
    }

    /// The instance from its `/api/v2/instance` document (a missing field keeps its default).
    pub fn from_document(doc: &V2Instance) -> Self {
        let mut rules = DEFAULT_RULES.clone();
        let config = doc.configuration.as_ref();
        let statuses = config.and_then(|c| c.statuses.as_ref());
        let media = config.and_then(|c| c.media_attachments.as_ref());
        if let Some(n) = statuses.and_then(|s| s.max_characters) {
            rules.max_length = n.clamp(1, 1_000_000) as usize;
        }
        if let Some(n) = statuses.and_then(|s| s.max_media_attachments) {
            rules.media.max_count = n.min(100) as usize;
        }
        if let Some(m) = media {
            if let Some(types) = &m.supported_mime_types {
                let (images, videos): (Vec<String>, Vec<String>) = types
                    .iter()
                    .filter(|t| t.len() <= 100)
                    .take(200)
                    .map(|t| t.to_ascii_lowercase())
                    .filter(|t| t.starts_with("image/") || t.starts_with("video/"))
                    .partition(|t| t.starts_with("image/"));
                rules.media.image_types = images;
                rules.media.video_types = videos;
            }
            if let Some(n) = m.image_size_limit {
                rules.media.max_image_bytes = n;
            }
            if let Some(n) = m.video_size_limit {
                rules.media.max_video_bytes = n;
            }
            if let Some(n) = m.image_matrix_limit {
                rules.media.max_image_side = max_side(n);
            }
        }
        let domain = doc
            .domain
            .as_deref()
            .filter(|d| !d.is_empty() && d.len() <= 253 && !d.contains(['/', '@', ' ']))
            .map(str::to_owned);
        Self {
            rules,
            domain,
            url_weight: statuses.and_then(|s| s.characters_reserved_per_url),
        }
    }
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct V2Instance {
    pub domain: Option<String>,
    pub configuration: Option<Configuration>,
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct Configuration {
    pub statuses: Option<StatusesConfig>,
    pub media_attachments: Option<MediaConfig>,
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct StatusesConfig {
    pub max_characters: Option<u64>,
    pub max_media_attachments: Option<u64>,
    pub characters_reserved_per_url: Option<u64>,
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct MediaConfig {
    pub supported_mime_types: Option<Vec<String>>,
    pub image_size_limit: Option<u64>,
    pub video_size_limit: Option<u64>,
    pub image_matrix_limit: Option<u64>,
}

struct Entry {
    instance: Arc<Instance>,
    expires_at: i64,
    inserted: u64,
}

/// Instances by base URL, bounded by [`MAX_INSTANCES`].
#[derive(Default)]
pub struct Cache {
    inner: Mutex<CacheInner>,
}

#[derive(Default)]
struct CacheInner {
    entries: HashMap<String, Entry>,
    counter: u64,
}

impl Cache {
    pub fn get(&self, base: &str, now: i64) -> Option<Arc<Instance>> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner
            .entries
            .get(base)
            .filter(|e| e.expires_at > now)
            .map(|e| e.instance.clone())
    }

    pub fn put(&self, base: &str, instance: Arc<Instance>, expires_at: i64, now: i64) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if !inner.entries.contains_key(base) && inner.entries.len() >= MAX_INSTANCES {
            inner.entries.retain(|_, e| e.expires_at > now);
            if inner.entries.len() >= MAX_INSTANCES
                && let Some(oldest) = inner
                    .entries
                    .iter()
                    .min_by_key(|(_, e)| e.inserted)
                    .map(|(k, _)| k.clone())
            {
                inner.entries.remove(&oldest);
            }
        }
        inner.counter += 1;
        let inserted = inner.counter;
        inner.entries.insert(
            base.to_owned(),
            Entry {
                instance,
                expires_at,
                inserted,
            },
        );
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entries
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_is_bounded_and_forgets_the_oldest() {
        let cache = Cache::default();
        let one = Arc::new(Instance::defaults());
        for i in 0..MAX_INSTANCES + 10 {
            cache.put(&format!("https://i{i}.example"), one.clone(), 1_000, 0);
        }
        assert_eq!(cache.len(), MAX_INSTANCES);
        assert!(cache.get("https://i0.example", 0).is_none());
        assert!(
            cache
                .get(&format!("https://i{}.example", MAX_INSTANCES + 9), 0)
                .is_some()
        );
        // Expired entries are not answered, and go first when room is needed.
        assert!(
            cache
                .get(&format!("https://i{}.example", MAX_INSTANCES + 9), 1_000)
                .is_none()
        );
    }

    #[test]
    fn an_instance_document_is_read_and_clamped() {
        let doc: V2Instance = serde_json::from_value(serde_json::json!({
            "domain": "social.example",
            "configuration": {
                "statuses": {"max_characters": 5000, "max_media_attachments": 1000,
                             "characters_reserved_per_url": 23},
                "media_attachments": {
                    "supported_mime_types": ["image/png", "video/mp4", "audio/mpeg"],
                    "image_size_limit": 10, "video_size_limit": 20,
                    "image_matrix_limit": 16_777_216u64
                }
            }
        }))
        .unwrap();
        let i = Instance::from_document(&doc);
        assert_eq!(i.rules.max_length, 5000);
        assert_eq!(i.rules.media.max_count, 100);
        assert_eq!(i.rules.media.image_types, vec!["image/png"]);
        assert_eq!(i.rules.media.video_types, vec!["video/mp4"]);
        assert_eq!(i.rules.media.max_image_bytes, 10);
        assert_eq!(i.rules.media.max_video_bytes, 20);
        assert_eq!(i.rules.media.max_image_side, 4096);
        assert_eq!(i.domain.as_deref(), Some("social.example"));
        let empty = Instance::from_document(&V2Instance::default());
        assert_eq!(empty.rules, *DEFAULT_RULES);
        let bad_domain: V2Instance =
            serde_json::from_value(serde_json::json!({"domain": "evil.example/@x"})).unwrap();
        assert_eq!(Instance::from_document(&bad_domain).domain, None);
    }

    #[test]
    fn the_defaults_are_mastodons() {
        let r = &*DEFAULT_RULES;
        assert_eq!(r.max_length, 500);
        assert_eq!(r.counting, Counting::GraphemesLinks23);
        assert_eq!(r.media.max_count, 4);
        assert_eq!(r.media.max_image_bytes, 16 * 1024 * 1024);
        assert_eq!(r.media.max_video_bytes, 99 * 1024 * 1024);
        assert_eq!(r.media.max_image_side, 5760);
    }
}

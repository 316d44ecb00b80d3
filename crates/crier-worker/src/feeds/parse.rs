//! Reading a fetched document: feed-rs parses RSS 2.0, Atom and JSON Feed, and each entry is
//! reduced to what a post and deduplication need, with a key that is the same on every read.

use std::collections::HashSet;

use crier_core::text::{clip, collapse_whitespace, html_to_text};
use sha2::{Digest, Sha256};

use super::MAX_ENTRIES;

/// Entry ids longer than this are stored as their SHA-256.
const MAX_KEY: usize = 512;
const MAX_LINK: usize = 2048;

/// One entry of a document, reduced to what a post and deduplication need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    /// The entry's id (or, without one, its link or a digest of its text).
    pub key: String,
    pub link: Option<String>,
    pub title: String,
    pub summary: String,
    /// Published (or else updated) time, epoch ms.
    pub date: Option<i64>,
}

pub(super) fn parse_entries(body: &[u8], base_url: &str) -> Result<Vec<Entry>, String> {
    let parser = feed_rs::parser::Builder::new()
        .base_uri(Some(base_url))
        // No made-up ids (feed-rs falls back to a random UUID): an entry without an id is
        // keyed below by its link or its text, the same on every read.
        .id_generator(|_, _, _| String::new())
        .build();
    let doc = parser.parse(body).map_err(|e| {
        format!(
            "The document is not a valid RSS, Atom or JSON feed: {}.",
            clip(&e.to_string(), 300)
        )
    })?;
    let mut entries = Vec::with_capacity(doc.entries.len().min(MAX_ENTRIES));
    let mut keys = HashSet::new();
    let mut links = HashSet::new();
    for e in &doc.entries {
        let link = pick_link(&e.links);
        let title = e.title.as_ref().map(text_of).unwrap_or_default();
        let summary = e
            .summary
            .as_ref()
            .map(text_of)
            .filter(|s| !s.is_empty())
            .or_else(|| e.content.as_ref().and_then(content_text))
            .unwrap_or_default();
        let id = e.id.trim();
        let key = if !id.is_empty() {
            bounded_key(id)
        } else if let Some(link) = &link {
            bounded_key(link)
        } else if !title.is_empty() || !summary.is_empty() {
            format!("sha256:{}", sha256_hex(&format!("{title}\n{summary}")))
        } else {
            continue;
        };
        if !keys.insert(key.clone()) || link.as_ref().is_some_and(|l| !links.insert(l.clone())) {
            continue;
        }
        entries.push(Entry {
            key,
            link,
            title,
            summary,
            date: e.published.or(e.updated).map(|d| d.timestamp_millis()),
        });
    }
    if entries.iter().all(|e| e.date.is_some()) {
        entries.sort_by_key(|e| std::cmp::Reverse(e.date));
    }
    entries.truncate(MAX_ENTRIES);
    Ok(entries)
}

/// The key as it is when short and without NUL; else its digest (an id with a NUL could not be
/// stored on PostgreSQL). Other control characters stay, so keys stored before are still met.
fn bounded_key(s: &str) -> String {
    if s.len() <= MAX_KEY && !s.contains('\0') {
        s.to_owned()
    } else {
        format!("sha256:{}", sha256_hex(s))
    }
}

fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The entry's web page: the first plain or `alternate` link, else the first; only http(s).
fn pick_link(links: &[feed_rs::model::Link]) -> Option<String> {
    let link = links
        .iter()
        .find(|l| l.rel.as_deref().is_none_or(|r| r == "alternate"))
        .or(links.first())?;
    let href = link.href.trim();
    let parsed = reqwest::Url::parse(href).ok()?;
    (matches!(parsed.scheme(), "http" | "https") && href.len() <= MAX_LINK && !href.contains('\0'))
        .then(|| href.to_owned())
}

fn text_of(t: &feed_rs::model::Text) -> String {
    if t.content_type.as_str().contains("html") {
        html_to_text(&t.content)
    } else {
        collapse_whitespace(&t.content)
    }
}

fn content_text(c: &feed_rs::model::Content) -> Option<String> {
    let body = c.body.as_deref()?;
    let ty = c.content_type.as_str();
    let text = if ty.contains("html") {
        html_to_text(body)
    } else if ty.starts_with("text/") {
        collapse_whitespace(body)
    } else {
        return None;
    };
    (!text.is_empty()).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_without_ids_get_stable_keys() {
        let rss = br#"<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>
            <item><title>Linked</title><link>https://e.x/a</link></item>
            <item><title>Only text</title><description>words</description></item>
            <item><title>Linked again</title><link>https://e.x/a</link></item>
            </channel></rss>"#;
        let a = parse_entries(rss, "https://e.x/feed").unwrap();
        let b = parse_entries(rss, "https://e.x/feed").unwrap();
        assert_eq!(a, b, "the same document gives the same keys");
        assert_eq!(
            a.len(),
            2,
            "the second entry with the same link is dropped: {a:?}"
        );
        assert_eq!(a[0].key, "https://e.x/a");
        assert!(a[1].key.starts_with("sha256:"));
        assert_eq!(a[1].link, None);
    }

    /// NUL (which PostgreSQL cannot store) never reaches an entry's key or link, nor any
    /// control character its text.
    #[test]
    fn control_characters_stay_out_of_entries() {
        let json = br#"{"version": "https://jsonfeed.org/version/1.1", "title": "t", "items": [
            {"id": "a\u0000b", "url": "https://e.x/a\u0000b", "title": "Launch\u0000 day\u001b[2J",
             "content_text": "big\u0000news"},
            {"id": "", "title": "x\u0000", "content_html": "<p>y&#0;z\u0000</p>"}]}"#;
        let entries = parse_entries(json, "https://e.x/feed").unwrap();
        assert_eq!(entries.len(), 2, "{entries:?}");
        for e in &entries {
            for text in [&e.title, &e.summary] {
                assert!(!text.contains(char::is_control), "{e:?}");
            }
            for text in [&e.key].into_iter().chain(e.link.as_ref()) {
                assert!(!text.contains('\0'), "{e:?}");
            }
        }
        assert_eq!(entries[0].title, "Launch day [2J");
        assert_eq!(entries[0].summary, "big news");
        assert!(entries[0].key.starts_with("sha256:"), "{entries:?}");
    }
}

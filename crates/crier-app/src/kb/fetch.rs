//! Fetching a document's URL: through the SSRF guard ([`crate::fetch`]), only pages of a type
//! crier can read (HTML, plain text, Markdown), at most the knowledge base's cap, decoded by the
//! charset the page names. Every failure is `400 invalid_request` with `param` `url`.

use crate::AppResult;
use crate::fetch::{self, FetchSettings};

pub use crate::fetch::check;

const ACCEPT: &str = "text/html, application/xhtml+xml, text/markdown, text/plain;q=0.9";

/// What a page is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Html,
    Text,
    Markdown,
}

/// A fetched page.
#[derive(Debug, Clone)]
pub struct Page {
    /// The URL as asked for (normalised), not where redirects ended.
    pub url: String,
    pub format: Format,
    pub body: String,
}

/// The page at `raw`, at most `cap` bytes.
pub async fn fetch(settings: &FetchSettings, raw: &str, cap: usize) -> AppResult<Page> {
    let fetched = fetch::get(
        settings,
        raw,
        ACCEPT,
        cap,
        "page",
        |content_type| match format_of(content_type) {
            Some(_) => Ok(()),
            None => {
                let shown = if content_type.is_empty() {
                    "no Content-Type".to_owned()
                } else {
                    format!("`{}`", content_type.chars().take(100).collect::<String>())
                };
                Err(format!(
                    "The page at `url` has {shown}; crier reads text/html, text/plain and \
                     text/markdown pages."
                ))
            }
        },
    )
    .await?;
    let (format, charset) = format_of(&fetched.content_type).unwrap_or((Format::Text, None));
    let encoding = charset
        .and_then(|c| encoding_rs::Encoding::for_label(c.as_bytes()))
        .unwrap_or(encoding_rs::UTF_8);
    let (body, _, _) = encoding.decode(&fetched.body);
    Ok(Page {
        url: fetched.url.to_string(),
        format,
        body: body.into_owned(),
    })
}

/// The format and charset a `Content-Type` names, if crier reads it.
fn format_of(content_type: &str) -> Option<(Format, Option<String>)> {
    let mut parts = content_type.split(';');
    let essence = parts.next()?.trim().to_ascii_lowercase();
    let format = match essence.as_str() {
        "text/html" | "application/xhtml+xml" => Format::Html,
        "text/plain" => Format::Text,
        "text/markdown" | "text/x-markdown" => Format::Markdown,
        _ => return None,
    };
    let charset = parts.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| v.trim().trim_matches('"').to_owned())
    });
    Some((format, charset))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        assert_eq!(
            format_of("text/html; charset=ISO-8859-1"),
            Some((Format::Html, Some("ISO-8859-1".into())))
        );
        assert_eq!(format_of("TEXT/PLAIN"), Some((Format::Text, None)));
        assert_eq!(
            format_of("text/markdown;charset=\"utf-8\""),
            Some((Format::Markdown, Some("utf-8".into())))
        );
        assert_eq!(format_of("application/pdf"), None);
        assert_eq!(format_of(""), None);
    }
}

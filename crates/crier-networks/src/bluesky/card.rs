//! Link cards: the OpenGraph title, description and image of a page, read from its HTML.
//! The page is fetched by the caller through the SSRF-guarded client with a size cap; this
//! module only reads the bytes it is given (no regular expressions, no DOM: a linear scan of
//! `<meta>` and `<title>` tags, which is all a card needs).

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Card {
    pub title: Option<String>,
    pub description: Option<String>,
    pub image: Option<String>,
}

/// Longest title and description we keep, in characters (cards are short).
const MAX_TITLE: usize = 300;
const MAX_DESCRIPTION: usize = 1000;

pub fn parse(html: &str) -> Card {
    let mut card = Card::default();
    let mut fallback_title = None;
    let mut fallback_description = None;
    let lower = html.to_ascii_lowercase();
    let mut at = 0;
    while let Some(pos) = lower[at..].find('<') {
        let start = at + pos;
        let Some(end) = lower[start..].find('>').map(|e| start + e) else {
            break;
        };
        let tag = &html[start + 1..end];
        let tag_lower = &lower[start + 1..end];
        if tag_lower.starts_with("meta") && tag_lower[4..].starts_with(|c: char| c.is_whitespace())
        {
            let attrs = attributes(&tag[4..]);
            let get = |name: &str| {
                attrs
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.as_str())
            };
            let key = get("property")
                .or_else(|| get("name"))
                .map(str::to_ascii_lowercase);
            if let (Some(key), Some(content)) = (key, get("content")) {
                let content = decode_entities(content).trim().to_owned();
                if !content.is_empty() {
                    match key.as_str() {
                        "og:title" => card.title = card.title.or(Some(content)),
                        "og:description" => card.description = card.description.or(Some(content)),
                        "og:image" | "og:image:url" | "og:image:secure_url" => {
                            card.image = card.image.or(Some(content))
                        }
                        "twitter:title" => fallback_title = fallback_title.or(Some(content)),
                        "description" | "twitter:description" => {
                            fallback_description = fallback_description.or(Some(content))
                        }
                        "twitter:image" => card.image = card.image.or(Some(content)),
                        _ => {}
                    }
                }
            }
        } else if tag_lower == "title" || tag_lower.starts_with("title ") {
            if let Some(close) = lower[end..].find("</title") {
                let text = decode_entities(html[end + 1..end + close].trim());
                if !text.is_empty() && fallback_title.is_none() {
                    fallback_title = Some(text);
                }
            }
        } else if tag_lower.starts_with("/head") || tag_lower.starts_with("body") {
            break;
        }
        at = end + 1;
    }
    card.title = card
        .title
        .or(fallback_title)
        .map(|t| truncate(t, MAX_TITLE));
    card.description = card
        .description
        .or(fallback_description)
        .map(|d| truncate(d, MAX_DESCRIPTION));
    card
}

fn truncate(s: String, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => s[..i].to_owned(),
        None => s,
    }
}

/// `name="value"`, `name='value'` and `name=value` pairs, names lowercased.
fn attributes(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() && out.len() < 32 {
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
            i += 1;
        }
        let name_start = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'=' && b[i] != b'/' {
            i += 1;
        }
        let name = s[name_start..i].to_ascii_lowercase();
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i < b.len() && b[i] == b'=' {
            i += 1;
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            let value = if i < b.len() && (b[i] == b'"' || b[i] == b'\'') {
                let q = b[i];
                let v_start = i + 1;
                let v_end = b[v_start..]
                    .iter()
                    .position(|c| *c == q)
                    .map_or(b.len(), |p| v_start + p);
                i = (v_end + 1).min(b.len());
                &s[v_start..v_end]
            } else {
                let v_start = i;
                while i < b.len() && !b[i].is_ascii_whitespace() {
                    i += 1;
                }
                &s[v_start..i]
            };
            if !name.is_empty() {
                out.push((name, value.to_owned()));
            }
        } else if name.is_empty() {
            i += 1;
        }
    }
    out
}

fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let Some(semi) = rest
            .char_indices()
            .take(12)
            .find(|(_, c)| *c == ';')
            .map(|(i, _)| i)
        else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            "nbsp" => Some('\u{a0}'),
            e if e.starts_with("#x") || e.starts_with("#X") => u32::from_str_radix(&e[2..], 16)
                .ok()
                .and_then(char::from_u32),
            e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opengraph_first_then_fallbacks() {
        let html = r#"<!doctype html><html><head>
            <title>Plain title</title>
            <meta name="description" content="plain description">
            <META property='og:title' content="Launch &amp; &quot;party&quot; &#x1F680;" />
            <meta content="/img/card.png" property="og:image">
            </head><body><meta property="og:description" content="too late"></body></html>"#;
        let card = parse(html);
        assert_eq!(card.title.as_deref(), Some("Launch & \"party\" 🚀"));
        assert_eq!(card.description.as_deref(), Some("plain description"));
        assert_eq!(card.image.as_deref(), Some("/img/card.png"));
    }

    #[test]
    fn odd_html_does_not_panic() {
        for html in [
            "<",
            "<meta",
            "<meta property=og:title content=x>",
            "<title>é",
            "&#xZZ;<meta content='",
            "<meta property=\"og:title\" content=\"&#1114112;\">",
        ] {
            let _ = parse(html);
        }
        assert_eq!(
            parse("<meta property=og:title content=Bare>")
                .title
                .as_deref(),
            Some("Bare")
        );
        assert_eq!(
            parse(&format!("<title>{}</title>", "é".repeat(400)))
                .title
                .unwrap()
                .chars()
                .count(),
            300
        );
    }
}

//! The carousel rules: slides made from a text, a prompt or a URL, refined by hand, rendered
//! (`crier_render`), exported as media and posted like any images.
//!
//! - **Making slides** (no model needed for a text or a URL): the source is reduced to blocks
//!   (the knowledge base's readers: Markdown headings and paragraphs, an HTML page's text);
//!   the first slide takes the title (given, the source's own, or its first sentence), each
//!   heading starts a content slide, paragraphs fill slides up to about [`BODY_TARGET`]
//!   characters, and the last slide carries the call to action. A `prompt` is written out by
//!   the model first (`compose`, 5 credits, in the brand's voice), then split the same way;
//!   without a model it answers `503` like `compose`.
//! - **Refining:** replace the slides (edit text, reorder, add or remove: 3 to
//!   [`MAX_SLIDES`]), change the template, size, title or call to action, or regenerate one
//!   slide (the model rewrites it in the brand's voice; 5 credits; `503` without a model).
//! - **Never overflowing:** every slide is laid out with the shipped fonts; a slide whose text
//!   does not fit at the smallest size says so (`problem`), and export refuses it.
//! - **Rendering** is CPU work: it runs on the blocking pool, at most [`RENDERS`] at once per
//!   node; a request waits for a turn at most [`RENDER_WAIT`].

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crier_core::ids::{BrandId, CarouselId};
use crier_core::text::clip;
use crier_core::{ErrorCode, Scope};
use crier_render::{Kind, Laid, Slide};
pub use crier_render::{Size, Template};
use crier_store::{Carousel, Page, SlideText};
use tokio::sync::Semaphore;

use crate::ai::{Output, Target, Task};
use crate::kb::{fetch, text};
use crate::{App, AppError, AppResult, Caller};

pub const MAX_CAROUSELS: i64 = 200;
pub const MIN_SLIDES: usize = 3;
pub const MAX_SLIDES: usize = 10;
pub const DEFAULT_SLIDES: usize = 7;
pub const MAX_HEADING: usize = 150;
pub const MAX_BODY: usize = 600;
pub const MAX_TITLE: usize = 150;
pub const MAX_CTA: usize = 150;
pub const MAX_TEXT: usize = 20_000;
pub const MAX_PROMPT: usize = crate::ai::MAX_PROMPT;
/// The most a title slide's subtitle takes from the source.
pub const SUBTITLE: usize = 160;
/// About how much text a content slide takes before the next one starts.
pub const BODY_TARGET: usize = 280;
pub const DEFAULT_CTA: &str = "Save this for later and share it with someone who needs it.";
/// Renders at once per node, and how long a request waits for a turn.
pub const RENDERS: usize = 2;
pub const RENDER_WAIT: Duration = Duration::from_secs(30);
const FETCH_CAP: usize = 2 * 1024 * 1024;

/// Where a new carousel's text comes from: exactly one.
#[derive(Debug, Clone)]
pub enum Source {
    Text(String),
    Prompt(String),
    Url(String),
}

#[derive(Debug, Clone)]
pub struct NewCarousel {
    pub source: Source,
    pub title: Option<String>,
    pub brand_id: Option<String>,
    pub template: Option<String>,
    pub size: Option<String>,
    pub slides: Option<usize>,
    pub call_to_action: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct CarouselEdit {
    pub title: Option<String>,
    pub template: Option<String>,
    pub size: Option<String>,
    pub call_to_action: Option<String>,
    /// Every slide, in the new order (the first is the title slide, the last the closing).
    pub slides: Option<Vec<SlideText>>,
}

/// A carousel with each slide laid out (its problem, if its text does not fit).
#[derive(Debug, Clone)]
pub struct Shown {
    pub carousel: Carousel,
    pub laid: Vec<Laid>,
}

impl Shown {
    pub fn fits(&self) -> bool {
        self.laid.iter().all(|l| l.problem.is_none())
    }
}

pub struct Carousels<'a> {
    pub(crate) app: &'a App,
}

fn renders() -> &'static Arc<Semaphore> {
    static TURNS: OnceLock<Arc<Semaphore>> = OnceLock::new();
    TURNS.get_or_init(|| Arc::new(Semaphore::new(RENDERS)))
}

fn bounded(param: &str, s: &str, max: usize, may_be_empty: bool) -> AppResult<()> {
    if (!may_be_empty && s.trim().is_empty()) || s.chars().count() > max {
        let least = if may_be_empty { 0 } else { 1 };
        return Err(AppError::invalid(
            param,
            format!("`{param}` must be {least} to {max} characters."),
        ));
    }
    Ok(())
}

fn kind_at(i: usize, n: usize) -> Kind {
    if i == 0 {
        Kind::Title
    } else if i + 1 == n {
        Kind::Closing
    } else {
        Kind::Content
    }
}

fn template_of(s: &str) -> AppResult<Template> {
    Template::parse(s).ok_or_else(|| {
        AppError::invalid(
            "template",
            format!("`template` must be `light`, `dark` or `bold`, not `{s}`."),
        )
    })
}

fn size_of(s: &str) -> AppResult<Size> {
    Size::parse(s).ok_or_else(|| {
        AppError::invalid(
            "size",
            format!("`size` must be `square` or `portrait`, not `{s}`."),
        )
    })
}

fn check_slides(slides: &[SlideText]) -> AppResult<()> {
    if !(MIN_SLIDES..=MAX_SLIDES).contains(&slides.len()) {
        return Err(AppError::invalid(
            "slides",
            format!("A carousel has {MIN_SLIDES} to {MAX_SLIDES} slides."),
        ));
    }
    for (i, s) in slides.iter().enumerate() {
        bounded(
            &format!("slides[{i}].heading"),
            &s.heading,
            MAX_HEADING,
            true,
        )?;
        bounded(&format!("slides[{i}].body"), &s.body, MAX_BODY, true)?;
        if s.heading.trim().is_empty() && s.body.trim().is_empty() {
            return Err(AppError::invalid(
                format!("slides[{i}]"),
                "A slide needs a heading or a body.",
            ));
        }
    }
    Ok(())
}

/// The first sentence of `s` (up to and with its `.`, `!` or `?`), if it is shorter than
/// `max` characters and not all of `s`.
fn first_sentence(s: &str, max: usize) -> Option<(String, String)> {
    let end = s
        .char_indices()
        .find(|&(i, c)| {
            matches!(c, '.' | '!' | '?') && s[i + c.len_utf8()..].starts_with(char::is_whitespace)
        })
        .map(|(i, c)| i + c.len_utf8())?;
    let (head, rest) = (s[..end].trim(), s[end..].trim());
    (head.chars().count() <= max && !rest.is_empty()).then(|| (head.to_owned(), rest.to_owned()))
}

/// Sentences of `s` (each up to and with its `.`, `!` or `?` before a space), each at most
/// [`MAX_BODY`] characters (a longer one is cut at words). One pass over `s`.
fn sentences(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let ends = matches!(c, '.' | '!' | '?')
            && chars.peek().is_some_and(|(_, next)| next.is_whitespace());
        if ends {
            let end = i + c.len_utf8();
            let sentence = s[start..end].trim();
            if !sentence.is_empty() {
                out.push(clip(sentence, MAX_BODY));
            }
            start = end;
        }
    }
    let rest = s[start..].trim();
    if !rest.is_empty() {
        out.push(clip(rest, MAX_BODY));
    }
    out
}

/// The source's blocks cut to [`MAX_TEXT`] characters in all (a page may be long; slides
/// take a fraction of it).
fn bounded_blocks(mut e: text::Extracted) -> text::Extracted {
    let mut left = MAX_TEXT;
    e.blocks.retain_mut(|b| {
        if left == 0 {
            return false;
        }
        let n = b.text.chars().count();
        if n > left {
            b.text = clip(&b.text, left);
        }
        left = left.saturating_sub(n);
        true
    });
    e
}

/// Slides from extracted blocks (see the module documentation).
pub fn split(
    blocks: &text::Extracted,
    title: Option<&str>,
    count: usize,
    cta: &str,
) -> Vec<SlideText> {
    let mut blocks: Vec<&text::Block> = blocks
        .blocks
        .iter()
        .filter(|b| !b.text.is_empty())
        .collect();
    let given = title.map(str::trim).filter(|t| !t.is_empty());
    // The source's own title is its first heading: taken off the blocks, and the paragraph
    // right after it (if any) becomes the title slide's subtitle.
    if let (Some(t), Some(b)) = (given, blocks.first())
        && b.heading
        && b.text.trim() == t
    {
        blocks.remove(0);
    }
    let mut subtitle_first = given.is_some();
    let (title, subtitle) = match given {
        Some(t) => (clip(t, MAX_HEADING), None),
        None => match blocks.first() {
            Some(b) if b.heading => {
                let t = clip(&b.text, MAX_HEADING);
                blocks.remove(0);
                subtitle_first = true;
                (t, None)
            }
            Some(b) => match first_sentence(&b.text, 100) {
                Some((head, rest)) => {
                    blocks.remove(0);
                    (head, Some(rest))
                }
                None => {
                    let t = clip(&b.text, 100);
                    blocks.remove(0);
                    (t, None)
                }
            },
            None => ("Untitled".to_owned(), None),
        },
    };
    let mut title_body = String::new();
    if subtitle_first && let Some(b) = blocks.first().filter(|b| !b.heading) {
        title_body = clip(&b.text, SUBTITLE);
        blocks.remove(0);
    }
    // Sections: a heading and the paragraphs after it, cut into slide-sized bodies.
    let mut sections: Vec<(String, String)> = Vec::new();
    let mut heading = String::new();
    let mut body = String::new();
    let flush = |sections: &mut Vec<(String, String)>, heading: &mut String, body: &mut String| {
        if !heading.is_empty() || !body.is_empty() {
            sections.push((std::mem::take(heading), std::mem::take(body)));
        }
    };
    let paragraphs = subtitle
        .iter()
        .map(|s| (false, s.as_str()))
        .chain(blocks.iter().map(|b| (b.heading, b.text.as_str())));
    for (is_heading, text) in paragraphs {
        if is_heading {
            flush(&mut sections, &mut heading, &mut body);
            heading = clip(text, MAX_HEADING);
            continue;
        }
        for sentence in sentences(text) {
            if !body.is_empty() && body.chars().count() + sentence.chars().count() > BODY_TARGET {
                flush(&mut sections, &mut heading, &mut body);
            }
            if !body.is_empty() {
                body.push(' ');
            }
            body.push_str(&sentence);
        }
    }
    flush(&mut sections, &mut heading, &mut body);
    let room = count.saturating_sub(2).max(1);
    sections.truncate(room);
    // A section without a heading takes its first short sentence as one.
    let content = sections.into_iter().map(|(h, b)| {
        if !h.is_empty() {
            return SlideText {
                heading: h,
                body: clip(&b, MAX_BODY),
            };
        }
        match first_sentence(&b, 90) {
            Some((head, rest)) => SlideText {
                heading: head,
                body: clip(&rest, MAX_BODY),
            },
            None => SlideText {
                heading: String::new(),
                body: clip(&b, MAX_BODY),
            },
        }
    });
    let mut slides = vec![SlideText {
        heading: title,
        body: title_body,
    }];
    slides.extend(content);
    if slides.len() == 1 {
        slides.push(SlideText {
            heading: String::new(),
            body: slides[0].heading.clone(),
        });
    }
    slides.push(SlideText {
        heading: "Found this useful?".to_owned(),
        body: cta.to_owned(),
    });
    slides
}

impl Carousels<'_> {
    /// Lays out every slide (the look, the slide numbers, the brand's name in the footer).
    async fn show(&self, c: &Caller, carousel: Carousel) -> AppResult<Shown> {
        let template = template_of(&carousel.template)?;
        let size = size_of(&carousel.size)?;
        let footer = match &carousel.brand_id {
            Some(b) => self
                .app
                .store()
                .get_brand(&c.tenant, b)
                .await?
                .map(|b| b.name)
                .unwrap_or_default(),
            None => String::new(),
        };
        let n = carousel.slides.len();
        let laid = carousel
            .slides
            .iter()
            .enumerate()
            .map(|(i, s)| {
                crier_render::layout(
                    &Slide {
                        kind: kind_at(i, n),
                        heading: s.heading.clone(),
                        body: s.body.clone(),
                    },
                    i + 1,
                    n,
                    template,
                    size,
                    &footer,
                )
            })
            .collect();
        Ok(Shown { carousel, laid })
    }

    async fn visible(&self, c: &Caller, id: &str) -> AppResult<Carousel> {
        let not_found = || AppError::not_found("carousel", id);
        let parsed = CarouselId::parse(id).ok_or_else(not_found)?;
        let carousel = self
            .app
            .store()
            .get_carousel(c.workspace(), c.livemode(), &parsed)
            .await?
            .ok_or_else(not_found)?;
        // A key limited to brands sees the carousels of its brands and none without one.
        if c.is_limited() {
            let reach = self.app.reach(c).await?;
            let ok = match &carousel.brand_id {
                Some(b) => match self.app.store().get_brand(&c.tenant, b).await? {
                    Some(brand) => reach.brand(&brand),
                    None => false,
                },
                None => false,
            };
            if !ok {
                return Err(not_found());
            }
        }
        Ok(carousel)
    }

    pub async fn get(&self, c: &Caller, id: &str) -> AppResult<Shown> {
        c.require(Scope::CarouselsRead)?;
        self.shown(c, id).await
    }

    /// The carousel `id` laid out, for a caller whose scope was checked.
    async fn shown(&self, c: &Caller, id: &str) -> AppResult<Shown> {
        let carousel = self.visible(c, id).await?;
        self.show(c, carousel).await
    }

    pub async fn list(&self, c: &Caller, limit: u32, offset: u32) -> AppResult<Page<Shown>> {
        c.require(Scope::CarouselsRead)?;
        let page = self
            .app
            .store()
            .list_carousels(c.workspace(), c.livemode(), limit, offset)
            .await?;
        let mut items = Vec::with_capacity(page.items.len());
        for carousel in page.items {
            if c.is_limited() && self.visible(c, carousel.id.as_str()).await.is_err() {
                continue;
            }
            items.push(self.show(c, carousel).await?);
        }
        Ok(Page {
            items,
            has_more: page.has_more,
        })
    }

    /// The source's text as blocks: the text itself, the model's answer to the prompt, or the
    /// page at the URL.
    async fn source_blocks(
        &self,
        c: &Caller,
        source: &Source,
        brand: Option<&BrandId>,
    ) -> AppResult<text::Extracted> {
        match source {
            Source::Text(t) => {
                bounded("text", t, MAX_TEXT, false)?;
                Ok(text::markdown_blocks(t))
            }
            Source::Prompt(p) => {
                bounded("prompt", p, MAX_PROMPT, false)?;
                let prompt = format!(
                    "{p}\n\nWrite it as a short article: a title line, then 3 to 8 short \
                     sections, each a heading line and one or two sentences."
                );
                let generated = self
                    .app
                    .ai()
                    .generate(
                        c,
                        Target {
                            platform: Some("linkedin".into()),
                            brand: brand.map(ToString::to_string),
                            ..Target::default()
                        },
                        Task::Compose {
                            prompt: clip(&prompt, MAX_PROMPT),
                        },
                    )
                    .await?;
                match generated.output {
                    Output::Text(t) => Ok(text::markdown_blocks(&t)),
                    _ => Err(AppError::internal("compose answered something else")),
                }
            }
            Source::Url(u) => {
                if u.chars().count() > 2048 {
                    return Err(AppError::invalid(
                        "url",
                        "`url` is at most 2048 characters.",
                    ));
                }
                let page = fetch::fetch(self.app.fetch_settings(), u, FETCH_CAP).await?;
                Ok(match page.format {
                    fetch::Format::Html => text::html_blocks(&page.body),
                    fetch::Format::Text => text::text_blocks(&page.body),
                    fetch::Format::Markdown => text::markdown_blocks(&page.body),
                })
            }
        }
    }

    pub async fn create(&self, c: &Caller, req: NewCarousel) -> AppResult<Shown> {
        c.require(Scope::CarouselsWrite)?;
        let template = req.template.as_deref().unwrap_or("light");
        template_of(template)?;
        let size = req.size.as_deref().unwrap_or("square");
        size_of(size)?;
        let count = req.slides.unwrap_or(DEFAULT_SLIDES);
        if !(MIN_SLIDES..=MAX_SLIDES).contains(&count) {
            return Err(AppError::invalid(
                "slides",
                format!("`slides` must be from {MIN_SLIDES} to {MAX_SLIDES}."),
            ));
        }
        if let Some(t) = &req.title {
            bounded("title", t, MAX_TITLE, false)?;
        }
        let cta = req.call_to_action.unwrap_or_else(|| DEFAULT_CTA.to_owned());
        bounded("call_to_action", &cta, MAX_CTA, false)?;
        let brand = match &req.brand_id {
            Some(b) => Some(self.app.kb().validate_brand(c, "brand_id", b).await?),
            None if c.is_limited() => {
                return Err(AppError::invalid(
                    "brand_id",
                    "A key limited to brands or accounts must name one of its brands.",
                ));
            }
            None => None,
        };
        if self.app.store().count_carousels(c.workspace()).await? >= MAX_CAROUSELS {
            return Err(AppError::new(
                ErrorCode::Conflict,
                format!(
                    "This workspace already has {MAX_CAROUSELS} carousels, the most it may have; delete some first."
                ),
            ));
        }
        let blocks = bounded_blocks(self.source_blocks(c, &req.source, brand.as_ref()).await?);
        let param = match &req.source {
            Source::Text(_) => "text",
            Source::Prompt(_) => "prompt",
            Source::Url(_) => "url",
        };
        if blocks.blocks.iter().all(|b| b.text.is_empty()) {
            return Err(AppError::invalid(
                param,
                format!("`{param}` has no text to make slides from."),
            ));
        }
        let title = req.title.clone().or_else(|| blocks.title.clone());
        let slides = split(&blocks, title.as_deref(), count, &cta);
        let (kind, source) = match req.source {
            Source::Text(t) => ("text", t),
            Source::Prompt(p) => ("prompt", p),
            Source::Url(u) => ("url", u),
        };
        let now = self.app.clock().now_ms();
        let carousel = Carousel {
            id: CarouselId::generate(),
            workspace_id: c.workspace().clone(),
            livemode: c.livemode(),
            brand_id: brand,
            title: clip(&slides[0].heading, MAX_TITLE),
            template: template.to_owned(),
            size: size.to_owned(),
            source_kind: kind.to_owned(),
            source: clip(&source, MAX_TEXT),
            call_to_action: cta,
            slides,
            media_ids: Vec::new(),
            version: 1,
            created_at: now,
            updated_at: now,
        };
        self.app.store().insert_carousel(&carousel).await?;
        self.show(c, carousel).await
    }

    async fn save(&self, c: &Caller, before: &Carousel, mut after: Carousel) -> AppResult<Shown> {
        after.version = before.version + 1;
        after.updated_at = self.app.clock().now_ms().max(before.updated_at);
        // Changed slides are no longer what was exported.
        if after.slides != before.slides
            || after.template != before.template
            || after.size != before.size
        {
            after.media_ids.clear();
        }
        if !self
            .app
            .store()
            .update_carousel(&after, before.version)
            .await?
        {
            return Err(AppError::new(
                ErrorCode::Conflict,
                "The carousel changed while this change was made; read it again and retry.",
            ));
        }
        self.show(c, after).await
    }

    /// Refines a carousel (see the module documentation).
    pub async fn update(&self, c: &Caller, id: &str, e: CarouselEdit) -> AppResult<Shown> {
        c.require(Scope::CarouselsWrite)?;
        let before = self.visible(c, id).await?;
        let mut after = before.clone();
        if let Some(t) = e.title {
            bounded("title", &t, MAX_TITLE, false)?;
            after.title = t;
        }
        if let Some(t) = e.template {
            template_of(&t)?;
            after.template = t;
        }
        if let Some(s) = e.size {
            size_of(&s)?;
            after.size = s;
        }
        if let Some(cta) = e.call_to_action {
            bounded("call_to_action", &cta, MAX_CTA, false)?;
            // The closing slide shows it, unless the new slides say otherwise below.
            if let Some(last) = after.slides.last_mut() {
                last.body = cta.clone();
            }
            after.call_to_action = cta;
        }
        if let Some(slides) = e.slides {
            check_slides(&slides)?;
            after.slides = slides;
        }
        self.save(c, &before, after).await
    }

    /// Rewrites slide `number` (1-based) with the model in the brand's voice.
    pub async fn regenerate(&self, c: &Caller, id: &str, number: usize) -> AppResult<Shown> {
        c.require(Scope::CarouselsWrite)?;
        let before = self.visible(c, id).await?;
        let i = self.index(&before, number)?;
        let slide = &before.slides[i];
        let text = match (slide.heading.trim(), slide.body.trim()) {
            ("", b) => b.to_owned(),
            (h, "") => h.to_owned(),
            (h, b) => format!("{h}\n\n{b}"),
        };
        let generated = self
            .app
            .ai()
            .generate(
                c,
                Target {
                    platform: Some("linkedin".into()),
                    brand: before.brand_id.as_ref().map(ToString::to_string),
                    ..Target::default()
                },
                Task::Rewrite {
                    text,
                    tone: String::new(),
                },
            )
            .await?;
        let Output::Text(new) = generated.output else {
            return Err(AppError::internal("rewrite answered something else"));
        };
        let (heading, body) = match new.split_once("\n\n") {
            Some((h, b)) if !slide.heading.trim().is_empty() => (h.trim(), b.trim()),
            _ if slide.heading.trim().is_empty() => ("", new.trim()),
            _ => (new.trim(), ""),
        };
        let mut after = before.clone();
        after.slides[i] = SlideText {
            heading: clip(heading, MAX_HEADING),
            body: clip(body, MAX_BODY),
        };
        self.save(c, &before, after).await
    }

    fn index(&self, carousel: &Carousel, number: usize) -> AppResult<usize> {
        if number == 0 || number > carousel.slides.len() {
            return Err(AppError::not_found("slide", &number.to_string()));
        }
        Ok(number - 1)
    }

    pub async fn delete(&self, c: &Caller, id: &str) -> AppResult<CarouselId> {
        c.require(Scope::CarouselsWrite)?;
        let carousel = self.visible(c, id).await?;
        if !self
            .app
            .store()
            .delete_carousel(c.workspace(), &carousel.id)
            .await?
        {
            return Err(AppError::not_found("carousel", id));
        }
        Ok(carousel.id)
    }

    /// Runs `work` on the blocking pool when a render turn is free (at most [`RENDER_WAIT`]).
    async fn rendering<T: Send + 'static>(
        work: impl FnOnce() -> Result<T, crier_render::RenderError> + Send + 'static,
    ) -> AppResult<T> {
        let turn = tokio::time::timeout(RENDER_WAIT, renders().clone().acquire_owned())
            .await
            .map_err(|_| {
                AppError::new(
                    ErrorCode::UpstreamUnavailable,
                    "Every render slot of this server is busy; try again shortly.",
                )
            })?
            .map_err(|_| AppError::internal("the render semaphore closed"))?;
        let out = tokio::task::spawn_blocking(move || {
            let out = work();
            drop(turn);
            out
        })
        .await
        .map_err(|e| AppError::internal(format!("a render failed: {e}")))?;
        out.map_err(|e| AppError::internal(e.to_string()))
    }

    /// Slide `number` (1-based) as a PNG, drawn even when its text does not fit (what fits is
    /// drawn; `problem` says what was left out).
    pub async fn png(&self, c: &Caller, id: &str, number: usize) -> AppResult<Vec<u8>> {
        let shown = self.get(c, id).await?;
        let i = self.index(&shown.carousel, number)?;
        let svg = shown.laid[i].svg.clone();
        Self::rendering(move || crier_render::png(&svg)).await
    }

    /// The carousel as a PDF, a page per slide.
    pub async fn pdf(&self, c: &Caller, id: &str) -> AppResult<Vec<u8>> {
        let shown = self.get(c, id).await?;
        let svgs: Vec<String> = shown.laid.iter().map(|l| l.svg.clone()).collect();
        Self::rendering(move || crier_render::pdf(&svgs)).await
    }

    /// Renders every slide and keeps each PNG as a media object (`media:write` too), in order;
    /// the carousel's `media_ids` then name them, ready for a post's `media_ids`. Refused
    /// while a slide's text does not fit: `409 conflict`, as that is the stored carousel's
    /// state (the request has no body to fault), naming the slide and what does not fit.
    pub async fn export(&self, c: &Caller, id: &str) -> AppResult<Shown> {
        c.require(Scope::CarouselsWrite)?;
        let shown = self.shown(c, id).await?;
        // The slides become media: a key that cannot write media cannot export.
        c.require(Scope::MediaWrite)?;
        if let Some((i, l)) = shown
            .laid
            .iter()
            .enumerate()
            .find(|(_, l)| l.problem.is_some())
        {
            return Err(AppError::conflict(format!(
                "Slide {} does not fit, so the carousel cannot be exported yet: {} Edit it \
                 with PATCH /v1/carousels/{}, then export again.",
                i + 1,
                l.problem.as_deref().unwrap_or_default(),
                shown.carousel.id,
            )));
        }
        let svgs: Vec<String> = shown.laid.iter().map(|l| l.svg.clone()).collect();
        let pngs = Self::rendering(move || {
            svgs.iter()
                .map(|s| crier_render::png(s))
                .collect::<Result<Vec<_>, _>>()
        })
        .await?;
        let before = shown.carousel;
        let mut media_ids: Vec<String> = Vec::with_capacity(pngs.len());
        let n = pngs.len();
        let stored = async {
            for (i, png) in pngs.into_iter().enumerate() {
                let slide = &before.slides[i];
                let alt = clip(
                    &format!("Slide {} of {n}: {} {}", i + 1, slide.heading, slide.body),
                    1000,
                );
                let stored = self
                    .app
                    .media()
                    .store_bytes(
                        c,
                        format!("{}-{}.png", before.id, i + 1),
                        "image/png",
                        bytes::Bytes::from(png),
                        Some(alt),
                    )
                    .await?;
                media_ids.push(stored.id.to_string());
            }
            let mut after = before.clone();
            after.media_ids = media_ids.clone();
            after.version = before.version + 1;
            after.updated_at = self.app.clock().now_ms().max(before.updated_at);
            if !self
                .app
                .store()
                .update_carousel(&after, before.version)
                .await?
            {
                return Err(AppError::new(
                    ErrorCode::Conflict,
                    "The carousel changed while it was exported; export it again.",
                ));
            }
            Ok(after)
        }
        .await;
        let after = match stored {
            Ok(after) => after,
            Err(e) => {
                // Nothing half-exported stays: the slides stored so far go.
                for id in &media_ids {
                    if let Err(e) = self.app.media().delete(c, id).await {
                        tracing::warn!(media = %id, error = %e.message, "could not remove a slide of a failed export");
                    }
                }
                return Err(e);
            }
        };
        self.show(c, after).await
    }
}

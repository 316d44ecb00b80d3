//! Slides drawn from vector templates: a carousel's slides laid out (text measured and wrapped
//! with the fonts shipped in `fonts/`, never overflowing: a slide whose text cannot fit at the
//! smallest size says so), written as SVG, rendered to PNG with resvg and to a PDF (one page
//! per slide, text as vector outlines) with svg2pdf.
//!
//! Everything here is pure and deterministic: the same slides give the same bytes. Nothing is
//! read from the system (no system fonts), so a slide looks the same on every machine.

use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};

use resvg::{tiny_skia, usvg};

pub mod text;

use text::{FAMILY, Weight, wrap};

/// What a slide is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The first slide: a big heading and a subtitle.
    Title,
    /// A heading and a body.
    Content,
    /// The last slide: a heading and the call to action.
    Closing,
}

/// The look of a carousel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Template {
    Light,
    Dark,
    Bold,
}

impl Template {
    pub const ALL: [Template; 3] = [Template::Light, Template::Dark, Template::Bold];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Light => "light",
            Self::Dark => "dark",
            Self::Bold => "bold",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    fn palette(self) -> Palette {
        match self {
            Self::Light => Palette {
                background: "#FFFFFF",
                text: "#1B1F24",
                muted: "#5B6470",
                accent: "#2563EB",
                on_accent: "#FFFFFF",
            },
            Self::Dark => Palette {
                background: "#111418",
                text: "#F5F7FA",
                muted: "#A3ACB9",
                accent: "#F59E0B",
                on_accent: "#111418",
            },
            Self::Bold => Palette {
                background: "#4F46E5",
                text: "#FFFFFF",
                muted: "#D6D4FB",
                accent: "#FACC15",
                on_accent: "#1E1B4B",
            },
        }
    }
}

struct Palette {
    background: &'static str,
    text: &'static str,
    muted: &'static str,
    accent: &'static str,
    on_accent: &'static str,
}

/// A slide's size in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// 1080 × 1080 (every network).
    Square,
    /// 1080 × 1350 (4:5, Instagram's tallest feed image).
    Portrait,
}

impl Size {
    pub const ALL: [Size; 2] = [Size::Square, Size::Portrait];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Square => "square",
            Self::Portrait => "portrait",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    pub fn pixels(self) -> (u32, u32) {
        match self {
            Self::Square => (1080, 1080),
            Self::Portrait => (1080, 1350),
        }
    }
}

/// One slide's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slide {
    pub kind: Kind,
    pub heading: String,
    pub body: String,
}

/// A slide laid out: its SVG, and whether its text fits.
#[derive(Debug, Clone)]
pub struct Laid {
    pub svg: String,
    /// `None` when everything fits; otherwise what does not, for a person to fix.
    pub problem: Option<String>,
}

const PAD: f32 = 90.0;
const LINE: f32 = 1.25;
/// Room kept at the bottom for the slide number and the footer.
const FOOTER: f32 = 80.0;

/// A block of text to fit: the sizes to try, largest first, and the room it has.
struct Block<'a> {
    what: &'static str,
    text: &'a str,
    weight: Weight,
    sizes: &'static [f32],
    width: f32,
    height: f32,
}

struct Fitted {
    size: f32,
    lines: Vec<String>,
    /// The height the lines take.
    height: f32,
}

/// The largest size at which the block fits, or why it does not at the smallest.
fn fit(b: &Block) -> Result<Fitted, String> {
    let mut last = None;
    for &size in b.sizes {
        let lines = wrap(b.text, size, b.weight, b.width);
        let height = lines.len() as f32 * size * LINE;
        if height <= b.height {
            return Ok(Fitted {
                size,
                lines,
                height,
            });
        }
        last = Some((size, lines.len()));
    }
    let (size, n) = last.expect("at least one size");
    let room = (b.height / (size * LINE)).floor() as usize;
    Err(format!(
        "The {} needs {n} lines at the smallest size ({size} px) and the slide has room for \
         {room}; shorten it.",
        b.what
    ))
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Not characters XML has (and control characters are not text).
            c if c.is_control() || matches!(c, '\u{FFFE}' | '\u{FFFF}') => {}
            c => out.push(c),
        }
    }
    out
}

/// Lines as one `<text>`, the first baseline at `top + size` (the cap height sits near the top).
fn text_block(
    svg: &mut String,
    f: &Fitted,
    x: f32,
    top: f32,
    weight: Weight,
    fill: &str,
    anchor: &str,
) {
    let w = weight;
    let weight = match weight {
        Weight::Bold => "700",
        Weight::Regular => "400",
    };
    let _ = write!(
        svg,
        r#"<text font-family="{FAMILY}" xml:space="preserve" font-weight="{weight}" font-size="{}" fill="{fill}" text-anchor="{anchor}">"#,
        f.size
    );
    for (i, line) in f.lines.iter().enumerate() {
        let y = top + f.size + i as f32 * f.size * LINE;
        let runs = text::runs(line);
        if runs.iter().all(|(symbols, _)| !symbols) {
            let _ = write!(svg, r#"<tspan x="{x}" y="{y:.1}">{}</tspan>"#, escape(line));
            continue;
        }
        // A run in the symbol font is a text chunk of its own, placed where the measured
        // advances put it: shaped together, the symbol font (which also has Latin letters)
        // would take over the whole line.
        let total = text::advance(line, f.size, w);
        let mut at = match anchor {
            "middle" => x - total / 2.0,
            "end" => x - total,
            _ => x,
        };
        for (symbols, run) in runs {
            let family = if symbols {
                r#" font-family="Symbola""#
            } else {
                ""
            };
            let _ = write!(
                svg,
                r#"<tspan x="{at:.1}" y="{y:.1}" text-anchor="start"{family}>{}</tspan>"#,
                escape(run)
            );
            at += text::advance(run, f.size, w);
        }
    }
    svg.push_str("</text>");
}

/// Lays out slide `number` of `total` (1-based) and writes its SVG. `footer` (a brand's name,
/// say) goes at the bottom left.
pub fn layout(
    slide: &Slide,
    number: usize,
    total: usize,
    template: Template,
    size: Size,
    footer: &str,
) -> Laid {
    let (w, h) = size.pixels();
    let (w, h) = (w as f32, h as f32);
    let p = template.palette();
    let inner = w - 2.0 * PAD;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}"><rect width="{w}" height="{h}" fill="{}"/>"#,
        p.background
    );
    let mut problems = Vec::new();
    let usable = h - 2.0 * PAD - FOOTER;
    match slide.kind {
        Kind::Title => {
            let _ = write!(
                svg,
                r#"<rect x="{PAD}" y="{PAD}" width="120" height="14" rx="7" fill="{}"/>"#,
                p.accent
            );
            let heading = fit(&Block {
                what: "heading",
                text: &slide.heading,
                weight: Weight::Bold,
                sizes: &[96.0, 88.0, 80.0, 72.0, 64.0, 56.0],
                width: inner,
                height: usable * 0.62,
            });
            let body = fit(&Block {
                what: "body",
                text: &slide.body,
                weight: Weight::Regular,
                sizes: &[44.0, 40.0, 36.0, 32.0],
                width: inner,
                height: usable * 0.3,
            });
            let heading_h = heading.as_ref().map_or(0.0, |f| f.height);
            let body_h = body.as_ref().map_or(0.0, |f| f.height);
            let gap = if body_h > 0.0 { 40.0 } else { 0.0 };
            // The block sits at the vertical middle of the usable area.
            let top = PAD + 40.0 + ((usable - 40.0) - heading_h - gap - body_h).max(0.0) / 2.0;
            match heading {
                Ok(f) => text_block(&mut svg, &f, PAD, top, Weight::Bold, p.text, "start"),
                Err(e) => problems.push(e),
            }
            match body {
                Ok(f) => text_block(
                    &mut svg,
                    &f,
                    PAD,
                    top + heading_h + gap,
                    Weight::Regular,
                    p.muted,
                    "start",
                ),
                Err(e) => problems.push(e),
            }
        }
        Kind::Content => {
            let heading = fit(&Block {
                what: "heading",
                text: &slide.heading,
                weight: Weight::Bold,
                sizes: &[64.0, 58.0, 52.0, 46.0, 40.0],
                width: inner,
                height: usable * 0.3,
            });
            let heading_h = heading.as_ref().map_or(usable * 0.3, |f| f.height);
            let gap = if heading_h > 0.0 { 28.0 } else { 0.0 };
            let _ = write!(
                svg,
                r#"<rect x="{PAD}" y="{:.1}" width="80" height="10" rx="5" fill="{}"/>"#,
                PAD + heading_h + gap / 2.0 - 5.0,
                p.accent
            );
            let body = fit(&Block {
                what: "body",
                text: &slide.body,
                weight: Weight::Regular,
                sizes: &[44.0, 40.0, 36.0, 32.0, 28.0],
                width: inner,
                height: usable - heading_h - 2.0 * gap,
            });
            match heading {
                Ok(f) => text_block(&mut svg, &f, PAD, PAD, Weight::Bold, p.text, "start"),
                Err(e) => problems.push(e),
            }
            match body {
                Ok(f) => text_block(
                    &mut svg,
                    &f,
                    PAD,
                    PAD + heading_h + 2.0 * gap,
                    Weight::Regular,
                    p.text,
                    "start",
                ),
                Err(e) => problems.push(e),
            }
        }
        Kind::Closing => {
            let heading = fit(&Block {
                what: "heading",
                text: &slide.heading,
                weight: Weight::Bold,
                sizes: &[80.0, 72.0, 64.0, 56.0, 48.0],
                width: inner,
                height: usable * 0.5,
            });
            let pill_pad = 36.0;
            let body = fit(&Block {
                what: "call to action",
                text: &slide.body,
                weight: Weight::Bold,
                sizes: &[44.0, 40.0, 36.0, 32.0],
                width: inner - 2.0 * pill_pad,
                height: usable * 0.35 - 2.0 * pill_pad,
            });
            let heading_h = heading.as_ref().map_or(0.0, |f| f.height);
            let body_h = body.as_ref().map_or(0.0, |f| f.height + 2.0 * pill_pad);
            let gap = 56.0;
            let top = PAD + ((usable - heading_h - gap - body_h).max(0.0)) / 2.0;
            match heading {
                Ok(f) => text_block(&mut svg, &f, w / 2.0, top, Weight::Bold, p.text, "middle"),
                Err(e) => problems.push(e),
            }
            match body {
                Ok(f) if !f.lines.is_empty() => {
                    let y = top + heading_h + gap;
                    let _ = write!(
                        svg,
                        r#"<rect x="{PAD}" y="{y:.1}" width="{inner}" height="{body_h:.1}" rx="28" fill="{}"/>"#,
                        p.accent
                    );
                    text_block(
                        &mut svg,
                        &f,
                        w / 2.0,
                        y + pill_pad,
                        Weight::Bold,
                        p.on_accent,
                        "middle",
                    );
                }
                Ok(_) => {}
                Err(e) => problems.push(e),
            }
        }
    }
    // The footer: what it is from, and where in the carousel.
    let base = h - PAD + 10.0;
    if !footer.is_empty() {
        let f = Fitted {
            size: 28.0,
            lines: vec![
                text::wrap(footer, 28.0, Weight::Bold, inner * 0.7)
                    .into_iter()
                    .next()
                    .unwrap_or_default(),
            ],
            height: 0.0,
        };
        text_block(
            &mut svg,
            &f,
            PAD,
            base - 28.0,
            Weight::Bold,
            p.muted,
            "start",
        );
    }
    let counter = Fitted {
        size: 28.0,
        lines: vec![format!("{number} / {total}")],
        height: 0.0,
    };
    text_block(
        &mut svg,
        &counter,
        w - PAD,
        base - 28.0,
        Weight::Regular,
        p.muted,
        "end",
    );
    svg.push_str("</svg>");
    Laid {
        svg,
        problem: (!problems.is_empty()).then(|| problems.join(" ")),
    }
}

/// The shipped fonts, loaded once.
fn fontdb() -> Arc<usvg::fontdb::Database> {
    static DB: OnceLock<Arc<usvg::fontdb::Database>> = OnceLock::new();
    DB.get_or_init(|| {
        let mut db = usvg::fontdb::Database::new();
        for data in [text::REGULAR, text::BOLD, text::SYMBOLS] {
            db.load_font_data(data.to_vec());
        }
        db.set_sans_serif_family("DejaVu Sans");
        Arc::new(db)
    })
    .clone()
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("the slide's SVG is invalid: {0}")]
    Svg(String),
    #[error("the slide could not be drawn: {0}")]
    Draw(String),
}

fn tree(svg: &str) -> Result<usvg::Tree, RenderError> {
    let options = usvg::Options {
        fontdb: fontdb(),
        font_family: "DejaVu Sans".into(),
        ..usvg::Options::default()
    };
    usvg::Tree::from_str(svg, &options).map_err(|e| RenderError::Svg(e.to_string()))
}

/// The slide as a PNG.
pub fn png(svg: &str) -> Result<Vec<u8>, RenderError> {
    let tree = tree(svg)?;
    let size = tree.size().to_int_size();
    let mut pixmap = tiny_skia::Pixmap::new(size.width(), size.height())
        .ok_or_else(|| RenderError::Draw("empty size".into()))?;
    resvg::render(&tree, tiny_skia::Transform::default(), &mut pixmap.as_mut());
    pixmap
        .encode_png()
        .map_err(|e| RenderError::Draw(e.to_string()))
}

/// The slides as one PDF, a page each, the text as vector outlines.
pub fn pdf(svgs: &[String]) -> Result<Vec<u8>, RenderError> {
    pdf::document(
        svgs.iter()
            .map(|s| tree(s))
            .collect::<Result<Vec<_>, _>>()?,
    )
}

mod pdf;

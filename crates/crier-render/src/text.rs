//! Measuring and wrapping text with the fonts the renderer ships, so a slide knows before it
//! is drawn whether its text fits.
//!
//! Widths are the sum of the glyphs' horizontal advances (the first font of the stack that has
//! the character: DejaVu Sans, then Symbola for emoji and symbols), at the font size, with a
//! small allowance for what shaping adds (kerning never widens much). A grapheme cluster (an
//! emoji with a skin tone or a joiner, a letter with its accents) is measured by its first
//! character and never split.

use std::sync::OnceLock;

use ttf_parser::Face;
use unicode_segmentation::UnicodeSegmentation;

pub(crate) const REGULAR: &[u8] = include_bytes!("../fonts/DejaVuSans.ttf");
pub(crate) const BOLD: &[u8] = include_bytes!("../fonts/DejaVuSans-Bold.ttf");
pub(crate) const SYMBOLS: &[u8] = include_bytes!("../fonts/Symbola.ttf");

/// The font stack, as SVG names it.
pub const FAMILY: &str = "DejaVu Sans, Symbola";

/// What shaping may add to the sum of advances; widths are overestimated by this much.
const ALLOWANCE: f32 = 1.03;
/// The advance, in ems, of a character no shipped font has (drawn as nothing or a box).
const MISSING: f32 = 0.6;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weight {
    Regular,
    Bold,
}

struct Faces {
    regular: Face<'static>,
    bold: Face<'static>,
    symbols: Face<'static>,
}

fn faces() -> &'static Faces {
    static FACES: OnceLock<Faces> = OnceLock::new();
    FACES.get_or_init(|| Faces {
        regular: Face::parse(REGULAR, 0).expect("the shipped regular font parses"),
        bold: Face::parse(BOLD, 0).expect("the shipped bold font parses"),
        symbols: Face::parse(SYMBOLS, 0).expect("the shipped symbol font parses"),
    })
}

/// The advance of one character in ems.
fn char_advance(c: char, weight: Weight) -> f32 {
    let f = faces();
    let first = match weight {
        Weight::Regular => &f.regular,
        Weight::Bold => &f.bold,
    };
    for face in [first, &f.symbols] {
        if let Some(g) = face.glyph_index(c) {
            let adv = face.glyph_hor_advance(g).unwrap_or(0);
            return f32::from(adv) / f32::from(face.units_per_em());
        }
    }
    if c.is_control() || matches!(c, '\u{200d}' | '\u{fe0e}' | '\u{fe0f}') {
        0.0
    } else {
        MISSING
    }
}

/// Whether some shipped font draws `c` (spaces and joiners count as drawn).
pub fn has_glyph(c: char) -> bool {
    let f = faces();
    c.is_whitespace()
        || matches!(c, '\u{200d}' | '\u{fe0e}' | '\u{fe0f}')
        || f.regular.glyph_index(c).is_some()
        || f.symbols.glyph_index(c).is_some()
}

/// `line` cut into runs of graphemes drawn with the symbol font (`true`: its first
/// character is not in DejaVu Sans) or the text font (`false`), in order.
pub fn runs(line: &str) -> Vec<(bool, &str)> {
    let f = faces();
    let mut out: Vec<(bool, &str)> = Vec::new();
    let mut start = 0;
    let mut current: Option<bool> = None;
    for (i, g) in line.grapheme_indices(true) {
        let c = g.chars().next().unwrap_or(' ');
        let symbols = !c.is_whitespace() && f.regular.glyph_index(c).is_none();
        // Spaces join whichever run they are in.
        let symbols = if c.is_whitespace() {
            current.unwrap_or(false)
        } else {
            symbols
        };
        match current {
            Some(s) if s != symbols => {
                out.push((s, &line[start..i]));
                start = i;
            }
            _ => {}
        }
        current = Some(symbols);
    }
    if let Some(s) = current {
        out.push((s, &line[start..]));
    }
    out
}

/// The width of `text` at `size` pixels, with the allowance for shaping: what wrapping uses.
pub fn width(text: &str, size: f32, weight: Weight) -> f32 {
    advance(text, size, weight) * ALLOWANCE
}

/// The sum of the advances of `text` at `size` pixels: where the next run starts.
pub fn advance(text: &str, size: f32, weight: Weight) -> f32 {
    text.graphemes(true)
        .map(|g| g.chars().next().map_or(0.0, |c| char_advance(c, weight)))
        .sum::<f32>()
        * size
}

/// `text` broken into lines no wider than `max` at `size`: at spaces, and inside a word only
/// when the word alone is wider than a line (between grapheme clusters, never inside one).
/// Line breaks in the text are kept; runs of spaces become one.
pub fn wrap(text: &str, size: f32, weight: Weight, max: f32) -> Vec<String> {
    let fits = |s: &str| width(s, size, weight) <= max;
    let mut lines = Vec::new();
    for paragraph in text.split('\n') {
        let mut line = String::new();
        for word in paragraph.split_whitespace() {
            let candidate = if line.is_empty() {
                word.to_owned()
            } else {
                format!("{line} {word}")
            };
            if fits(&candidate) {
                line = candidate;
                continue;
            }
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            if fits(word) {
                line = word.to_owned();
                continue;
            }
            for g in word.graphemes(true) {
                let longer = format!("{line}{g}");
                if !line.is_empty() && !fits(&longer) {
                    lines.push(std::mem::replace(&mut line, g.to_owned()));
                } else {
                    line = longer;
                }
            }
        }
        lines.push(line);
    }
    // Blank lines at the ends carry nothing.
    while lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }
    while lines.first().is_some_and(String::is_empty) {
        lines.remove(0);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_follow_the_font() {
        let narrow = width("iiii", 40.0, Weight::Regular);
        let wide = width("WWWW", 40.0, Weight::Regular);
        assert!(wide > 2.0 * narrow, "{wide} {narrow}");
        assert!(width("Bold", 40.0, Weight::Bold) > width("Bold", 40.0, Weight::Regular));
        assert_eq!(width("", 40.0, Weight::Regular), 0.0);
        // Twice the size, twice the width.
        let a = width("Durable queues", 20.0, Weight::Regular);
        let b = width("Durable queues", 40.0, Weight::Regular);
        assert!((b - 2.0 * a).abs() < 0.01);
        // Emoji come from the symbol font and have a width of their own.
        assert!(has_glyph('🚀') && has_glyph('😀') && has_glyph('é'));
        assert!(width("🚀", 40.0, Weight::Regular) > 20.0);
        // A family emoji (joined) is one cluster, measured once.
        let family = "👩\u{200d}👩\u{200d}👧";
        assert_eq!(
            width(family, 40.0, Weight::Regular),
            width("👩", 40.0, Weight::Regular)
        );
    }

    #[test]
    fn wrapping_keeps_every_line_within_the_width() {
        let text = "Exactly-once publishing means a crash between the network call and the \
                    database write never posts twice: we ask the network first. \
                    Supercalifragilisticexpialidociousandthensomemoreletters 🚀🚀🚀 done.\n\
                    Second paragraph 😀 with emoji 👩\u{200d}👩\u{200d}👧 inside.";
        for size in [28.0, 40.0, 64.0] {
            let max = 500.0;
            let lines = wrap(text, size, Weight::Regular, max);
            for l in &lines {
                assert!(width(l, size, Weight::Regular) <= max, "{size}: {l}");
            }
            // Nothing lost or added but spaces and breaks.
            let squash = |s: &str| s.split_whitespace().collect::<String>();
            assert_eq!(squash(&lines.concat()), squash(text));
            // The joined emoji was never split.
            assert!(lines.iter().any(|l| l.contains("👩\u{200d}👩\u{200d}👧")));
        }
        // A word longer than a line is broken between graphemes.
        let long = "x".repeat(200);
        let lines = wrap(&long, 40.0, Weight::Bold, 300.0);
        assert!(lines.len() > 1);
        assert!(lines.iter().all(|l| width(l, 40.0, Weight::Bold) <= 300.0));
        assert_eq!(lines.concat(), long);
        // Paragraph breaks are kept; blank lines at the ends dropped.
        assert_eq!(
            wrap("\n\na\n\nb\n", 40.0, Weight::Regular, 1000.0),
            ["a", "", "b"]
        );
        assert!(wrap("   ", 40.0, Weight::Regular, 1000.0).is_empty());
    }
}

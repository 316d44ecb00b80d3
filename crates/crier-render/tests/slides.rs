//! Slides as a person sees them: rendered PNGs compared with reference images (within a
//! tolerance for anti-aliasing), text that never overflows (long words and emoji wrap; too much
//! text is reported, not drawn off the slide), and the PDF opened by poppler (`pdfinfo`,
//! `pdftoppm` from Debian's poppler-utils): one page per slide, each page showing its slide.
//!
//! `CRIER_UPDATE_REFERENCES=1` rewrites the reference images (look at them before committing).

use std::path::{Path, PathBuf};
use std::process::Command;

use crier_render::text::{Weight, width};
use crier_render::{Kind, Size, Slide, Template, layout, pdf, png};

fn reference_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference")
}

fn slides() -> Vec<Slide> {
    vec![
        Slide {
            kind: Kind::Title,
            heading: "Five ways to never post twice".into(),
            body: "A field guide to exactly-once publishing".into(),
        },
        Slide {
            kind: Kind::Content,
            heading: "Ask before you retry 🔁".into(),
            body: "After a crash, look the post up by its idempotency key at the network first; \
                   only if it is not there, send it again. Pneumonoultramicroscopicsilicovolcanoconiosis-sized \
                   words wrap too 🚀✨."
                .into(),
        },
        Slide {
            kind: Kind::Closing,
            heading: "Found this useful?".into(),
            body: "Follow crier for more 👋".into(),
        },
    ]
}

/// Decoded RGBA pixels and size.
fn decode(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    let decoder = png::Decoder::new(bytes);
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("a frame");
    buf.truncate(info.buffer_size());
    let rgba = match info.color_type {
        png::ColorType::Rgba => buf,
        png::ColorType::Rgb => buf
            .chunks(3)
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect(),
        other => panic!("unexpected colour type {other:?}"),
    };
    (info.width, info.height, rgba)
}

/// The mean absolute difference per channel, 0 to 255.
fn difference(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    let sum: u64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| u64::from(x.abs_diff(*y)))
        .sum();
    sum as f64 / a.len() as f64
}

#[test]
fn slides_match_their_reference_images() {
    let all = slides();
    let cases = [
        ("title-light.png", 0, Template::Light, Size::Square),
        ("content-dark.png", 1, Template::Dark, Size::Square),
        (
            "closing-bold-portrait.png",
            2,
            Template::Bold,
            Size::Portrait,
        ),
    ];
    let update = std::env::var("CRIER_UPDATE_REFERENCES").is_ok();
    for (name, i, template, size) in cases {
        let laid = layout(&all[i], i + 1, all.len(), template, size, "crier");
        assert_eq!(laid.problem, None, "{name}");
        let bytes = png(&laid.svg).unwrap();
        // Deterministic: the same slide, the same bytes.
        assert_eq!(bytes, png(&laid.svg).unwrap());
        let path = reference_dir().join(name);
        if update {
            std::fs::create_dir_all(reference_dir()).unwrap();
            std::fs::write(&path, &bytes).unwrap();
            continue;
        }
        let (w, h, got) = decode(&bytes);
        assert_eq!((w, h), size.pixels(), "{name}");
        let reference = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let (rw, rh, want) = decode(&reference);
        assert_eq!((rw, rh), (w, h), "{name}");
        let d = difference(&got, &want);
        assert!(
            d < 1.0,
            "{name} differs from its reference by {d:.3} per channel"
        );
        // And the tolerance is not so wide that another slide passes.
        let other = layout(&all[(i + 1) % all.len()], 1, 3, template, size, "crier");
        let (_, _, wrong) = decode(&png(&other.svg).unwrap());
        if wrong.len() == want.len() {
            assert!(
                difference(&wrong, &want) > 2.0,
                "{name}: another slide would pass"
            );
        }
    }
}

#[test]
fn text_never_overflows_a_slide() {
    // Long words and emoji wrap within the slide.
    let s = &slides()[1];
    let laid = layout(s, 2, 3, Template::Light, Size::Square, "");
    assert_eq!(laid.problem, None);
    for line in laid
        .svg
        .split("<tspan")
        .skip(1)
        .map(|t| t.split('>').nth(1).unwrap().split('<').next().unwrap())
    {
        let line = line.replace("&amp;", "&");
        // The widest size any body or heading line is drawn at is 64 px bold.
        assert!(
            width(&line, 64.0, Weight::Bold) <= 900.0 * 64.0 / 28.0,
            "{line}"
        );
    }
    assert!(
        laid.svg.contains(r#"font-family="Symbola">🚀✨</tspan>"#),
        "emoji kept, in the symbol font: {}",
        laid.svg
    );
    // Too much text: reported with what does not fit, not drawn off the slide.
    let long = Slide {
        kind: Kind::Content,
        heading: "A heading".into(),
        body: "word ".repeat(400),
    };
    let laid = layout(&long, 2, 3, Template::Light, Size::Square, "");
    let problem = laid.problem.expect("too long to fit");
    assert!(
        problem.contains("The body needs") && problem.contains("shorten it"),
        "{problem}"
    );
    // A portrait slide has more room than a square one.
    let medium = Slide {
        kind: Kind::Content,
        heading: "A heading".into(),
        body: "word ".repeat(250),
    };
    let square = layout(&medium, 2, 3, Template::Light, Size::Square, "");
    let portrait = layout(&medium, 2, 3, Template::Light, Size::Portrait, "");
    assert!(square.problem.is_some() && portrait.problem.is_none());
    // Markup in text is text.
    let tricky = Slide {
        kind: Kind::Title,
        heading: "<script>alert('x')</script> & \"quotes\" \u{FFFF}\u{FFFE}".into(),
        body: String::new(),
    };
    let laid = layout(&tricky, 1, 3, Template::Dark, Size::Square, "");
    assert!(laid.svg.contains("&lt;script&gt;"));
    png(&laid.svg).unwrap();
}

fn poppler(tool: &str) -> Option<PathBuf> {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if found.is_none() {
        // CI installs poppler-utils (.ci/run); a laptop without it skips this check.
        assert!(
            std::env::var("CI").is_err(),
            "{tool} (poppler-utils) is missing; .ci/run installs it"
        );
        eprintln!("{tool} not installed: PDF check skipped");
    }
    found
}

#[test]
fn the_pdf_opens_with_one_page_per_slide() {
    let all = slides();
    let svgs: Vec<String> = all
        .iter()
        .enumerate()
        .map(|(i, s)| layout(s, i + 1, all.len(), Template::Light, Size::Square, "crier").svg)
        .collect();
    let bytes = pdf(&svgs).unwrap();
    assert!(bytes.starts_with(b"%PDF-"));
    let (Some(info), Some(toppm)) = (poppler("pdfinfo"), poppler("pdftoppm")) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("carousel.pdf");
    std::fs::write(&file, &bytes).unwrap();
    let out = Command::new(info).arg(&file).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["Pages:", "3"]),
        "{text}"
    );
    assert!(text.contains("810 x 810 pts"), "{text}");
    // Each page, rendered by poppler at 96 dpi, looks like its slide's PNG.
    let out = Command::new(toppm)
        .args(["-r", "96", "-png"])
        .arg(&file)
        .arg(dir.path().join("page"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (i, svg) in svgs.iter().enumerate() {
        let page = std::fs::read(dir.path().join(format!("page-{}.png", i + 1))).unwrap();
        let (w, h, got) = decode(&page);
        assert_eq!((w, h), (1080, 1080));
        let (_, _, want) = decode(&png(svg).unwrap());
        let d = difference(&got, &want);
        assert!(d < 6.0, "page {} differs from its slide by {d:.2}", i + 1);
    }
}

//! Slides as the pages of one PDF: each slide's tree becomes a form XObject (svg2pdf, fonts
//! subset and embedded), drawn full-page on its own page. Pages are 0.75 pt per pixel (96 px to
//! the inch), so a square slide is a 810 pt square.

use std::collections::HashMap;

use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref};
use resvg::usvg::Tree;

use crate::RenderError;

const PT_PER_PX: f32 = 0.75;

pub(crate) fn document(trees: Vec<Tree>) -> Result<Vec<u8>, RenderError> {
    let mut alloc = Ref::new(1);
    let catalog = alloc.bump();
    let page_tree = alloc.bump();
    let pages: Vec<(Ref, Ref)> = trees.iter().map(|_| (alloc.bump(), alloc.bump())).collect();
    let mut pdf = Pdf::new();
    pdf.catalog(catalog).pages(page_tree);
    pdf.pages(page_tree)
        .kids(pages.iter().map(|(page, _)| *page))
        .count(pages.len() as i32);
    let name = Name(b"S1");
    for (tree, (page_id, content_id)) in trees.iter().zip(&pages) {
        let (chunk, svg_id) = svg2pdf::to_chunk(tree, svg2pdf::ConversionOptions::default())
            .map_err(|e| RenderError::Draw(format!("{e:?}")))?;
        let mut map = HashMap::new();
        let chunk = chunk.renumber(|old| *map.entry(old).or_insert_with(|| alloc.bump()));
        let svg_id = *map
            .get(&svg_id)
            .ok_or_else(|| RenderError::Draw("the slide's object is missing".into()))?;
        let (w, h) = (
            tree.size().width() * PT_PER_PX,
            tree.size().height() * PT_PER_PX,
        );
        let mut page = pdf.page(*page_id);
        page.media_box(Rect::new(0.0, 0.0, w, h));
        page.parent(page_tree);
        page.contents(*content_id);
        page.resources().x_objects().pair(name, svg_id);
        page.finish();
        let mut content = Content::new();
        content.transform([w, 0.0, 0.0, h, 0.0, 0.0]).x_object(name);
        pdf.stream(*content_id, &content.finish());
        pdf.extend(&chunk);
    }
    Ok(pdf.finish())
}

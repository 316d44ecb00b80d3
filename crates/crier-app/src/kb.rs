//! The knowledge-base rules, for every caller: adding documents (text, Markdown, HTML, a URL),
//! listing, reading and deleting them, searching their passages, and the best passages that AI
//! generation for a brand draws on.
//!
//! Decisions kept here:
//! - **Sources.** `text` is taken as it is (paragraphs at blank lines); `markdown` loses its
//!   syntax (headings, emphasis, link targets, code fences, tables) and keeps its text; `html`
//!   keeps the text of each block element, without scripts, styles and comments; `url` is
//!   fetched through the SSRF guard ([`fetch`]: http/https, private addresses refused unless
//!   the operator allows private networks, at most 2 MiB, the configured timeout, HTML, plain
//!   text or Markdown pages only) and read as what its `Content-Type` says. Any failure of the
//!   fetch is `400 invalid_request` with `param` `url` (see [`fetch`] for why never `503`).
//! - **Passages.** The text is cut into passages of at most [`MAX_PASSAGE_CHARS`] characters:
//!   a heading starts one, paragraphs join while they fit, a longer paragraph is cut between
//!   sentences and a longer sentence between words ([`text::passages`]). A document's text as
//!   stored is its passages (GET shows them joined by blank lines), and its `chars` are theirs.
//! - **Bounds.** `content` at most [`MAX_CONTENT_CHARS`] characters, the extracted text too (a
//!   fetched page's, `param` `url`), at most [`MAX_PASSAGES`] passages, a title at most
//!   [`MAX_TITLE`] characters. The plan's `kb_documents` and `kb_chars` bound each workspace's
//!   documents and characters per mode (test mode has the same bounds, counted apart, so a test
//!   key cannot fill the disk either): `402 quota_exceeded`, decided in the transaction that
//!   stores the document, so two adds racing for the last place cannot both get it. A cheaper
//!   check before fetching and embedding spares that work when the quota is already used up.
//! - **Brands.** `brand_id` names a brand's knowledge; without it a document is the whole
//!   workspace's. A search (and [`Kb::passages_for`]) for a brand covers that brand's documents
//!   and the workspace-wide ones; without a brand, the workspace-wide ones only, so one
//!   brand's knowledge never reaches another's generation. [`Kb::validate_brand`] is the one
//!   place a `brand_id` is accepted.
//! - **Search.** The query is reduced to plain terms ([`text::query_terms`]: letters and
//!   digits, lower-cased, without English stop words, at most 32), so nothing a user types is
//!   search syntax on either backend; no term left (an empty or all-stop-word query): no hits,
//!   not an error. The database's full-text search finds and ranks passages holding any term
//!   (`crier_store` `kb.rs`). Scores are relative: the best text match of a search is 1.0.
//! - **Embeddings**, when the operator configured an embeddings endpoint: passages are
//!   embedded when a document is added (batches of [`EMBED_BATCH`]); an embedder that fails or
//!   answers something unusable leaves the document searchable by text only (logged, not an
//!   error). At search time the query is embedded, and the best [`CANDIDATES`] text matches
//!   are re-ranked by `(1 - w)·text + w·max(0, cosine)` with `w` = [`MEANING_WEIGHT`]; a
//!   passage without a vector counts as unrelated in meaning. Without an embedder (or when the
//!   query's embedding fails), text ranking alone.

pub mod fetch;
pub mod text;

use crier_core::ErrorCode;
use crier_core::ids::{BrandId, DocumentId};
use crier_store::{KbDocument, KbFilter, KbInsert, KbKind, KbMatch, NewPassage, Page};

use crate::{App, AppError, AppResult, Caller};

pub const MAX_TITLE: usize = 200;
/// Characters of `content`, and of the text extracted from any source.
pub const MAX_CONTENT_CHARS: usize = 500_000;
pub const MAX_PASSAGES: usize = 2_000;
pub const MAX_PASSAGE_CHARS: usize = 1_000;
/// Characters of a search query.
pub const MAX_QUERY: usize = 500;
/// Hits a search returns at most.
pub const MAX_SEARCH_LIMIT: usize = 50;
pub const DEFAULT_SEARCH_LIMIT: usize = 10;
/// Text matches re-ranked by meaning when an embedder is configured.
pub const CANDIDATES: usize = 50;
/// Passages per call to the embedder.
pub const EMBED_BATCH: usize = 64;
/// The weight of meaning (cosine similarity) against the text match when re-ranking.
pub const MEANING_WEIGHT: f64 = 0.5;
/// The longest vector kept (longer ones are refused as unusable).
pub const MAX_DIMENSIONS: usize = 8192;
/// The largest page read from a URL.
/// The most of a page crier reads.
pub const MAX_FETCH_BYTES: usize = 2 * 1024 * 1024;

/// A document to add, as a client sends it.
#[derive(Debug, Clone, Default)]
pub struct NewDocument {
    pub title: Option<String>,
    /// `text`, `markdown`, `html` or `url`.
    pub kind: String,
    /// The source, for every kind but `url`.
    pub content: Option<String>,
    /// The page to fetch, for kind `url`.
    pub url: Option<String>,
    pub brand_id: Option<String>,
}

/// A passage a search found.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub document_id: DocumentId,
    /// The document's title.
    pub title: String,
    pub passage: String,
    /// The passage's place in its document, from 0.
    pub position: u32,
    /// Relative: the best text match of the search is 1.0 before meaning is blended in.
    pub score: f64,
}

/// The knowledge-base rules over one [`App`].
pub struct Kb<'a> {
    pub(crate) app: &'a App,
}

fn check_title(raw: &str) -> AppResult<String> {
    // The bound is on what was sent (as the OpenAPI description states it), not on it trimmed.
    let title = raw.trim();
    if title.is_empty() || raw.chars().count() > MAX_TITLE || title.chars().any(char::is_control) {
        return Err(AppError::invalid(
            "title",
            format!(
                "`title` must be 1 to {MAX_TITLE} characters (trimmed), without control \
                 characters."
            ),
        ));
    }
    Ok(title.to_owned())
}

/// A title from the text itself: at most [`MAX_TITLE`] characters, cut at a word.
fn derived_title(candidate: &str) -> String {
    crier_core::text::clip(&text::clean(candidate), MAX_TITLE)
}

fn quota_error(message: String) -> AppError {
    AppError::new(ErrorCode::QuotaExceeded, message)
}

fn mode_name(c: &Caller) -> &'static str {
    if c.livemode() { "live" } else { "test" }
}

/// Cosine similarity, `None` when the lengths differ or a vector is all zeros.
pub fn cosine(a: &[f32], b: &[f32]) -> Option<f64> {
    if a.len() != b.len() || a.is_empty() {
        return None;
    }
    let (mut dot, mut na, mut nb) = (0f64, 0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (f64::from(*x), f64::from(*y));
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    (na > 0.0 && nb > 0.0).then(|| dot / (na.sqrt() * nb.sqrt()))
}

/// Text matches (best first) as hits: scores relative to the best, then, with the query's
/// vector, blended with each passage's similarity in meaning and re-ordered (ties keep the
/// text order). At most `limit`.
pub fn rank(matches: Vec<KbMatch>, query: Option<&[f32]>, limit: usize) -> Vec<Hit> {
    let best = matches.iter().map(|m| m.score).fold(0f64, f64::max);
    let mut hits: Vec<Hit> = matches
        .into_iter()
        .map(|m| {
            let text = if best > 0.0 { m.score / best } else { 0.0 };
            let score = match query {
                None => text,
                Some(q) => {
                    let meaning = m
                        .embedding
                        .as_deref()
                        .and_then(|v| cosine(q, v))
                        .unwrap_or(0.0)
                        .max(0.0);
                    (1.0 - MEANING_WEIGHT) * text + MEANING_WEIGHT * meaning
                }
            };
            Hit {
                document_id: m.document_id,
                title: m.title,
                passage: m.text,
                position: m.position,
                score,
            }
        })
        .collect();
    if query.is_some() {
        hits.sort_by(|a, b| b.score.total_cmp(&a.score));
    }
    hits.truncate(limit);
    hits
}

/// Whether vectors from an embedder are usable: one per input, all of one non-zero length
/// up to [`MAX_DIMENSIONS`], all finite.
fn usable(vectors: &[Vec<f32>], inputs: usize, dims: Option<usize>) -> bool {
    let Some(first) = vectors.first() else {
        return inputs == 0;
    };
    let n = dims.unwrap_or(first.len());
    vectors.len() == inputs
        && n > 0
        && n <= MAX_DIMENSIONS
        && vectors
            .iter()
            .all(|v| v.len() == n && v.iter().all(|x| x.is_finite()))
}

impl Kb<'_> {
    /// The `brand_id` a client sent, as a brand the caller reaches in its workspace and mode
    /// (`400 invalid_request` naming `param` otherwise, with the same words for a malformed,
    /// unknown, foreign or out-of-reach id). Every path that takes a `brand_id` for the
    /// knowledge base goes through here.
    pub async fn validate_brand(&self, c: &Caller, param: &str, raw: &str) -> AppResult<BrandId> {
        let unknown = || AppError::invalid(param, format!("No such brand: '{raw}'."));
        let id = BrandId::parse(raw).ok_or_else(unknown)?;
        match self.app.brands().get(c, raw).await {
            Ok(_) => Ok(id),
            Err(e) if e.code == crier_core::ErrorCode::NotFound => Err(unknown()),
            Err(e) => Err(e),
        }
    }

    /// Adds a document: its source read, cut into passages, embedded when an embedder is
    /// configured, and stored within the plan's bounds.
    pub async fn add(&self, c: &Caller, req: NewDocument) -> AppResult<KbDocument> {
        let kind = KbKind::parse(&req.kind).ok_or_else(|| {
            AppError::invalid(
                "kind",
                "`kind` must be `text`, `markdown`, `html` or `url`.",
            )
        })?;
        let title = req.title.as_deref().map(check_title).transpose()?;
        if req.brand_id.is_none() {
            // Workspace-wide knowledge reaches every brand's generations.
            c.require_unrestricted("change the whole workspace's knowledge")?;
        }
        let brand_id = match &req.brand_id {
            Some(raw) => Some(self.validate_brand(c, "brand_id", raw).await?),
            None => None,
        };
        let (content, url) = match kind {
            KbKind::Url => {
                if req.content.is_some() {
                    return Err(AppError::invalid(
                        "content",
                        "`content` is not taken with kind `url`: the page is fetched from `url`.",
                    ));
                }
                let url = req.url.as_deref().ok_or_else(|| {
                    AppError::invalid("url", "`url` is required with kind `url`.")
                })?;
                (
                    None,
                    Some(fetch::check(
                        url,
                        self.app.fetch_settings().allow_private_networks,
                    )?),
                )
            }
            _ => {
                if req.url.is_some() {
                    return Err(AppError::invalid(
                        "url",
                        "`url` is taken only with kind `url`.",
                    ));
                }
                let content = req.content.ok_or_else(|| {
                    AppError::invalid(
                        "content",
                        format!("`content` is required with kind `{}`.", kind.as_str()),
                    )
                })?;
                if content.chars().count() > MAX_CONTENT_CHARS {
                    return Err(AppError::invalid(
                        "content",
                        format!("`content` must be at most {MAX_CONTENT_CHARS} characters."),
                    ));
                }
                (Some(content), None)
            }
        };
        // Before any fetching or embedding: is there room for one more document at all?
        self.precheck(c, 0).await?;

        let (extracted, source_url, param) = match (kind, content, url) {
            (KbKind::Url, _, Some(url)) => {
                let page =
                    fetch::fetch(self.app.fetch_settings(), url.as_str(), MAX_FETCH_BYTES).await?;
                let extracted = match page.format {
                    fetch::Format::Html => text::html_blocks(&page.body),
                    fetch::Format::Text => text::text_blocks(&page.body),
                    fetch::Format::Markdown => text::markdown_blocks(&page.body),
                };
                (extracted, Some(page.url), "url")
            }
            (KbKind::Text, Some(c), _) => (text::text_blocks(&c), None, "content"),
            (KbKind::Markdown, Some(c), _) => (text::markdown_blocks(&c), None, "content"),
            (KbKind::Html, Some(c), _) => (text::html_blocks(&c), None, "content"),
            _ => unreachable!("the kind decided which of content and url is set"),
        };
        let text_chars: usize = extracted
            .blocks
            .iter()
            .map(|b| b.text.chars().count())
            .sum();
        if text_chars == 0 {
            return Err(AppError::invalid(
                param,
                format!("The document at `{param}` has no text."),
            ));
        }
        if text_chars > MAX_CONTENT_CHARS {
            return Err(AppError::invalid(
                param,
                format!(
                    "The document's text is longer than {MAX_CONTENT_CHARS} characters, the \
                     most a document may hold."
                ),
            ));
        }
        let passages = text::passages(&extracted.blocks, MAX_PASSAGE_CHARS);
        let chars: usize = passages.iter().map(|p| p.chars().count()).sum();
        if passages.len() > MAX_PASSAGES {
            return Err(AppError::invalid(
                param,
                format!(
                    "The document splits into {} passages; a document may have at most \
                     {MAX_PASSAGES} (fewer, longer sections would fit).",
                    passages.len()
                ),
            ));
        }
        self.precheck(c, chars as u64).await?;

        let title = title
            .or_else(|| extracted.title.as_deref().map(derived_title))
            .filter(|t| !t.is_empty())
            .or_else(|| source_url.as_deref().map(derived_title))
            .unwrap_or_else(|| derived_title(&extracted.blocks[0].text));
        let vectors = self.embed_passages(&passages).await;
        let stored: Vec<NewPassage> = match vectors {
            Some(vectors) => passages
                .into_iter()
                .zip(vectors)
                .map(|(text, v)| NewPassage {
                    text,
                    embedding: Some(v),
                })
                .collect(),
            None => passages
                .into_iter()
                .map(|text| NewPassage {
                    text,
                    embedding: None,
                })
                .collect(),
        };
        let doc = KbDocument {
            id: DocumentId::generate(),
            workspace_id: c.workspace().clone(),
            livemode: c.livemode(),
            brand_id,
            title,
            kind,
            source_url,
            chars: chars as u64,
            passages: stored.len() as u64,
            created_at: self.app.clock().now_ms(),
        };
        match self
            .app
            .store()
            .insert_kb_document(&doc, &stored, c.plan.kb_documents, c.plan.kb_chars)
            .await?
        {
            KbInsert::Inserted => Ok(doc),
            KbInsert::TooManyDocuments { used, limit } => Err(self.documents_error(c, used, limit)),
            KbInsert::TooManyChars { used, limit } => {
                Err(self.chars_error(c, used, doc.chars, limit))
            }
        }
    }

    fn documents_error(&self, c: &Caller, used: u64, limit: u64) -> AppError {
        quota_error(format!(
            "This workspace's plan allows {limit} knowledge-base documents in {} mode, and \
             {used} are stored; delete some to add more.",
            mode_name(c)
        ))
    }

    fn chars_error(&self, c: &Caller, used: u64, adding: u64, limit: u64) -> AppError {
        quota_error(format!(
            "This workspace's plan allows {limit} characters of knowledge in {} mode: {used} \
             are stored, and this document has {adding}.",
            mode_name(c)
        ))
    }

    /// `402 quota_exceeded` when one more document, or `adding` more characters, would pass
    /// the plan (not authoritative: the insert decides, in its transaction).
    async fn precheck(&self, c: &Caller, adding: u64) -> AppResult<()> {
        if c.plan.kb_documents.is_none() && c.plan.kb_chars.is_none() {
            return Ok(());
        }
        let usage = self.app.store().kb_usage(&c.tenant).await?;
        if let Some(limit) = c.plan.kb_documents
            && usage.documents >= limit
        {
            return Err(self.documents_error(c, usage.documents, limit));
        }
        if let Some(limit) = c.plan.kb_chars
            && usage.chars.saturating_add(adding) > limit
        {
            return Err(self.chars_error(c, usage.chars, adding, limit));
        }
        Ok(())
    }

    /// One vector per passage, or `None` (no embedder, or it failed: logged).
    async fn embed_passages(&self, passages: &[String]) -> Option<Vec<Vec<f32>>> {
        let embedder = self.app.embedder()?;
        let mut out: Vec<Vec<f32>> = Vec::with_capacity(passages.len());
        for batch in passages.chunks(EMBED_BATCH) {
            match embedder.embed(batch).await {
                Ok(vectors) if usable(&vectors, batch.len(), out.first().map(Vec::len)) => {
                    out.extend(vectors)
                }
                Ok(vectors) => {
                    tracing::warn!(
                        inputs = batch.len(),
                        vectors = vectors.len(),
                        "the embedder's answer is unusable; the document is searchable by text only"
                    );
                    return None;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "embedding failed; the document is searchable by text only");
                    return None;
                }
            }
        }
        Some(out)
    }

    /// The query's vector, or `None` (no embedder, or it failed: logged).
    async fn embed_query(&self, q: &str) -> Option<Vec<f32>> {
        let embedder = self.app.embedder()?;
        match embedder.embed(&[q.to_owned()]).await {
            Ok(mut vectors) if usable(&vectors, 1, None) => vectors.pop(),
            Ok(_) => {
                tracing::warn!(
                    "the embedder's answer for a query is unusable; ranking by text only"
                );
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "embedding a query failed; ranking by text only");
                None
            }
        }
    }

    /// The caller's documents, newest first; with `brand`, only that brand's. A key limited to
    /// brands or accounts lists the workspace-wide documents without `brand`, and a brand's
    /// only for a brand it reaches (the brand was checked by [`Kb::validate_brand`]).
    pub async fn list(
        &self,
        c: &Caller,
        brand: Option<&BrandId>,
        limit: u32,
        offset: u32,
    ) -> AppResult<Page<KbDocument>> {
        let filter = match brand {
            Some(b) => KbFilter::Brand(b),
            None if c.is_limited() => KbFilter::WorkspaceWide,
            None => KbFilter::All,
        };
        Ok(self
            .app
            .store()
            .list_kb_documents(&c.tenant, filter, limit, offset)
            .await?)
    }

    /// A document of the caller's tenant that the caller reaches: a brand's document is `404`
    /// to a key that does not reach the brand.
    async fn visible(&self, c: &Caller, id: &str) -> AppResult<(DocumentId, KbDocument)> {
        let doc_id = Self::parse_id(id)?;
        let doc = self
            .app
            .store()
            .get_kb_document(&c.tenant, &doc_id)
            .await?
            .ok_or_else(|| AppError::not_found("document", id))?;
        if c.is_limited()
            && let Some(brand) = &doc.brand_id
            && self.app.brands().get(c, brand.as_str()).await.is_err()
        {
            return Err(AppError::not_found("document", id));
        }
        Ok((doc_id, doc))
    }

    fn parse_id(id: &str) -> AppResult<DocumentId> {
        DocumentId::parse(id).ok_or_else(|| AppError::not_found("document", id))
    }

    /// One of the caller's documents and its text (its passages joined by blank lines).
    pub async fn get(&self, c: &Caller, id: &str) -> AppResult<(KbDocument, String)> {
        let (doc_id, doc) = self.visible(c, id).await?;
        let passages = self
            .app
            .store()
            .kb_document_passages(&c.tenant, &doc_id)
            .await?;
        Ok((doc, passages.join("\n\n")))
    }

    /// Deletes one of the caller's documents with its passages; the document as it was.
    pub async fn delete(&self, c: &Caller, id: &str) -> AppResult<KbDocument> {
        let (doc_id, doc) = self.visible(c, id).await?;
        if doc.brand_id.is_none() {
            c.require_unrestricted("change the whole workspace's knowledge")?;
        }
        self.app
            .store()
            .delete_kb_document(&c.tenant, &doc_id)
            .await?
            .ok_or_else(|| AppError::not_found("document", id))
    }

    /// The passages that best answer `q`, best first, at most `limit` (itself at most
    /// [`MAX_SEARCH_LIMIT`]). With `brand`, that brand's documents and the workspace-wide
    /// ones; without, the workspace-wide ones. A query of more than [`MAX_QUERY`] characters
    /// is `400` (`param` `q`); one with no search terms finds nothing.
    pub async fn search(
        &self,
        c: &Caller,
        q: &str,
        brand: Option<&BrandId>,
        limit: usize,
    ) -> AppResult<Vec<Hit>> {
        if q.chars().count() > MAX_QUERY {
            return Err(AppError::invalid(
                "q",
                format!("`q` must be at most {MAX_QUERY} characters."),
            ));
        }
        let limit = limit.min(MAX_SEARCH_LIMIT);
        let terms = text::query_terms(q);
        if terms.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let want = if self.app.embedder().is_some() {
            CANDIDATES.max(limit)
        } else {
            limit
        };
        let matches = self
            .app
            .store()
            .search_kb(&c.tenant, brand, &terms, want as u32)
            .await?;
        if matches.is_empty() {
            return Ok(Vec::new());
        }
        let query = self.embed_query(q).await;
        Ok(rank(matches, query.as_deref(), limit))
    }

    /// For AI generation: the text of the passages that best answer `query`, best first, at
    /// most `limit`, from `brand`'s knowledge and the workspace's (as [`Kb::search`]). A query
    /// longer than [`MAX_QUERY`] characters is searched by its first ones.
    pub async fn passages_for(
        &self,
        c: &Caller,
        brand: Option<&BrandId>,
        query: &str,
        limit: usize,
    ) -> AppResult<Vec<String>> {
        let query: String = query.chars().take(MAX_QUERY).collect();
        Ok(self
            .search(c, &query, brand, limit)
            .await?
            .into_iter()
            .map(|h| h.passage)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(doc: &str, score: f64, embedding: Option<Vec<f32>>) -> KbMatch {
        KbMatch {
            document_id: DocumentId::from_trusted(doc.into()),
            title: doc.into(),
            position: 0,
            text: doc.into(),
            embedding,
            score,
        }
    }

    #[test]
    fn cosine_similarity() {
        assert_eq!(cosine(&[1.0, 0.0], &[2.0, 0.0]), Some(1.0));
        assert_eq!(cosine(&[1.0, 0.0], &[0.0, 3.0]), Some(0.0));
        assert!((cosine(&[1.0, 1.0], &[-1.0, -1.0]).unwrap() + 1.0).abs() < 1e-9);
        assert_eq!(cosine(&[1.0], &[1.0, 0.0]), None);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), None);
    }

    #[test]
    fn text_scores_are_relative_to_the_best() {
        let hits = rank(vec![m("a", 4.0, None), m("b", 1.0, None)], None, 10);
        assert_eq!(
            hits.iter().map(|h| h.score).collect::<Vec<_>>(),
            vec![1.0, 0.25]
        );
        assert_eq!(
            rank(vec![m("a", 4.0, None), m("b", 1.0, None)], None, 1).len(),
            1
        );
    }

    #[test]
    fn meaning_reorders_text_matches() {
        let q = [1.0f32, 0.0];
        let hits = rank(
            vec![
                // The best text match, far in meaning.
                m("a", 2.0, Some(vec![0.0, 1.0])),
                // A weaker text match, close in meaning.
                m("b", 1.6, Some(vec![1.0, 0.1])),
                // No vector: unrelated in meaning.
                m("c", 1.8, None),
                // Opposite meaning counts as unrelated, not below it.
                m("d", 1.8, Some(vec![-1.0, 0.0])),
            ],
            Some(&q),
            10,
        );
        let order: Vec<&str> = hits.iter().map(|h| h.document_id.as_str()).collect();
        // b: 0.5·0.8 + 0.5·0.995; a: 0.5·1.0; c, d: 0.5·0.9.
        assert_eq!(order, vec!["b", "a", "c", "d"]);
        assert!(
            (hits[0].score - (0.5 * 0.8 + 0.5 * cosine(&q, &[1.0, 0.1]).unwrap())).abs() < 1e-9
        );
        assert_eq!(hits[2].score, hits[3].score, "ties keep the text order");
    }

    #[test]
    fn usable_vectors() {
        assert!(usable(&[vec![1.0, 2.0], vec![3.0, 4.0]], 2, None));
        assert!(!usable(&[vec![1.0, 2.0]], 2, None), "one missing");
        assert!(
            !usable(&[vec![1.0, 2.0], vec![3.0]], 2, None),
            "lengths differ"
        );
        assert!(
            !usable(&[vec![1.0, 2.0]], 1, Some(3)),
            "not the earlier batches' length"
        );
        assert!(!usable(&[vec![f32::NAN]], 1, None));
        assert!(!usable(&[vec![]], 1, None));
        assert!(!usable(&[vec![0.5; MAX_DIMENSIONS + 1]], 1, None));
    }

    #[test]
    fn titles() {
        assert_eq!(check_title("  Hours  ").unwrap(), "Hours");
        for bad in ["", "   ", "a\u{7}b"] {
            assert_eq!(
                check_title(bad).unwrap_err().param.as_deref(),
                Some("title")
            );
        }
        assert!(check_title(&"é".repeat(MAX_TITLE)).is_ok());
        assert!(check_title(&"é".repeat(MAX_TITLE + 1)).is_err());
        assert!(derived_title(&"word ".repeat(100)).chars().count() <= MAX_TITLE);
    }
}

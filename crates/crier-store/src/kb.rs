//! The knowledge base's rows: documents and their passages, and full-text search over the
//! passages, as the knowledge-base rules (crier-app `kb.rs`) decide them.
//!
//! What storage guarantees here:
//! - A document and all its passages are written in one transaction, after the plan's bounds
//!   are checked in that same transaction: the workspace's documents and characters of the
//!   document's mode are counted after locking the workspace row on PostgreSQL (SQLite
//!   serialises writers), so two adds racing for the last place cannot both get it.
//! - Deleting a document deletes its passages (and so their full-text rows) in one transaction.
//! - Search: one function, two SQL texts. Both take the query as plain search terms (the
//!   caller has already split, lower-cased and filtered them, so no term carries syntax) and
//!   match passages holding **any** of them, best first:
//!   - SQLite: an FTS5 index (porter stemming) queried with each term quoted (`"a" OR "b"`:
//!     `NEAR`, `*`, `-`, `:` and column filters are literal text inside quotes), ranked by
//!     `bm25()`. FTS5 takes its term statistics from the whole index, so another workspace's
//!     documents can move the order of this one's hits (never which passages are found).
//!   - PostgreSQL: a generated `tsvector` (`english`) under a GIN index, matched with the OR of
//!     the terms. `ts_rank_cd` alone ignores how rare a term is, so each term's
//!     `ts_rank_cd` (normalised for length and saturated, `1|32`) is weighted by its BM25
//!     inverse document frequency among the caller's passages, and the weights summed: a
//!     rare word that a passage holds outranks a common one, as with `bm25()`.
//!
//!   Scores are comparable within one search only.

use crier_core::Tenant;
use crier_core::ids::{BrandId, DocumentId, WorkspaceId};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::model::{Page, corrupt};
use crate::{Backend, Result, Store};

/// What a document was made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KbKind {
    Text,
    Markdown,
    Html,
    Url,
}

impl KbKind {
    pub const ALL: [KbKind; 4] = [KbKind::Text, KbKind::Markdown, KbKind::Html, KbKind::Url];

    pub fn as_str(self) -> &'static str {
        match self {
            KbKind::Text => "text",
            KbKind::Markdown => "markdown",
            KbKind::Html => "html",
            KbKind::Url => "url",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// A knowledge-base document as stored (its text is its passages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KbDocument {
    pub id: DocumentId,
    pub workspace_id: WorkspaceId,
    pub livemode: bool,
    /// `None`: the whole workspace's knowledge.
    pub brand_id: Option<BrandId>,
    pub title: String,
    pub kind: KbKind,
    /// The URL it was fetched from (`kind` `url`).
    pub source_url: Option<String>,
    /// Characters (Unicode scalar values) of its passages together.
    pub chars: u64,
    pub passages: u64,
    pub created_at: i64,
}

/// A passage to store, in document order.
#[derive(Debug, Clone, PartialEq)]
pub struct NewPassage {
    pub text: String,
    pub embedding: Option<Vec<f32>>,
}

/// What adding a document came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KbInsert {
    Inserted,
    /// The tenant already holds `used` of its `limit` documents.
    TooManyDocuments {
        used: u64,
        limit: u64,
    },
    /// The tenant's documents hold `used` characters; this one's would pass `limit`.
    TooManyChars {
        used: u64,
        limit: u64,
    },
}

/// The tenant's knowledge base in numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KbUsage {
    pub documents: u64,
    pub chars: u64,
}

/// A passage found by a search.
#[derive(Debug, Clone, PartialEq)]
pub struct KbMatch {
    pub document_id: DocumentId,
    pub title: String,
    pub position: u32,
    pub text: String,
    pub embedding: Option<Vec<f32>>,
    /// Higher is better; comparable within one search only.
    pub score: f64,
}

const COLUMNS: &str =
    "id, workspace_id, livemode, brand_id, title, kind, source_url, chars, passages, created_at";

/// Rows per multi-row passage insert (4 values each, well under both backends' bind limits).
const INSERT_CHUNK: usize = 200;

fn u64_of(r: &AnyRow, col: &str) -> Result<u64> {
    u64::try_from(r.try_get::<i64, _>(col)?).map_err(|_| corrupt(format!("kb_documents.{col}")))
}

fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn document_from_row(r: &AnyRow) -> Result<KbDocument> {
    let kind: String = r.try_get("kind")?;
    Ok(KbDocument {
        id: DocumentId::from_trusted(r.try_get("id")?),
        workspace_id: WorkspaceId::from_trusted(r.try_get("workspace_id")?),
        livemode: r.try_get::<i64, _>("livemode")? != 0,
        brand_id: r
            .try_get::<Option<String>, _>("brand_id")?
            .map(BrandId::from_trusted),
        title: r.try_get("title")?,
        kind: KbKind::parse(&kind).ok_or_else(|| corrupt("kb_documents.kind"))?,
        source_url: r.try_get("source_url")?,
        chars: u64_of(r, "chars")?,
        passages: u64_of(r, "passages")?,
        created_at: r.try_get("created_at")?,
    })
}

/// A vector as little-endian f32 bytes.
pub fn vector_to_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Little-endian f32 bytes as a vector (`None` when the length is not a multiple of 4).
pub fn vector_from_bytes(b: &[u8]) -> Option<Vec<f32>> {
    if !b.len().is_multiple_of(4) {
        return None;
    }
    Some(
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

fn match_from_row(r: &AnyRow) -> Result<KbMatch> {
    Ok(KbMatch {
        document_id: DocumentId::from_trusted(r.try_get("document_id")?),
        title: r.try_get("title")?,
        position: u32::try_from(r.try_get::<i64, _>("position")?)
            .map_err(|_| corrupt("kb_passages.position"))?,
        text: r.try_get("text")?,
        embedding: r
            .try_get::<Option<Vec<u8>>, _>("embedding")?
            .and_then(|b| vector_from_bytes(&b)),
        score: r.try_get::<f64, _>("score")?,
    })
}

/// The FTS5 query for `terms`: each quoted (a `"` inside doubled), joined by `OR`.
pub fn fts5_query(terms: &[String]) -> String {
    terms
        .iter()
        .map(|t| format!("\"{}\"", t.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(" OR ")
}

/// The `to_tsquery` text for `terms`: the OR of each. Terms must be letters and digits only
/// (the caller's tokenizer guarantees it), so none carries tsquery syntax.
fn tsquery_or(terms: &[String]) -> String {
    terms.join(" | ")
}

/// Which documents a list shows.
#[derive(Debug, Clone, Copy)]
pub enum KbFilter<'a> {
    /// Every document of the tenant.
    All,
    /// One brand's.
    Brand(&'a BrandId),
    /// Those of no brand: the whole workspace's knowledge.
    WorkspaceWide,
}

impl Store {
    /// Stores a document and its passages unless the tenant's documents (`max_documents`) or
    /// characters (`max_chars`) would pass the plan's bounds (`None`: no bound), in one
    /// transaction with the check.
    pub async fn insert_kb_document(
        &self,
        doc: &KbDocument,
        passages: &[NewPassage],
        max_documents: Option<u64>,
        max_chars: Option<u64>,
    ) -> Result<KbInsert> {
        let mut tx = self.begin().await?;
        if self.backend == Backend::Postgres {
            // Serialises adds (and their counts) per workspace.
            sqlx::query("SELECT id FROM workspaces WHERE id = $1 FOR UPDATE")
                .bind(doc.workspace_id.as_str())
                .fetch_optional(&mut *tx)
                .await?;
        }
        if max_documents.is_some() || max_chars.is_some() {
            let usage = usage_in(&mut tx, &doc.workspace_id, doc.livemode).await?;
            if let Some(limit) = max_documents
                && usage.documents >= limit
            {
                return Ok(KbInsert::TooManyDocuments {
                    used: usage.documents,
                    limit,
                });
            }
            if let Some(limit) = max_chars
                && usage.chars.saturating_add(doc.chars) > limit
            {
                return Ok(KbInsert::TooManyChars {
                    used: usage.chars,
                    limit,
                });
            }
        }
        sqlx::query(
            "INSERT INTO kb_documents (id, workspace_id, livemode, brand_id, title, kind,
                source_url, chars, passages, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(doc.id.as_str())
        .bind(doc.workspace_id.as_str())
        .bind(i64::from(doc.livemode))
        .bind(doc.brand_id.as_ref().map(|b| b.as_str().to_owned()))
        .bind(&doc.title)
        .bind(doc.kind.as_str())
        .bind(doc.source_url.as_deref())
        .bind(i64_of(doc.chars))
        .bind(i64_of(doc.passages))
        .bind(doc.created_at)
        .execute(&mut *tx)
        .await?;
        for (chunk_no, chunk) in passages.chunks(INSERT_CHUNK).enumerate() {
            let values: Vec<String> = (0..chunk.len())
                .map(|i| {
                    let b = i * 4;
                    format!("(${}, ${}, ${}, ${})", b + 1, b + 2, b + 3, b + 4)
                })
                .collect();
            let sql = format!(
                "INSERT INTO kb_passages (document_id, position, text, embedding) VALUES {}",
                values.join(", ")
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (i, p) in chunk.iter().enumerate() {
                let position = (chunk_no * INSERT_CHUNK + i) as i64;
                q = q
                    .bind(doc.id.as_str())
                    .bind(position)
                    .bind(&p.text)
                    .bind(p.embedding.as_deref().map(vector_to_bytes));
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(KbInsert::Inserted)
    }

    /// The tenant's documents and characters.
    pub async fn kb_usage(&self, tenant: &Tenant) -> Result<KbUsage> {
        let mut conn = self.read.acquire().await?;
        usage_in(&mut conn, &tenant.workspace, tenant.livemode).await
    }

    /// One document of the tenant's workspace and mode.
    pub async fn get_kb_document(
        &self,
        tenant: &Tenant,
        id: &DocumentId,
    ) -> Result<Option<KbDocument>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM kb_documents
             WHERE workspace_id = $1 AND livemode = $2 AND id = $3"
        )))
        .bind(tenant.workspace.as_str())
        .bind(i64::from(tenant.livemode))
        .bind(id.as_str())
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(document_from_row).transpose()
    }

    /// The passages of one of the tenant's documents, in order (empty when there is no such
    /// document).
    pub async fn kb_document_passages(
        &self,
        tenant: &Tenant,
        id: &DocumentId,
    ) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT p.text FROM kb_passages p JOIN kb_documents d ON d.id = p.document_id
             WHERE d.workspace_id = $1 AND d.livemode = $2 AND d.id = $3
             ORDER BY p.position",
        )
        .bind(tenant.workspace.as_str())
        .bind(i64::from(tenant.livemode))
        .bind(id.as_str())
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| r.try_get::<String, _>(0).map_err(Into::into))
            .collect()
    }

    /// The tenant's documents, newest first; with `brand`, only that brand's.
    pub async fn list_kb_documents(
        &self,
        tenant: &Tenant,
        filter: KbFilter<'_>,
        limit: u32,
        offset: u32,
    ) -> Result<Page<KbDocument>> {
        let (brand_filter, brand) = match filter {
            KbFilter::All => ("", None),
            KbFilter::Brand(b) => ("AND brand_id = $5", Some(b)),
            KbFilter::WorkspaceWide => ("AND brand_id IS NULL", None),
        };
        let mut q = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM kb_documents WHERE workspace_id = $1 AND livemode = $2
             {brand_filter} ORDER BY id DESC LIMIT $3 OFFSET $4"
        )))
        .bind(tenant.workspace.as_str())
        .bind(i64::from(tenant.livemode))
        .bind(i64::from(limit) + 1)
        .bind(i64::from(offset));
        if let Some(b) = brand {
            q = q.bind(b.as_str());
        }
        let rows = q.fetch_all(&self.read).await?;
        let items = rows
            .iter()
            .map(document_from_row)
            .collect::<Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(items, limit))
    }

    /// Deletes one of the tenant's documents with its passages; the document as it was.
    pub async fn delete_kb_document(
        &self,
        tenant: &Tenant,
        id: &DocumentId,
    ) -> Result<Option<KbDocument>> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "DELETE FROM kb_passages WHERE document_id = $3 AND EXISTS (
                SELECT 1 FROM kb_documents d
                WHERE d.id = $3 AND d.workspace_id = $1 AND d.livemode = $2)",
        )
        .bind(tenant.workspace.as_str())
        .bind(i64::from(tenant.livemode))
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM kb_documents WHERE workspace_id = $1 AND livemode = $2 AND id = $3
             RETURNING {COLUMNS}"
        )))
        .bind(tenant.workspace.as_str())
        .bind(i64::from(tenant.livemode))
        .bind(id.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let doc = row.as_ref().map(document_from_row).transpose()?;
        tx.commit().await?;
        Ok(doc)
    }

    /// The tenant's passages holding any of `terms`, best first, at most `limit`. With
    /// `brand`, that brand's documents and the workspace-wide ones; without, the workspace-wide
    /// ones only. `terms` are lower-case letters and digits (see the module's documentation;
    /// any other term is ignored); none: nothing.
    pub async fn search_kb(
        &self,
        tenant: &Tenant,
        brand: Option<&BrandId>,
        terms: &[String],
        limit: u32,
    ) -> Result<Vec<KbMatch>> {
        // Defence in depth: a term that is not plain letters and digits is not searched for.
        let terms: Vec<String> = terms
            .iter()
            .filter(|t| !t.is_empty() && t.chars().all(char::is_alphanumeric))
            .cloned()
            .collect();
        if terms.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let terms = terms.as_slice();
        let brand = brand.map(|b| b.as_str().to_owned());
        let rows = match self.backend {
            Backend::Sqlite => {
                sqlx::query(
                    "SELECT p.document_id, d.title, p.position, p.text, p.embedding,
                            -bm25(kb_passages_fts) AS score
                     FROM kb_passages_fts
                     JOIN kb_passages p ON p.id = kb_passages_fts.rowid
                     JOIN kb_documents d ON d.id = p.document_id
                     WHERE kb_passages_fts MATCH $1
                       AND d.workspace_id = $2 AND d.livemode = $3
                       AND (d.brand_id IS NULL OR d.brand_id = $4)
                     ORDER BY score DESC, p.document_id, p.position
                     LIMIT $5",
                )
                .bind(fts5_query(terms))
                .bind(tenant.workspace.as_str())
                .bind(i64::from(tenant.livemode))
                .bind(brand)
                .bind(i64::from(limit))
                .fetch_all(&self.read)
                .await?
            }
            Backend::Postgres => {
                sqlx::query(
                    "WITH scope AS (
                         SELECT d.id, d.passages FROM kb_documents d
                         WHERE d.workspace_id = $2 AND d.livemode = $3
                           AND (d.brand_id IS NULL OR d.brand_id = $4)
                     ),
                     hits AS (
                         SELECT p.id, p.tsv FROM kb_passages p JOIN scope s ON s.id = p.document_id
                         WHERE p.tsv @@ to_tsquery('english', $1)
                     ),
                     total AS (SELECT COALESCE(SUM(passages), 0)::float8 AS n FROM scope),
                     terms AS (
                         SELECT DISTINCT plainto_tsquery('english', t) AS q
                         FROM regexp_split_to_table($6, ' ') AS t
                     ),
                     idf AS (
                         SELECT terms.q,
                                ln(1 + (total.n - c.df + 0.5) / (c.df + 0.5)) AS w
                         FROM terms CROSS JOIN total
                         CROSS JOIN LATERAL (
                             SELECT COUNT(*)::float8 AS df FROM hits WHERE hits.tsv @@ terms.q
                         ) c
                         WHERE numnode(terms.q) > 0
                     ),
                     scored AS (
                         SELECT hits.id, SUM(idf.w * ts_rank_cd(hits.tsv, idf.q, 1 | 32))::float8
                                AS score
                         FROM hits JOIN idf ON hits.tsv @@ idf.q
                         GROUP BY hits.id
                     )
                     SELECT p.document_id, d.title, p.position, p.text, p.embedding, s.score
                     FROM scored s
                     JOIN kb_passages p ON p.id = s.id
                     JOIN kb_documents d ON d.id = p.document_id
                     ORDER BY s.score DESC, p.document_id, p.position
                     LIMIT $5",
                )
                .bind(tsquery_or(terms))
                .bind(tenant.workspace.as_str())
                .bind(i64::from(tenant.livemode))
                .bind(brand)
                .bind(i64::from(limit))
                .bind(terms.join(" "))
                .fetch_all(&self.read)
                .await?
            }
        };
        rows.iter().map(match_from_row).collect()
    }
}

/// Documents and characters of a workspace's mode, on `conn` (a transaction's, to count what
/// an insert in it will add to).
async fn usage_in(
    conn: &mut sqlx::AnyConnection,
    ws: &WorkspaceId,
    livemode: bool,
) -> Result<KbUsage> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS documents, CAST(COALESCE(SUM(chars), 0) AS BIGINT) AS chars
         FROM kb_documents WHERE workspace_id = $1 AND livemode = $2",
    )
    .bind(ws.as_str())
    .bind(i64::from(livemode))
    .fetch_one(&mut *conn)
    .await?;
    Ok(KbUsage {
        documents: u64::try_from(row.try_get::<i64, _>("documents")?).unwrap_or(0),
        chars: u64::try_from(row.try_get::<i64, _>("chars")?).unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_round_trip_as_little_endian_f32() {
        let v = vec![0.0, 1.5, -2.25, f32::MIN_POSITIVE];
        let b = vector_to_bytes(&v);
        assert_eq!(b.len(), 16);
        assert_eq!(&b[4..8], &1.5f32.to_le_bytes());
        assert_eq!(vector_from_bytes(&b), Some(v));
        assert_eq!(vector_from_bytes(&b[..5]), None);
    }

    #[test]
    fn fts5_terms_are_quoted() {
        assert_eq!(
            fts5_query(&["near".into(), "a\"b".into()]),
            "\"near\" OR \"a\"\"b\""
        );
    }

    #[test]
    fn kinds_round_trip() {
        for k in KbKind::ALL {
            assert_eq!(KbKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(KbKind::parse("pdf"), None);
    }
}

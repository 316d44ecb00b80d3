//! Carousels as storage keeps them: the slides' text (JSON), the look, where they came from,
//! and the media their export made. Every change is conditional on the version it read.

use crier_core::ids::{BrandId, CarouselId, WorkspaceId};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::model::{Page, json_text};
use crate::{Result, Store, json};

/// One slide's text. Its kind (title, content, closing) follows from its place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlideText {
    pub heading: String,
    pub body: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Carousel {
    pub id: CarouselId,
    pub workspace_id: WorkspaceId,
    pub livemode: bool,
    pub brand_id: Option<BrandId>,
    pub title: String,
    /// `light`, `dark` or `bold`.
    pub template: String,
    /// `square` or `portrait`.
    pub size: String,
    /// `text`, `prompt` or `url`.
    pub source_kind: String,
    pub source: String,
    pub call_to_action: String,
    pub slides: Vec<SlideText>,
    /// The slides' PNGs as media, in order, once exported.
    pub media_ids: Vec<String>,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str = "id, workspace_id, livemode, brand_id, title, template, size, source_kind, \
     source, call_to_action, slides, media_ids, version, created_at, updated_at";

fn from_row(row: &AnyRow) -> Result<Carousel> {
    let brand: Option<String> = row.try_get("brand_id")?;
    Ok(Carousel {
        id: CarouselId::from_trusted(row.try_get("id")?),
        workspace_id: WorkspaceId::from_trusted(row.try_get("workspace_id")?),
        livemode: row.try_get::<i64, _>("livemode")? != 0,
        brand_id: brand.map(BrandId::from_trusted),
        title: row.try_get("title")?,
        template: row.try_get("template")?,
        size: row.try_get("size")?,
        source_kind: row.try_get("source_kind")?,
        source: row.try_get("source")?,
        call_to_action: row.try_get("call_to_action")?,
        slides: json_text(row, "slides")?,
        media_ids: json_text(row, "media_ids")?,
        version: row.try_get("version")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl Store {
    pub async fn insert_carousel(&self, c: &Carousel) -> Result<()> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO carousels ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
                $11, $12, $13, $14, $15)"
        )))
        .bind(c.id.as_str())
        .bind(c.workspace_id.as_str())
        .bind(c.livemode as i64)
        .bind(c.brand_id.as_ref().map(BrandId::as_str))
        .bind(&c.title)
        .bind(&c.template)
        .bind(&c.size)
        .bind(&c.source_kind)
        .bind(&c.source)
        .bind(&c.call_to_action)
        .bind(json(&c.slides))
        .bind(json(&c.media_ids))
        .bind(c.version)
        .bind(c.created_at)
        .bind(c.updated_at)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// The carousel `id` of `ws` in mode `livemode`.
    pub async fn get_carousel(
        &self,
        ws: &WorkspaceId,
        livemode: bool,
        id: &CarouselId,
    ) -> Result<Option<Carousel>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM carousels WHERE workspace_id = $1 AND livemode = $2 AND id = $3"
        )))
        .bind(ws.as_str())
        .bind(livemode as i64)
        .bind(id.as_str())
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Carousels of one mode of a workspace, newest first.
    pub async fn list_carousels(
        &self,
        ws: &WorkspaceId,
        livemode: bool,
        limit: u32,
        offset: u32,
    ) -> Result<Page<Carousel>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM carousels WHERE workspace_id = $1 AND livemode = $2
             ORDER BY id DESC LIMIT $3 OFFSET $4"
        )))
        .bind(ws.as_str())
        .bind(livemode as i64)
        .bind(i64::from(limit) + 1)
        .bind(i64::from(offset))
        .fetch_all(&self.read)
        .await?;
        let items = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(items, limit))
    }

    pub async fn count_carousels(&self, ws: &WorkspaceId) -> Result<i64> {
        let row =
            sqlx::query("SELECT CAST(COUNT(*) AS BIGINT) FROM carousels WHERE workspace_id = $1")
                .bind(ws.as_str())
                .fetch_one(&self.read)
                .await?;
        Ok(row.try_get(0)?)
    }

    /// Writes `c` as its new state (its `version` one more than `expected_version`) if the
    /// stored one is still at `expected_version`. `false`: gone or changed meanwhile.
    pub async fn update_carousel(&self, c: &Carousel, expected_version: i64) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE carousels SET brand_id = $4, title = $5, template = $6, size = $7,
                call_to_action = $8, slides = $9, media_ids = $10, version = $11,
                updated_at = $12
             WHERE workspace_id = $1 AND id = $2 AND version = $3",
        )
        .bind(c.workspace_id.as_str())
        .bind(c.id.as_str())
        .bind(expected_version)
        .bind(c.brand_id.as_ref().map(BrandId::as_str))
        .bind(&c.title)
        .bind(&c.template)
        .bind(&c.size)
        .bind(&c.call_to_action)
        .bind(json(&c.slides))
        .bind(json(&c.media_ids))
        .bind(c.version)
        .bind(c.updated_at)
        .execute(&self.write)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    pub async fn delete_carousel(&self, ws: &WorkspaceId, id: &CarouselId) -> Result<bool> {
        let n = sqlx::query("DELETE FROM carousels WHERE workspace_id = $1 AND id = $2")
            .bind(ws.as_str())
            .bind(id.as_str())
            .execute(&self.write)
            .await?
            .rows_affected();
        Ok(n == 1)
    }
}

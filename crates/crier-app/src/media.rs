//! The media rules, for every caller: upload URLs, confirming uploads, reading, alt text,
//! deleting, the storage quota, the purge of uploads that never came, and what posts may name.
//!
//! Decisions kept here:
//! - The declared type must be one crier takes; on confirm the type is sniffed from the bytes
//!   and must equal it (`400`, `param` `content_type`), the length must equal the declared
//!   size (`param` `size`), an image must have readable dimensions and a video a readable
//!   duration. Bytes that fail stay pending (the client may upload again while the URL lives);
//!   the purge removes them an hour after the URL expired.
//! - Quota: live mode counts ready bytes against the plan's `media_storage_bytes` (none: no
//!   limit). Test mode never spends plan quota; it has its own allowance of
//!   [`TEST_MODE_BYTES`] per workspace, so test keys cannot fill the disk either. The upload
//!   URL is refused early when the declared size alone cannot fit; confirm decides, in the
//!   transaction that marks the media ready.
//! - A workspace has at most `max_pending` uploads waiting (`409 conflict` beyond).
//! - Import (`POST /v1/media/import`): crier fetches a URL the caller names through the SSRF
//!   guard ([`crate::fetch`]), at most [`IMPORT_MAX_BYTES`] (or the configured maximum, if
//!   smaller), with at most [`IMPORT_CONCURRENCY`] imports held in memory at once on a node
//!   (later ones wait their turn). The bytes then take exactly the path of an upload: a pending
//!   object of the sniffed type, the same confirm (types, dimensions, quota, `media.ready`).
//!   A fetch that fails or bytes crier does not take are `400` with `param` `url`, and leave
//!   nothing behind.
//! - Publishing reads the bytes again and checks them against the SHA-256 recorded at confirm:
//!   bytes replaced after confirm (a signed PUT URL still alive, or an S3 object overwritten)
//!   are refused as `media_rejected`, never published.

use std::path::PathBuf;
use std::sync::Arc;

use crier_core::ErrorCode;
use crier_core::ids::MediaId;
use crier_media::{Storage, StorageError, UploadTarget, sniff};
use crier_networks::{Attachment, MediaMeta};
use crier_store::{ConfirmOutcome, DeleteOutcome, Media as Stored, MediaFacts, MediaStatus, Page};

use crate::{App, AppError, AppResult, Caller, Tenant};

pub const MAX_FILENAME: usize = 255;
pub const MAX_ALT_TEXT: usize = 1500;
/// Media a post may name.
pub const MAX_POST_MEDIA: usize = 10;
/// What test-mode media of one workspace may hold, in bytes.
pub const TEST_MODE_BYTES: u64 = 1024 * 1024 * 1024;
/// The largest file an import fetches (larger files go through an upload URL).
pub const IMPORT_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// Imports a node holds in memory at once.
pub const IMPORT_CONCURRENCY: usize = 4;
/// Imports one workspace may have under way on a node at once, waiting included: one
/// workspace naming a slow server cannot hold every slot; past it, `429`.
pub const IMPORT_PER_WORKSPACE: usize = 2;
/// How long an import waits for one of the node's slots before it is refused (`429`).
pub const IMPORT_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
/// How long after its upload URL expired a pending upload is purged.
pub const PURGE_GRACE_MS: i64 = 3600 * 1000;
/// Pending uploads purged per batch, and batches per purge run.
const PURGE_BATCH: u32 = 100;
const PURGE_BATCHES: usize = 10;

/// The operator's media settings and where the bytes live.
#[derive(Debug, Clone)]
pub struct MediaSettings {
    pub storage: Storage,
    /// How long an upload URL lives.
    pub upload_ttl_ms: i64,
    /// How long a read URL (`GET /v1/media/{id}`'s `url`) lives.
    pub read_ttl_ms: i64,
    /// The largest media object, in bytes.
    pub max_size: u64,
    /// Uploads a workspace may have waiting for confirmation.
    pub max_pending: i64,
    /// Imports fetching or storing on this node now (see the module's rules).
    imports: Arc<tokio::sync::Semaphore>,
    /// Imports under way on this node by workspace.
    importing: crier_core::tally::Tally<String>,
}

impl MediaSettings {
    /// Counts an import of `workspace`, or refuses it when the workspace has
    /// [`IMPORT_PER_WORKSPACE`] under way on this node.
    fn start_import(&self, workspace: &str) -> AppResult<crier_core::tally::Turn<String>> {
        self.importing
            .take(workspace.to_owned(), IMPORT_PER_WORKSPACE)
            .ok_or_else(|| {
                AppError::new(
                    crier_core::ErrorCode::RateLimited,
                    format!(
                        "This workspace has {IMPORT_PER_WORKSPACE} imports under way; wait for \
                         one to finish, or upload the file through an upload URL."
                    ),
                )
            })
    }
}

pub const DEFAULT_MAX_SIZE: u64 = 512 * 1024 * 1024;
pub const DEFAULT_UPLOAD_TTL_MS: i64 = 15 * 60 * 1000;
pub const DEFAULT_READ_TTL_MS: i64 = 15 * 60 * 1000;
pub const DEFAULT_MAX_PENDING: i64 = 100;

impl MediaSettings {
    /// The defaults over `storage`.
    pub fn new(storage: Storage) -> Self {
        Self {
            storage,
            upload_ttl_ms: DEFAULT_UPLOAD_TTL_MS,
            read_ttl_ms: DEFAULT_READ_TTL_MS,
            max_size: DEFAULT_MAX_SIZE,
            max_pending: DEFAULT_MAX_PENDING,
            imports: Arc::new(tokio::sync::Semaphore::new(IMPORT_CONCURRENCY)),
            importing: Default::default(),
        }
    }

    /// A local store in a fresh folder under the system's temporary directory with a random
    /// secret, served at `http://localhost`: what an [`App`] has until it is given the
    /// operator's settings (the folder is made only when something is uploaded, and removed
    /// when the last clone of the store is dropped).
    pub fn ephemeral() -> Self {
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw).expect("the OS random source");
        let mut name = [0u8; 8];
        getrandom::fill(&mut name).expect("the OS random source");
        let dir: PathBuf = std::env::temp_dir().join(format!(
            "crier-media-{}-{}",
            std::process::id(),
            name.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ));
        let local =
            crier_media::local::LocalStore::temporary(&dir, "http://localhost", raw.to_vec())
                .expect("a 32-byte secret");
        Self::new(Storage::Local(Arc::new(local)))
    }
}

/// A request for an upload URL.
#[derive(Debug, Clone, Default)]
pub struct NewUpload {
    pub filename: String,
    pub content_type: String,
    pub size: u64,
    pub alt_text: Option<String>,
}

/// A file to fetch from a URL into the media library.
#[derive(Debug, Clone, Default)]
pub struct NewImport {
    pub url: String,
    /// Default: the last segment of the URL's path, or `import` and the type's extension.
    pub filename: Option<String>,
    pub alt_text: Option<String>,
}

/// The media rules over one [`App`].
pub struct Media<'a> {
    pub(crate) app: &'a App,
}

/// The shape of the media a post names (no storage): at most [`MAX_POST_MEDIA`] well-formed
/// ids, none twice (`param` `media_ids[i]`). Whether each is a ready media object is
/// [`Media::ready_meta`]'s question.
pub fn check_post_media(ids: &[String]) -> AppResult<Vec<MediaId>> {
    if ids.len() > MAX_POST_MEDIA {
        return Err(AppError::invalid(
            "media_ids",
            format!("`media_ids` may name at most {MAX_POST_MEDIA} media."),
        ));
    }
    ids.iter()
        .enumerate()
        .map(|(i, id)| {
            let param = format!("media_ids[{i}]");
            if ids[..i].contains(id) {
                return Err(AppError::invalid(
                    param,
                    format!("Media '{id}' is named twice."),
                ));
            }
            MediaId::parse(id)
                .ok_or_else(|| AppError::invalid(param, format!("No such media: '{id}'.")))
        })
        .collect()
}

fn check_alt_text(alt: &str) -> AppResult<()> {
    if alt.chars().count() > MAX_ALT_TEXT {
        return Err(AppError::invalid(
            "alt_text",
            format!("`alt_text` must be at most {MAX_ALT_TEXT} characters."),
        ));
    }
    Ok(())
}

fn check_filename(name: &str) -> AppResult<()> {
    if name.trim().is_empty()
        || name.chars().count() > MAX_FILENAME
        || name
            .chars()
            .any(|ch| ch.is_control() || ch == '/' || ch == '\\')
    {
        return Err(AppError::invalid(
            "filename",
            format!(
                "`filename` must be 1 to {MAX_FILENAME} characters, without control \
                 characters or path separators."
            ),
        ));
    }
    Ok(())
}

/// An imported file's name: the URL path's last segment when it is a usable name, else
/// `import` with the type's extension.
fn import_filename(url: &reqwest::Url, content_type: &str) -> String {
    let last = url
        .path_segments()
        .and_then(|mut s| s.next_back())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .unwrap_or_default();
    if check_filename(&last).is_ok() && last.contains('.') {
        return last;
    }
    let ext = content_type.rsplit('/').next().unwrap_or("bin");
    let ext = match ext {
        "jpeg" => "jpg",
        "quicktime" => "mov",
        e => e,
    };
    format!("import.{ext}")
}

fn storage_error(e: StorageError) -> AppError {
    tracing::warn!(error = %e, "media storage failed");
    AppError::new(
        ErrorCode::UpstreamUnavailable,
        "Media storage is unavailable; try again shortly.",
    )
}

fn accepted_list() -> String {
    sniff::IMAGE_TYPES
        .iter()
        .chain(sniff::VIDEO_TYPES.iter())
        .copied()
        .collect::<Vec<_>>()
        .join(", ")
}

impl Media<'_> {
    fn settings(&self) -> &MediaSettings {
        self.app.media_settings()
    }

    pub fn storage(&self) -> &Storage {
        &self.settings().storage
    }

    fn now(&self) -> i64 {
        self.app.clock().now_ms()
    }

    /// The tenant's byte allowance (`None`: no limit).
    fn limit(c: &Caller) -> Option<u64> {
        if c.livemode() {
            c.plan.media_storage_bytes
        } else {
            Some(TEST_MODE_BYTES)
        }
    }

    fn quota_error(used: u64, size: u64, limit: u64) -> AppError {
        AppError::new(
            ErrorCode::QuotaExceeded,
            format!(
                "This media ({size} bytes) does not fit the workspace's media storage: \
                 {used} of {limit} bytes are used."
            ),
        )
    }

    /// A pending media object and where to send its bytes.
    pub async fn create_upload(
        &self,
        c: &Caller,
        req: NewUpload,
    ) -> AppResult<(Stored, UploadTarget)> {
        check_filename(&req.filename)?;
        if !sniff::accepted(&req.content_type) {
            return Err(AppError::invalid(
                "content_type",
                format!("`content_type` must be one of {}.", accepted_list()),
            ));
        }
        let max = self.settings().max_size;
        if req.size == 0 || req.size > max {
            return Err(AppError::invalid(
                "size",
                format!("`size` must be from 1 to {max} bytes."),
            ));
        }
        if let Some(alt) = &req.alt_text {
            check_alt_text(alt)?;
        }
        if let Some(limit) = Self::limit(c) {
            let used = self.app.store().ready_media_bytes(&c.tenant).await?;
            if used.saturating_add(req.size) > limit {
                return Err(Self::quota_error(used, req.size, limit));
            }
        }
        let now = self.now();
        let id = MediaId::generate();
        let media = Stored {
            storage_key: id.to_string(),
            id,
            workspace_id: c.workspace().clone(),
            livemode: c.livemode(),
            status: MediaStatus::Pending,
            filename: req.filename,
            declared_type: req.content_type,
            content_type: None,
            size: req.size,
            sha256: None,
            width: None,
            height: None,
            duration_ms: None,
            alt_text: req.alt_text.filter(|a| !a.is_empty()),
            upload_expires_at: now + self.settings().upload_ttl_ms,
            created_at: now,
            ready_at: None,
        };
        if !self
            .app
            .store()
            .insert_media(&media, self.settings().max_pending)
            .await?
        {
            return Err(AppError::conflict(format!(
                "This workspace already has {} uploads waiting for confirmation; confirm them \
                 or let them expire.",
                self.settings().max_pending
            )));
        }
        let target = self.storage().upload_target(
            &media.storage_key,
            &media.declared_type,
            media.size,
            now,
            media.upload_expires_at,
        );
        Ok((media, target))
    }

    /// Fetches `req.url` and stores it as a ready media object (see the module's rules).
    pub async fn import(&self, c: &Caller, req: NewImport) -> AppResult<Stored> {
        if let Some(alt) = &req.alt_text {
            check_alt_text(alt)?;
        }
        if let Some(name) = &req.filename {
            check_filename(name)?;
        }
        let cap = self.settings().max_size.min(IMPORT_MAX_BYTES);
        let _mine = self.settings().start_import(c.workspace().as_str())?;
        let _turn = match tokio::time::timeout(IMPORT_WAIT, self.settings().imports.acquire()).await
        {
            Ok(turn) => turn.map_err(|_| AppError::internal("the import semaphore closed"))?,
            Err(_) => {
                return Err(AppError::new(
                    crier_core::ErrorCode::RateLimited,
                    "This server is busy importing other files; try again in a minute, or \
                     upload the file through an upload URL.",
                ));
            }
        };
        let accept = accepted_list();
        let fetched = crate::fetch::get(
            self.app.fetch_settings(),
            &req.url,
            &accept,
            cap as usize,
            "file",
            |_| Ok(()),
        )
        .await?;
        let head = &fetched.body[..fetched.body.len().min(sniff::HEAD_BYTES as usize)];
        let Some(content_type) = sniff::content_type(head) else {
            return Err(AppError::invalid(
                "url",
                format!(
                    "The file at `url` is not a type crier accepts ({}).",
                    accepted_list()
                ),
            ));
        };
        let filename = match req.filename {
            Some(name) => name,
            None => import_filename(&fetched.final_url, content_type),
        };
        let confirmed = self
            .store_bytes(
                c,
                filename,
                content_type,
                bytes::Bytes::from(fetched.body),
                req.alt_text,
            )
            .await;
        confirmed.map_err(|e| match e.param.as_deref() {
            // What confirm says of the bytes is about the URL the caller gave.
            Some("content_type") | Some("size") => AppError::invalid("url", e.message),
            _ => e,
        })
    }

    /// Bytes the server made or fetched itself, stored as a new media object of the caller
    /// and confirmed (the same checks as an upload's: the plan's storage, the type sniffed from
    /// the bytes). Nothing half-stored stays behind when a step fails.
    pub async fn store_bytes(
        &self,
        c: &Caller,
        filename: String,
        content_type: &str,
        body: bytes::Bytes,
        alt_text: Option<String>,
    ) -> AppResult<Stored> {
        let (media, _) = self
            .create_upload(
                c,
                NewUpload {
                    filename,
                    content_type: content_type.to_owned(),
                    size: body.len() as u64,
                    alt_text,
                },
            )
            .await?;
        let stored = self
            .storage()
            .put(&media.storage_key, content_type, body)
            .await
            .map_err(storage_error);
        let confirmed = match stored {
            Ok(()) => self.confirm(c, media.id.as_str()).await,
            Err(e) => Err(e),
        };
        if confirmed.is_err() {
            if let Err(e) = self.app.store().delete_media(&c.tenant, &media.id).await {
                tracing::warn!(media = %media.id, error = %e, "could not remove a failed store");
            }
            if let Err(e) = self.storage().delete(&media.storage_key).await {
                tracing::warn!(media = %media.id, error = %e, "could not remove a failed store's bytes");
            }
        }
        confirmed
    }

    async fn visible(&self, tenant: &Tenant, id: &str) -> AppResult<Stored> {
        let not_found = || AppError::not_found("media", id);
        let mid = MediaId::parse(id).ok_or_else(not_found)?;
        self.app
            .store()
            .get_media_in(tenant, &mid)
            .await?
            .ok_or_else(not_found)
    }

    /// Confirms a finished upload (see the module's rules). Confirming a ready object again
    /// answers it as it is.
    pub async fn confirm(&self, c: &Caller, id: &str) -> AppResult<Stored> {
        let media = self.visible(&c.tenant, id).await?;
        if media.status == MediaStatus::Ready {
            return Ok(media);
        }
        let storage = self.storage();
        let size_mismatch = |got: u64| {
            AppError::invalid(
                "size",
                format!(
                    "The upload is {got} bytes but `size` declared {} bytes; upload the whole \
                     file again.",
                    media.size
                ),
            )
        };
        let got = storage
            .size(&media.storage_key)
            .await
            .map_err(storage_error)?;
        // Nothing to read yet is the media's state, not a bad request.
        let Some(got) = got else {
            return Err(AppError::conflict(
                "No bytes were uploaded for this media yet; PUT them to the upload URL first.",
            ));
        };
        if got != media.size {
            return Err(size_mismatch(got));
        }
        let found = match storage.inspect(&media.storage_key, media.size).await {
            Ok(f) => f,
            Err(StorageError::TooLarge(_)) => return Err(size_mismatch(media.size + 1)),
            Err(StorageError::Missing) => {
                return Err(AppError::conflict(
                    "No bytes were uploaded for this media yet; PUT them to the upload URL first.",
                ));
            }
            Err(e) => return Err(storage_error(e)),
        };
        if found.size != media.size {
            return Err(size_mismatch(found.size));
        }
        let Some(sniffed) = found.content_type else {
            return Err(AppError::invalid(
                "content_type",
                format!(
                    "The bytes are not a type crier accepts ({}).",
                    accepted_list()
                ),
            ));
        };
        if sniffed != media.declared_type {
            return Err(AppError::invalid(
                "content_type",
                format!(
                    "The bytes are {sniffed}, not {} as declared.",
                    media.declared_type
                ),
            ));
        }
        if sniff::is_video(sniffed) {
            if found.duration_ms.is_none() {
                return Err(AppError::invalid(
                    "content_type",
                    format!("The {sniffed} video's duration cannot be read."),
                ));
            }
        } else if found.width.is_none() || found.height.is_none() {
            return Err(AppError::invalid(
                "content_type",
                format!("The {sniffed} image's dimensions cannot be read."),
            ));
        }
        let facts = MediaFacts {
            content_type: sniffed.to_owned(),
            size: found.size,
            sha256: found.sha256,
            width: found.width,
            height: found.height,
            duration_ms: found.duration_ms,
        };
        let mid = media.id.clone();
        match self
            .app
            .store()
            .confirm_media(&c.tenant, &mid, &facts, Self::limit(c), self.now())
            .await?
        {
            ConfirmOutcome::Ready(m) => Ok(*m),
            ConfirmOutcome::QuotaExceeded { used, limit } => {
                Err(Self::quota_error(used, facts.size, limit))
            }
            // Confirmed by a racing call, or deleted meanwhile.
            ConfirmOutcome::NotPending => self.visible(&c.tenant, id).await,
        }
    }

    /// One media object, with a read URL when it is ready.
    pub async fn get(&self, tenant: &Tenant, id: &str) -> AppResult<(Stored, Option<String>)> {
        let media = self.visible(tenant, id).await?;
        let url = (media.status == MediaStatus::Ready).then(|| {
            let now = self.now();
            self.storage()
                .read_url(&media.storage_key, now, now + self.settings().read_ttl_ms)
        });
        Ok((media, url))
    }

    pub async fn list(&self, tenant: &Tenant, limit: u32, offset: u32) -> AppResult<Page<Stored>> {
        Ok(self.app.store().list_media(tenant, limit, offset).await?)
    }

    /// Sets the alt text (`None` or empty clears it).
    ///
    /// Media belongs to no account, so a key limited to brands or accounts may upload and read
    /// it but not change or delete it: another brand's post may carry it.
    pub async fn set_alt_text(
        &self,
        c: &Caller,
        id: &str,
        alt_text: Option<String>,
    ) -> AppResult<Stored> {
        c.require_unrestricted("change media other brands' posts may use")?;
        let tenant = &c.tenant;
        if let Some(a) = &alt_text {
            check_alt_text(a)?;
        }
        let media = self.visible(tenant, id).await?;
        self.app
            .store()
            .set_media_alt_text(
                tenant,
                &media.id,
                alt_text.as_deref().filter(|a| !a.is_empty()),
            )
            .await?
            .ok_or_else(|| AppError::not_found("media", id))
    }

    /// Deletes a media object and its bytes (`409 conflict` while a scheduled, pending-approval
    /// or publishing post names it).
    pub async fn delete(&self, c: &Caller, id: &str) -> AppResult<Stored> {
        c.require_unrestricted("delete media other brands' posts may use")?;
        let tenant = &c.tenant;
        let media = self.visible(tenant, id).await?;
        match self.app.store().delete_media(tenant, &media.id).await? {
            DeleteOutcome::Deleted(m) => {
                if let Err(e) = self.storage().delete(&m.storage_key).await {
                    // The row is gone, so nothing can read these bytes any more.
                    tracing::warn!(media = %m.id, error = %e, "could not delete media bytes");
                }
                Ok(*m)
            }
            DeleteOutcome::InUse => Err(AppError::conflict(format!(
                "Media '{id}' is used by a post that is scheduled, waiting for approval or \
                 publishing; cancel or edit that post first."
            ))),
            DeleteOutcome::Missing => Err(AppError::not_found("media", id)),
        }
    }

    /// Deletes pending uploads whose URL expired more than [`PURGE_GRACE_MS`] before `now`,
    /// bytes first (a row left behind is tried again next time); returns how many went.
    pub async fn purge_expired_uploads(&self, now: i64) -> AppResult<usize> {
        let before = now - PURGE_GRACE_MS;
        let mut purged = 0;
        for _ in 0..PURGE_BATCHES {
            let batch = self
                .app
                .store()
                .expired_pending_media(before, PURGE_BATCH)
                .await?;
            let full = batch.len() == PURGE_BATCH as usize;
            let mut progressed = false;
            for m in batch {
                if let Err(e) = self.storage().delete(&m.storage_key).await {
                    tracing::warn!(media = %m.id, error = %e, "could not purge media bytes");
                    continue;
                }
                if self
                    .app
                    .store()
                    .delete_expired_pending_media(&m.id, before)
                    .await?
                {
                    purged += 1;
                    progressed = true;
                }
            }
            if !full || !progressed {
                break;
            }
        }
        Ok(purged)
    }

    /// The rules' view of media a post names: each must be a ready media object of the
    /// tenant's workspace and mode (`400 invalid_request`, `param` `media_ids[i]`, otherwise);
    /// at most [`MAX_POST_MEDIA`], none twice.
    pub async fn ready_meta(&self, tenant: &Tenant, ids: &[String]) -> AppResult<Vec<MediaMeta>> {
        Ok(self
            .ready(tenant, ids)
            .await?
            .into_iter()
            .map(|m| meta(&m))
            .collect())
    }

    async fn ready(&self, tenant: &Tenant, ids: &[String]) -> AppResult<Vec<Stored>> {
        let parsed = check_post_media(ids)?;
        let mut out = Vec::with_capacity(ids.len());
        for (i, (id, mid)) in ids.iter().zip(parsed).enumerate() {
            let param = format!("media_ids[{i}]");
            match self.app.store().get_media_in(tenant, &mid).await? {
                Some(m) if m.status == MediaStatus::Ready => out.push(m),
                Some(_) => {
                    return Err(AppError::invalid(
                        param,
                        format!("Media '{id}' is not ready: confirm its upload first."),
                    ));
                }
                None => {
                    return Err(AppError::invalid(param, format!("No such media: '{id}'.")));
                }
            }
        }
        Ok(out)
    }

    /// The media a post names with their bytes, for publishing: as [`Media::ready_meta`], then
    /// the bytes from storage, checked against the SHA-256 recorded at confirm
    /// (`invalid_request` when a media object or its bytes are gone or changed; other errors
    /// are passing storage failures).
    pub async fn attachments(&self, tenant: &Tenant, ids: &[String]) -> AppResult<Vec<Attachment>> {
        let media = self.ready(tenant, ids).await?;
        let mut out = Vec::with_capacity(media.len());
        for (i, m) in media.iter().enumerate() {
            let param = format!("media_ids[{i}]");
            let bytes = match self.storage().read_all(&m.storage_key, m.size).await {
                Ok(b) => b,
                Err(StorageError::Missing | StorageError::TooLarge(_)) => {
                    return Err(AppError::invalid(
                        param,
                        format!("The bytes of media '{}' are gone or changed.", m.id),
                    ));
                }
                Err(e) => return Err(storage_error(e)),
            };
            let sha = {
                use sha2::Digest as _;
                hex_lower(&sha2::Sha256::digest(&bytes))
            };
            if bytes.len() as u64 != m.size || m.sha256.as_deref() != Some(sha.as_str()) {
                return Err(AppError::invalid(
                    param,
                    format!(
                        "The bytes of media '{}' changed after it was confirmed.",
                        m.id
                    ),
                ));
            }
            // Networks that pull media by URL fetch it while the part is published: a URL that
            // lives as long as read URLs do.
            let now = self.now();
            let url =
                self.storage()
                    .read_url(&m.storage_key, now, now + self.settings().read_ttl_ms);
            out.push(Attachment {
                meta: meta(m),
                bytes,
                url,
            });
        }
        Ok(out)
    }
}

fn hex_lower(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn meta(m: &Stored) -> MediaMeta {
    MediaMeta {
        id: m.id.to_string(),
        content_type: m
            .content_type
            .clone()
            .unwrap_or_else(|| m.declared_type.clone()),
        size: m.size,
        width: m.width,
        height: m.height,
        duration_ms: m.duration_ms,
        alt_text: m.alt_text.clone(),
        filename: m.filename.clone(),
    }
}

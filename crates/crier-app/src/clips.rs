//! The clip rules: short clips cut from an uploaded video at its scene changes, run as jobs in
//! the durable queue, kept as media.
//!
//! A clip job, step by step ([`Clips::run_job`]): read the video (a ready media object of the
//! workspace), measure it (ffprobe), find where scenes change (ffmpeg's scene score above the
//! job's threshold), propose clips ([`propose`]: each starts at a scene change and ends at the
//! change closest to the target length, within half and one and a half times it, or at the
//! target length inside a longer scene), cut each (H.264 + AAC in MP4, cropped to the aspect
//! ratio or letterboxed), keep each as a media object (signed download URLs as for any media),
//! and record the end with the job's deletion. Progress (0–100) is on the job while it runs; a
//! cancelled job stops at its next step and keeps nothing.
//!
//! Bounds: the plan's `clip_max_bytes` and `clip_max_seconds` (and never more than
//! [`HARD_MAX_SECONDS`]), at most [`MAX_OPEN`] jobs queued or running per workspace, every
//! ffmpeg run under a timeout proportional to the video's length.

pub mod ffmpeg;

use std::time::Duration;

use crier_core::ids::{ClipId, MediaId};
use crier_core::{ErrorCode, Scope};
use crier_store::{ClipJob, ClipOutcome, ClipStatus, CutClip, Job, MediaStatus, Page};

use crate::{App, AppError, AppResult, Caller, Tenant};

pub const MIN_TARGET_SECONDS: i64 = 3;
pub const MAX_TARGET_SECONDS: i64 = 180;
pub const DEFAULT_TARGET_SECONDS: i64 = 30;
pub const MAX_CLIPS: i64 = 10;
pub const DEFAULT_CLIPS: i64 = 3;
pub const DEFAULT_THRESHOLD: f64 = 0.4;
pub const MIN_THRESHOLD: f64 = 0.05;
pub const MAX_THRESHOLD: f64 = 0.95;
/// Starts of one job at most.
pub const MAX_ATTEMPTS: i64 = 3;
/// How much of the video is read at a time into the work folder.
const COPY_PIECE: u64 = 8 * 1024 * 1024;
/// Scene changes kept (a video of flashes would have thousands).
pub const MAX_SCENES: usize = 1000;
/// Jobs queued or running per workspace.
pub const MAX_OPEN: i64 = 5;
/// The longest video any plan takes.
pub const HARD_MAX_SECONDS: i64 = 3 * 3600;
pub const ASPECTS: [&str; 3] = ["9:16", "1:1", "16:9"];
pub const FITS: [&str; 2] = ["crop", "letterbox"];

/// A new clip job, as a client asks for it.
#[derive(Debug, Clone, Default)]
pub struct NewClipJob {
    pub media_id: String,
    pub target_seconds: Option<i64>,
    pub aspect: Option<String>,
    pub fit: Option<String>,
    pub max_clips: Option<i64>,
    pub scene_threshold: Option<f64>,
}

/// A clip job with each clip's signed download URL (when its media is still there).
#[derive(Debug, Clone)]
pub struct ShownJob {
    pub job: ClipJob,
    pub urls: Vec<Option<String>>,
}

/// Clips from scene changes (see the module documentation): `(start_ms, end_ms)`, in order,
/// not overlapping, at most `max`.
pub fn propose(scenes: &[i64], duration: i64, target: i64, max: usize) -> Vec<(i64, i64)> {
    let mut cuts: Vec<i64> = scenes
        .iter()
        .copied()
        .filter(|&t| t > 0 && t < duration)
        .collect();
    cuts.push(duration);
    let (shortest, longest) = (target / 2, target + target / 2);
    let mut out = Vec::new();
    let mut start = 0;
    while out.len() < max && duration - start >= shortest.max(1) {
        let ideal = start + target;
        let end = cuts
            .iter()
            .copied()
            .filter(|&c| c - start >= shortest && c - start <= longest)
            .min_by_key(|&c| (c - ideal).abs())
            .unwrap_or_else(|| ideal.min(duration));
        if end - start < shortest.max(1) {
            break;
        }
        out.push((start, end));
        start = end;
    }
    out
}

pub struct Clips<'a> {
    pub(crate) app: &'a App,
}

fn in_range<T: PartialOrd + std::fmt::Display + Copy>(
    param: &'static str,
    v: T,
    min: T,
    max: T,
) -> AppResult<T> {
    if v < min || v > max {
        return Err(AppError::invalid(
            param,
            format!("`{param}` must be from {min} to {max}."),
        ));
    }
    Ok(v)
}

fn one_of(param: &'static str, v: String, allowed: &[&str]) -> AppResult<String> {
    if !allowed.contains(&v.as_str()) {
        return Err(AppError::invalid(
            param,
            format!("`{param}` must be one of {}.", allowed.join(", ")),
        ));
    }
    Ok(v)
}

fn video_error(e: ffmpeg::VideoError) -> (String, String) {
    let code = match e {
        ffmpeg::VideoError::Missing(_) => ErrorCode::UpstreamUnavailable,
        ffmpeg::VideoError::Timeout { .. } => ErrorCode::InternalError,
        ffmpeg::VideoError::Failed { .. } => ErrorCode::InvalidRequest,
    };
    (code.as_str().to_owned(), e.to_string())
}

impl Clips<'_> {
    async fn show(&self, c: &Caller, job: ClipJob) -> AppResult<ShownJob> {
        let mut urls = Vec::with_capacity(job.clips.len());
        for clip in &job.clips {
            let url = match self.app.media().get(&c.tenant, &clip.media_id).await {
                Ok((_, url)) => url,
                Err(e) if e.code == ErrorCode::NotFound => None,
                Err(e) => return Err(e),
            };
            urls.push(url);
        }
        Ok(ShownJob { job, urls })
    }

    async fn visible(&self, c: &Caller, id: &str) -> AppResult<ClipJob> {
        let not_found = || AppError::not_found("clip job", id);
        let parsed = ClipId::parse(id).ok_or_else(not_found)?;
        self.app
            .store()
            .get_clip_job(c.workspace(), c.livemode(), &parsed)
            .await?
            .ok_or_else(not_found)
    }

    pub async fn get(&self, c: &Caller, id: &str) -> AppResult<ShownJob> {
        c.require(Scope::ClipsRead)?;
        let job = self.visible(c, id).await?;
        self.show(c, job).await
    }

    pub async fn list(&self, c: &Caller, limit: u32, offset: u32) -> AppResult<Page<ShownJob>> {
        c.require(Scope::ClipsRead)?;
        let page = self
            .app
            .store()
            .list_clip_jobs(c.workspace(), c.livemode(), limit, offset)
            .await?;
        let mut items = Vec::with_capacity(page.items.len());
        for job in page.items {
            items.push(self.show(c, job).await?);
        }
        Ok(Page {
            items,
            has_more: page.has_more,
        })
    }

    /// Queues a clip job for a ready video of the caller (`clips:write` and `media:write`: it
    /// makes media).
    pub async fn create(&self, c: &Caller, req: NewClipJob) -> AppResult<ShownJob> {
        c.require(Scope::ClipsWrite)?;
        let target = in_range(
            "target_seconds",
            req.target_seconds.unwrap_or(DEFAULT_TARGET_SECONDS),
            MIN_TARGET_SECONDS,
            MAX_TARGET_SECONDS,
        )?;
        let aspect = one_of(
            "aspect",
            req.aspect.unwrap_or_else(|| "9:16".into()),
            &ASPECTS,
        )?;
        let fit = one_of("fit", req.fit.unwrap_or_else(|| "crop".into()), &FITS)?;
        let max_clips = in_range(
            "max_clips",
            req.max_clips.unwrap_or(DEFAULT_CLIPS),
            1,
            MAX_CLIPS,
        )?;
        let threshold = in_range(
            "scene_threshold",
            req.scene_threshold.unwrap_or(DEFAULT_THRESHOLD),
            MIN_THRESHOLD,
            MAX_THRESHOLD,
        )?;
        let unknown =
            || AppError::invalid("media_id", format!("No such media: '{}'.", req.media_id));
        let media_id = MediaId::parse(&req.media_id).ok_or_else(unknown)?;
        let media = self
            .app
            .store()
            .get_media_in(&c.tenant, &media_id)
            .await?
            .ok_or_else(unknown)?;
        let is_video = media
            .content_type
            .as_deref()
            .is_some_and(|t| t.starts_with("video/"));
        if media.status != MediaStatus::Ready || !is_video {
            return Err(AppError::invalid(
                "media_id",
                "`media_id` must name a ready video (upload it and confirm it first).",
            ));
        }
        // The clips become media: a key that cannot write media cannot cut them.
        c.require(Scope::MediaWrite)?;
        let seconds = media.duration_ms.map_or(0, |d| (d as i64 + 999) / 1000);
        let max_seconds = c
            .plan
            .clip_max_seconds
            .map_or(HARD_MAX_SECONDS, |s| (s as i64).min(HARD_MAX_SECONDS));
        if seconds > max_seconds {
            return Err(AppError::new(
                ErrorCode::QuotaExceeded,
                format!(
                    "The video is {seconds} s long; the `{}` plan cuts clips from videos of at \
                     most {max_seconds} s.",
                    c.plan.name
                ),
            ));
        }
        if let Some(max) = c.plan.clip_max_bytes
            && media.size > max
        {
            return Err(AppError::new(
                ErrorCode::QuotaExceeded,
                format!(
                    "The video is {} bytes; the `{}` plan cuts clips from videos of at most {max} \
                     bytes.",
                    media.size, c.plan.name
                ),
            ));
        }
        ffmpeg::available().await.map_err(|e| {
            AppError::new(
                ErrorCode::UpstreamUnavailable,
                format!("Clips cannot be cut: {e}."),
            )
        })?;
        if self.app.store().count_open_clip_jobs(c.workspace()).await? >= MAX_OPEN {
            return Err(AppError::new(
                ErrorCode::Conflict,
                format!(
                    "This workspace already has {MAX_OPEN} clip jobs queued or running; wait for \
                     one to finish or cancel one."
                ),
            ));
        }
        let now = self.app.clock().now_ms();
        let job = ClipJob {
            id: ClipId::generate(),
            workspace_id: c.workspace().clone(),
            livemode: c.livemode(),
            media_id: media.id.to_string(),
            target_ms: target * 1000,
            aspect,
            fit,
            max_clips,
            threshold: (threshold * 1000.0).round() as i64,
            status: ClipStatus::Queued,
            progress: 0,
            attempts: 0,
            duration_ms: None,
            scenes: Vec::new(),
            clips: Vec::new(),
            error: None,
            created_at: now,
            updated_at: now,
            finished_at: None,
        };
        self.app.store().insert_clip_job(&job).await?;
        self.show(c, job).await
    }

    /// Cancels a queued or running job (`409` once it finished).
    pub async fn cancel(&self, c: &Caller, id: &str) -> AppResult<ShownJob> {
        c.require(Scope::ClipsWrite)?;
        let job = self.visible(c, id).await?;
        let now = self.app.clock().now_ms();
        match self
            .app
            .store()
            .cancel_clip_job(c.workspace(), c.livemode(), &job.id, now)
            .await?
        {
            None => Err(AppError::not_found("clip job", id)),
            Some(false) => Err(AppError::new(
                ErrorCode::Conflict,
                format!("The clip job already ended ({}).", job.status.as_str()),
            )),
            Some(true) => {
                let job = self.visible(c, id).await?;
                self.show(c, job).await
            }
        }
    }

    /// Runs the clip job a claimed queue job names (see the module documentation). `None`:
    /// nothing recorded (gone, finished, cancelled or overtaken).
    pub async fn run_job(&self, queued: &Job, id: &ClipId) -> AppResult<Option<ClipJob>> {
        let store = self.app.store();
        let Some(job) = store.start_clip_job(id, self.app.clock().now_ms()).await? else {
            store.drop_job(&queued.id).await?;
            return Ok(None);
        };
        if job.attempts > MAX_ATTEMPTS {
            // Lost again and again (the video may be what kills the worker): not tried again.
            let outcome = ClipOutcome {
                status: ClipStatus::Failed,
                duration_ms: None,
                scenes: Vec::new(),
                clips: Vec::new(),
                error: Some((
                    ErrorCode::InternalError.as_str().to_owned(),
                    format!("The job was started {MAX_ATTEMPTS} times and never finished."),
                )),
            };
            let now = self.app.clock().now_ms();
            store
                .finish_clip_job(&queued.id, &job.id, job.attempts, &outcome, now)
                .await?;
            return Ok(store.clip_job(&job.id).await?);
        }
        let dir = tempfile::tempdir().map_err(|e| AppError::internal(e.to_string()))?;
        let mut made: Vec<CutClip> = Vec::new();
        let outcome = match self.work(&job, dir.path(), &mut made).await {
            Ok(Some(o)) => o,
            // Cancelled or overtaken: whatever it made goes.
            Ok(None) => {
                self.discard(&job, &made).await;
                return Ok(None);
            }
            Err(e) => {
                self.discard(&job, &made).await;
                return Err(e);
            }
        };
        let now = self.app.clock().now_ms();
        if store
            .finish_clip_job(&queued.id, &job.id, job.attempts, &outcome, now)
            .await?
        {
            Ok(store.clip_job(&job.id).await?)
        } else {
            self.discard(&job, &outcome.clips).await;
            Ok(None)
        }
    }

    async fn discard(&self, job: &ClipJob, clips: &[CutClip]) {
        let tenant = Tenant {
            workspace: job.workspace_id.clone(),
            livemode: job.livemode,
        };
        for clip in clips {
            let Some(id) = MediaId::parse(&clip.media_id) else {
                continue;
            };
            if let Err(e) = self.app.store().delete_media(&tenant, &id).await {
                tracing::warn!(media = %id, error = %e, "could not remove a clip of a cancelled job");
            }
            if let Err(e) = self.app.media().storage().delete(id.as_str()).await {
                tracing::warn!(media = %id, error = %e, "could not remove a clip's bytes");
            }
        }
    }

    /// Progress of this start; `false`: cancelled or taken over, stop.
    async fn step(&self, job: &ClipJob, progress: i64) -> AppResult<bool> {
        Ok(self
            .app
            .store()
            .clip_job_progress(&job.id, job.attempts, progress, self.app.clock().now_ms())
            .await?)
    }

    /// The job's work; `Ok(None)` when it was cancelled or taken over on the way. A failure
    /// of the video or of ffmpeg is a failed outcome; storage failing is an error (the job
    /// comes back after its lease).
    async fn work(
        &self,
        job: &ClipJob,
        dir: &std::path::Path,
        made: &mut Vec<CutClip>,
    ) -> AppResult<Option<ClipOutcome>> {
        let failed = |(code, message): (String, String)| {
            Ok(Some(ClipOutcome {
                status: ClipStatus::Failed,
                duration_ms: None,
                scenes: Vec::new(),
                clips: Vec::new(),
                error: Some((code, message)),
            }))
        };
        let tenant = Tenant {
            workspace: job.workspace_id.clone(),
            livemode: job.livemode,
        };
        let store = self.app.store();
        let media = match MediaId::parse(&job.media_id) {
            Some(id) => store.get_media_in(&tenant, &id).await?,
            None => None,
        };
        let Some(media) = media.filter(|m| m.status == MediaStatus::Ready) else {
            return failed((
                ErrorCode::InvalidRequest.as_str().into(),
                "The video was deleted before its clips were cut.".into(),
            ));
        };
        let Some(ws) = store.get_workspace(&job.workspace_id).await? else {
            return Ok(None);
        };
        let Some(plan) = self.app.plan(&ws.plan) else {
            return failed((
                ErrorCode::InternalError.as_str().into(),
                format!("The workspace's plan `{}` is not configured.", ws.plan),
            ));
        };
        // Copied to the temp dir in pieces: a video is never all in memory.
        let input = dir.join("input");
        let mut file = tokio::fs::File::create(&input)
            .await
            .map_err(|e| AppError::internal(format!("writing the video: {e}")))?;
        let media_rules = self.app.media();
        let storage = media_rules.storage();
        let mut offset = 0u64;
        while offset < media.size {
            let piece = storage
                .read_range(
                    &media.storage_key,
                    offset,
                    COPY_PIECE.min(media.size - offset),
                )
                .await
                .map_err(|e| AppError::internal(format!("reading the video: {e}")))?;
            if piece.is_empty() {
                break;
            }
            tokio::io::AsyncWriteExt::write_all(&mut file, &piece)
                .await
                .map_err(|e| AppError::internal(format!("writing the video: {e}")))?;
            offset += piece.len() as u64;
        }
        drop(file);
        if !self.step(job, 5).await? {
            return Ok(None);
        }
        let content_type = media.content_type.as_deref().unwrap_or("");
        let Some(input) = ffmpeg::Input::new(&input, content_type) else {
            return failed((
                ErrorCode::InvalidRequest.as_str().into(),
                format!("Clips are cut from MP4, QuickTime or WebM videos, not {content_type}."),
            ));
        };
        let probe = match ffmpeg::probe(input, Duration::from_secs(60)).await {
            Ok(p) => p,
            Err(e) => return failed(video_error(e)),
        };
        // The length as ffmpeg reads it, checked again: the one measured at upload comes from
        // the file's header, which a file may state differently.
        let max_ms = 1000
            * plan
                .clip_max_seconds
                .map_or(HARD_MAX_SECONDS, |s| (s as i64).min(HARD_MAX_SECONDS));
        if probe.duration_ms > max_ms {
            return failed((
                ErrorCode::QuotaExceeded.as_str().into(),
                format!(
                    "The video is {} s long; this plan cuts clips from videos of at most {} s.",
                    probe.duration_ms / 1000,
                    max_ms / 1000
                ),
            ));
        }
        // As long as the video takes to play, twice, and at least a minute.
        let budget = Duration::from_millis((probe.duration_ms as u64 * 2).max(60_000));
        let mut scenes = match ffmpeg::scenes(input, job.threshold as f64 / 1000.0, budget).await {
            Ok(s) => s,
            Err(e) => return failed(video_error(e)),
        };
        scenes.truncate(MAX_SCENES);
        if !self.step(job, 40).await? {
            return Ok(None);
        }
        let plan_clips = propose(
            &scenes,
            probe.duration_ms,
            job.target_ms,
            job.max_clips as usize,
        );
        let caller = Caller::system(
            tenant.clone(),
            plan,
            [Scope::MediaWrite].into_iter().collect(),
            job.id.to_string(),
        );
        let n = plan_clips.len().max(1) as i64;
        for (i, (start, end)) in plan_clips.iter().copied().enumerate() {
            let out = dir.join(format!("clip-{}.mp4", i + 1));
            let timeout = Duration::from_millis(((end - start) as u64 * 20).max(60_000));
            if let Err(e) = ffmpeg::cut(
                input,
                &out,
                start,
                end - start,
                &job.aspect,
                &job.fit,
                timeout,
            )
            .await
            {
                return failed(video_error(e));
            }
            let bytes = tokio::fs::read(&out)
                .await
                .map_err(|e| AppError::internal(format!("reading a clip: {e}")))?;
            let stored = match self
                .app
                .media()
                .store_bytes(
                    &caller,
                    format!("{}-{}.mp4", job.id, i + 1),
                    "video/mp4",
                    bytes::Bytes::from(bytes),
                    None,
                )
                .await
            {
                Ok(s) => s,
                Err(e) if e.code == ErrorCode::InternalError => return Err(e),
                Err(e) => return failed((e.code.as_str().to_owned(), e.message.into_owned())),
            };
            made.push(CutClip {
                start_ms: start,
                end_ms: end,
                media_id: stored.id.to_string(),
            });
            if !self.step(job, 40 + 55 * (i as i64 + 1) / n).await? {
                return Ok(None);
            }
        }
        Ok(Some(ClipOutcome {
            status: ClipStatus::Completed,
            duration_ms: Some(probe.duration_ms),
            scenes,
            clips: std::mem::take(made),
            error: None,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clips_start_at_scene_changes_and_keep_near_the_target() {
        // Cuts at 3 s and 6 s of a 9 s video, 3 s wanted: the three scenes.
        assert_eq!(
            propose(&[3000, 6000], 9000, 3000, 10),
            [(0, 3000), (3000, 6000), (6000, 9000)]
        );
        // 6 s wanted: the change closest to 6 s within 3 to 9 s; the 3 s left is half the
        // target, still a clip.
        assert_eq!(
            propose(&[3000, 6000], 9000, 6000, 10),
            [(0, 6000), (6000, 9000)]
        );
        assert_eq!(propose(&[3000, 6000], 8000, 6000, 10), [(0, 6000)]);
        // No changes in a long scene: target-length pieces; the video's end counts as a cut
        // (the last piece is 4 s), and a rest shorter than half the target is left.
        assert_eq!(
            propose(&[], 10_000, 3000, 10),
            [(0, 3000), (3000, 6000), (6000, 10_000)]
        );
        assert_eq!(
            propose(&[], 20_000, 3000, 10).last(),
            Some(&(18_000, 20_000))
        );
        assert_eq!(propose(&[], 7_000, 3000, 10), [(0, 3000), (3000, 7000)]);
        // At most `max`.
        assert_eq!(propose(&[3000, 6000], 9000, 3000, 2).len(), 2);
        // Changes outside the video are ignored.
        assert_eq!(propose(&[0, 9000, 12_000], 9000, 9000, 3), [(0, 9000)]);
        // Every clip within half and one and a half times the target.
        let scenes: Vec<i64> = (1..60).map(|i| i * 1700).collect();
        for (s, e) in propose(&scenes, 100_000, 5000, 10) {
            assert!((2500..=7500).contains(&(e - s)), "{s}..{e}");
        }
        assert!(propose(&[], 0, 3000, 3).is_empty());
    }
}

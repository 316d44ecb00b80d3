//! Clip jobs over HTTP and through their worker, on both backends, with Debian's ffmpeg: a
//! video made with ffmpeg's `testsrc`, `smptebars` and `color` sources with cuts at 3 s and 6 s
//! yields those scene changes within two frames, and clips of the asked length and aspect ratio
//! (measured with ffprobe), cropped or letterboxed, kept as media with signed URLs; progress,
//! cancellation (nothing kept), a lost worker, the plan's limits, bad input (status, code,
//! `param`, nothing stored), other workspaces and test mode.
//!
//! ffmpeg comes from `scripts/peers/tools.sh` (CI); a laptop without it skips these tests, and
//! with `CI=true` its absence fails them.
mod common;

use std::path::Path;
use std::process::Command;

use common::media::{local_app, ready};
use common::{Response, TestApp, both};
use crier_core::Scope;
use crier_core::ids::ClipId;
use crier_core::plans::Plan;
use crier_store::{ClipStatus, JobKind};
use crier_worker::clips::{ClipConfig, ClipWorker};
use serde_json::{Value, json};

const FPS: f64 = 25.0;

fn have_ffmpeg() -> bool {
    let ok = Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("CI").is_err(),
            "ffmpeg is missing; scripts/peers/tools.sh installs it"
        );
        eprintln!("ffmpeg not installed: clip test skipped");
    }
    ok
}

/// Nine seconds of 320 × 240 video at 25 fps: a test pattern, colour bars, then red, with a tone.
fn test_video(dir: &Path) -> Vec<u8> {
    let out = dir.join("source.mp4");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args([
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=25:duration=3",
        ])
        .args([
            "-f",
            "lavfi",
            "-i",
            "smptebars=size=320x240:rate=25:duration=3",
        ])
        .args([
            "-f",
            "lavfi",
            "-i",
            "color=c=red:size=320x240:rate=25:duration=3",
        ])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:duration=9"])
        .args([
            "-filter_complex",
            "[0:v][1:v][2:v]concat=n=3:v=1:a=0[v]",
            "-map",
            "[v]",
            "-map",
            "3:a",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-shortest",
        ])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::read(out).unwrap()
}

/// Duration (s), width and height of a video, by ffprobe.
fn probe(bytes: &[u8], dir: &Path) -> (f64, u64, u64) {
    let f = dir.join(format!("probe-{}.mp4", bytes.len()));
    std::fs::write(&f, bytes).unwrap();
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .args(["stream=width,height:format=duration", "-of", "json"])
        .arg(&f)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    (
        v["format"]["duration"].as_str().unwrap().parse().unwrap(),
        v["streams"][0]["width"].as_u64().unwrap(),
        v["streams"][0]["height"].as_u64().unwrap(),
    )
}

fn worker(app: &TestApp) -> ClipWorker {
    ClipWorker::new(app.state.app().clone(), ClipConfig::default())
}

#[track_caller]
fn assert_param(r: &Response, param: &str) {
    r.assert_error(400, "invalid_request");
    assert_eq!(r.body["error"]["param"], param, "param; body: {}", r.text);
}

async fn world(plan: Option<Plan>) -> Option<(TestApp, String, tempfile::TempDir, String)> {
    if !have_ffmpeg() {
        return None;
    }
    let (app, dir) = local_app(plan).await;
    let key = app.admin_key().await;
    let video = test_video(dir.path());
    let media = ready(&app, &key, "video/mp4", &video).await;
    let id = media["id"].as_str().unwrap().to_owned();
    Some((app, key, dir, id))
}

async fn clip_bytes(app: &TestApp, media_id: &str) -> Vec<u8> {
    let stored = app
        .store
        .get_media(
            &app.workspace.id,
            &crier_core::ids::MediaId::parse(media_id).unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
    app.state
        .app()
        .media()
        .storage()
        .read_all(&stored.storage_key, stored.size)
        .await
        .unwrap()
        .to_vec()
}

async fn a_video_is_cut_at_its_scene_changes() {
    let Some((app, key, dir, video)) = world(None).await else {
        return;
    };
    let r = app
        .post("/v1/clips")
        .key(&key)
        .json(json!({"media_id": video, "target_seconds": 3, "max_clips": 5}))
        .send()
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("clp_"));
    assert_eq!(r.body["status"], "queued");
    assert_eq!(r.body["aspect"], "9:16");
    assert_eq!(r.body["fit"], "crop");
    assert_eq!(r.body["scene_threshold"], 0.4);

    let done = worker(&app).run_due().await;
    assert_eq!(done.len(), 1);
    let r = app.get(&format!("/v1/clips/{id}")).key(&key).send().await;
    assert_eq!(r.status, 200, "{}", r.text);
    let job = r.body;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["progress"], 100);
    assert!(
        (job["duration_seconds"].as_f64().unwrap() - 9.0).abs() < 0.1,
        "{job}"
    );
    // The two cuts, within two frames.
    let scenes: Vec<f64> = job["scenes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_f64().unwrap())
        .collect();
    assert_eq!(scenes.len(), 2, "{scenes:?}");
    for (found, cut) in scenes.iter().zip([3.0, 6.0]) {
        assert!((found - cut).abs() <= 2.0 / FPS, "{found} vs {cut}");
    }
    // Three clips, one per scene, each 3 s and 9:16, with a signed URL.
    let clips = job["clips"].as_array().unwrap();
    assert_eq!(clips.len(), 3, "{job}");
    for clip in clips {
        let len = clip["end_seconds"].as_f64().unwrap() - clip["start_seconds"].as_f64().unwrap();
        assert!((len - 3.0).abs() <= 2.0 / FPS, "{clip}");
        assert!(
            clip["url"].as_str().is_some_and(|u| u.contains("sig")),
            "{clip}"
        );
        let bytes = clip_bytes(&app, clip["media_id"].as_str().unwrap()).await;
        let (seconds, w, h) = probe(&bytes, dir.path());
        assert!((seconds - 3.0).abs() < 0.15, "a clip of {seconds} s");
        assert_eq!((w, h), (720, 1280));
        let r = app
            .get(&format!("/v1/media/{}", clip["media_id"].as_str().unwrap()))
            .key(&key)
            .send()
            .await;
        assert_eq!(r.body["content_type"], "video/mp4");
        assert_eq!(r.body["status"], "ready");
    }
    // The job left the queue.
    assert!(
        app.raw_texts("SELECT id FROM jobs WHERE kind = 'clip'")
            .await
            .is_empty()
    );

    // Letterboxed 16:9, one clip of 6 s: the scene change closest to 6 s.
    let r = app
        .post("/v1/clips")
        .key(&key)
        .json(
            json!({"media_id": video, "target_seconds": 6, "max_clips": 1,
                     "aspect": "16:9", "fit": "letterbox"}),
        )
        .send()
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let done = worker(&app).run_due().await;
    assert_eq!(done[0].status, ClipStatus::Completed, "{done:?}");
    assert_eq!(done[0].clips.len(), 1);
    let c = &done[0].clips[0];
    assert!((c.end_ms - 6000).abs() <= 80 && c.start_ms == 0, "{c:?}");
    let (seconds, w, h) = probe(&clip_bytes(&app, &c.media_id).await, dir.path());
    assert!((seconds - 6.0).abs() < 0.15);
    assert_eq!((w, h), (1280, 720));
}

async fn a_cancelled_job_keeps_nothing_and_a_lost_worker_runs_it_once() {
    let Some((app, key, _dir, video)) = world(None).await else {
        return;
    };
    let body = json!({"media_id": video, "target_seconds": 3});
    let r = app
        .post("/v1/clips")
        .key(&key)
        .json(body.clone())
        .send()
        .await;
    let id = r.body["id"].as_str().unwrap().to_owned();
    let r = app
        .post(&format!("/v1/clips/{id}/cancel"))
        .key(&key)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "canceled");
    assert!(
        worker(&app).run_due().await.is_empty(),
        "nothing left to run"
    );
    let r = app
        .post(&format!("/v1/clips/{id}/cancel"))
        .key(&key)
        .send()
        .await;
    r.assert_error(409, "conflict");

    // A worker starts a job and is lost; past its lease another runs it, once.
    let r = app
        .post("/v1/clips")
        .key(&key)
        .json(body.clone())
        .send()
        .await;
    let id = ClipId::parse(r.body["id"].as_str().unwrap()).unwrap();
    let now = crier_core::Clock::now_ms(&app.clock);
    let claimed = app
        .store
        .claim_jobs_of(JobKind::Clip, now, 120_000, 1)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let lost = app.store.start_clip_job(&id, now).await.unwrap().unwrap();
    assert_eq!(lost.attempts, 1);
    assert!(worker(&app).run_due().await.is_empty(), "its lease holds");
    app.clock.advance(std::time::Duration::from_secs(121));
    let done = worker(&app).run_due().await;
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].attempts, 2);
    assert_eq!(done[0].status, ClipStatus::Completed);
    // The lost worker's progress and end are refused.
    assert!(!app.store.clip_job_progress(&id, 1, 50, now).await.unwrap());
    let outcome = crier_store::ClipOutcome {
        status: ClipStatus::Completed,
        duration_ms: Some(1),
        scenes: vec![],
        clips: vec![],
        error: None,
    };
    assert!(
        !app.store
            .finish_clip_job(&claimed[0].0.id, &id, 1, &outcome, now)
            .await
            .unwrap()
    );
    let media = app.raw_texts("SELECT id FROM media").await.len();
    assert_eq!(media, 1 + 3, "the video and one run's three clips");

    // A job cancelled while running stops and keeps no clip.
    let r = app.post("/v1/clips").key(&key).json(body).send().await;
    let id = ClipId::parse(r.body["id"].as_str().unwrap()).unwrap();
    let now = crier_core::Clock::now_ms(&app.clock);
    let (job, _) = app
        .store
        .claim_jobs_of(JobKind::Clip, now, 120_000, 1)
        .await
        .unwrap()
        .remove(0);
    let c = app
        .post(&format!("/v1/clips/{id}/cancel"))
        .key(&key)
        .send()
        .await;
    assert_eq!(c.body["status"], "canceled");
    let ran = app.state.app().clips().run_job(&job, &id).await.unwrap();
    assert!(ran.is_none());
    assert_eq!(app.raw_texts("SELECT id FROM media").await.len(), 4);
}

async fn limits_and_bad_input_store_nothing() {
    let mut small = Plan::defaults()["pro"].clone();
    small.clip_max_seconds = Some(5);
    let Some((app, key, _dir, video)) = world(Some(small)).await else {
        return;
    };
    let r = app
        .post("/v1/clips")
        .key(&key)
        .json(json!({"media_id": video}))
        .send()
        .await;
    r.assert_error(402, "quota_exceeded");
    assert!(r.text.contains("at most 5 s"), "{}", r.text);
    let png = ready(&app, &key, "image/png", &common::media::png(8, 8, 0)).await;
    for (body, param) in [
        (
            json!({"media_id": "med_0Q2X3hS8dK7vT1bLmN4pRz"}),
            "media_id",
        ),
        (json!({"media_id": png["id"]}), "media_id"),
        (
            json!({"media_id": video, "target_seconds": 2}),
            "target_seconds",
        ),
        (
            json!({"media_id": video, "target_seconds": 181}),
            "target_seconds",
        ),
        (json!({"media_id": video, "aspect": "4:3"}), "aspect"),
        (json!({"media_id": video, "fit": "zoom"}), "fit"),
        (json!({"media_id": video, "max_clips": 0}), "max_clips"),
        (json!({"media_id": video, "max_clips": 11}), "max_clips"),
        (
            json!({"media_id": video, "scene_threshold": 0.0}),
            "scene_threshold",
        ),
        (
            json!({"media_id": video, "scene_threshold": 1.5}),
            "scene_threshold",
        ),
        (json!({"media_id": 5}), "media_id"),
        (json!({"media_id": video, "extra": true}), "extra"),
    ] {
        let r = app.post("/v1/clips").key(&key).json(body).send().await;
        assert_param(&r, param);
    }
    // Clips are media: `media:write` too.
    let clipper = app.key_with(&[Scope::ClipsWrite, Scope::ClipsRead]).await;
    let r = app
        .post("/v1/clips")
        .key(&clipper)
        .json(json!({"media_id": video}))
        .send()
        .await;
    r.assert_error(403, "forbidden_scope");
    assert!(app.raw_texts("SELECT id FROM clip_jobs").await.is_empty());
    assert!(app.raw_texts("SELECT id FROM jobs").await.is_empty());
}

async fn another_workspaces_and_the_other_modes_jobs_do_not_exist() {
    let Some((app, key, _dir, video)) = world(None).await else {
        return;
    };
    let r = app
        .post("/v1/clips")
        .key(&key)
        .json(json!({"media_id": video}))
        .send()
        .await;
    let id = r.body["id"].as_str().unwrap().to_owned();
    let [other_key, test_key] = app.outsider_keys().await;
    for k in [&other_key, &test_key] {
        let r = app.get(&format!("/v1/clips/{id}")).key(k).send().await;
        r.assert_error(404, "not_found");
        let r = app
            .post(&format!("/v1/clips/{id}/cancel"))
            .key(k)
            .send()
            .await;
        r.assert_error(404, "not_found");
        let r = app.get("/v1/clips").key(k).send().await;
        assert_eq!(r.body["data"], json!([]));
        // Another workspace's video is no video of theirs.
        let r = app
            .post("/v1/clips")
            .key(k)
            .json(json!({"media_id": video}))
            .send()
            .await;
        assert_param(&r, "media_id");
    }
    let r = app.get(&format!("/v1/clips/{id}")).key(&key).send().await;
    assert_eq!(r.body["status"], "queued");
    assert_eq!(app.raw_texts("SELECT id FROM clip_jobs").await.len(), 1);
}

both!(
    tests: a_video_is_cut_at_its_scene_changes,
    a_cancelled_job_keeps_nothing_and_a_lost_worker_runs_it_once,
    limits_and_bad_input_store_nothing,
    another_workspaces_and_the_other_modes_jobs_do_not_exist,
);

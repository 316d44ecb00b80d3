//! `crier media upload FILE…`: for each file, `POST /v1/media/upload-url` (type from the
//! extension, exact size), the bytes streamed with `PUT` to the signed `upload.url` with
//! `upload.headers` and no API key, then `POST /v1/media/{id}/confirm`, which checks the bytes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Subcommand;
use crier_client::{ApiRequest, Method};
use serde_json::json;

use super::{Ctx, Failure, Outcome, output, seg};

#[derive(Subcommand)]
pub enum MediaCommand {
    /// Upload images or videos; each is ready to attach (`--media med_…`) when this ends.
    Upload {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Alt text for every file uploaded.
        #[arg(long)]
        alt: Option<String>,
    },
}

/// The media types crier takes, by extension (the server checks the bytes against it).
fn content_type(path: &Path) -> Option<&'static str> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    Some(match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "mp4" | "m4v" => "video/mp4",
        "mov" => "video/quicktime",
        "webm" => "video/webm",
        _ => return None,
    })
}

pub async fn run(ctx: &Ctx, command: MediaCommand) -> Outcome {
    let MediaCommand::Upload { files, alt } = command;
    // Every file is checked before the first is sent.
    let mut plan = Vec::new();
    for path in &files {
        let kind = content_type(path).ok_or_else(|| {
            Failure::Usage(format!(
                "{}: not an image or video crier takes (png, jpg, gif, webp, mp4, mov, webm)",
                path.display()
            ))
        })?;
        let size = std::fs::metadata(path)
            .map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))?
            .len();
        let filename = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Failure::Usage(format!("{}: not a file name", path.display())))?;
        plan.push((path, filename.to_owned(), kind, size));
    }
    let mut ready = Vec::new();
    for (path, filename, kind, size) in plan {
        let mut body = json!({"filename": filename, "content_type": kind, "size": size});
        if let Some(a) = &alt {
            body["alt_text"] = json!(a);
        }
        let Some(pending) = ctx
            .write(ApiRequest::post("/v1/media/upload-url", body))
            .await?
        else {
            continue; // --dry-run: the first request shows what would happen
        };
        let id = pending["id"].as_str().unwrap_or_default().to_owned();
        let url = pending["upload"]["url"].as_str().unwrap_or_default();
        let headers: BTreeMap<String, String> =
            serde_json::from_value(pending["upload"]["headers"].clone()).unwrap_or_default();
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))?;
        let bar = output::progress(ctx.json(), size, "bytes");
        bar.set_message(filename.clone());
        let progress = bar.clone();
        let put = ctx
            .client
            .put_upload(url, &headers, file, size, move |sent| {
                progress.set_position(sent)
            })
            .await;
        bar.finish_and_clear();
        put?;
        let confirmed = ctx
            .write(ApiRequest::new(
                Method::POST,
                format!("/v1/media/{}/confirm", seg(&id)),
            ))
            .await?
            .unwrap_or_default();
        ready.push(confirmed);
    }
    if ctx.globals.dry_run {
        return Ok(());
    }
    let list = json!({"data": ready, "has_more": false});
    ctx.show(&list, |l| {
        output::list(
            l,
            &[
                ("id", "id"),
                ("filename", "file"),
                ("content_type", "type"),
                ("size", "bytes"),
                ("status", "status"),
                ("sha256", "sha256"),
            ],
            64,
        )
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_come_from_the_extension() {
        assert_eq!(content_type(Path::new("a/B.PNG")), Some("image/png"));
        assert_eq!(content_type(Path::new("clip.mov")), Some("video/quicktime"));
        assert_eq!(content_type(Path::new("notes.txt")), None);
        assert_eq!(content_type(Path::new("noext")), None);
    }
}

//! ffmpeg and ffprobe (Debian's, installed by the project's setup) as child processes: found at
//! run time (`CRIER_FFMPEG`, `CRIER_FFPROBE`, else on `PATH`), each run bounded by a timeout,
//! killed when its future is dropped (a cancelled job, a timeout), its output bounded.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::Command;

/// What one run may print that is kept (scene detection prints a line per frame it selects).
const MAX_OUTPUT: usize = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    #[error(
        "{0} is not installed on this server (Debian: apt-get install ffmpeg), or CRIER_FFMPEG / CRIER_FFPROBE do not name it"
    )]
    Missing(&'static str),
    #[error("{tool} took longer than {seconds} s")]
    Timeout { tool: &'static str, seconds: u64 },
    #[error("{tool} failed: {message}")]
    Failed { tool: &'static str, message: String },
}

fn program(tool: &'static str) -> String {
    let var = match tool {
        "ffprobe" => "CRIER_FFPROBE",
        _ => "CRIER_FFMPEG",
    };
    std::env::var(var).unwrap_or_else(|_| tool.to_owned())
}

/// A video ffmpeg reads: its file, and the demuxer of the type it was sniffed as at upload.
/// Left to itself, ffmpeg picks a demuxer by probing the bytes, and a file sniffed as a video
/// can still probe as an HLS playlist or a concat script naming other files or URLs (ffmpeg's
/// own network protocols pass no SSRF guard). With the demuxer fixed and the `file` protocol
/// alone, it reads this file and nothing else.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    path: &'a Path,
    demuxer: &'static str,
}

impl<'a> Input<'a> {
    /// `path`, of `content_type` (one of the video types uploads take); `None` for another.
    pub fn new(path: &'a Path, content_type: &str) -> Option<Self> {
        let demuxer = match content_type {
            "video/mp4" | "video/quicktime" => "mov",
            "video/webm" => "matroska",
            _ => return None,
        };
        Some(Self { path, demuxer })
    }

    /// The arguments that open it, ending with `-i path`.
    fn args(&self) -> [String; 6] {
        [
            "-protocol_whitelist".into(),
            "file".into(),
            "-f".into(),
            self.demuxer.into(),
            "-i".into(),
            self.path.to_string_lossy().into_owned(),
        ]
    }
}

/// Whether both tools answer `-version`.
pub async fn available() -> Result<(), VideoError> {
    for tool in ["ffmpeg", "ffprobe"] {
        run(tool, &["-version"], Duration::from_secs(10)).await?;
    }
    Ok(())
}

/// Runs `tool` with `args`; its stdout and stderr (each cut at [`MAX_OUTPUT`]) on success.
async fn run(
    tool: &'static str,
    args: &[&str],
    timeout: Duration,
) -> Result<(String, String), VideoError> {
    let mut child = Command::new(program(tool))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => {
                VideoError::Missing(tool)
            }
            _ => VideoError::Failed {
                tool,
                message: e.to_string(),
            },
        })?;
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let work = async {
        let (out, err, status) = tokio::join!(drain(stdout), drain(stderr), child.wait());
        Ok::<_, std::io::Error>((status?, out?, err?))
    };
    let (status, out, err) = tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| VideoError::Timeout {
            tool,
            seconds: timeout.as_secs(),
        })?
        .map_err(|e| VideoError::Failed {
            tool,
            message: e.to_string(),
        })?;
    let out = String::from_utf8_lossy(&out).into_owned();
    let err = String::from_utf8_lossy(&err).into_owned();
    if !status.success() {
        return Err(VideoError::Failed {
            tool,
            message: format!("{status}: {}", last_line(&err)),
        });
    }
    Ok((out, err))
}

/// The last line of a tool's output that says something, as crier keeps it (a clip's error):
/// control characters as spaces (the file's own metadata may be quoted; PostgreSQL cannot
/// store a NUL), at most 300 characters.
fn last_line(output: &str) -> String {
    let last = output
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    crier_core::text::clip_line(last, 300)
}

/// Everything `r` gives until it ends, keeping the first [`MAX_OUTPUT`] bytes (the rest is
/// read and dropped, so the child never blocks on a full pipe).
async fn drain(mut r: impl tokio::io::AsyncRead + Unpin) -> std::io::Result<Vec<u8>> {
    let mut kept = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            return Ok(kept);
        }
        let room = MAX_OUTPUT.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
    }
}

/// A video's length in ms and its first video stream's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub duration_ms: i64,
    pub width: u32,
    pub height: u32,
}

pub async fn probe(input: Input<'_>, timeout: Duration) -> Result<Probe, VideoError> {
    let opened = input.args();
    // ffprobe takes its input without `-i`.
    let (open, path) = opened.split_at(4);
    let mut args: Vec<&str> = vec![
        "-v",
        "error",
        "-select_streams",
        "v:0",
        "-show_entries",
        "stream=width,height:format=duration",
        "-of",
        "json",
    ];
    args.extend(open.iter().map(String::as_str));
    args.push(&path[1]);
    let (out, _) = run("ffprobe", &args, timeout).await?;
    let v: serde_json::Value = serde_json::from_str(&out).map_err(|e| VideoError::Failed {
        tool: "ffprobe",
        message: format!("unreadable answer: {e}"),
    })?;
    let stream = &v["streams"][0];
    let seconds: f64 = v["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .unwrap_or(0.0);
    match (stream["width"].as_u64(), stream["height"].as_u64()) {
        (Some(w), Some(h)) if seconds > 0.0 => Ok(Probe {
            duration_ms: (seconds * 1000.0).round() as i64,
            width: w as u32,
            height: h as u32,
        }),
        _ => Err(VideoError::Failed {
            tool: "ffprobe",
            message: "the file has no video stream with a length".into(),
        }),
    }
}

/// Where scenes change (ms from the start), by ffmpeg's scene score above `threshold` (0–1).
pub async fn scenes(
    input: Input<'_>,
    threshold: f64,
    timeout: Duration,
) -> Result<Vec<i64>, VideoError> {
    let opened = input.args();
    let filter = format!("select='gt(scene,{threshold:.3})',showinfo");
    let mut args = vec!["-hide_banner", "-nostats", "-nostdin"];
    args.extend(opened.iter().map(String::as_str));
    args.extend(["-an", "-vf", &filter, "-f", "null", "-"]);
    let (_, err) = run("ffmpeg", &args, timeout).await?;
    Ok(parse_scenes(&err))
}

/// The `pts_time:` of every `showinfo` line, in ms, in order, without repeats.
pub fn parse_scenes(log: &str) -> Vec<i64> {
    let mut out: Vec<i64> = Vec::new();
    for line in log.lines().filter(|l| l.contains("Parsed_showinfo")) {
        let Some(rest) = line.split("pts_time:").nth(1) else {
            continue;
        };
        let value = rest.split_whitespace().next().unwrap_or("");
        if let Ok(t) = value.parse::<f64>()
            && t.is_finite()
            && t >= 0.0
        {
            let ms = (t * 1000.0).round() as i64;
            if out.last() != Some(&ms) {
                out.push(ms);
            }
        }
    }
    out
}

/// The output size for an aspect ratio.
pub fn frame(aspect: &str) -> (u32, u32) {
    match aspect {
        "1:1" => (720, 720),
        "16:9" => (1280, 720),
        _ => (720, 1280),
    }
}

/// The filter that makes any input `aspect`: crop the middle, or fit it whole with bars.
pub fn filter(aspect: &str, fit: &str) -> String {
    let (w, h) = frame(aspect);
    match fit {
        "letterbox" => format!(
            "scale={w}:{h}:force_original_aspect_ratio=decrease,pad={w}:{h}:(ow-iw)/2:(oh-ih)/2,setsar=1"
        ),
        _ => format!("crop='min(iw,ih*{w}/{h})':'min(ih,iw*{h}/{w})',scale={w}:{h},setsar=1"),
    }
}

/// Cuts `[start_ms, start_ms + len_ms)` of `input` into `output` (H.264 + AAC in MP4, the
/// format every network takes), at `aspect` by `fit`.
pub async fn cut(
    input: Input<'_>,
    output: &Path,
    start_ms: i64,
    len_ms: i64,
    aspect: &str,
    fit: &str,
    timeout: Duration,
) -> Result<(), VideoError> {
    let opened = input.args();
    let o = output.to_string_lossy();
    let start = format!("{:.3}", start_ms as f64 / 1000.0);
    let len = format!("{:.3}", len_ms as f64 / 1000.0);
    let vf = filter(aspect, fit);
    let mut args = vec![
        "-hide_banner",
        "-nostats",
        "-nostdin",
        "-y",
        "-v",
        "error",
        "-ss",
        &start,
    ];
    args.extend(opened.iter().map(String::as_str));
    args.extend([
        "-t",
        &len,
        "-map",
        "0:v:0",
        "-map",
        "0:a:0?",
        "-vf",
        &vf,
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-crf",
        "23",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-b:a",
        "128k",
        "-movflags",
        "+faststart",
        &o,
    ]);
    run("ffmpeg", &args, timeout).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_input_is_read_with_the_demuxer_of_its_type_and_from_its_file_only() {
        let path = Path::new("/tmp/job/input");
        let args = |t: &str| Input::new(path, t).map(|i| i.args().join(" "));
        let expect = |f: &str| format!("-protocol_whitelist file -f {f} -i /tmp/job/input");
        assert_eq!(args("video/mp4"), Some(expect("mov")));
        assert_eq!(args("video/quicktime"), Some(expect("mov")));
        assert_eq!(args("video/webm"), Some(expect("matroska")));
        for other in [
            "application/vnd.apple.mpegurl",
            "image/png",
            "video/x-matroska",
            "",
        ] {
            assert_eq!(args(other), None, "{other}");
        }
    }

    #[test]
    fn scene_lines_are_read() {
        let log = "[Parsed_showinfo_1 @ 0x55] n:   0 pts:  76800 pts_time:3       duration: 512\n\
                   frame=  1 fps=0.0\n\
                   [Parsed_showinfo_1 @ 0x55] n:   1 pts: 153600 pts_time:6.04    duration: 512\n\
                   [Parsed_showinfo_1 @ 0x55] n:   2 pts: 153600 pts_time:6.04    duration: 512\n\
                   [Parsed_showinfo_1 @ 0x55] n:   3 pts_time:nan\n\
                   unrelated pts_time:9";
        assert_eq!(parse_scenes(log), [3000, 6040]);
        assert!(parse_scenes("").is_empty());
    }

    #[test]
    fn the_last_line_kept_is_clean_and_bounded() {
        let err = "Input #0, from 'a.mp4':\n  title: x\0y\u{1b}[31m\r\n\n  \n";
        assert_eq!(last_line(err), "title: x y [31m");
        assert!(last_line(&"é".repeat(1_000)).chars().count() <= 300);
        assert_eq!(last_line(""), "");
    }

    #[test]
    fn filters_for_each_aspect() {
        assert_eq!(frame("9:16"), (720, 1280));
        assert!(filter("9:16", "crop").starts_with("crop='min(iw,ih*720/1280)'"));
        assert!(filter("1:1", "letterbox").contains("pad=720:720"));
    }
}

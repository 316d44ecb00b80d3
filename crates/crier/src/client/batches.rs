//! `crier batches create FILE.csv|FILE.jsonl`: many posts through `POST /v1/batches`, in
//! chunks of the server's largest batch, with a progress bar.
//!
//! The whole file is read and checked for shape first (a malformed file sends nothing: exit
//! 2). A batch is all or nothing on the server; when it refuses one line (`param`
//! `posts[i]…`), that line is reported with its number and the rest of its chunk is sent
//! again without it, so every good line is created once and every bad one is named. Any
//! refused line makes the exit code 5.
//!
//! CSV: a header row naming `body` (required), `account_ids` and `media_ids` (ids separated
//! by spaces or `;`), `scheduled_at` (RFC 3339: the post is scheduled) and `brand_id`; empty
//! cells are left out. JSON Lines: one post object per line, as `POST /v1/batches` takes it.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use crier_client::{ApiRequest, ClientError};
use serde_json::{Map, Value, json};

use super::{Ctx, Failure, Outcome, output};

/// The most posts one request carries: the server's limit.
const CHUNK: usize = crier_app::posts::MAX_BATCH;
const CSV_COLUMNS: [&str; 5] = [
    "body",
    "account_ids",
    "media_ids",
    "scheduled_at",
    "brand_id",
];

#[derive(Subcommand)]
pub enum BatchesCommand {
    /// Create the posts of a CSV or JSON Lines file (drafts, or scheduled where a line has
    /// `scheduled_at`).
    Create { file: PathBuf },
}

/// A post of the file and the line it came from (1-based, the CSV header being line 1).
#[derive(Debug)]
struct Line {
    number: usize,
    post: Value,
}

pub async fn run(ctx: &Ctx, command: BatchesCommand) -> Outcome {
    let BatchesCommand::Create { file } = command;
    let lines = read(&file)?;
    if lines.is_empty() {
        return Err(Failure::Usage(format!(
            "{}: no posts in the file",
            file.display()
        )));
    }
    let bar = output::progress(ctx.json(), lines.len() as u64, "posts");
    let mut created: Vec<(usize, Value)> = Vec::new();
    let mut refused: Vec<(usize, ClientError)> = Vec::new();
    for chunk in lines.chunks(CHUNK) {
        let mut pending: Vec<&Line> = chunk.iter().collect();
        while !pending.is_empty() {
            let posts: Vec<&Value> = pending.iter().map(|l| &l.post).collect();
            let req = ApiRequest::post("/v1/batches", json!({ "posts": posts }));
            match ctx.write(req).await {
                Ok(None) => break, // --dry-run: printed
                Ok(Some(answer)) => {
                    let numbers = pending.iter().map(|l| l.number);
                    created.extend(numbers.zip(output::items(&answer).iter().cloned()));
                    bar.inc(pending.len() as u64);
                    break;
                }
                Err(Failure::Api(e)) if e.status() == Some(400) => match item_at_fault(&e) {
                    Some(i) if i < pending.len() => {
                        let line = pending.remove(i);
                        refused.push((line.number, e));
                        bar.inc(1);
                    }
                    // Not one line's fault: the whole chunk is refused with it.
                    _ => {
                        let first = pending[0].number;
                        bar.inc(pending.len() as u64);
                        refused.push((first, e));
                        break;
                    }
                },
                Err(other) => {
                    bar.abandon();
                    if !created.is_empty() {
                        eprintln!(
                            "{} posts were created before this failure (lines {}).",
                            created.len(),
                            ranges(created.iter().map(|(n, _)| *n))
                        );
                    }
                    return Err(other);
                }
            }
        }
    }
    bar.finish_and_clear();
    if ctx.globals.dry_run {
        return Ok(());
    }
    report(ctx, &created, &refused);
    match refused.is_empty() {
        true => Ok(()),
        false => Err(Failure::Refused(format!(
            "{} of {} lines were refused (lines {}) and {} created; fix the refused lines and \
             send only them again.",
            refused.len(),
            lines.len(),
            ranges(refused.iter().map(|(n, _)| *n)),
            created.len()
        ))),
    }
}

fn report(ctx: &Ctx, created: &[(usize, Value)], refused: &[(usize, ClientError)]) {
    if ctx.json() {
        let errors: Vec<Value> = refused
            .iter()
            .map(|(line, e)| json!({"line": line, "error": e.envelope()["error"]}))
            .collect();
        let data: Vec<&Value> = created.iter().map(|(_, p)| p).collect();
        output::json(&json!({"data": data, "errors": errors}));
        return;
    }
    if !created.is_empty() {
        println!(
            "{}",
            output::table(
                &["line", "id", "status", "scheduled at", "body"],
                created.iter().map(|(line, p)| {
                    vec![
                        line.to_string(),
                        output::cell(&p["id"]),
                        output::cell(&p["status"]),
                        output::cell(&p["scheduled_at"]),
                        output::excerpt(&output::cell(&p["body"]), 40),
                    ]
                })
            )
        );
    }
    println!("created {} posts", created.len());
    for (line, e) in refused {
        let (code, param, message, req) = match e {
            ClientError::Api {
                code,
                param,
                message,
                request_id,
                ..
            } => (
                code.as_str(),
                param.as_deref().map(field).unwrap_or_default(),
                message.as_str(),
                request_id.as_deref().unwrap_or("-"),
            ),
            _ => ("", "", "", "-"),
        };
        eprintln!("line {line}: {message} ({code}, {param}, request {req})");
    }
}

/// Which item of the batch the server's `param` names (`posts[3].body` → 3).
fn item_at_fault(e: &ClientError) -> Option<usize> {
    let param = match e {
        ClientError::Api { param, .. } => param.as_deref()?,
        _ => return None,
    };
    param
        .strip_prefix("posts[")?
        .split(']')
        .next()?
        .parse()
        .ok()
}

/// The field within the item (`posts[3].body` → `body`).
fn field(param: &str) -> &str {
    param.split_once("].").map(|(_, f)| f).unwrap_or(param)
}

/// Line numbers as ranges: `2-4, 7`.
fn ranges(numbers: impl Iterator<Item = usize>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut run: Option<(usize, usize)> = None;
    let flush = |r: (usize, usize), out: &mut Vec<String>| {
        out.push(match r.0 == r.1 {
            true => r.0.to_string(),
            false => format!("{}-{}", r.0, r.1),
        })
    };
    for n in numbers {
        run = match run {
            Some((a, b)) if n == b + 1 => Some((a, n)),
            Some(r) => {
                flush(r, &mut out);
                Some((n, n))
            }
            None => Some((n, n)),
        };
    }
    if let Some(r) = run {
        flush(r, &mut out);
    }
    out.join(", ")
}

fn read(path: &Path) -> Result<Vec<Line>, Failure> {
    let bad = |m: String| Failure::Usage(format!("{}: {m}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    match path.extension().and_then(|e| e.to_str()) {
        Some("csv") => csv_lines(&text).map_err(bad),
        Some("jsonl" | "ndjson") => jsonl_lines(&text).map_err(bad),
        _ => Err(bad(
            "not a .csv or .jsonl file (the extension says which)".into()
        )),
    }
}

fn jsonl_lines(text: &str) -> Result<Vec<Line>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let post: Value =
            serde_json::from_str(line).map_err(|e| format!("line {}: not JSON: {e}", i + 1))?;
        if !post.is_object() {
            return Err(format!("line {}: not a JSON object", i + 1));
        }
        out.push(Line {
            number: i + 1,
            post,
        });
    }
    Ok(out)
}

fn csv_lines(text: &str) -> Result<Vec<Line>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| format!("line 1: {e}"))?
        .iter()
        .map(|h| h.trim().to_owned())
        .collect();
    if let Some(unknown) = headers.iter().find(|h| !CSV_COLUMNS.contains(&h.as_str())) {
        return Err(format!(
            "line 1: unknown column `{unknown}` (columns: {})",
            CSV_COLUMNS.join(", ")
        ));
    }
    if !headers.iter().any(|h| h == "body") {
        return Err("line 1: the header row has no `body` column".into());
    }
    let mut out = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            format!("line {line}: {e}")
        })?;
        let number = record.position().map_or(0, |p| p.line() as usize);
        let mut post = Map::new();
        for (name, value) in headers.iter().zip(record.iter()) {
            let value = value.trim();
            if value.is_empty() {
                continue;
            }
            let v = match name.as_str() {
                "account_ids" | "media_ids" => json!(
                    value
                        .split(|c: char| c == ';' || c.is_whitespace())
                        .filter(|s| !s.is_empty())
                        .collect::<Vec<_>>()
                ),
                _ => json!(value),
            };
            post.insert(name.clone(), v);
        }
        out.push(Line {
            number,
            post: Value::Object(post),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_become_posts_with_their_line_numbers() {
        let text = "body,account_ids,scheduled_at\nhello,acct_a acct_b,\n\"two\nlines\",acct_a;acct_c,2030-01-01T00:00:00Z\n";
        let lines = csv_lines(text).unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].number, 2);
        assert_eq!(
            lines[0].post,
            json!({"body": "hello", "account_ids": ["acct_a", "acct_b"]})
        );
        assert_eq!(lines[1].number, 3);
        assert_eq!(lines[1].post["account_ids"], json!(["acct_a", "acct_c"]));
        assert_eq!(lines[1].post["scheduled_at"], "2030-01-01T00:00:00Z");
        assert!(
            csv_lines("text\nx\n")
                .unwrap_err()
                .contains("unknown column")
        );
        assert!(csv_lines("body,account_ids\nx\n").is_err(), "a short row");
    }

    #[test]
    fn jsonl_lines_are_objects() {
        let lines = jsonl_lines("{\"body\":\"a\"}\n\n{\"body\":\"b\"}\n").unwrap();
        assert_eq!(lines.iter().map(|l| l.number).collect::<Vec<_>>(), [1, 3]);
        assert!(
            jsonl_lines("{\"body\":\"a\"}\n[1]\n")
                .unwrap_err()
                .starts_with("line 2")
        );
        assert!(jsonl_lines("{oops\n").unwrap_err().starts_with("line 1"));
    }

    #[test]
    fn the_item_at_fault_and_line_ranges() {
        let e = ClientError::Api {
            status: 400,
            code: "invalid_request".into(),
            message: "m".into(),
            param: Some("posts[3].body".into()),
            request_id: None,
        };
        assert_eq!(item_at_fault(&e), Some(3));
        assert_eq!(field("posts[3].body"), "body");
        assert_eq!(ranges([2, 3, 4, 7, 9, 10].into_iter()), "2-4, 7, 9-10");
    }
}

//! What the client commands print. Tables (and short sentences) for people on stdout; with
//! `--json`, the API's JSON as the server sent it, so scripts see the contract and nothing of
//! the CLI's own making. Progress and prompts go to stderr. Failures: `error: <message>
//! (<code>, request <id>)` on stderr, or with `--json` the error envelope on stdout.

use std::io::IsTerminal;

use comfy_table::{ContentArrangement, Table, presets};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;

use super::Failure;

/// The API's JSON, unchanged.
pub fn json(v: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).expect("JSON serialises")
    );
}

/// A table with a header row.
pub fn table(headers: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut t = Table::new();
    t.load_preset(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(headers.to_vec());
    for row in rows {
        t.add_row(row);
    }
    t.to_string()
}

/// One object as a two-column table of its fields.
pub fn fields(pairs: &[(&str, String)]) -> String {
    let mut t = Table::new();
    t.load_preset(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    for (k, v) in pairs {
        t.add_row(vec![(*k).to_owned(), v.clone()]);
    }
    t.to_string()
}

/// A JSON value as a table cell: `-` for null or absent, strings as they are, lists joined.
pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        Value::Array(items) if items.is_empty() => "-".to_owned(),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

/// The first `max` characters of `s` on one line, with `…` when cut.
pub fn excerpt(s: &str, max: usize) -> String {
    let one_line: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match one_line.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &one_line[..i]),
        None => one_line,
    }
}

/// The items of a list answer (`{"data":[…]}`).
pub fn items(v: &Value) -> &[Value] {
    v["data"].as_array().map(Vec::as_slice).unwrap_or_default()
}

/// A list answer as a table of `columns` (field name and header), with a line saying when
/// more pages follow.
pub fn list(v: &Value, columns: &[(&str, &str)], max_cell: usize) -> String {
    let headers: Vec<&str> = columns.iter().map(|(_, h)| *h).collect();
    let rows = items(v).iter().map(|item| {
        columns
            .iter()
            .map(|(f, _)| excerpt(&cell(&item[*f]), max_cell))
            .collect()
    });
    let mut out = table(&headers, rows);
    if items(v).is_empty() {
        out = "(none)".to_owned();
    }
    if v["has_more"].as_bool() == Some(true) {
        out.push_str("\n(more: use --offset)");
    }
    out
}

/// A progress bar on stderr; hidden when stderr is not a terminal or with `--json`.
pub fn progress(json_out: bool, len: u64, unit: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    if json_out || !std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    let template = format!("{{bar:40}} {{pos}}/{{len}} {unit} {{msg}}");
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    bar
}

/// Prints a failure the way the design says, and returns its exit code.
pub fn failure(f: &Failure, json_out: bool) -> u8 {
    let code = f.exit_code();
    if json_out && !matches!(f, Failure::Refused(_)) {
        json(&f.envelope());
    } else {
        match f {
            Failure::Api(crier_client::ClientError::Api {
                code,
                message,
                param,
                request_id,
                ..
            }) => {
                let param = param
                    .as_deref()
                    .map(|p| format!(", param {p}"))
                    .unwrap_or_default();
                let req = request_id
                    .as_deref()
                    .map(|r| format!(", request {r}"))
                    .unwrap_or_default();
                eprintln!("error: {message} ({code}{param}{req})");
            }
            other => eprintln!("error: {}", other.message()),
        }
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_and_excerpts() {
        assert_eq!(cell(&Value::Null), "-");
        assert_eq!(cell(&serde_json::json!(["a", "b"])), "a, b");
        assert_eq!(cell(&serde_json::json!(3)), "3");
        assert_eq!(excerpt("héllo\nworld", 5), "héllo…");
        assert_eq!(excerpt("short", 10), "short");
    }
}

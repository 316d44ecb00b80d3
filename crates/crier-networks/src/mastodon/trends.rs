//! An instance's trending tags: `GET /api/v1/trends/tags` (docs.joinmastodon.org/methods/trends:
//! "Tags that are being used more frequently within the past week", OAuth: public, `limit`
//! default 10, max 20). Each is a Tag entity (docs.joinmastodon.org/entities/Tag): `name`
//! (without `#`), `url`, and `history`, one entry per day, newest first, with `day` (the day's
//! start, UNIX seconds), `uses` and `accounts`, all three as strings.
//!
//! The call is made without the account's token: the public list is the same for everyone on
//! the instance, which is what lets one cached list serve every account there (a signed-in
//! call may be narrowed to the user's languages and filters). An instance that refuses
//! unauthenticated API calls therefore has no trends in crier.
//!
//! Score: the tag's uses over the two newest days of its history, so a tag that took off today
//! outranks one that was busy all week; the instance's own order is kept as the list's order.

use serde_json::Value;

use crate::{MAX_TRENDS, TrendingTopic, trend_topic};

/// The most tags asked for (the documented maximum).
pub const LIMIT: usize = 20;
/// Days of history the score counts.
const SCORE_DAYS: usize = 2;

/// The topics of an answer's tags, in the instance's order: malformed entries, names that are
/// not one word, repeats (case-insensitive) and what is past [`MAX_TRENDS`] are left out.
pub fn topics(answer: &[Value]) -> Vec<TrendingTopic> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for tag in answer {
        if out.len() == MAX_TRENDS {
            break;
        }
        let Some(name) = tag.get("name").and_then(Value::as_str) else {
            continue;
        };
        let name = name.trim().trim_start_matches('#');
        if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == '#') {
            continue;
        }
        let Some(topic) = trend_topic(&format!("#{name}")) else {
            continue;
        };
        if !seen.insert(topic.to_lowercase()) {
            continue;
        }
        out.push(TrendingTopic {
            topic,
            score: score(tag.get("history")),
        });
    }
    out
}

/// A count the instance sent: a string of digits as documented, or a JSON number.
fn count(v: Option<&Value>) -> Option<u64> {
    match v? {
        Value::String(s) => s.trim().parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

/// Uses over the [`SCORE_DAYS`] newest days of `history` (by `day`, whatever the order sent).
fn score(history: Option<&Value>) -> f64 {
    let mut days: Vec<(u64, u64)> = history
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|h| Some((count(h.get("day"))?, count(h.get("uses"))?)))
        .collect();
    days.sort_unstable_by_key(|d| std::cmp::Reverse(d.0));
    days.iter()
        .take(SCORE_DAYS)
        .fold(0u64, |sum, (_, uses)| sum.saturating_add(*uses)) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tag(name: &str, uses: &[(u64, &str)]) -> Value {
        let history: Vec<Value> = uses
            .iter()
            .map(|(day, u)| json!({"day": day.to_string(), "uses": u, "accounts": "1"}))
            .collect();
        json!({"name": name, "url": format!("https://m.example/tags/{name}"), "history": history})
    }

    #[test]
    fn the_score_is_the_two_newest_days_uses() {
        let d = 1_796_169_600;
        let t = topics(&[
            // Sent oldest first: the newest two days still count.
            tag(
                "rust",
                &[(d - 2 * 86_400, "50"), (d - 86_400, "4"), (d, "3")],
            ),
            tag(
                "Hola",
                &[(d, "13"), (d - 86_400, "9"), (d - 2 * 86_400, "100")],
            ),
            json!({"name": "numbers", "history": [{"day": d, "uses": 7}]}),
            json!({"name": "nohistory"}),
        ]);
        let got: Vec<(&str, f64)> = t.iter().map(|t| (t.topic.as_str(), t.score)).collect();
        assert_eq!(
            got,
            vec![
                ("#rust", 7.0),
                ("#Hola", 22.0),
                ("#numbers", 7.0),
                ("#nohistory", 0.0)
            ]
        );
    }

    #[test]
    fn malformed_repeated_and_surplus_tags_are_left_out() {
        let mut answer = vec![
            json!({"name": 42}),
            json!({"url": "x"}),
            json!({"name": "two words"}),
            json!({"name": ""}),
            json!({"name": "a#b"}),
            json!({"name": "x".repeat(100)}),
            tag("Same", &[]),
            tag("same", &[]),
            json!({"name": "#hashed", "history": [{"day": "1", "uses": "nope"}]}),
        ];
        for i in 0..30 {
            answer.push(tag(&format!("t{i}"), &[]));
        }
        let t = topics(&answer);
        assert_eq!(t.len(), MAX_TRENDS);
        assert_eq!(t[0].topic, "#Same");
        assert_eq!(t[1].topic, "#hashed");
        assert_eq!(t[1].score, 0.0);
        assert_eq!(t[2].topic, "#t0");
        // 99 characters and the `#`: the longest that fits.
        let fits = topics(&[json!({"name": "y".repeat(99)})]);
        assert_eq!(fits[0].topic.chars().count(), 100);
    }
}

//! Trending topics: `app.bsky.unspecced.getTrendingTopics` (lexicon
//! `lexicons/app/bsky/unspecced/getTrendingTopics.json` in bluesky-social/atproto): a query
//! with `limit` (1 to 25, default 10) whose output is `{"topics": [trendingTopic],
//! "suggested": [trendingTopic]}`, a `trendingTopic` (`app.bsky.unspecced.defs`) being
//! `{"topic", "displayName"?, "description"?, "link"}` with `topic` and `link` required.
//!
//! It is an AppView method: the account's PDS answers it by proxying, with the account's
//! authentication, to the AppView it is configured with (no `atproto-proxy` header is sent, as
//! for `getPosts` in metrics: the header would name an AppView by DID, overriding the PDS
//! operator's choice, and make a PDS without one resolve that DID on the internet). The AppView
//! ranks the list for the viewer ("used to boost followed accounts in ranking"), which is why
//! Bluesky's trends are kept per account ([`crate::TrendScope::Account`]).
//!
//! Only `topics` is read: `suggested` are standing suggestions, not trends. The topics carry no
//! counts, so the score is the rank: [`MAX_TRENDS`] for the first, one less for each after.

use serde_json::Value;

use crate::{MAX_TRENDS, NetworkError, TrendingTopic, trend_topic};

pub const NSID: &str = "app.bsky.unspecced.getTrendingTopics";
/// Asked for (the lexicon allows up to 25; crier keeps 20).
pub const LIMIT: usize = MAX_TRENDS;

/// The topics of an answer, in its order: entries without a usable `topic`, repeats
/// (case-insensitive) and what is past [`MAX_TRENDS`] are left out.
pub fn topics(answer: &Value) -> Result<Vec<TrendingTopic>, NetworkError> {
    let listed = answer
        .get("topics")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            NetworkError::unavailable("bluesky: getTrendingTopics answered without `topics`")
        })?;
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for t in listed {
        if out.len() == MAX_TRENDS {
            break;
        }
        let Some(topic) = t.get("topic").and_then(Value::as_str).and_then(trend_topic) else {
            continue;
        };
        if !seen.insert(topic.to_lowercase()) {
            continue;
        }
        let score = (MAX_TRENDS - out.len()) as f64;
        out.push(TrendingTopic { topic, score });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn topics_in_order_scored_by_rank() {
        let answer = json!({
            "topics": [
                {"topic": "Super Bowl", "displayName": "Super Bowl", "link": "/profile/x/feed/1"},
                {"topic": "  #rustlang ", "link": "/search?q=%23rustlang"},
                {"topic": "super bowl", "link": "/x"},
                {"link": "/no-topic"},
                {"topic": 7, "link": "/not-text"},
                {"topic": "a\u{7}b", "link": "/control"},
                {"topic": "z".repeat(101), "link": "/long"},
                {"topic": "Eclipse", "link": "/y"}
            ],
            "suggested": [{"topic": "Art", "link": "/z"}]
        });
        let t = topics(&answer).unwrap();
        let got: Vec<(&str, f64)> = t.iter().map(|t| (t.topic.as_str(), t.score)).collect();
        assert_eq!(
            got,
            vec![("Super Bowl", 20.0), ("#rustlang", 19.0), ("Eclipse", 18.0)]
        );
    }

    #[test]
    fn at_most_twenty_and_topics_are_required() {
        let many: Vec<Value> = (0..25)
            .map(|i| json!({"topic": format!("t{i}"), "link": "/"}))
            .collect();
        let t = topics(&json!({"topics": many, "suggested": []})).unwrap();
        assert_eq!(t.len(), MAX_TRENDS);
        assert_eq!(t.last().unwrap().score, 1.0);
        let err = topics(&json!({"suggested": []})).unwrap_err();
        assert_eq!(err.code(), "network_unavailable");
    }
}

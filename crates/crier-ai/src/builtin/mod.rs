//! The engine that needs no model.
//!
//! Every function here is deterministic (same input, same output) and pure, and works in time
//! about linear in its input (a sort at most; no backtracking patterns): inputs reach them
//! bounded by the API (a text of at most 10,000 characters, at most 30 hashtags, 50 trends, 8
//! passages), but none of them relies on that for its speed.
//!
//! - [`thread`]: a text split into numbered parts, each within the network's limit.
//! - [`fit`]: a text shortened to fit one post (every model answer goes through it too).
//! - [`hashtags`]: hashtags from keywords, trends and the brand's own tags, valid on the network.
//! - [`optimise`]: a score, suggestions with rule ids, and an improved text.
//! - [`ideas`]: ideas for posts from the topic, trends, the persona and the knowledge base.
//! - [`learn`]: the persona learned from published posts.
//!
//! [`Builtin`] answers the [`Engine`] with them; it cannot rewrite or compose ([`NO_MODEL`]).

mod hashtags;
mod ideas;
mod optimise;
mod persona;
mod thread;
mod words;

use async_trait::async_trait;

pub use hashtags::hashtags;
pub use ideas::{MAX_IDEAS, ideas};
pub use optimise::optimise;
pub use persona::{MAX_POSTS, MAX_TOP, learn};
pub use thread::{fit, thread};

use crate::{AiError, Context, Engine, Idea, Optimised};

/// What `rewrite` and `compose` answer when no model is configured (`503
/// upstream_unavailable` at the edge).
pub const NO_MODEL: &str = "No AI model is configured, so rewrite and compose are unavailable. \
Set `ai.base_url` and `ai.model` in crier.toml (or CRIER_AI_BASE_URL and CRIER_AI_MODEL) to any \
OpenAI-compatible server: OpenAI, Ollama, vLLM, llama.cpp or LM Studio.";

/// The engine without a model: everything but `rewrite` and `compose`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Builtin;

fn not_empty(text: &str) -> Result<(), AiError> {
    if text.trim().is_empty() {
        Err(AiError::Invalid {
            param: "text",
            message: "must not be empty".into(),
        })
    } else {
        Ok(())
    }
}

#[async_trait]
impl Engine for Builtin {
    fn has_model(&self) -> bool {
        false
    }

    async fn rewrite(&self, _cx: Context<'_>, _text: &str, _tone: &str) -> Result<String, AiError> {
        Err(AiError::NoModel(NO_MODEL.to_owned()))
    }

    async fn compose(&self, _cx: Context<'_>, _prompt: &str) -> Result<String, AiError> {
        Err(AiError::NoModel(NO_MODEL.to_owned()))
    }

    async fn hashtags(
        &self,
        cx: Context<'_>,
        text: &str,
        count: usize,
    ) -> Result<Vec<String>, AiError> {
        not_empty(text)?;
        Ok(hashtags(text, cx.trends, cx.persona, cx.rules, count))
    }

    async fn thread(
        &self,
        cx: Context<'_>,
        text: &str,
        max_parts: usize,
    ) -> Result<Vec<String>, AiError> {
        thread(text, cx.rules, max_parts)
    }

    async fn ideas(
        &self,
        cx: Context<'_>,
        topic: Option<&str>,
        count: usize,
    ) -> Result<Vec<Idea>, AiError> {
        Ok(ideas(
            topic,
            cx.trends,
            cx.persona,
            cx.passages,
            cx.rules,
            count,
        ))
    }

    async fn optimise(&self, cx: Context<'_>, text: &str) -> Result<Optimised, AiError> {
        not_empty(text)?;
        Ok(optimise(text, cx.rules, cx.persona))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Persona, Trend};

    fn cx<'a>(
        rules: &'a crier_networks::rules::Rules,
        persona: &'a Persona,
        trends: &'a [Trend],
    ) -> Context<'a> {
        Context {
            rules,
            persona,
            passages: &[],
            trends,
        }
    }

    #[tokio::test]
    async fn without_a_model_rewrite_and_compose_say_how_to_configure_one() {
        let rules = crier_networks::x::RULES.clone();
        let persona = Persona::default();
        let e = Builtin;
        assert!(!e.has_model());
        for err in [
            e.rewrite(cx(&rules, &persona, &[]), "buy now", "friendly")
                .await
                .unwrap_err(),
            e.compose(cx(&rules, &persona, &[]), "a post")
                .await
                .unwrap_err(),
        ] {
            match err {
                AiError::NoModel(m) => assert_eq!(
                    m,
                    "No AI model is configured, so rewrite and compose are unavailable. Set \
                     `ai.base_url` and `ai.model` in crier.toml (or CRIER_AI_BASE_URL and \
                     CRIER_AI_MODEL) to any OpenAI-compatible server: OpenAI, Ollama, vLLM, \
                     llama.cpp or LM Studio."
                ),
                other => panic!("{other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn the_rest_answers_with_the_context() {
        let rules = crier_networks::threads::RULES.clone();
        let persona = Persona::default();
        let trends = [Trend {
            topic: "Open Source".into(),
            source: "bluesky".into(),
            score: 1.0,
        }];
        let e = Builtin;
        let c = cx(&rules, &persona, &trends);
        let tags = e
            .hashtags(c, "Why open source wins, again and again", 5)
            .await
            .unwrap();
        assert_eq!(tags, vec!["#OpenSource"], "Threads takes one tag");
        let parts = e.thread(c, &"word ".repeat(200), 10).await.unwrap();
        assert_eq!(parts.len(), 3);
        let ideas = e.ideas(c, None, 2).await.unwrap();
        assert_eq!(ideas[0].title, "How to get started with Open Source");
        let o = e.optimise(c, "Hello there").await.unwrap();
        assert!(o.score < 100 && !o.suggestions.is_empty());
        for err in [
            e.optimise(c, " ").await.unwrap_err(),
            e.hashtags(c, "", 3).await.unwrap_err(),
            e.thread(c, "", 3).await.unwrap_err(),
        ] {
            assert!(
                matches!(err, AiError::Invalid { param: "text", .. }),
                "{err:?}"
            );
        }
    }
}

//! AI content: the engines behind `/v1/ai/*`, the persona learned from published posts, and
//! the embeddings the knowledge base may use.
//!
//! Two engines answer through one trait ([`Engine`]):
//! - [`builtin::Builtin`] needs no model: hashtags, thread splitting, the optimiser, ideas from
//!   trending topics and persona learning are deterministic functions of their input. It cannot
//!   rewrite or compose ([`AiError::NoModel`], `503 upstream_unavailable` at the edge).
//! - [`openai::OpenAi`] speaks the OpenAI chat-completions protocol to any server the operator
//!   runs (OpenAI, Ollama, vLLM, llama.cpp, LM Studio) for rewrite and compose, and uses the
//!   built-in engine for the rest.
//!
//! Every text an engine returns fits the target network's [`Rules`] (the networks' own rules,
//! never a copy). User text and knowledge passages reach a model as delimited data, never as
//! instructions.

pub mod builtin;
pub mod openai;

use async_trait::async_trait;
use crier_networks::rules::Rules;
use serde::{Deserialize, Serialize};

/// Why an engine could not answer. [`AiError::NoModel`] and [`AiError::Upstream`] refund the
/// caller's credits (no work was done, or none came back); [`AiError::Invalid`] is refused
/// before any work where it can be, and refunded; [`AiError::Declined`] is not refunded.
#[derive(Debug, thiserror::Error)]
pub enum AiError {
    /// No model is configured: the message says how to configure one.
    #[error("{0}")]
    NoModel(String),
    /// The model server failed, timed out or answered something unusable.
    #[error("{0}")]
    Upstream(String),
    /// The model answered but with nothing usable (it declined, its content filter stopped
    /// it, or the text was empty): the work was done, so the credits are spent.
    #[error("{0}")]
    Declined(String),
    /// The input cannot be worked with (e.g. a text with nothing to split); `param` names it.
    #[error("{message}")]
    Invalid {
        param: &'static str,
        message: String,
    },
}

/// The owner's part of a brand voice (`PUT /v1/persona`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Voice {
    pub description: Option<String>,
    pub tone: Option<String>,
    #[serde(default)]
    pub words_to_use: Vec<String>,
    #[serde(default)]
    pub words_to_avoid: Vec<String>,
}

/// What was learned from a brand's published posts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Learned {
    /// How many published posts this was learned from.
    pub posts: usize,
    /// Median length in characters (graphemes).
    pub median_length: usize,
    /// Emoji per post, on average.
    pub emoji_per_post: f64,
    /// Hashtags per post, on average.
    pub hashtags_per_post: f64,
    /// The hashtags used most, most frequent first (with `#`).
    pub top_hashtags: Vec<String>,
    /// The most frequent topic words (lower case, no stop words), most frequent first.
    pub topics: Vec<String>,
    /// Tone markers seen: `questions`, `exclamations`, `first_person_plural`, `second_person`,
    /// `links`, ... each with the share of posts that show it (0.0–1.0).
    pub tone_markers: Vec<(String, f64)>,
}

/// The brand voice a generation uses: what the owner set and what was learned.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Persona {
    pub voice: Voice,
    pub learned: Learned,
}

/// A trending topic, from a network or from the workspace's own posts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trend {
    pub topic: String,
    /// `bluesky`, `mastodon`, `workspace`.
    pub source: String,
    /// Higher is hotter; comparable within one source.
    pub score: f64,
}

/// What a generation works with besides its own input.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The target network's rules: every text returned fits them.
    pub rules: &'a Rules,
    pub persona: &'a Persona,
    /// The best knowledge-base passages for this request, best first (already bounded).
    pub passages: &'a [String],
    /// Trending topics, hottest first (already bounded).
    pub trends: &'a [Trend],
}

/// One idea for a post.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Idea {
    pub title: String,
    pub angle: String,
    pub draft: String,
}

/// One concrete suggestion of the optimiser, with a stable rule id (`optimise.hook`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suggestion {
    pub rule: String,
    pub message: String,
}

/// What the optimiser found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Optimised {
    /// The improved text (fits the rules).
    pub text: String,
    /// 0–100, of the text as given.
    pub score: u8,
    pub suggestions: Vec<Suggestion>,
}

/// The AI endpoints' engine. `rewrite` and `compose` need a model; the rest is built in.
#[async_trait]
pub trait Engine: Send + Sync {
    /// Whether `rewrite` and `compose` can answer (a model is configured).
    fn has_model(&self) -> bool;
    async fn rewrite(&self, cx: Context<'_>, text: &str, tone: &str) -> Result<String, AiError>;
    async fn compose(&self, cx: Context<'_>, prompt: &str) -> Result<String, AiError>;
    async fn hashtags(
        &self,
        cx: Context<'_>,
        text: &str,
        count: usize,
    ) -> Result<Vec<String>, AiError>;
    async fn thread(
        &self,
        cx: Context<'_>,
        text: &str,
        max_parts: usize,
    ) -> Result<Vec<String>, AiError>;
    async fn ideas(
        &self,
        cx: Context<'_>,
        topic: Option<&str>,
        count: usize,
    ) -> Result<Vec<Idea>, AiError>;
    async fn optimise(&self, cx: Context<'_>, text: &str) -> Result<Optimised, AiError>;
}

/// Vectors for texts, from an OpenAI-compatible `/v1/embeddings` endpoint (the knowledge base
/// ranks with them when one is configured).
#[async_trait]
pub trait Embedder: Send + Sync {
    /// One vector per input, in order.
    async fn embed(&self, inputs: &[String]) -> Result<Vec<Vec<f32>>, AiError>;
}

/// The engine with a model: `rewrite` and `compose` through it, each answer fitted to the
/// target network's rules; everything else built in (deterministic, free of model cost).
pub struct ModelEngine {
    model: openai::OpenAi,
    builtin: builtin::Builtin,
}

impl ModelEngine {
    pub fn new(model: openai::OpenAi) -> Self {
        Self {
            model,
            builtin: builtin::Builtin,
        }
    }
}

#[async_trait]
impl Engine for ModelEngine {
    fn has_model(&self) -> bool {
        true
    }

    async fn rewrite(&self, cx: Context<'_>, text: &str, tone: &str) -> Result<String, AiError> {
        let answer = self.model.rewrite(cx, text, tone).await?;
        Ok(builtin::fit(&answer, cx.rules))
    }

    async fn compose(&self, cx: Context<'_>, prompt: &str) -> Result<String, AiError> {
        let answer = self.model.compose(cx, prompt).await?;
        Ok(builtin::fit(&answer, cx.rules))
    }

    async fn hashtags(
        &self,
        cx: Context<'_>,
        text: &str,
        count: usize,
    ) -> Result<Vec<String>, AiError> {
        self.builtin.hashtags(cx, text, count).await
    }

    async fn thread(
        &self,
        cx: Context<'_>,
        text: &str,
        max_parts: usize,
    ) -> Result<Vec<String>, AiError> {
        self.builtin.thread(cx, text, max_parts).await
    }

    async fn ideas(
        &self,
        cx: Context<'_>,
        topic: Option<&str>,
        count: usize,
    ) -> Result<Vec<Idea>, AiError> {
        self.builtin.ideas(cx, topic, count).await
    }

    async fn optimise(&self, cx: Context<'_>, text: &str) -> Result<Optimised, AiError> {
        self.builtin.optimise(cx, text).await
    }
}

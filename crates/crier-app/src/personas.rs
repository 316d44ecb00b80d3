//! The owner's part of the brand voice, for every caller: the workspace's own voice, and each
//! brand's (`PUT /v1/persona`, and a brand's `persona`). What is learned from published posts
//! is crier-ai's ([`crier_store::Store::published_texts`] gives it the texts).
//!
//! Rules kept here:
//! - `description` at most [`MAX_DESCRIPTION`] characters, `tone` at most [`MAX_TONE`] (one
//!   line), `words_to_use` and `words_to_avoid` at most [`MAX_WORDS`] entries of 1 to
//!   [`MAX_WORD`] characters each (one line, once each, compared ignoring case). Texts are
//!   trimmed; an empty `description` or `tone` is none. Bounds are on what was sent, as the
//!   OpenAPI's `maxLength` says.
//! - Setting a voice replaces all of it (a field left out is emptied).
//! - A brand's voice is reached as the brand is ([`crate::reach`]): another workspace's or
//!   mode's brand, or one beyond a limited key's reach, is `404`. The workspace's own voice
//!   may be read by every caller; only a key without brand or account limits may set it (it is
//!   the voice of every account, `403 forbidden_scope` otherwise).

use std::collections::BTreeSet;

pub use crier_ai::Voice;
use crier_core::ids::BrandId;
use crier_store::StoredVoice;

use crate::{App, AppError, AppResult, Caller};

pub const MAX_DESCRIPTION: usize = 2000;
pub const MAX_TONE: usize = 100;
pub const MAX_WORDS: usize = 50;
pub const MAX_WORD: usize = 50;

/// The voice as crier-ai takes it.
pub fn to_voice(v: StoredVoice) -> Voice {
    Voice {
        description: v.description,
        tone: v.tone,
        words_to_use: v.words_to_use,
        words_to_avoid: v.words_to_avoid,
    }
}

fn stored(v: Voice) -> StoredVoice {
    StoredVoice {
        description: v.description,
        tone: v.tone,
        words_to_use: v.words_to_use,
        words_to_avoid: v.words_to_avoid,
    }
}

fn text(
    param: &str,
    value: Option<String>,
    max: usize,
    one_line: bool,
) -> AppResult<Option<String>> {
    let Some(value) = value else { return Ok(None) };
    // Control characters are refused, but a multi-line field keeps its line breaks and tabs.
    let layout = |c: char| matches!(c, '\n' | '\r' | '\t');
    let bad_char = |c: char| c.is_control() && (one_line || !layout(c));
    if value.chars().count() > max || value.trim().chars().any(bad_char) {
        let lines = if one_line {
            "one line"
        } else {
            "no control characters but line breaks and tabs"
        };
        return Err(AppError::invalid(
            param,
            format!("`{param}` must be at most {max} characters ({lines})."),
        ));
    }
    let trimmed = value.trim();
    Ok((!trimmed.is_empty()).then(|| trimmed.to_owned()))
}

fn words(param: &str, list: Vec<String>) -> AppResult<Vec<String>> {
    if list.len() > MAX_WORDS {
        return Err(AppError::invalid(
            param,
            format!("`{param}` may hold at most {MAX_WORDS} words."),
        ));
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(list.len());
    for (i, w) in list.into_iter().enumerate() {
        let t = w.trim();
        if t.is_empty() || w.chars().count() > MAX_WORD || t.chars().any(char::is_control) {
            return Err(AppError::invalid(
                format!("{param}[{i}]"),
                format!("Each of `{param}` is 1 to {MAX_WORD} characters on one line."),
            ));
        }
        // A word given twice (ignoring case and surrounding spaces) is kept once.
        if seen.insert(t.to_lowercase()) {
            out.push(t.to_owned());
        }
    }
    Ok(out)
}

/// Checks a voice as the owner sets it and returns it normalised (trimmed, empty texts as
/// none). `param` names the fields as they are sent (`description`, `tone`, …).
pub fn check_voice(v: Voice) -> AppResult<Voice> {
    Ok(Voice {
        description: text("description", v.description, MAX_DESCRIPTION, false)?,
        tone: text("tone", v.tone, MAX_TONE, true)?,
        words_to_use: words("words_to_use", v.words_to_use)?,
        words_to_avoid: words("words_to_avoid", v.words_to_avoid)?,
    })
}

/// The persona rules over one [`App`].
pub struct Personas<'a> {
    pub(crate) app: &'a App,
}

impl Personas<'_> {
    /// The owner's voice of the caller's workspace (`brand` `None`) or of one of its brands
    /// (`404` beyond its reach); empty when none was set.
    pub async fn voice(&self, c: &Caller, brand: Option<&BrandId>) -> AppResult<Voice> {
        if let Some(id) = brand {
            // The brand carries its voice; reading it checks the caller reaches it.
            let b = self.app.brands().get(c, id.as_str()).await?;
            return Ok(to_voice(b.voice));
        }
        Ok(self
            .app
            .store()
            .get_voice(&c.tenant, None)
            .await?
            .map(to_voice)
            .unwrap_or_default())
    }

    /// Sets (replaces) the owner's voice of the caller's workspace (`brand` `None`; not for a
    /// limited key) or of one of its brands; returns it as stored.
    pub async fn set_voice(
        &self,
        c: &Caller,
        brand: Option<&BrandId>,
        voice: Voice,
    ) -> AppResult<Voice> {
        let voice = check_voice(voice)?;
        if let Some(id) = brand {
            self.app.brands().get(c, id.as_str()).await?;
        } else {
            c.require_unrestricted("change the workspace's own voice")?;
        }
        let now = self.app.clock().now_ms();
        if !self
            .app
            .store()
            .set_voice(&c.tenant, brand, &stored(voice.clone()), now)
            .await?
        {
            let id = brand.map(BrandId::as_str).unwrap_or_default();
            return Err(AppError::not_found("brand", id));
        }
        Ok(voice)
    }
}

impl Personas<'_> {
    /// The texts a voice is learned from: the bodies of the newest posts that went out on the
    /// accounts of `brand` (`404` beyond the caller's reach), or, without a brand, on any
    /// account the caller reaches (all of them for an unlimited caller); newest first, at most
    /// `limit` (and [`crier_store::MAX_PUBLISHED_TEXTS`]).
    pub async fn published_texts(
        &self,
        c: &Caller,
        brand: Option<&BrandId>,
        limit: i64,
    ) -> AppResult<Vec<String>> {
        let accounts = match brand {
            Some(id) => Some(self.app.brands().get(c, id.as_str()).await?.account_ids),
            None => self.app.reach(c).await?.account_list(),
        };
        Ok(self
            .app
            .store()
            .published_texts(&c.tenant, accounts.as_deref(), limit)
            .await?)
    }
}

/// The stored form of a checked voice (for the brand rules).
pub(crate) fn into_stored(v: Voice) -> StoredVoice {
    stored(v)
}

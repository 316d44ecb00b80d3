//! Embeddings from `POST {base}/embeddings`, in batches, with the answer's shape checked.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{OpenAi, upstream};
use crate::{AiError, Embedder};

/// The most inputs one request carries; more are split over several requests.
pub const MAX_EMBED_BATCH: usize = 64;
/// The most dimensions a vector may have.
pub const MAX_DIMENSIONS: usize = 4096;
/// The most of one embeddings answer we read: a full batch of the largest vectors, written as
/// JSON numbers of up to 24 bytes each, plus room for the envelope.
const MAX_EMBED_BODY: usize = MAX_EMBED_BATCH * MAX_DIMENSIONS * 24 + 64 * 1024;

#[async_trait]
impl Embedder for OpenAi {
    /// One vector per input, in order, all of one dimension (1 to [`MAX_DIMENSIONS`]). Without
    /// an `embeddings_model` configured: [`AiError::NoModel`].
    async fn embed(&self, inputs: &[String]) -> Result<Vec<Vec<f32>>, AiError> {
        let Some(model) = self.config.embeddings_model.as_deref() else {
            return Err(AiError::NoModel(
                "no embeddings model is configured: set the OpenAI-compatible server's \
                 embeddings_model to rank the knowledge base with embeddings"
                    .into(),
            ));
        };
        let mut out: Vec<Vec<f32>> = Vec::with_capacity(inputs.len());
        for batch in inputs.chunks(MAX_EMBED_BATCH) {
            let vectors = self.embed_batch(model, batch).await?;
            if let (Some(first), Some(v)) = (out.first(), vectors.first())
                && first.len() != v.len()
            {
                return Err(upstream(
                    "the model server's embeddings changed dimension between requests",
                ));
            }
            out.extend(vectors);
        }
        Ok(out)
    }
}

impl OpenAi {
    async fn embed_batch(&self, model: &str, batch: &[String]) -> Result<Vec<Vec<f32>>, AiError> {
        #[derive(Serialize)]
        struct Request<'a> {
            model: &'a str,
            input: &'a [String],
        }
        let body = serde_json::to_vec(&Request {
            model,
            input: batch,
        })
        .map_err(|_| upstream("the request to the model server could not be encoded"))?;
        let bytes = self.post("embeddings", body, MAX_EMBED_BODY).await?;
        parse_embeddings(&bytes, batch.len())
    }
}

/// `data[*].embedding` of an embeddings answer, in input order (by `index` when every item has
/// one), checked: one vector per input, each index once, one dimension for all, finite numbers.
fn parse_embeddings(bytes: &[u8], inputs: usize) -> Result<Vec<Vec<f32>>, AiError> {
    #[derive(Deserialize)]
    struct Response {
        data: Vec<Item>,
    }
    #[derive(Deserialize)]
    struct Item {
        embedding: Vec<f32>,
        #[serde(default)]
        index: Option<usize>,
    }
    let resp: Response = serde_json::from_slice(bytes).map_err(|_| {
        upstream("the model server's answer is not a list of embeddings (malformed JSON)")
    })?;
    if resp.data.len() != inputs {
        return Err(upstream(format!(
            "the model server answered {} embeddings for {inputs} inputs",
            resp.data.len()
        )));
    }
    let mut slots: Vec<Option<Vec<f32>>> = vec![None; inputs];
    let indexed = resp.data.iter().all(|i| i.index.is_some());
    for (pos, item) in resp.data.into_iter().enumerate() {
        let at = if indexed {
            item.index.unwrap_or(pos)
        } else {
            pos
        };
        match slots.get_mut(at) {
            Some(slot @ None) => *slot = Some(item.embedding),
            _ => {
                return Err(upstream(
                    "the model server's embeddings do not match the inputs (an index is missing, repeated or out of range)",
                ));
            }
        }
    }
    let vectors: Vec<Vec<f32>> = slots.into_iter().flatten().collect();
    let dim = vectors.first().map_or(0, Vec::len);
    if dim == 0 || dim > MAX_DIMENSIONS {
        return Err(upstream(format!(
            "the model server's embeddings have {dim} dimensions (1 to {MAX_DIMENSIONS} are accepted)"
        )));
    }
    if vectors.iter().any(|v| v.len() != dim) {
        return Err(upstream(
            "the model server's embeddings do not all have the same dimension",
        ));
    }
    if vectors.iter().flatten().any(|x| !x.is_finite()) {
        return Err(upstream(
            "the model server's embeddings hold a number that is not finite",
        ));
    }
    Ok(vectors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embeddings_are_put_in_input_order_and_checked() {
        let ok = parse_embeddings(
            br#"{"object":"list","data":[{"index":1,"embedding":[3,4]},{"index":0,"embedding":[1,2]}]}"#,
            2,
        )
        .unwrap();
        assert_eq!(ok, vec![vec![1.0, 2.0], vec![3.0, 4.0]]);
        let unindexed = parse_embeddings(br#"{"data":[{"embedding":[1]},{"embedding":[2]}]}"#, 2);
        assert_eq!(unindexed.unwrap(), vec![vec![1.0], vec![2.0]]);
        let big = format!(
            r#"{{"data":[{{"index":0,"embedding":{:?}}}]}}"#,
            vec![0.5f32; MAX_DIMENSIONS + 1]
        );
        for (bad, n) in [
            (r#"{"data":[{"index":0,"embedding":[1,2]}]}"#, 2),
            (
                r#"{"data":[{"index":0,"embedding":[1,2]},{"index":0,"embedding":[1,2]}]}"#,
                2,
            ),
            (
                r#"{"data":[{"index":0,"embedding":[1,2]},{"index":2,"embedding":[1,2]}]}"#,
                2,
            ),
            (
                r#"{"data":[{"index":0,"embedding":[1,2]},{"index":1,"embedding":[1]}]}"#,
                2,
            ),
            (r#"{"data":[{"index":0,"embedding":[]}]}"#, 1),
            (r#"{"data":[{"index":0,"embedding":[[1,2]]}]}"#, 1),
            (r#"{"data":[{"index":0,"embedding":"AAAA"}]}"#, 1),
            (r#"{"data":[{"index":0,"embedding":[1e39]}]}"#, 1),
            (r#"{"error":"x"}"#, 1),
            (big.as_str(), 1),
        ] {
            assert!(
                matches!(
                    parse_embeddings(bad.as_bytes(), n),
                    Err(AiError::Upstream(_))
                ),
                "{bad:.80}"
            );
        }
    }
}

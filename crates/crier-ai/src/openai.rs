//! The OpenAI-compatible chat-completions and embeddings client.

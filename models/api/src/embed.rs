//! What a text embedder does: [`Embed`] turns texts of an [`EmbedKind`] into
//! vectors. Re-exported as `assist_models::embed`.

use crate::Result;

/// Whether a text is searched for or searched in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EmbedKind {
    /// A question or customer utterance (e5 prefix `query: `).
    Query,
    /// A document to be found: a script, an FAQ answer (e5 prefix `passage: `).
    Passage,
}

/// A text embedding model. Implemented by `assist_models::embed::Embedder`
/// (multilingual-e5-small on candle) and, with its `testing` feature, by
/// `FakeEmbedder`.
pub trait Embed: 'static {
    /// One L2-normalised vector of [`Embed::dim`] values per text, in order.
    fn embed(&mut self, texts: &[&str], kind: EmbedKind) -> Result<Vec<Vec<f32>>>;
    /// Length of every vector.
    fn dim(&self) -> usize;
}

//! The async face of an embedder: a thin wrapper around a [`ModelHandle`].

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{Embed, EmbedKind, Embedder};
use crate::Result;
use crate::worker::{ModelHandle, WorkerConfig};

/// A cloneable handle to an embedder running on its own owner thread.
///
/// Every call is one job on the model's bounded queue: a full queue fails at
/// once with [`Error::Overloaded`](crate::Error::Overloaded), and a call whose
/// future is dropped before its turn is skipped.
#[derive(Debug, Clone)]
pub struct EmbedHandle {
    model: ModelHandle<Box<dyn Embed>>,
    dim: usize,
}

impl EmbedHandle {
    /// Start the owner thread and load [`Embedder::load`]`(dir)` on it.
    /// Blocking until the model is loaded (or failed to): call at startup or
    /// from `spawn_blocking`.
    pub fn spawn(config: WorkerConfig, dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        Self::spawn_with(config, move || Embedder::load(&dir))
    }

    /// Start the owner thread with any [`Embed`] implementation built by `load`
    /// on that thread.
    pub fn spawn_with<E, F>(config: WorkerConfig, load: F) -> Result<Self>
    where
        E: Embed,
        F: FnOnce() -> Result<E> + Send + 'static,
    {
        let dim = Arc::new(AtomicUsize::new(0));
        let dim_set = Arc::clone(&dim);
        let model = ModelHandle::spawn(config, move || {
            let model = load()?;
            dim_set.store(model.dim(), Ordering::SeqCst);
            Ok(Box::new(model) as Box<dyn Embed>)
        })?;
        let dim = dim.load(Ordering::SeqCst);
        Ok(EmbedHandle { model, dim })
    }

    /// A handle to the deterministic [`FakeEmbedder`](super::FakeEmbedder).
    #[cfg(any(test, feature = "testing"))]
    pub fn fake(config: WorkerConfig) -> Result<Self> {
        Self::spawn_with(config, || Ok(super::FakeEmbedder::new()))
    }

    /// Embed `texts` on the model's thread; one unit vector per text, in order.
    pub async fn embed(&self, texts: Vec<String>, kind: EmbedKind) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        self.model
            .run(move |m: &mut Box<dyn Embed>| {
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                m.embed(&refs, kind)
            })
            .await
    }

    /// Embed one text.
    pub async fn embed_one(&self, text: String, kind: EmbedKind) -> Result<Vec<f32>> {
        let mut out = self.embed(vec![text], kind).await?;
        Ok(out.pop().unwrap_or_default())
    }

    /// Length of the vectors.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The underlying worker (queue depth, liveness).
    pub fn worker(&self) -> &ModelHandle<Box<dyn Embed>> {
        &self.model
    }

    /// Finish queued jobs and stop the owner thread.
    pub fn shutdown(&self) {
        self.model.shutdown();
    }
}

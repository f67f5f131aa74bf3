//! The async face of the LLM: a thin wrapper around a [`ModelHandle`].

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::{mpsc, oneshot};

use super::{Generate, GenerateOptions, Generation, Llm, Message};
use crate::worker::{ModelHandle, WorkerConfig};
use crate::{Error, Result};

/// A cloneable handle to an LLM running on its own owner thread.
///
/// Every call is one job on the model's bounded queue: a full queue fails at
/// once with [`Error::Overloaded`], a call dropped before its turn is
/// skipped, and a call dropped while generating stops the generation at the
/// next token.
#[derive(Debug, Clone)]
pub struct LlmHandle {
    model: ModelHandle<Box<dyn Generate>>,
    context_length: usize,
}

/// Sets the flag when the caller's future (or stream) is dropped.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl LlmHandle {
    /// Start the owner thread and [`Llm::load`]`(path)` on it. Blocking until
    /// the model is loaded (or failed to): call at startup or from
    /// `spawn_blocking`.
    pub fn spawn(config: WorkerConfig, path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        Self::spawn_with(config, move || Llm::load(&path))
    }

    /// Start the owner thread with any [`Generate`] implementation built by
    /// `load` on that thread.
    pub fn spawn_with<G, F>(config: WorkerConfig, load: F) -> Result<Self>
    where
        G: Generate,
        F: FnOnce() -> Result<G> + Send + 'static,
    {
        let context = Arc::new(AtomicUsize::new(0));
        let context_set = Arc::clone(&context);
        let model = ModelHandle::spawn(config, move || {
            let model = load()?;
            context_set.store(model.context_length(), Ordering::SeqCst);
            Ok(Box::new(model) as Box<dyn Generate>)
        })?;
        Ok(LlmHandle {
            model,
            context_length: context.load(Ordering::SeqCst),
        })
    }

    /// A handle to the deterministic [`FakeLlm`](super::FakeLlm) echo model.
    #[cfg(any(test, feature = "testing"))]
    pub fn fake(config: WorkerConfig) -> Result<Self> {
        Self::spawn_with(config, || Ok(super::FakeLlm::echo()))
    }

    /// Answer `messages` on the model's thread and return the whole answer.
    pub async fn chat(&self, messages: Vec<Message>, opts: GenerateOptions) -> Result<Generation> {
        let cancelled = Arc::new(AtomicBool::new(false));
        let _guard = CancelOnDrop(Arc::clone(&cancelled));
        self.model
            .run(move |m: &mut Box<dyn Generate>| {
                m.chat(&messages, &opts, &mut |_| !cancelled.load(Ordering::SeqCst))
            })
            .await
    }

    /// Answer `messages`, streaming text deltas as they are generated.
    ///
    /// Queues the job now (so [`Error::Overloaded`] comes at once); read the
    /// deltas with [`ChatStream::next`], then the totals with
    /// [`ChatStream::finish`]. Dropping the stream stops the generation.
    pub fn chat_stream(&self, messages: Vec<Message>, opts: GenerateOptions) -> Result<ChatStream> {
        let (tx, rx) = mpsc::unbounded_channel::<String>();
        let result = self.model.submit(move |m: &mut Box<dyn Generate>| {
            m.chat(&messages, &opts, &mut |t| {
                // Empty deltas (half a character) are not worth a message;
                // a closed channel means the reader went away.
                t.text.is_empty() && !tx.is_closed() || tx.send(t.text.to_string()).is_ok()
            })
        })?;
        Ok(ChatStream {
            deltas: rx,
            result,
            name: self.model.name().to_string(),
        })
    }

    /// Tokens in the ChatML prompt of `messages` (a job on the owner thread).
    pub async fn count_chat_tokens(&self, messages: Vec<Message>) -> Result<usize> {
        self.model
            .run(move |m: &mut Box<dyn Generate>| m.count_chat_tokens(&messages))
            .await
    }

    /// Tokens the model can attend to: prompt plus answer.
    pub fn context_length(&self) -> usize {
        self.context_length
    }

    /// The underlying worker (queue depth, liveness).
    pub fn worker(&self) -> &ModelHandle<Box<dyn Generate>> {
        &self.model
    }

    /// Finish queued jobs and stop the owner thread.
    pub fn shutdown(&self) {
        self.model.shutdown();
    }
}

/// A streaming answer from [`LlmHandle::chat_stream`].
#[derive(Debug)]
pub struct ChatStream {
    deltas: mpsc::UnboundedReceiver<String>,
    result: oneshot::Receiver<Result<Generation>>,
    name: String,
}

impl ChatStream {
    /// The next text delta; `None` once generation has ended.
    pub async fn next(&mut self) -> Option<String> {
        self.deltas.recv().await
    }

    /// Stop the generation now (as dropping the stream does) and return its
    /// totals: the text generated until it stopped, `finish_reason: cancelled`.
    pub async fn cancel(self) -> Result<Generation> {
        let ChatStream {
            mut deltas,
            result,
            name,
        } = self;
        // The generation sees the closed channel at its next token.
        deltas.close();
        result.await.unwrap_or(Err(Error::WorkerStopped(name)))
    }

    /// Wait for the end of generation and return its totals (the full text included).
    pub async fn finish(self) -> Result<Generation> {
        let ChatStream {
            deltas,
            result,
            name,
        } = self;
        // Keep the channel open: closing it would cancel the generation.
        let out = result.await;
        drop(deltas);
        out.unwrap_or(Err(Error::WorkerStopped(name)))
    }
}

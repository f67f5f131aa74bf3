//! The async face of an embedder: a thin wrapper around a [`ModelHandle`].

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{Embed, EmbedKind, Embedder};
use crate::Result;
use crate::worker::{ModelHandle, WorkerConfig};

/// Most texts in one job on the model's thread.
pub const JOB_TEXTS: usize = 16;
/// Most characters in one job (a longer single text is a job of its own;
/// the model truncates it to its token limit). On 2 cores a job this size
/// of Chinese text takes about 0.2 s with e5-small: what another caller
/// waits at most behind a large request (`assist-eval chat-batch`).
pub const JOB_CHARS: usize = 512;

/// Cut a request into jobs: indices of texts sorted by length (similar
/// lengths pad little), then taken in order while a job has room.
fn plan_jobs(texts: &[String]) -> Vec<Vec<usize>> {
    let mut order: Vec<(usize, usize)> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| (t.chars().count(), i))
        .collect();
    order.sort_unstable();
    let mut jobs: Vec<Vec<usize>> = Vec::new();
    let mut chars = 0;
    for (len, i) in order {
        match jobs.last_mut() {
            Some(job) if job.len() < JOB_TEXTS && chars + len <= JOB_CHARS => {
                job.push(i);
                chars += len;
            }
            _ => {
                jobs.push(vec![i]);
                chars = len;
            }
        }
    }
    jobs
}

/// A cloneable handle to an embedder running on its own owner thread.
///
/// Every call is one or more jobs on the model's bounded queue (see
/// [`EmbedHandle::embed`]): a full queue fails at once with
/// [`Error::Overloaded`](crate::Error::Overloaded), and a job whose caller's
/// future was dropped before its turn is skipped.
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
    ///
    /// A large request is cut into jobs of at most [`JOB_TEXTS`] texts and
    /// [`JOB_CHARS`] characters (texts of similar length together), queued
    /// one after another: another caller's job waits for at most one of
    /// them, not for the whole request, and a request whose future is
    /// dropped (its HTTP request timed out or was cancelled) stops after the
    /// job that is running.
    pub async fn embed(&self, texts: Vec<String>, kind: EmbedKind) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let n = texts.len();
        let mut out: Vec<Vec<f32>> = vec![Vec::new(); n];
        for job in plan_jobs(&texts) {
            let batch: Vec<String> = job.iter().map(|&i| texts[i].clone()).collect();
            let vectors = self
                .model
                .run(move |m: &mut Box<dyn Embed>| {
                    let refs: Vec<&str> = batch.iter().map(String::as_str).collect();
                    m.embed(&refs, kind)
                })
                .await?;
            for (i, v) in job.into_iter().zip(vectors) {
                out[i] = v;
            }
        }
        Ok(out)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_hold_similar_lengths_within_the_budget() {
        let texts: Vec<String> = [5, 4000, 10, 700, 700, 300, 1]
            .iter()
            .map(|&n| "字".repeat(n))
            .collect();
        let jobs = plan_jobs(&texts);
        // Every text once.
        let mut all: Vec<usize> = jobs.iter().flatten().copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..texts.len()).collect::<Vec<_>>());
        for job in &jobs {
            let chars: usize = job.iter().map(|&i| texts[i].chars().count()).sum();
            assert!(job.len() == 1 || chars <= JOB_CHARS, "{job:?}: {chars}");
            assert!(job.len() <= JOB_TEXTS);
        }
        // The long text is alone; the short ones share a job.
        assert!(jobs.contains(&vec![1]));
        assert_eq!(jobs[0], vec![6, 0, 2, 5]);
        assert_eq!(jobs[1], vec![3]);
        let many: Vec<String> = (0..100).map(|_| "a".into()).collect();
        assert_eq!(plan_jobs(&many).len(), 7);
    }

    #[tokio::test]
    async fn a_large_request_is_many_jobs_and_keeps_its_order() {
        let handle = EmbedHandle::fake(WorkerConfig::new("embed", 4)).unwrap();
        let texts: Vec<String> = (0..70)
            .map(|i| format!("text {i} {}", "x".repeat(i * 40)))
            .collect();
        let each: Vec<Vec<f32>> = {
            let mut v = Vec::new();
            for t in &texts {
                v.push(handle.embed_one(t.clone(), EmbedKind::Query).await.unwrap());
            }
            v
        };
        let all = handle.embed(texts, EmbedKind::Query).await.unwrap();
        assert_eq!(all, each);
        handle.shutdown();
    }

    /// Counts the texts it embedded and takes 20 ms per job.
    struct Slow(Arc<AtomicUsize>);

    impl Embed for Slow {
        fn embed(&mut self, texts: &[&str], _: EmbedKind) -> Result<Vec<Vec<f32>>> {
            std::thread::sleep(std::time::Duration::from_millis(20));
            self.0.fetch_add(texts.len(), Ordering::SeqCst);
            Ok(texts.iter().map(|_| vec![1.0, 0.0]).collect())
        }
        fn dim(&self) -> usize {
            2
        }
    }

    #[tokio::test]
    async fn a_dropped_request_stops_and_others_get_turns_meanwhile() {
        let done = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&done);
        let handle =
            EmbedHandle::spawn_with(WorkerConfig::new("embed", 8), move || Ok(Slow(counter)))
                .unwrap();
        // 3,200 texts: 200 jobs of 16, about 4 s of work.
        let big: Vec<String> = (0..3200).map(|i| format!("t{i}")).collect();
        let worker = handle.clone();
        let task = tokio::spawn(async move { worker.embed(big, EmbedKind::Passage).await });
        // Another caller's requests are served between the big one's jobs:
        // each of them finishes while the big request is still running.
        for _ in 0..5 {
            handle
                .embed_one("small".into(), EmbedKind::Query)
                .await
                .unwrap();
            assert!(
                !task.is_finished(),
                "a small request waited for the whole batch"
            );
        }
        // Its HTTP request went away: the rest of its jobs never run.
        task.abort();
        let _ = task.await;
        let at_abort = done.load(Ordering::SeqCst);
        std::thread::sleep(std::time::Duration::from_millis(200));
        let after = done.load(Ordering::SeqCst);
        assert!(
            after <= at_abort + JOB_TEXTS,
            "{at_abort} texts when aborted, {after} later"
        );
        assert!(after < 3200, "the whole dropped request ran");
        handle.shutdown();
    }
}

//! One owner OS thread per model.
//!
//! Candle's forward passes take `&mut self` (they keep a KV cache), and a
//! forward pass can run for seconds. So a model lives on exactly one thread of
//! its own, and async code talks to it through a [`ModelHandle`]: a cheap,
//! cloneable sender on a *bounded* channel. Each job carries a oneshot reply
//! and the caller's tracing span, so the logs of the inference are attached
//! to the request that asked for it.
//!
//! Rules this module enforces:
//! - the model is loaded on its own thread, and [`ModelHandle::spawn`] returns
//!   only after loading succeeded or failed, so a server can refuse to start
//!   (or report not-ready) instead of failing on the first request;
//! - a full queue is refused at once with [`Error::Overloaded`] (HTTP 503 +
//!   `Retry-After` upstream), never an unbounded wait;
//! - a job whose caller has gone away (request cancelled, client hung up) is
//!   skipped without running;
//! - a panic inside a job becomes an [`Error::Inference`] for that caller and
//!   the thread keeps serving;
//! - [`ModelHandle::shutdown`] finishes the jobs already queued, then stops the
//!   thread and joins it.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tracing::Span;

use crate::{Error, Result};

/// How a model worker is set up.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Name used in logs, metrics and errors (e.g. `asr`, `llm`).
    pub name: String,
    /// Jobs that may wait in the queue before callers get `Overloaded`.
    pub capacity: usize,
    /// What `Overloaded` tells callers to wait before retrying.
    pub retry_after_secs: u64,
}

impl WorkerConfig {
    pub fn new(name: impl Into<String>, capacity: usize) -> Self {
        WorkerConfig {
            name: name.into(),
            capacity: capacity.max(1),
            retry_after_secs: 1,
        }
    }
}

type Job<M> = Box<dyn FnOnce(&mut M) + Send>;

struct Shared {
    name: String,
    capacity: usize,
    retry_after_secs: u64,
    depth: AtomicUsize,
    stopping: AtomicBool,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// A cloneable handle to a model running on its owner thread.
pub struct ModelHandle<M> {
    tx: SyncSender<Job<M>>,
    shared: Arc<Shared>,
}

impl<M> Clone for ModelHandle<M> {
    fn clone(&self) -> Self {
        ModelHandle {
            tx: self.tx.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<M> std::fmt::Debug for ModelHandle<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelHandle")
            .field("name", &self.shared.name)
            .field("capacity", &self.shared.capacity)
            .field("queue_depth", &self.queue_depth())
            .finish()
    }
}

impl<M: 'static> ModelHandle<M> {
    /// Start the owner thread, load the model on it with `load`, and wait until
    /// loading has finished. Blocking: call it at startup or from
    /// `spawn_blocking`, not from inside an async task.
    pub fn spawn<F>(config: WorkerConfig, load: F) -> Result<Self>
    where
        F: FnOnce() -> Result<M> + Send + 'static,
    {
        let (tx, rx) = mpsc::sync_channel::<Job<M>>(config.capacity);
        let (loaded_tx, loaded_rx) = mpsc::channel::<Result<()>>();
        let shared = Arc::new(Shared {
            name: config.name.clone(),
            capacity: config.capacity,
            retry_after_secs: config.retry_after_secs,
            depth: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
            thread: Mutex::new(None),
        });
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(format!("model-{}", config.name))
            .spawn(move || {
                let started = Instant::now();
                let mut model = match catch_unwind(AssertUnwindSafe(load)) {
                    Ok(Ok(model)) => model,
                    Ok(Err(err)) => {
                        let _ = loaded_tx.send(Err(err));
                        return;
                    }
                    Err(panic) => {
                        let _ = loaded_tx.send(Err(Error::Load {
                            model: thread_shared.name.clone(),
                            reason: panic_message(&panic),
                        }));
                        return;
                    }
                };
                tracing::info!(
                    model = %thread_shared.name,
                    load_ms = started.elapsed().as_millis() as u64,
                    "model loaded"
                );
                let _ = loaded_tx.send(Ok(()));
                serve(&thread_shared, rx, &mut model);
                tracing::debug!(model = %thread_shared.name, "model worker stopped");
            })
            .map_err(|err| Error::Load {
                model: config.name.clone(),
                reason: format!("could not start the owner thread: {err}"),
            })?;
        let loaded = loaded_rx.recv().unwrap_or_else(|_| {
            Err(Error::Load {
                model: config.name.clone(),
                reason: "the owner thread exited while loading".into(),
            })
        });
        match loaded {
            Ok(()) => {
                *lock(&shared.thread) = Some(thread);
                Ok(ModelHandle { tx, shared })
            }
            Err(err) => {
                let _ = thread.join();
                Err(err)
            }
        }
    }

    /// Run `job` on the model's thread and wait for its result.
    ///
    /// Fails at once with [`Error::Overloaded`] when the queue is full and with
    /// [`Error::WorkerStopped`] after shutdown. If the returned future is dropped
    /// before the job starts, the job is skipped.
    pub async fn run<R, F>(&self, job: F) -> Result<R>
    where
        F: FnOnce(&mut M) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let rx = self.submit(job)?;
        match rx.await {
            Ok(result) => result,
            Err(_) => Err(Error::WorkerStopped(self.shared.name.clone())),
        }
    }

    /// Queue `job` and return the receiver of its result without waiting.
    pub fn submit<R, F>(&self, job: F) -> Result<oneshot::Receiver<Result<R>>>
    where
        F: FnOnce(&mut M) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let shared = &self.shared;
        if shared.stopping.load(Ordering::SeqCst) {
            return Err(Error::WorkerStopped(shared.name.clone()));
        }
        let (reply_tx, reply_rx) = oneshot::channel::<Result<R>>();
        let span = Span::current();
        let name = shared.name.clone();
        let boxed: Job<M> = Box::new(move |model: &mut M| {
            if reply_tx.is_closed() {
                metrics::counter!("assist_model_jobs_skipped_total", "model" => name.clone())
                    .increment(1);
                tracing::debug!(parent: &span, model = %name, "caller went away, job skipped");
                return;
            }
            let _entered = span.enter();
            let started = Instant::now();
            let result = match catch_unwind(AssertUnwindSafe(|| job(model))) {
                Ok(result) => result,
                Err(panic) => {
                    let reason = panic_message(&panic);
                    tracing::error!(model = %name, %reason, "inference panicked");
                    Err(Error::Inference {
                        model: name.clone(),
                        reason,
                    })
                }
            };
            let secs = started.elapsed().as_secs_f64();
            metrics::histogram!("assist_model_inference_seconds", "model" => name.clone())
                .record(secs);
            let _ = reply_tx.send(result);
        });
        shared.depth.fetch_add(1, Ordering::SeqCst);
        match self.tx.try_send(boxed) {
            Ok(()) => {
                metrics::gauge!("assist_model_queue_depth", "model" => shared.name.clone())
                    .set(shared.depth.load(Ordering::SeqCst) as f64);
                Ok(reply_rx)
            }
            Err(TrySendError::Full(_)) => {
                shared.depth.fetch_sub(1, Ordering::SeqCst);
                metrics::counter!("assist_model_overloaded_total", "model" => shared.name.clone())
                    .increment(1);
                Err(Error::Overloaded {
                    model: shared.name.clone(),
                    capacity: shared.capacity,
                    retry_after_secs: shared.retry_after_secs,
                })
            }
            Err(TrySendError::Disconnected(_)) => {
                shared.depth.fetch_sub(1, Ordering::SeqCst);
                Err(Error::WorkerStopped(shared.name.clone()))
            }
        }
    }
}

impl<M> ModelHandle<M> {
    /// The model's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Jobs queued or running right now.
    pub fn queue_depth(&self) -> usize {
        self.shared.depth.load(Ordering::SeqCst)
    }

    /// Whether the owner thread is still serving.
    pub fn is_running(&self) -> bool {
        !self.shared.stopping.load(Ordering::SeqCst)
            && lock(&self.shared.thread)
                .as_ref()
                .is_some_and(|t| !t.is_finished())
    }

    /// Refuse new jobs, finish the queued ones, stop the owner thread and wait
    /// for it. Safe to call more than once and from any clone.
    pub fn shutdown(&self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        let thread = lock(&self.shared.thread).take();
        if let Some(thread) = thread
            && thread.join().is_err()
        {
            tracing::error!(model = %self.shared.name, "model worker thread panicked");
        }
    }
}

fn serve<M>(shared: &Shared, rx: mpsc::Receiver<Job<M>>, model: &mut M) {
    loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(job) => {
                job(model);
                let depth = shared.depth.fetch_sub(1, Ordering::SeqCst) - 1;
                metrics::gauge!("assist_model_queue_depth", "model" => shared.name.clone())
                    .set(depth as f64);
            }
            // Stop only once the queue is empty, so accepted jobs are finished.
            Err(RecvTimeoutError::Timeout) => {
                if shared.stopping.load(Ordering::SeqCst) {
                    return;
                }
            }
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock only means another thread panicked while holding this
    // trivial guard; the data (an Option<JoinHandle>) is still consistent.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc as std_mpsc;

    #[tokio::test]
    async fn runs_jobs_on_the_owner_thread() {
        let handle = ModelHandle::spawn(WorkerConfig::new("t", 2), || {
            Ok(std::thread::current().name().map(str::to_string))
        })
        .unwrap();
        let name = handle
            .run(|m: &mut Option<String>| Ok(m.clone()))
            .await
            .unwrap();
        assert_eq!(name.as_deref(), Some("model-t"));
        let on = handle
            .run(|_: &mut Option<String>| Ok(std::thread::current().name().map(str::to_string)))
            .await
            .unwrap();
        assert_eq!(on.as_deref(), Some("model-t"));
        handle.shutdown();
    }

    #[test]
    fn load_failure_is_reported_before_spawn_returns() {
        let err = ModelHandle::<()>::spawn(WorkerConfig::new("bad", 1), || {
            Err(Error::Load {
                model: "bad".into(),
                reason: "no weights".into(),
            })
        })
        .unwrap_err();
        assert!(err.to_string().contains("no weights"), "{err}");

        let err = ModelHandle::<()>::spawn(WorkerConfig::new("boom", 1), || panic!("kaboom"))
            .unwrap_err();
        assert!(err.to_string().contains("kaboom"), "{err}");
    }

    #[tokio::test]
    async fn full_queue_is_overloaded_not_a_wait() {
        let handle = ModelHandle::spawn(WorkerConfig::new("slow", 1), || Ok(())).unwrap();
        let (gate_tx, gate_rx) = std_mpsc::channel::<()>();
        let gate_rx = Arc::new(Mutex::new(gate_rx));
        // Job 1 occupies the thread until released; job 2 fills the queue.
        let g = Arc::clone(&gate_rx);
        let first = handle
            .submit(move |_: &mut ()| {
                let _ = lock(&g).recv();
                Ok(1)
            })
            .unwrap();
        // Give the worker time to take job 1 off the channel.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let second = handle.submit(|_: &mut ()| Ok(2)).unwrap();
        let third = handle.submit(|_: &mut ()| Ok(3));
        match third {
            Err(Error::Overloaded {
                retry_after_secs, ..
            }) => assert_eq!(retry_after_secs, 1),
            other => panic!("expected overloaded, got {other:?}"),
        }
        gate_tx.send(()).unwrap();
        assert_eq!(first.await.unwrap().unwrap(), 1);
        assert_eq!(second.await.unwrap().unwrap(), 2);
        handle.shutdown();
    }

    #[tokio::test]
    async fn panics_become_errors_and_the_worker_survives() {
        let handle = ModelHandle::spawn(WorkerConfig::new("p", 2), || Ok(0u32)).unwrap();
        let err = handle
            .run(|_: &mut u32| -> Result<()> { panic!("bad tensor") })
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Inference { .. }), "{err}");
        let ok = handle
            .run(|m: &mut u32| {
                *m += 1;
                Ok(*m)
            })
            .await
            .unwrap();
        assert_eq!(ok, 1);
        handle.shutdown();
    }

    #[tokio::test]
    async fn abandoned_jobs_are_skipped() {
        let handle = ModelHandle::spawn(WorkerConfig::new("skip", 4), || Ok(0u32)).unwrap();
        let (gate_tx, gate_rx) = std_mpsc::channel::<()>();
        let gate_rx = Arc::new(Mutex::new(gate_rx));
        let g = Arc::clone(&gate_rx);
        let blocker = handle
            .submit(move |_: &mut u32| {
                let _ = lock(&g).recv();
                Ok(())
            })
            .unwrap();
        let abandoned = handle
            .submit(|m: &mut u32| {
                *m += 100;
                Ok(())
            })
            .unwrap();
        drop(abandoned);
        gate_tx.send(()).unwrap();
        blocker.await.unwrap().unwrap();
        let value = handle.run(|m: &mut u32| Ok(*m)).await.unwrap();
        assert_eq!(value, 0, "the abandoned job must not have run");
        handle.shutdown();
    }

    #[tokio::test]
    async fn shutdown_finishes_queued_jobs_then_refuses() {
        let handle = ModelHandle::spawn(WorkerConfig::new("s", 8), || Ok(0u32)).unwrap();
        let mut pending = Vec::new();
        for i in 0..5u32 {
            pending.push(
                handle
                    .submit(move |m: &mut u32| {
                        std::thread::sleep(Duration::from_millis(10));
                        *m += i;
                        Ok(*m)
                    })
                    .unwrap(),
            );
        }
        let h2 = handle.clone();
        tokio::task::spawn_blocking(move || h2.shutdown())
            .await
            .unwrap();
        let mut last = 0;
        for rx in pending {
            last = rx.await.unwrap().unwrap();
        }
        assert_eq!(last, 10);
        assert!(!handle.is_running());
        let err = handle.run(|m: &mut u32| Ok(*m)).await.unwrap_err();
        assert!(matches!(err, Error::WorkerStopped(_)), "{err}");
    }
}

//! Job handlers and the runner that leases jobs for them, with heartbeats.

use super::*;

/// What a handler reports when it finished without error.
#[derive(Debug)]
pub enum JobOutcome {
    /// The runner marks the job done with this result.
    Done(Option<Value>),
    /// The handler already called [`JobQueue::complete_with`] itself.
    AlreadyCompleted,
}

/// A failed attempt.
#[derive(Debug)]
pub struct JobFailure {
    pub message: String,
    /// `false`: dead-letter at once (e.g. a corrupt upload will not get better).
    pub retryable: bool,
}

impl JobFailure {
    pub fn retry(message: impl Into<String>) -> Self {
        JobFailure {
            message: message.into(),
            retryable: true,
        }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        JobFailure {
            message: message.into(),
            retryable: false,
        }
    }
}

pub type JobFuture<'a> = Pin<Box<dyn Future<Output = Result<JobOutcome, JobFailure>> + Send + 'a>>;

/// Runs the jobs of one queue. Capability issues register their handlers.
pub trait JobHandler: Send + Sync + 'static {
    /// The queue this handler works.
    fn queue(&self) -> &str;
    /// Do the work. `cancel` fires when the lease is lost; stop early then.
    fn run<'a>(
        &'a self,
        queue: &'a JobQueue,
        lease: &'a Lease,
        cancel: CancellationToken,
    ) -> JobFuture<'a>;
}

/// Leases jobs for a set of handlers and runs them, with heartbeats.
#[derive(Clone)]
pub struct JobRunner {
    queue: JobQueue,
    handlers: Vec<Arc<dyn JobHandler>>,
    poll: Duration,
}

impl std::fmt::Debug for JobRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobRunner")
            .field(
                "queues",
                &self
                    .handlers
                    .iter()
                    .map(|h| h.queue().to_string())
                    .collect::<Vec<_>>(),
            )
            .field("poll", &self.poll)
            .finish()
    }
}

impl JobRunner {
    pub fn new(queue: JobQueue, handlers: Vec<Arc<dyn JobHandler>>, poll: Duration) -> Self {
        JobRunner {
            queue,
            handlers,
            poll,
        }
    }

    /// Start `n` runner tasks. They stop leasing when `shutdown` fires and
    /// finish the job in hand; await the returned handles to wait for that.
    pub fn spawn(&self, n: usize, shutdown: CancellationToken) -> Vec<tokio::task::JoinHandle<()>> {
        if self.handlers.is_empty() {
            return Vec::new();
        }
        (0..n)
            .map(|i| {
                let runner = self.clone();
                let shutdown = shutdown.clone();
                let node = self.queue.node().map_or_else(hostname, str::to_string);
                let owner = format!("{node}:{}:{i}", std::process::id());
                tokio::spawn(async move { runner.run_loop(owner, shutdown).await })
            })
            .collect()
    }

    async fn run_loop(&self, owner: String, shutdown: CancellationToken) {
        tracing::debug!(%owner, "job runner started");
        while !shutdown.is_cancelled() {
            let mut worked = false;
            for handler in &self.handlers {
                if shutdown.is_cancelled() {
                    break;
                }
                match self.queue.lease(handler.queue(), &owner).await {
                    Ok(Some(lease)) => {
                        worked = true;
                        self.run_one(Arc::clone(handler), lease).await;
                    }
                    Ok(None) => {}
                    Err(err) => {
                        tracing::error!(error = %err, queue = handler.queue(), "could not lease a job");
                    }
                }
            }
            if !worked {
                tokio::select! {
                    _ = tokio::time::sleep(self.poll) => {}
                    _ = shutdown.cancelled() => {}
                }
            }
        }
        tracing::debug!(%owner, "job runner stopped");
    }

    /// Run one leased job to its end (done, retry or dead).
    pub async fn run_one(&self, handler: Arc<dyn JobHandler>, lease: Lease) {
        let span = tracing::info_span!("job", id = lease.id, queue = %lease.queue, attempt = lease.attempt);
        let _ = tracing::Instrument::instrument(self.run_one_inner(handler, lease), span).await;
    }

    async fn run_one_inner(&self, handler: Arc<dyn JobHandler>, lease: Lease) {
        let started = std::time::Instant::now();
        let lost = CancellationToken::new();
        // Heartbeat at a third of the lease so one missed beat is harmless.
        let beat_every = (self.queue.config.lease / 3).max(Duration::from_millis(100));
        let hb_queue = self.queue.clone();
        let hb_lost = lost.clone();
        let mut hb_lease = lease.clone();
        let heartbeat = tokio::spawn(async move {
            loop {
                tokio::time::sleep(beat_every).await;
                match hb_queue.heartbeat(&mut hb_lease).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(job = hb_lease.id, "lease lost; abandoning the job");
                        hb_lost.cancel();
                        return;
                    }
                    Err(err) => tracing::warn!(error = %err, "heartbeat failed; will retry"),
                }
            }
        });
        let queue = self.queue.clone();
        let job_lease = lease.clone();
        let cancel = lost.clone();
        // Run on its own task so a panic in a handler is caught here.
        let result =
            tokio::spawn(async move { handler.run(&queue, &job_lease, cancel).await }).await;
        heartbeat.abort();
        let outcome = match result {
            Ok(Ok(JobOutcome::Done(value))) => {
                self.queue.complete(&lease, value).await.map(|_| "done")
            }
            Ok(Ok(JobOutcome::AlreadyCompleted)) => Ok("done"),
            Ok(Err(failure)) => self
                .queue
                .fail(&lease, &failure.message, !failure.retryable)
                .await
                .map(|s| if s == JobState::Dead { "dead" } else { "retry" }),
            Err(join) => self
                .queue
                .fail(&lease, &format!("job handler panicked: {join}"), false)
                .await
                .map(|_| "dead"),
        };
        let secs = started.elapsed().as_secs_f64();
        match outcome {
            Ok(what) => {
                metrics::histogram!("assist_job_seconds", "queue" => lease.queue.clone(), "outcome" => what)
                    .record(secs);
                tracing::info!(outcome = what, seconds = secs, "job finished");
            }
            Err(err) => tracing::warn!(error = %err, "job result not recorded"),
        }
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "node".to_string())
}

//! `/readyz`: is the database open and is every required model present and verified?
//!
//! Model verification (re-hashing the files) takes seconds for a gigabyte, so
//! it runs once in the background at startup; until it finishes, the model
//! checks say "verifying". Presence is checked on every call (cheap).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use assist_models::store::{ModelState, ModelStore};
use assist_protocol::ReadinessCheck;

/// Verification state of one required model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    Pending,
    Ok,
    Failed(String),
}

/// Readiness bookkeeping shared by the server and the startup tasks.
#[derive(Debug, Clone)]
pub struct Readiness {
    required: Arc<Vec<String>>,
    verified: Arc<RwLock<HashMap<String, Verified>>>,
    draining: Arc<std::sync::atomic::AtomicBool>,
}

impl Readiness {
    pub fn new(required: Vec<String>) -> Self {
        let required: Vec<String> = required
            .into_iter()
            .map(|r| r.trim().to_string())
            .filter(|r| !r.is_empty())
            .collect();
        Readiness {
            required: Arc::new(required),
            verified: Arc::new(RwLock::new(HashMap::new())),
            draining: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        }
    }

    pub fn required(&self) -> &[String] {
        &self.required
    }

    /// Record the outcome of verifying a required model.
    pub fn set_verified(&self, model: &str, v: Verified) {
        let mut map = self.verified.write().unwrap_or_else(|p| p.into_inner());
        map.insert(model.to_string(), v);
    }

    /// Mark every required model verified without hashing (when verification is off).
    pub fn skip_verification(&self) {
        for m in self.required.iter() {
            self.set_verified(m, Verified::Ok);
        }
    }

    /// Shutdown has begun: report not ready so load balancers stop sending.
    pub fn set_draining(&self) {
        self.draining
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Verify every required model in the background (blocking thread).
    pub fn spawn_verification(&self, store: ModelStore) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            for model in this.required.iter() {
                this.set_verified(model, Verified::Pending);
                let outcome = match store.verify(std::slice::from_ref(model)) {
                    Ok(statuses) => match statuses.iter().find(|s| {
                        !matches!(s.state, ModelState::Ready | ModelState::Registered { .. })
                    }) {
                        None if !statuses.is_empty() => Verified::Ok,
                        None => Verified::Failed(format!("model `{model}` is not in the store")),
                        Some(bad) => Verified::Failed(format!("{}: {:?}", bad.id, bad.state)),
                    },
                    Err(err) => Verified::Failed(err.to_string()),
                };
                tracing::info!(model = %model, outcome = ?outcome, "model verification finished");
                this.set_verified(model, outcome);
            }
        })
    }

    /// Model checks for the readiness report.
    pub fn model_checks(&self, store: &ModelStore) -> Vec<ReadinessCheck> {
        let verified = self
            .verified
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        self.required
            .iter()
            .map(|model| {
                let name = format!("model:{model}");
                match store.ready_path(model) {
                    Err(err) => ReadinessCheck {
                        name,
                        ok: false,
                        detail: err.to_string(),
                    },
                    Ok(path) => match verified.get(model) {
                        Some(Verified::Ok) => ReadinessCheck {
                            name,
                            ok: true,
                            detail: format!("verified at {}", path.display()),
                        },
                        Some(Verified::Failed(why)) => ReadinessCheck {
                            name,
                            ok: false,
                            detail: format!("verification failed: {why}; run `assist models fetch --only {model}`"),
                        },
                        Some(Verified::Pending) | None => ReadinessCheck {
                            name,
                            ok: false,
                            detail: "present, verifying checksums".into(),
                        },
                    },
                }
            })
            .collect()
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::SeqCst)
    }
}

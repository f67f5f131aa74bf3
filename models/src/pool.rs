//! Splitting work over candle's barrier pool, for the products gemm does not
//! split well (used by [`crate::ops`], [`crate::kernels`] and the models).

/// Threads of candle's barrier pool, the calling thread included.
pub(crate) fn pool_threads() -> usize {
    candle_core::utils::barrier_pool().n_workers() + 1
}

/// `f(0)`, …, `f(pool_threads() - 1)`, each on its own thread of candle's
/// barrier pool, and their results in that order. The pool's workers spin
/// briefly before sleeping, so dozens of short calls in a row (the products
/// of one query or one decoding step) do not each pay a thread wake-up, as
/// they would on rayon.
pub(crate) fn on_each_pool_thread<T: Send>(f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let pool = candle_core::utils::barrier_pool();
    let slots: Vec<std::sync::Mutex<Option<T>>> = (0..pool.n_workers() + 1)
        .map(|_| std::sync::Mutex::new(None))
        .collect();
    pool.execute(|tid| {
        let value = f(tid);
        *slots[tid].lock().unwrap_or_else(|p| p.into_inner()) = Some(value);
    });
    slots
        .into_iter()
        .map(|slot| {
            slot.into_inner()
                .unwrap_or_else(|p| p.into_inner())
                .expect("the barrier pool runs every thread's part")
        })
        .collect()
}

//! One computation shared by concurrent identical reads, its result reused for a short,
//! fixed time: a burst of the same request (a dashboard polling health, many clients
//! listing) costs one database ping or one root scan, not one per request.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

/// A value computed by at most one caller at a time and reused while it is fresh: younger
/// than `fresh_for` (counted from the start of its computation, so what a reader gets
/// never describes the world more than `fresh_for` ago plus the time the computation took)
/// and computed under the same `key` (a number that changes when the source does, so a
/// known change is never hidden). Callers arriving while a computation runs wait for it
/// and share its result. Errors are not kept: the next caller tries again.
#[derive(Debug)]
pub struct SharedRead<T> {
    fresh_for: Duration,
    slot: Mutex<Option<Kept<T>>>,
}

#[derive(Debug)]
struct Kept<T> {
    key: u64,
    started: Instant,
    value: Arc<T>,
}

impl<T> SharedRead<T> {
    /// Nothing kept yet; results will be reused for `fresh_for`.
    pub fn new(fresh_for: Duration) -> SharedRead<T> {
        SharedRead {
            fresh_for,
            slot: Mutex::new(None),
        }
    }

    /// The kept value if fresh and computed under `key`, else the result of `compute`
    /// (kept if `Ok`). Concurrent callers wait for the one computing.
    pub async fn get<E, Fut>(&self, key: u64, compute: impl FnOnce() -> Fut) -> Result<Arc<T>, E>
    where
        Fut: Future<Output = Result<T, E>>,
    {
        let mut slot = self.slot.lock().await;
        if let Some(kept) = slot.as_ref()
            && kept.key == key
            && kept.started.elapsed() < self.fresh_for
        {
            return Ok(kept.value.clone());
        }
        let started = Instant::now();
        let value = Arc::new(compute().await?);
        *slot = Some(Kept {
            key,
            started,
            value: value.clone(),
        });
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    const LONG: Duration = Duration::from_secs(3600);

    async fn counted(
        read: &SharedRead<usize>,
        key: u64,
        calls: &AtomicUsize,
    ) -> Result<Arc<usize>, ()> {
        read.get(key, || async {
            tokio::task::yield_now().await;
            Ok(calls.fetch_add(1, Ordering::SeqCst))
        })
        .await
    }

    #[tokio::test]
    async fn concurrent_reads_share_one_computation() {
        let read = SharedRead::new(LONG);
        let calls = AtomicUsize::new(0);
        let results = futures::future::join_all((0..20).map(|_| counted(&read, 1, &calls))).await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(results.iter().all(|r| **r.as_ref().unwrap() == 0));
    }

    #[tokio::test]
    async fn table_when_a_result_is_reused() {
        // (fresh_for, key of the second read, second computation runs)
        let cases = [(LONG, 1, false), (LONG, 2, true), (Duration::ZERO, 1, true)];
        for (fresh_for, second_key, recomputes) in cases {
            let read = SharedRead::new(fresh_for);
            let calls = AtomicUsize::new(0);
            counted(&read, 1, &calls).await.unwrap();
            let second = counted(&read, second_key, &calls).await.unwrap();
            assert_eq!(*second == 1, recomputes, "{fresh_for:?} key {second_key}");
        }
    }

    #[tokio::test]
    async fn an_error_is_not_kept() {
        let read = SharedRead::<usize>::new(LONG);
        assert_eq!(read.get(1, || async { Err("down") }).await, Err("down"));
        assert_eq!(*read.get(1, || async { Ok::<_, ()>(7) }).await.unwrap(), 7);
    }
}

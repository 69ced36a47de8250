//! The scheduling priority of the server's HTTP threads: lower than the process's, so that
//! requests never take the CPU from a backup or restore.
//!
//! Linux niceness is per thread (`setpriority` on a thread id), and a new thread or child
//! process inherits its creator's. `coffer serve` reads the niceness the HTTP threads get
//! ([`http_niceness`]) on its main thread, then sets it on each thread of its HTTP runtime
//! when it starts ([`set_current_thread`] in the runtime's `on_thread_start`: an absolute
//! value, since the blocking pool's threads are created by already lowered workers). Jobs
//! start from a thread that is never lowered ([`crate::launcher::JobLauncher`]), since an
//! unprivileged process cannot raise a thread's priority again.

/// How much nicer than before an HTTP thread runs: under contention the kernel gives a thread
/// at nice +10 about a tenth of the CPU of one at nice 0.
pub const HTTP_NICENESS_STEP: i32 = 10;

/// The highest niceness Linux allows.
const MAX_NICENESS: i32 = 19;

/// The niceness a thread at `current` is lowered to: [`HTTP_NICENESS_STEP`] more, at most 19.
pub fn lowered(current: i32) -> i32 {
    current
        .saturating_add(HTTP_NICENESS_STEP)
        .min(MAX_NICENESS)
        .max(current)
}

/// The niceness for HTTP threads: [`lowered`] of the calling thread's. Fails where
/// `getpriority` is refused (e.g. a seccomp filter).
pub fn http_niceness() -> std::io::Result<i32> {
    let current = rustix::process::getpriority_process(Some(rustix::thread::gettid()))?;
    Ok(lowered(current))
}

/// Sets the calling thread's niceness. Fails where `setpriority` is refused (e.g. a seccomp
/// filter), or, for an unprivileged process, when `niceness` is below the thread's own;
/// the thread then keeps its priority.
pub fn set_current_thread(niceness: i32) -> std::io::Result<()> {
    rustix::process::setpriority_process(Some(rustix::thread::gettid()), niceness)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowered_adds_ten_up_to_nineteen() {
        for (current, want) in [
            (-20, -10),
            (-5, 5),
            (0, 10),
            (5, 15),
            (9, 19),
            (10, 19),
            (19, 19),
        ] {
            assert_eq!(lowered(current), want, "from {current}");
        }
    }

    #[test]
    fn a_lowered_thread_is_ten_nicer_and_its_creator_is_unchanged() {
        fn niceness() -> i32 {
            rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap()
        }
        let before = niceness();
        let target = http_niceness().unwrap();
        assert_eq!(target, lowered(before));
        let (inside, created) = std::thread::spawn(move || {
            set_current_thread(target).unwrap();
            let inside = niceness();
            // A thread it creates inherits the lowered priority, and setting the same
            // niceness again changes nothing (the blocking pool's threads).
            let created = std::thread::spawn(move || {
                set_current_thread(target).unwrap();
                niceness()
            })
            .join()
            .unwrap();
            (inside, created)
        })
        .join()
        .unwrap();
        assert_eq!((inside, created), (target, target));
        assert_eq!(niceness(), before);
    }
}

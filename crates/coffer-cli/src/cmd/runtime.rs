//! The tokio runtime of the commands that talk to the remote: coffer-core's remote API is
//! `async` and starts no runtime of its own.

use anyhow::Context;

/// Runs `work` (a remote operation of coffer-core) to completion on a runtime built for it.
///
/// Multi-threaded with two workers: the multipart parts in flight and the HTTP connections
/// (TLS included) progress on the workers while the command's own task reads and hashes the
/// next chunk on this thread; more workers would idle, since the network is the bound. A
/// current-thread runtime would serialize hashing with sending.
pub fn block_on<F: Future>(work: F) -> anyhow::Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("coffer-remote")
        .enable_all()
        .build()
        .context("cannot start the I/O runtime for the remote")?;
    Ok(runtime.block_on(work))
}

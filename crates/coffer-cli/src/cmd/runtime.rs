//! The tokio runtime of the commands that reach the remote: coffer-core's remote API is
//! `async` and starts no runtime of its own.

use anyhow::Context;
use tokio::runtime::Runtime;

/// A runtime for one command's remote work: `block_on` the core's async methods, or hand
/// its handle to a [`coffer_core::RunContext`] for a backup that syncs or a restore that
/// pulls.
///
/// Multi-threaded with two workers: the multipart parts in flight and the HTTP connections
/// (TLS included) progress on the workers while the command's own task reads and hashes the
/// next chunk on this thread; more workers would idle, since the network is the bound. A
/// current-thread runtime would serialize hashing with sending, and could not serve the
/// core's blocking methods, which wait on it from this thread.
pub fn start() -> anyhow::Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("coffer-remote")
        .enable_all()
        .build()
        .context("cannot start the I/O runtime for the remote")
}

//! One module per subcommand, plus what they share: [`signals`] and the remote's [`runtime`].

pub mod backup;
pub mod demo;
pub mod export;
pub mod import;
pub mod keygen;
pub mod list;
pub mod prune;
pub mod pull;
pub mod restore;
pub mod runtime;
pub mod serve;
pub mod signals;
pub mod status;
pub mod sync;
pub mod systemd;
pub mod verify;

pub use signals::cancel_on_signals;

/// The default of `--jobs`: the cores this process may use.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

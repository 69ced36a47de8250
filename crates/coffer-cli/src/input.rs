//! A bundle read from standard input (an upload piped in): never waited on forever, and
//! stopped at once by SIGINT/SIGTERM, although the import holds the backup root's lock.

use std::io::{self, IsTerminal, Read};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use coffer_core::{CancelFlag, Error, ErrorKind};
use rustix::event::{PollFd, PollFlags, Timespec, poll};

/// How long standard input may send nothing before the import gives up. A stalled upload
/// must not hold the root's lock (and so every nightly backup) for ever.
pub const STDIN_IDLE_LIMIT: Duration = Duration::from_secs(10 * 60);

/// How often a wait for input looks at the cancellation flag.
const TICK: Timespec = Timespec {
    tv_sec: 1,
    tv_nsec: 0,
};

/// Standard input for a bundle: reads the file descriptor directly (no buffer that `poll`
/// cannot see), waiting in `poll` so that a signal or the idle limit ends the wait.
pub struct BundleStdin {
    cancel: CancelFlag,
    idle_limit: Duration,
}

impl BundleStdin {
    /// Standard input as a bundle source; refused when it is a terminal (a bundle is binary
    /// data, typed input is a mistake).
    pub fn open(cancel: &CancelFlag) -> Result<BundleStdin, Error> {
        if io::stdin().is_terminal() {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                "refusing to read a bundle from a terminal: pipe it in (coffer import - < FILE), or give its path",
            ));
        }
        Ok(BundleStdin {
            cancel: cancel.clone(),
            idle_limit: STDIN_IDLE_LIMIT,
        })
    }
}

impl Read for BundleStdin {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let stdin = io::stdin();
        let fd = stdin.as_fd();
        let waiting_since = Instant::now();
        loop {
            self.cancel.check()?;
            let mut fds = [PollFd::new(&fd, PollFlags::IN)];
            match poll(&mut fds, Some(&TICK)) {
                // Readable, or end of input / hang-up: read says which.
                Ok(n) if n > 0 => break,
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
            if waiting_since.elapsed() >= self.idle_limit {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "standard input sent nothing for {}: giving up",
                        humantime::format_duration(self.idle_limit)
                    ),
                ));
            }
        }
        loop {
            match rustix::io::read(fd, &mut *buf) {
                Ok(n) => return Ok(n),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

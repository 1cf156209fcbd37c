//! What the accept loop does about the process's open-file limit: the
//! connection cap is fitted under it at start, and an accept that fails for
//! lack of a resource (EMFILE, ENFILE, ENOBUFS, ENOMEM) pauses the loop,
//! doubling from 10 ms to 1 s, instead of spinning on a listener that stays
//! readable.

use std::io;
use std::time::Duration;
use tokio::time::Instant;

/// Files kept free beyond those open at start: collectors open some as they go
/// (perf counters of new cgroups, BPF objects, ingested files).
const SPARE_FILES: u64 = 64;
const FIRST_PAUSE: Duration = Duration::from_millis(10);
const LONGEST_PAUSE: Duration = Duration::from_secs(1);

/// `cap`, lowered (with one log line) when the open-file limit could not hold it.
pub fn fit_to_open_files(cap: usize) -> usize {
    let Some(limit) = open_file_limit() else { return cap };
    let open = std::fs::read_dir("/proc/self/fd").map_or(0, |dir| dir.take(limit as usize).count()) as u64;
    let room = limit.saturating_sub(open + SPARE_FILES).max(1);
    if (cap as u64) <= room {
        return cap;
    }
    let fitted = usize::try_from(room).unwrap_or(cap);
    tracing::warn!(
        max_connections = cap,
        serving = fitted,
        open_file_limit = limit,
        files_open = open,
        "--web.max-connections lowered to fit the open-file limit; raise it (LimitNOFILE=, ulimit -n) to serve more"
    );
    fitted
}

/// The soft RLIMIT_NOFILE, unless unlimited.
fn open_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we own and reads nothing else.
    let status = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    (status == 0 && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)
}

/// The accept loop's pause after a failure.
#[derive(Debug, Default)]
pub struct Pause {
    until: Option<Instant>,
    length: Duration,
}

impl Pause {
    pub fn active(&self) -> bool {
        self.until.is_some()
    }

    /// When the pause ends (now when there is none).
    pub fn until(&self) -> Instant {
        self.until.unwrap_or_else(Instant::now)
    }

    pub fn end(&mut self) {
        self.until = None;
    }

    /// An accept succeeded: the next failure starts from the shortest pause again.
    pub fn clear(&mut self) {
        self.length = Duration::ZERO;
    }

    /// An accept failed: pause when the cause is ours rather than one client's.
    pub fn after(&mut self, err: &io::Error) {
        if concerns_one_client(err) {
            tracing::debug!(error = %err, "accept failed for one connection");
            return;
        }
        self.length = (self.length * 2).clamp(FIRST_PAUSE, LONGEST_PAUSE);
        self.until = Some(Instant::now() + self.length);
        tracing::warn!(
            error = %err,
            pause = ?self.length,
            "cannot accept connections; pausing (if files are short, raise LimitNOFILE or lower --web.max-connections)"
        );
    }
}

/// Errors accept(2) reports for a connection that failed before it was taken
/// (the man page says to retry on them as on EAGAIN).
fn concerns_one_client(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(
            libc::ECONNABORTED
                | libc::EINTR
                | libc::EAGAIN
                | libc::EPROTO
                | libc::EPERM
                | libc::ENETDOWN
                | libc::ENOPROTOOPT
                | libc::EHOSTDOWN
                | libc::ENONET
                | libc::EHOSTUNREACH
                | libc::EOPNOTSUPP
                | libc::ENETUNREACH
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn resource_errors_pause_with_backoff_and_client_errors_do_not() {
        let mut pause = Pause::default();
        pause.after(&io::Error::from_raw_os_error(libc::ECONNABORTED));
        assert!(!pause.active());
        let mut lengths = Vec::new();
        for _ in 0..9 {
            pause.after(&io::Error::from_raw_os_error(libc::EMFILE));
            assert!(pause.active());
            lengths.push(pause.length);
            pause.end();
        }
        assert_eq!(lengths[0], FIRST_PAUSE);
        assert_eq!(lengths[1], FIRST_PAUSE * 2);
        assert_eq!(*lengths.last().unwrap(), LONGEST_PAUSE);
        pause.clear();
        pause.after(&io::Error::from_raw_os_error(libc::ENFILE));
        assert_eq!(pause.length, FIRST_PAUSE);
    }
}

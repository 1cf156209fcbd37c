//! The sampler's own counters (`memleak_sampler_stats`, sampler/src/stats.rs) read from a live process's memory: the mean it really samples with and the samples it dropped.
//!
//! Why from memory: the environment a process started with is not what `/proc/PID/environ`
//! shows once it rewrites that area for a process title (nginx, postgres, setproctitle).

/// The fields read, in the library's order (`repr(C)` `u64`s, append-only from version 1):
/// version, mean_bytes, sampled, sampled_freed, dropped.
const FIELDS: usize = 5;
/// Versions whose first `FIELDS` fields are these (a newer one only appends).
const LOWEST_VERSION: u64 = 1;
/// A version past this is not a sampler's counters (a wrong address, another build's symbol).
const HIGHEST_PLAUSIBLE_VERSION: u64 = 1 << 16;

/// What the library says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LibraryStats {
    /// The mean it samples with; `None` before its first allocation read it.
    pub mean: Option<u64>,
    /// Sampled allocations it never reported: its table of live sampled pointers was full.
    pub dropped: u64,
}

/// Reads the counters at `address` in process `pid`.
pub fn read(pid: u32, address: u64) -> Result<LibraryStats, String> {
    let mut words = [0u64; FIELDS];
    let bytes = std::mem::size_of_val(&words);
    let local = libc::iovec { iov_base: words.as_mut_ptr().cast(), iov_len: bytes };
    let remote = libc::iovec { iov_base: address as *mut libc::c_void, iov_len: bytes };
    // SAFETY: `local` covers `words`, which lives across the call; the kernel checks `remote`.
    let read = unsafe { libc::process_vm_readv(pid as libc::pid_t, &local, 1, &remote, 1, 0) };
    if read < 0 {
        let e = std::io::Error::last_os_error();
        return Err(format!("reading memleak_sampler_stats at {address:#x} of process {pid}: {e}"));
    }
    if usize::try_from(read).ok() != Some(bytes) {
        return Err(format!("memleak_sampler_stats at {address:#x} of process {pid}: {read} of {bytes} bytes read"));
    }
    parse(words)
}

fn parse([version, mean, _sampled, _freed, dropped]: [u64; FIELDS]) -> Result<LibraryStats, String> {
    if !(LOWEST_VERSION..=HIGHEST_PLAUSIBLE_VERSION).contains(&version) {
        return Err(format!(
            "memleak_sampler_stats has layout version {version}, not a sampler's (from {LOWEST_VERSION}): \
             a library this exporter does not know"
        ));
    }
    Ok(LibraryStats { mean: (mean != 0).then_some(mean), dropped })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_words_are_read_from_the_process() {
        // Ground truth for the layout is the capture test on the real library (capture_sampler.rs).
        let words: [u64; FIELDS] = [2, 1024, 9, 2, 7];
        let address = words.as_ptr() as u64;
        assert_eq!(read(std::process::id(), address), Ok(LibraryStats { mean: Some(1024), dropped: 7 }));
        assert!(read(std::process::id(), 8).is_err(), "an unmapped address");
    }

    #[test]
    fn an_unknown_layout_or_an_unread_mean_is_said() {
        assert!(parse([0, 1024, 0, 0, 0]).is_err());
        assert!(parse([u64::MAX, 1024, 0, 0, 0]).is_err());
        assert_eq!(parse([2, 0, 0, 0, 3]), Ok(LibraryStats { mean: None, dropped: 3 }));
    }
}

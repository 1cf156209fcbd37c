//! LeakGuard-style confirmation: a bounded pause of every thread of a process (`PTRACE_SEIZE` + `PTRACE_INTERRUPT`), a conservative scan of its registers and readable-writable memory for pointer-sized values that point into each sampled block (as LSan and Boehm GC do), and the resume; a block nothing points to is **definitely leaked**.
//!
//! Memory of any block counts as a root (only sampled blocks are known, so their heap cannot be
//! traced from the roots): a block referenced only by other leaked blocks counts as referenced,
//! as memcheck's "indirectly lost". References from inside a block to itself do not count. The
//! sampler's own table of sampled pointers is not scanned. The pause is bounded by `max_pause`:
//! past it the scan stops, the process resumes, and nothing is concluded. On every exit path
//! the threads are detached (`Drop`), and if the capture thread itself ended, the kernel would
//! detach them.

use std::path::Path;
use std::time::{Duration, Instant};

/// Most threads paused.
const MAX_THREADS: usize = 16384;
/// Bytes read from the process at a time.
const CHUNK: usize = 1 << 20;

/// What the scan concluded, or why it did not.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Per block (in the order given): whether anything points into it; `None` when not concluded.
    pub referenced: Option<Vec<bool>>,
    /// How long the process was stopped: from the first seize until every thread seen stopped
    /// was detached (bounded by the deadline, give or take a check).
    pub pause: Duration,
    /// After the pause, the wait for threads seized but not yet stopped (interrupts pending,
    /// such as a thread in `vfork`) to stop so they can be detached too (at most 500 ms): they
    /// were running meanwhile, but may stop briefly when their interrupt lands.
    pub detach_wait: Duration,
    pub scanned_bytes: u64,
    pub threads: usize,
    /// Why nothing was concluded.
    pub skipped: Option<String>,
}

/// A process's threads, seized and stopped; detached when dropped.
struct Stopped {
    tids: Vec<i32>,
    /// Threads whose stop was seen (detach needs the thread stopped).
    stopped: Vec<i32>,
}

/// When `Stopped::release` resumed the stopped threads, and how long it then waited for the others.
struct Released {
    resumed: Instant,
    waited: Duration,
}

impl Stopped {
    /// Resumes the threads seen stopped at once; then, since detach needs a stopped tracee, waits
    /// for the interrupts still pending on the others to land (500 ms in all) and detaches them.
    fn release(&mut self) -> Released {
        let stopped: Vec<i32> = self.stopped.drain(..).collect();
        for &tid in &stopped {
            // SAFETY: plain ptrace request on a thread id; failures (ESRCH: gone) are harmless.
            unsafe { libc::ptrace(libc::PTRACE_DETACH, tid, 0, 0) };
        }
        let resumed = Instant::now();
        let until = resumed + Duration::from_millis(500);
        let stragglers: Vec<i32> = self.tids.drain(..).filter(|t| !stopped.contains(t)).collect();
        for tid in stragglers {
            while Instant::now() < until && !matches!(wait_stop(tid), Wait::Stopped | Wait::Gone) {
                std::thread::sleep(Duration::from_micros(200));
            }
            // SAFETY: as above.
            unsafe { libc::ptrace(libc::PTRACE_DETACH, tid, 0, 0) };
        }
        Released { resumed, waited: resumed.elapsed() }
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        self.release();
    }
}

enum Wait {
    Stopped,
    Gone,
    NotYet,
}

fn wait_stop(tid: i32) -> Wait {
    let mut status = 0;
    // SAFETY: `status` is a valid out pointer; WNOHANG never blocks.
    let r = unsafe { libc::waitpid(tid, &mut status, libc::__WALL | libc::WNOHANG) };
    match r {
        0 => Wait::NotYet,
        r if r == tid && libc::WIFSTOPPED(status) => Wait::Stopped,
        _ => Wait::Gone,
    }
}

fn threads(procfs: &Path, pid: i32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir(procfs.join(pid.to_string()).join("task")) else { return Vec::new() };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).take(MAX_THREADS).collect()
}

/// Whether thread `tid` of `pid` is gone or a zombie (its `stat` state `Z` or `X`, or no `stat`).
fn exited(procfs: &Path, pid: i32, tid: i32) -> bool {
    let stat = procfs.join(pid.to_string()).join("task").join(tid.to_string()).join("stat");
    let Ok(text) = std::fs::read_to_string(stat) else { return true };
    let state = text.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next());
    matches!(state, None | Some('Z' | 'X'))
}

/// Stops every thread of `pid` before `deadline`.
fn stop(procfs: &Path, pid: i32, deadline: Instant, max_pause: Duration) -> Result<Stopped, (Stopped, String)> {
    let mut stopped = Stopped { tids: Vec::new(), stopped: Vec::new() };
    loop {
        let new: Vec<i32> = threads(procfs, pid).into_iter().filter(|t| !stopped.tids.contains(t)).collect();
        if new.is_empty() {
            break;
        }
        for tid in new {
            // SAFETY: plain ptrace requests on a thread id.
            if unsafe { libc::ptrace(libc::PTRACE_SEIZE, tid, 0, 0) } == 0 {
                stopped.tids.push(tid);
                // SAFETY: as above.
                unsafe { libc::ptrace(libc::PTRACE_INTERRUPT, tid, 0, 0) };
            } else if stopped.tids.is_empty() && tid == pid {
                let e = std::io::Error::last_os_error();
                return Err((
                    stopped,
                    format!("cannot seize process {pid} ({e}): needs CAP_SYS_PTRACE and a ptrace_scope that allows it"),
                ));
            }
        }
        for &tid in &stopped.tids {
            while !stopped.stopped.contains(&tid) {
                match wait_stop(tid) {
                    Wait::Stopped => stopped.stopped.push(tid),
                    Wait::Gone => break,
                    // A thread of a killed process may never report to its tracer (the leader
                    // waits for its parent to reap it): its state says it is gone.
                    Wait::NotYet if exited(procfs, pid, tid) => break,
                    Wait::NotYet if Instant::now() >= deadline => {
                        return Err((
                            stopped,
                            format!(
                                "its threads did not all stop within --capture.reachability.max-pause ({max_pause:?})"
                            ),
                        ));
                    }
                    Wait::NotYet => std::thread::sleep(Duration::from_micros(100)),
                }
            }
        }
        if stopped.stopped.is_empty() || exited(procfs, pid, pid) {
            return Err((stopped, format!("process {pid} exited during the pause")));
        }
    }
    Ok(stopped)
}

/// Blocks as sorted, non-overlapping ranges with their indices.
struct Index {
    ranges: Vec<(u64, u64, usize)>,
    low: u64,
    high: u64,
}

impl Index {
    fn new(blocks: &[(u64, u64)]) -> Index {
        let mut ranges: Vec<(u64, u64, usize)> =
            blocks.iter().enumerate().map(|(i, &(ptr, size))| (ptr, ptr.saturating_add(size.max(1)), i)).collect();
        ranges.sort_unstable();
        let low = ranges.first().map_or(u64::MAX, |r| r.0);
        let high = ranges.iter().map(|r| r.1).max().unwrap_or(0);
        Index { ranges, low, high }
    }

    fn find(&self, addr: u64) -> Option<usize> {
        if addr < self.low || addr >= self.high {
            return None;
        }
        let at = self.ranges.partition_point(|r| r.0 <= addr);
        let (start, end, index) = *self.ranges.get(at.checked_sub(1)?)?;
        (start <= addr && addr < end).then_some(index)
    }
}

/// Pauses `pid`, calls `during` (the caller reads what must match the memory, such as the
/// probe's table) for the blocks `(ptr, size)` to look for, scans, resumes.
pub fn scan(
    procfs: &Path,
    pid: u32,
    max_pause: Duration,
    excluded: &[(u64, u64)],
    during: impl FnOnce() -> Vec<(u64, u64)>,
) -> (Outcome, Vec<(u64, u64)>) {
    let pid = pid as i32;
    let started = Instant::now();
    let deadline = started + max_pause;
    let mut outcome = Outcome {
        referenced: None,
        pause: Duration::ZERO,
        detach_wait: Duration::ZERO,
        scanned_bytes: 0,
        threads: 0,
        skipped: None,
    };
    let mut stopped = match stop(procfs, pid, deadline, max_pause) {
        Ok(s) => s,
        Err((mut s, why)) => {
            let released = s.release();
            (outcome.pause, outcome.detach_wait) = (released.resumed - started, released.waited);
            outcome.skipped = Some(why);
            return (outcome, Vec::new());
        }
    };
    outcome.threads = stopped.stopped.len();
    let blocks = during();
    let index = Index::new(&blocks);
    let mut referenced = vec![false; blocks.len()];
    let mut mark = |word: u64, at: Option<u64>| {
        if let Some(i) = index.find(word) {
            // A block pointing into itself keeps nothing alive.
            if at.is_none_or(|a| index.find(a) != Some(i)) {
                referenced[i] = true;
            }
        }
    };
    for &tid in &stopped.stopped {
        // SAFETY: user_regs_struct is plain integers; PTRACE_GETREGS fills it for a stopped tracee.
        let mut regs: libc::user_regs_struct = unsafe { std::mem::zeroed() };
        // SAFETY: `regs` is a valid destination of the right size.
        if unsafe { libc::ptrace(libc::PTRACE_GETREGS, tid, 0, &mut regs as *mut libc::user_regs_struct) } == 0 {
            let r = &regs;
            let words = [
                r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, r.rsp, r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14,
                r.r15, r.fs_base, r.gs_base,
            ];
            for w in words {
                mark(w, None);
            }
        }
    }
    // A process killed while stopped has no maps left to read (an empty file, or none): scanning
    // nothing would "conclude" that nothing points to any block.
    let maps = read_maps(procfs, pid);
    if maps.is_empty() || exited(procfs, pid, pid) {
        outcome.skipped = Some(format!("process {pid} exited during the pause"));
    }
    // Words, not bytes: aligned reads without a slice operation per word.
    let mut buffer = vec![0u64; CHUNK / 8];
    let mappings = if outcome.skipped.is_none() { maps.as_str() } else { "" };
    'mappings: for line in mappings.lines() {
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else { continue };
        let name = fields.nth(3).unwrap_or("");
        if !perms.starts_with("rw") || name.starts_with("[v") {
            continue;
        }
        let Some((start, end)) = range.split_once('-') else { continue };
        let (Ok(start), Ok(end)) = (u64::from_str_radix(start, 16), u64::from_str_radix(end, 16)) else { continue };
        let mut at = start;
        while at < end {
            if Instant::now() >= deadline {
                outcome.skipped = Some(format!(
                    "the scan did not finish within --capture.reachability.max-pause ({max_pause:?}) after {} bytes",
                    outcome.scanned_bytes
                ));
                break 'mappings;
            }
            let len = usize::try_from((end - at) / 8).unwrap_or(CHUNK / 8).clamp(1, CHUNK / 8);
            let read = match read_memory(pid, at, &mut buffer[..len]) {
                Ok(read) => read,
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {
                    outcome.skipped = Some(format!("process {pid} exited during the pause"));
                    break 'mappings;
                }
                // An unreadable range (a guard page, an I/O mapping): nothing to find there.
                Err(_) => 0,
            };
            if read == 0 {
                at += 8 * len as u64;
                continue;
            }
            outcome.scanned_bytes += 8 * read as u64;
            let chunk_end = at + 8 * read as u64;
            let touches_excluded = excluded.iter().any(|&(s, e)| s < chunk_end && at < e);
            for (i, &value) in buffer[..read].iter().enumerate() {
                // Most words point nowhere near a sampled block: rejected before anything else.
                if value < index.low || value >= index.high {
                    continue;
                }
                let address = at + 8 * i as u64;
                if touches_excluded && excluded.iter().any(|&(s, e)| (s..e).contains(&address)) {
                    continue;
                }
                mark(value, Some(address));
            }
            at += 8 * len as u64;
        }
    }
    // Killed mid-scan, the rest of its memory may have read as nothing: not a conclusion either.
    if outcome.skipped.is_none() && exited(procfs, pid, pid) {
        outcome.skipped = Some(format!("process {pid} exited during the pause"));
    }
    let released = stopped.release();
    (outcome.pause, outcome.detach_wait) = (released.resumed - started, released.waited);
    if outcome.skipped.is_none() {
        outcome.referenced = Some(referenced);
    }
    (outcome, blocks)
}

/// The process's maps text, at most 16 MiB.
fn read_maps(procfs: &Path, pid: i32) -> String {
    use std::io::Read;
    let mut bytes = Vec::new();
    if let Ok(file) = std::fs::File::open(procfs.join(pid.to_string()).join("maps")) {
        let _ = file.take(16 << 20).read_to_end(&mut bytes);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Reads `buffer.len()` words at `address` of `pid`; the whole words read.
fn read_memory(pid: i32, address: u64, buffer: &mut [u64]) -> std::io::Result<usize> {
    let bytes = std::mem::size_of_val(buffer);
    let local = libc::iovec { iov_base: buffer.as_mut_ptr().cast(), iov_len: bytes };
    let remote = libc::iovec { iov_base: address as *mut libc::c_void, iov_len: bytes };
    // SAFETY: `local` covers `buffer`, which outlives the call; the kernel checks `remote`.
    let read = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
    usize::try_from(read).map(|b| b / 8).map_err(|_| std::io::Error::last_os_error())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interior_pointers_find_their_block_and_ends_do_not() {
        let index = Index::new(&[(0x1000, 0x100), (0x3000, 0x10), (0x2000, 0x800)]);
        assert_eq!(index.find(0x1000), Some(0));
        assert_eq!(index.find(0x10ff), Some(0));
        assert_eq!(index.find(0x1100), None, "one past the end points to the next chunk's header");
        assert_eq!(index.find(0x2400), Some(2));
        assert_eq!(index.find(0x300f), Some(1));
        assert_eq!(index.find(0x0fff), None);
        assert_eq!(index.find(u64::MAX), None);
    }
}

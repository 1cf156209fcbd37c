//! One process of a capture's target, held by a pidfd opened when the alert
//! was resolved: signals go through the pidfd (`pidfd_send_signal`), so a pid
//! that was freed and reused by another process is never signalled, and the
//! process's start time is checked against the one recorded at resolution.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

/// `PF_KTHREAD` in `/proc/PID/stat`'s flags: a kernel thread.
const PF_KTHREAD: u64 = 0x0020_0000;

/// A process pinned by its pidfd and start time.
#[derive(Debug)]
pub struct Process {
    pub pid: u32,
    /// `/proc/PID/stat` field 22, in clock ticks since boot.
    start_time: u64,
    pidfd: OwnedFd,
}

/// What `/proc/PID/stat` says about a process, past its `comm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub flags: u64,
    pub start_time: u64,
}

impl Stat {
    pub fn read(procfs: &Path, pid: u32) -> Option<Stat> {
        let text = std::fs::read_to_string(procfs.join(pid.to_string()).join("stat")).ok()?;
        // comm may hold spaces and parentheses: the fields start after the last ')'.
        let rest = &text[text.rfind(')')? + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // fields[0] is field 3 (state): flags is field 9, starttime field 22.
        Some(Stat { flags: fields.get(6)?.parse().ok()?, start_time: fields.get(19)?.parse().ok()? })
    }

    pub fn is_kernel_thread(&self) -> bool {
        self.flags & PF_KTHREAD != 0
    }
}

/// Why a process is never a capture's target, whatever the alert says.
pub fn forbidden(pid: u32, stat: &Stat) -> Option<&'static str> {
    if pid == 1 {
        Some("pid 1 (init) is never a capture's target (a capture may signal, trace or pause its process)")
    } else if pid == std::process::id() {
        Some("the exporter does not capture itself")
    } else if stat.is_kernel_thread() {
        Some("a kernel thread has no user memory to profile")
    } else {
        None
    }
}

impl Process {
    /// Pins `pid`: opens its pidfd and checks that the process behind it is the
    /// one whose start time was read before and after (not a reused pid), and
    /// that it is not a forbidden target.
    pub fn open(procfs: &Path, pid: u32) -> Result<Process, String> {
        let before = Stat::read(procfs, pid).ok_or_else(|| format!("no process {pid} on this host"))?;
        if let Some(why) = forbidden(pid, &before) {
            return Err(format!("process {pid}: {why}"));
        }
        let raw = i32::try_from(pid).map_err(|_| format!("pid {pid} is out of range"))?;
        // SAFETY: pidfd_open(2) takes a pid and flags and returns a new fd or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, raw, 0) };
        if fd < 0 {
            return Err(format!("cannot open process {pid}: {}", io::Error::last_os_error()));
        }
        // SAFETY: the fd was just returned by pidfd_open and is owned by nothing else.
        let pidfd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        let process = Process { pid, start_time: before.start_time, pidfd };
        if !process.is_same_at(procfs) {
            return Err(format!("process {pid} exited while it was looked at"));
        }
        Ok(process)
    }

    /// Whether the process is alive and still the one pinned (its pid's start time is unchanged).
    pub fn is_same_at(&self, procfs: &Path) -> bool {
        self.is_alive() && Stat::read(procfs, self.pid).is_some_and(|s| s.start_time == self.start_time)
    }

    /// Whether the pinned process still runs (signal 0 through the pidfd). Without
    /// CAP_KILL (the systemd unit keeps none) a process of another user answers
    /// EPERM: it exists; only ESRCH means it has exited.
    pub fn is_alive(&self) -> bool {
        match self.send(0) {
            Ok(()) => true,
            Err(e) => e.raw_os_error() == Some(libc::EPERM),
        }
    }

    /// Sends `signal` through the pidfd: never to another process that got the pid since.
    pub fn send(&self, signal: i32) -> io::Result<()> {
        // SAFETY: pidfd_send_signal(2) on an owned pidfd, no siginfo, no flags.
        let r = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.pidfd.as_raw_fd(),
                signal,
                std::ptr::null::<libc::siginfo_t>(),
                0u32,
            )
        };
        if r == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
    }
}

/// Whether the process catches `signal` (its bit in `/proc/PID/status` `SigCgt`):
/// a signal it does not catch would take its default action (for SIGUSR1/2, termination).
pub fn catches(procfs: &Path, pid: u32, signal: i32) -> bool {
    let Ok(text) = std::fs::read_to_string(procfs.join(pid.to_string()).join("status")) else { return false };
    let Some(mask) = text.lines().find_map(|l| l.strip_prefix("SigCgt:")) else { return false };
    let Ok(mask) = u64::from_str_radix(mask.trim(), 16) else { return false };
    (1..=64).contains(&signal) && mask & (1u64 << (signal - 1)) != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_kernel_threads_and_the_exporter_itself_are_refused() {
        let procfs = Path::new("/proc");
        assert!(Process::open(procfs, 1).unwrap_err().contains("pid 1"));
        assert!(Process::open(procfs, std::process::id()).unwrap_err().contains("itself"));
        // kthreadd is pid 2 on Linux (outside a pid namespace).
        if let Some(stat) = Stat::read(procfs, 2).filter(Stat::is_kernel_thread) {
            assert!(forbidden(2, &stat).is_some());
            assert!(Process::open(procfs, 2).unwrap_err().contains("kernel thread"));
        }
    }

    #[test]
    fn a_process_is_pinned_and_a_dead_one_is_not_signalled() {
        let procfs = Path::new("/proc");
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let process = Process::open(procfs, child.id()).unwrap();
        assert!(process.is_same_at(procfs));
        assert!(!catches(procfs, child.id(), libc::SIGUSR2), "sleep does not catch SIGUSR2");
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!process.is_alive());
        assert!(process.send(libc::SIGUSR2).is_err(), "a reaped process is not signalled through its pidfd");
    }
}

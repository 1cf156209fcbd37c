//! Capture kind `ebpf-malloc` (layer 3): the target's allocator traced with
//! uprobes for the window (`memleak_bpf::malloc`), within the CPU budget of
//! `--capture.ebpf-malloc.budget`; the allocations still outstanding at the
//! end, by user stack, as an in-use profile ranked by allocation age. One
//! process is traced: the alert's `pid`, or the target's process holding the
//! most anonymous memory (a leak's home, not a supervisor that forks workers). The
//! annotation `ebpf_malloc_mode: full` traces every allocation (no sampling;
//! the budget still stops it), for short windows.

use super::{Finished, Job, Kind, Refusal, Run, Setup, Status};
use crate::capture::process::Process;
use memleak_bpf::malloc::{self, Ending, Options};
use memleak_signals::process::detail;
use std::cell::Cell;
use std::path::Path;
use std::time::Duration;

pub static KIND: Kind = Kind {
    id: "ebpf-malloc",
    about: "The target's allocator traced with uprobes (eBPF) within a CPU budget: outstanding allocations by stack, ranked by age",
    default_duration: Duration::from_secs(60),
    prepare,
};

/// How often a window checks that the traced process still runs.
const LIVENESS_STEP: Duration = Duration::from_millis(250);

fn prepare(setup: &Setup) -> Result<Box<dyn Run>, Refusal> {
    if !memleak_bpf::built_with_bpf() {
        return Err(Refusal::Unavailable(
            "this build has no BPF programs (clang was missing when it was built): install clang and rebuild".into(),
        ));
    }
    let full = match setup.annotations.get("ebpf_malloc_mode").map(String::as_str) {
        None | Some("sampled") => false,
        Some("full") => true,
        Some(other) => {
            return Err(Refusal::Invalid(format!(
                "ebpf_malloc_mode annotation {other:?}: use \"full\" or \"sampled\""
            )));
        }
    };
    Ok(Box::new(Trace { options: Options { budget: setup.context.ebpf_malloc_budget, full } }))
}

#[derive(Debug)]
struct Trace {
    options: Options,
}

impl Run for Trace {
    fn run(self: Box<Self>, job: &Job) -> Finished {
        let Some((process, anonymous)) = largest(&job.target.processes) else {
            return Finished::failed("the target has no process left to trace".into());
        };
        let others = job.target.processes.len() - 1;
        let opened = Cell::new(false);
        let exited = Cell::new(false);
        let mut wait = |d: Duration| -> Result<(), String> {
            if !opened.replace(true) {
                (job.window_open)();
            }
            let until = std::time::Instant::now() + d;
            loop {
                if !process.is_alive() || exited_unreaped(process.pid) {
                    exited.set(true);
                    return Err(format!("process {} exited", process.pid));
                }
                let left = until.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    return Ok(());
                }
                job.cancel.sleep(left.min(LIVENESS_STEP)).map_err(|reason| format!("cancelled: {reason}"))?;
            }
        };
        let traced = match malloc::trace(Path::new("/proc"), process.pid, &self.options, job.duration, &mut wait) {
            Ok(traced) => traced,
            // Gone before the window opened, what failed (its maps, its allocator) followed from that.
            Err(_) if !opened.get() && (!process.is_alive() || exited_unreaped(process.pid)) => {
                return Finished::failed(format!("process {} exited before its window opened", process.pid));
            }
            Err(problem) if !process.is_alive() || exited_unreaped(process.pid) => {
                return Finished::failed(format!(
                    "process {} exited before it could be traced ({problem})",
                    process.pid
                ));
            }
            Err(problem) => return Finished::failed(format!("cannot trace process {}: {problem}", process.pid)),
        };
        let mut result = traced.result;
        if others > 0 {
            result.attributes.push((
                "traced".into(),
                format!(
                    "process {} only, of the target's {}: the one holding the most anonymous memory ({} KiB \
                     resident at the start); name another with the alert's pid label",
                    process.pid,
                    others + 1,
                    anonymous / 1024
                ),
            ));
        }
        let (status, reason) = match traced.ending {
            Ending::Elapsed => (Status::Done, None),
            Ending::Interrupted(reason) if exited.get() => {
                (Status::Partial, Some(format!("{reason}: the allocations it held when it exited")))
            }
            Ending::Interrupted(reason) => (Status::Cancelled, Some(reason)),
            Ending::OverBudget(reason) | Ending::Forked(reason) | Ending::Exec(reason) => {
                (Status::Partial, Some(reason))
            }
        };
        Finished { status, reason, result: Some(result) }
    }
}

/// The process of `processes` with the most resident anonymous memory (the
/// first on a tie, or when none can be read), and that memory in bytes.
fn largest(processes: &[Process]) -> Option<(&Process, u64)> {
    let mut buf = Vec::new();
    let mut anonymous = |pid: u32| {
        let dir = Path::new("/proc").join(pid.to_string());
        detail::read(&dir, false, &mut buf).ok().flatten().map_or(0, |d| d.anon)
    };
    let sized: Vec<(&Process, u64)> = processes.iter().map(|p| (p, anonymous(p.pid))).collect();
    // `max_by_key` keeps the last of equals: reversed, the first one wins.
    sized.into_iter().rev().max_by_key(|(_, bytes)| *bytes)
}

/// Whether process `pid` has exited and waits for its parent (a zombie): it
/// answers signals, but has no memory left to trace.
fn exited_unreaped(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    // The state follows the command name, which ends at the last ')'.
    stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()).is_some_and(|s| s == "Z" || s == "X")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::process::{Child, Command};

    struct Killed(Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn spawn(script: &str) -> Killed {
        Killed(Command::new("sh").args(["-c", script]).spawn().unwrap())
    }

    fn anonymous_kib(pid: u32) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let line = status.lines().find(|l| l.starts_with("RssAnon:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    #[test]
    fn the_process_holding_the_most_anonymous_memory_is_traced() {
        let small = spawn("exec sleep 30");
        // A shell holding 16 MiB in a variable: its heap, resident and anonymous.
        let big = spawn("x=$(head -c 16777216 /dev/zero | tr '\\0' a); while :; do sleep 1; done");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while anonymous_kib(big.0.id()) < 16 * 1024 {
            assert!(std::time::Instant::now() < deadline, "the shell never filled its variable");
            std::thread::sleep(Duration::from_millis(20));
        }
        let open = |c: &Killed| Process::open(Path::new("/proc"), c.0.id()).unwrap();
        for order in [[&small, &big], [&big, &small]] {
            let processes: Vec<Process> = order.iter().map(|c| open(c)).collect();
            let (chosen, bytes) = largest(&processes).unwrap();
            assert_eq!(chosen.pid, big.0.id());
            assert!(bytes >= 16 << 20, "{bytes}");
        }
        // Equals (or unreadable): the first.
        let other = spawn("exec sleep 30");
        let processes = vec![open(&small), open(&other)];
        let first = largest(&processes).unwrap().0.pid;
        let (a, b) = (anonymous_kib(small.0.id()), anonymous_kib(other.0.id()));
        if a == b {
            assert_eq!(first, small.0.id());
        }
        assert_eq!(largest(&[]).map(|(p, _)| p.pid), None);
    }
}

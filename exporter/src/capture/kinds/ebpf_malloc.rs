//! Capture kind `ebpf-malloc` (layer 3): the target's allocator traced with
//! uprobes for the window (`memleak_bpf::malloc`), within the CPU budget of
//! `--capture.ebpf-malloc.budget`; the allocations still outstanding at the
//! end, by user stack, as an in-use profile ranked by allocation age. One
//! process is traced: the alert's `pid`, or the target's first process. The
//! annotation `ebpf_malloc_mode: full` traces every allocation (no sampling;
//! the budget still stops it), for short windows.

use super::{Finished, Job, Kind, Refusal, Run, Setup, Status};
use memleak_bpf::malloc::{self, Ending, Options};
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
        let Some(process) = job.target.processes.first() else {
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
                    "process {} only, of the target's {}: name one with the alert's pid label",
                    process.pid,
                    others + 1
                ),
            ));
        }
        let (status, reason) = match traced.ending {
            Ending::Elapsed => (Status::Done, None),
            Ending::Interrupted(reason) if exited.get() => {
                (Status::Partial, Some(format!("{reason}: the allocations it held when it exited")))
            }
            Ending::Interrupted(reason) => (Status::Cancelled, Some(reason)),
            Ending::OverBudget(reason) | Ending::Forked(reason) => (Status::Partial, Some(reason)),
        };
        Finished { status, reason, result: Some(result) }
    }
}

/// Whether process `pid` has exited and waits for its parent (a zombie): it
/// answers signals, but has no memory left to trace.
fn exited_unreaped(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    // The state follows the command name, which ends at the last ')'.
    stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()).is_some_and(|s| s == "Z" || s == "X")
}

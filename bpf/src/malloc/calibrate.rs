//! What one probe hit costs on this host, measured once per exporter (at its
//! first `ebpf-malloc` capture): the same programs attached to a function of
//! the exporter itself, called many times, against the same calls without
//! probes, in the calling thread's CPU time (which the traps are charged to).

use super::allocator::{Allocator, EntryPoint, Shape, read_maps};
use super::callers::Code;
use super::governor::Costs;
use super::probes::Probes;
use memleak_signals::{Problem, ProblemKind};
use std::path::Path;
use std::sync::{Mutex, PoisonError};

/// Calls per measurement; three measurements, the cheapest kept.
const CALLS: u64 = 20_000;

/// The probed stand-in for an allocator entry point.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn memleak_malloc_calibration_target(size: u64) -> u64 {
    std::hint::black_box(size).wrapping_add(1)
}

/// The per-hit costs on this host (measured at the first call that can, then kept).
pub fn costs() -> Result<Costs, Problem> {
    static COSTS: Mutex<Option<Costs>> = Mutex::new(None);
    let mut known = COSTS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(costs) = *known {
        return Ok(costs);
    }
    let costs = measure()?;
    *known = Some(costs);
    Ok(costs)
}

fn measure() -> Result<Costs, Problem> {
    let pid = std::process::id();
    let address = memleak_malloc_calibration_target as *const () as usize as u64;
    let maps = read_maps(Path::new("/proc"), pid).map_err(|e| {
        Problem::new(ProblemKind::Read, "/proc/self/maps", format!("cannot read it to calibrate the probes: {e}"), "")
    })?;
    let mapping =
        maps.iter().find(|m| m.start <= address && address < m.end && m.path.starts_with('/')).ok_or_else(|| {
            Problem::new(ProblemKind::Unsupported, "calibration", "the exporter's own code is in no file mapping", "")
        })?;
    let offset = address - mapping.start + mapping.file_offset;
    let stand_in = |shape| Allocator {
        name: "calibration".into(),
        module: mapping.path.clone(),
        binary: Path::new("/proc/self/root").join(mapping.path.trim_start_matches('/')),
        entry_points: vec![EntryPoint { symbol: "memleak_malloc_calibration_target", shape, offset }],
    };
    // The exporter's own code: the return program searches it as it would a target's.
    let code = Code::read(Path::new("/proc"), pid).map_err(|e| {
        Problem::new(ProblemKind::Read, "/proc/self/maps", format!("cannot read it to calibrate the probes: {e}"), "")
    })?;
    let bare = cheapest();
    let mut allocation = Probes::load(pid, &[stand_in(Shape::Malloc)], code.clone())?;
    allocation.attach_allocations()?;
    let with_allocation = cheapest();
    drop(allocation);
    let mut free = Probes::load(pid, &[stand_in(Shape::Free)], code)?;
    free.attach_frees()?;
    let with_free = cheapest();
    drop(free);
    let per_call = |probed: u64| probed.saturating_sub(bare) as f64 / CALLS as f64;
    let costs = Costs { allocation_ns: per_call(with_allocation), free_ns: per_call(with_free) };
    tracing::info!(
        allocation_ns = costs.allocation_ns,
        free_ns = costs.free_ns,
        "calibrated the ebpf-malloc probes on this host (entry and return probe per allocation, entry per free)"
    );
    Ok(costs)
}

/// The least thread CPU time, in ns, of three runs of `CALLS` calls.
fn cheapest() -> u64 {
    (0..3)
        .map(|_| {
            let start = thread_cpu_ns();
            for i in 0..CALLS {
                std::hint::black_box(memleak_malloc_calibration_target(std::hint::black_box(i)));
            }
            thread_cpu_ns().saturating_sub(start)
        })
        .min()
        .unwrap_or(0)
}

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid timespec to fill; the clock id is a constant.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
}

/// CLOCK_MONOTONIC in ns: the clock of `bpf_ktime_get_ns`.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: as above.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
}

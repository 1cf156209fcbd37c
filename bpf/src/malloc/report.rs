//! The outstanding allocations and per-stack totals read from the maps at
//! the end of a trace, made into a pprof-shaped profile (in-use bytes first,
//! then in-use objects, allocated bytes and objects), each sampled allocation
//! weighted by the inverse of the share of its second during which the
//! allocation probes were attached; stacks named from the process's maps and
//! its binaries' symbols (read through `/proc/PID/root`), with the callers
//! the frame-pointer walk skipped put back (`callers`); sites ranked by the
//! spread of their live allocations' ages (`memleak_artifacts::ages`).

use super::callers;
use super::probes::Probes;
use crate::loader::typed_map;
use crate::shared::{MallocAlloc, MallocSiteKey, MallocSiteTotals};
use crate::user_frames;
use memleak_artifacts::ages::{self, Ages};
use memleak_artifacts::heapprof::{self, Mapping};
use memleak_artifacts::model::{ALLOC_OBJECTS, ALLOC_SPACE, INUSE_OBJECTS, INUSE_SPACE};
use memleak_artifacts::symbolize::{Symbolizer, Unsymbolized};
use memleak_artifacts::{Frame, Profile, Sample};
use std::collections::HashMap;
use std::path::Path;

/// When the allocation probes were attached: from `start_ns` on, `duty` of
/// the time (0: what was traced then is not counted).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Segment {
    pub start_ns: u64,
    pub duty: f64,
}

/// What one stack holds at the end.
#[derive(Debug, Default)]
struct Site {
    inuse_bytes: f64,
    inuse_objects: f64,
    ages: Ages,
}

/// Functions a complete user stack ends in; a stack that ends elsewhere was
/// cut (a frame without a frame pointer, or the depth limit).
const OUTERMOST: &[&str] =
    &["_start", "__libc_start_main", "__libc_start_call_main", "start_thread", "clone", "clone3", "main"];

/// A trace's profile and what it says about itself.
#[derive(Debug)]
pub struct Report {
    pub profile: Profile,
    /// Sample indices by `ages::RANK`.
    pub ranked: Vec<(usize, Ages, f64)>,
    pub truncated_stacks: usize,
    pub stacks: usize,
    /// Modules whose frames stay `module+0xoffset`, or have no lines, and why.
    pub unsymbolized: Vec<Unsymbolized>,
    pub outstanding_sampled: usize,
    /// What the profile covers: from the first counted segment to the end.
    pub window_ns: u64,
}

/// Reads the maps of `probes` and builds the report. `maps` are the process's
/// mappings (read at the end, or at the start if it has exited or exec'd); `root` its root
/// directory; `memory` the process whose memory holds the code `maps` map (none after an exec).
pub fn read(
    probes: &Probes,
    segments: &[Segment],
    end_ns: u64,
    allocated_scale: f64,
    maps: &[Mapping],
    root: &Path,
    memory: Option<u32>,
) -> Report {
    // The profile covers the segments that traced (not the first, measuring one of a sampled trace).
    let window_ns = end_ns.saturating_sub(segments.iter().find(|s| s.duty > 0.0).map_or(end_ns, |s| s.start_ns));
    let mut sites: HashMap<MallocSiteKey, Site> = HashMap::new();
    let mut outstanding_sampled = 0;
    if let Ok(outstanding) = typed_map::<aya::maps::HashMap<_, u64, MallocAlloc>>(&probes.bpf, "malloc_outstanding") {
        for (_, alloc) in outstanding.iter().flatten() {
            let duty = duty_at(segments, alloc.time_ns);
            if duty <= 0.0 {
                continue;
            }
            outstanding_sampled += 1;
            let weight = 1.0 / duty;
            let site = sites.entry(alloc.site).or_default();
            site.inuse_bytes += alloc.size as f64 * weight;
            site.inuse_objects += weight;
            site.ages.add(end_ns.saturating_sub(alloc.time_ns), window_ns, alloc.size);
        }
    }
    let mut allocated: HashMap<MallocSiteKey, MallocSiteTotals> = HashMap::new();
    if let Ok(totals) = typed_map::<aya::maps::HashMap<_, MallocSiteKey, MallocSiteTotals>>(&probes.bpf, "malloc_sites")
    {
        allocated.extend(totals.iter().flatten());
    }
    let stacks = typed_map::<aya::maps::StackTraceMap<_>>(&probes.bpf, "malloc_stacks").ok();
    // Keys whose walks differ only by the words kept beside them (data that looked like code)
    // make one stack: merged by the addresses rebuilt.
    let mut keys: Vec<MallocSiteKey> = sites.keys().chain(allocated.keys()).copied().collect();
    keys.sort_unstable_by_key(|k| (k.stack_id, k.callers));
    keys.dedup();
    let mut merged: Vec<(Vec<u64>, usize, i32, Site, MallocSiteTotals)> = Vec::new();
    let mut index_of: HashMap<Vec<u64>, usize> = HashMap::new();
    let mut is_return = |ip: u64| probes.code.is_return_address(memory, maps, root, ip);
    let mut symbolizer = Symbolizer::default();
    let mut called_from = |ret: u64, inner: u64| walk_is_whole(ret, inner, memory, maps, root, &mut symbolizer);
    for key in &keys {
        let walk: Vec<u64> = match (&stacks, u32::try_from(key.stack_id)) {
            (Some(stacks), Ok(id)) => {
                stacks.get(&id, 0).map(|t| t.frames().iter().map(|f| f.ip).collect()).unwrap_or_default()
            }
            _ => Vec::new(),
        };
        let mut ips = callers::rebuild(&walk, &key.callers, &mut is_return, &mut called_from);
        // Code mapped since the trace began (a library loaded in the window) is in the end's maps.
        callers::cut_at_data(&mut ips, &|ip| probes.code.is_executable(ip) || heapprof::find(maps, ip).is_some());
        let site = sites.remove(key).unwrap_or_default();
        let totals = allocated.get(key).copied().unwrap_or_default();
        match index_of.get(&ips) {
            Some(&i) => {
                let (_, _, _, into, sum) = &mut merged[i];
                into.inuse_bytes += site.inuse_bytes;
                into.inuse_objects += site.inuse_objects;
                merge_ages(&mut into.ages, &site.ages);
                sum.bytes += totals.bytes;
                sum.count += totals.count;
            }
            None => {
                index_of.insert(ips.clone(), merged.len());
                merged.push((ips, walk.len(), key.stack_id, site, totals));
            }
        }
    }
    let mut profile = Profile::new("inuse", vec![INUSE_SPACE, INUSE_OBJECTS, ALLOC_SPACE, ALLOC_OBJECTS]);
    let mut ranked_ages = Vec::new();
    let mut truncated_stacks = 0;
    let stack_count = merged.len();
    for (ips, walked, stack_id, site, totals) in merged {
        let mut stack = frames(&ips, maps, root, &mut symbolizer);
        let truncated = truncated(walked, &stack);
        if stack.is_empty() {
            stack.push(Frame::function(if stack_id < 0 {
                "(no stack: lost or unreadable)"
            } else {
                "(stack evicted)"
            }));
        }
        let mut labels = vec![
            ("age_spread".to_owned(), site.ages.shape()),
            ("oldest_age_s".to_owned(), format!("{:.1}", site.ages.oldest_ns as f64 / 1e9)),
        ];
        if truncated {
            truncated_stacks += 1;
            labels.push(("truncated_stack".to_owned(), "true".to_owned()));
        }
        profile.samples.push(Sample {
            stack,
            values: vec![
                site.inuse_bytes.round() as i64,
                site.inuse_objects.round() as i64,
                (totals.bytes as f64 * allocated_scale).round() as i64,
                (totals.count as f64 * allocated_scale).round() as i64,
            ],
            labels,
        });
        ranked_ages.push(site.ages);
    }
    let seen = ages::observed(&ranked_ages);
    let ranked = ages::rank(&ranked_ages)
        .into_iter()
        .filter_map(|i| ranked_ages.get(i).map(|a| (i, *a, ages::spread(a, &seen))))
        .collect();
    let unsymbolized = symbolizer.unsymbolized();
    Report { profile, ranked, truncated_stacks, stacks: stack_count, unsymbolized, outstanding_sampled, window_ns }
}

/// Whether a stack was cut: the kernel gave as many `addresses` as the depth
/// limit (inlined calls add frames, not addresses), or its frames reach
/// neither a function that starts the process or a thread nor the C library
/// (whose outermost frames, `__libc_start_call_main` and `clone3`, its
/// stripped symbol table does not name).
fn truncated(addresses: usize, stack: &[Frame]) -> bool {
    if addresses >= crate::shared::MAX_STACK_DEPTH {
        return true;
    }
    let started = stack.iter().any(|f| OUTERMOST.contains(&f.function.as_str()));
    let in_libc = stack.last().and_then(|f| f.file.as_deref()).is_some_and(|m| {
        let name = m.rsplit('/').next().unwrap_or(m);
        name.starts_with("libc.so") || name.starts_with("libc-")
    });
    !(started || in_libc)
}

/// Adds the live allocations of `other` to `into`.
fn merge_ages(into: &mut Ages, other: &Ages) {
    for (slot, n) in into.buckets.iter_mut().zip(other.buckets) {
        *slot += n;
    }
    into.bytes = into.bytes.saturating_add(other.bytes);
    into.oldest_ns = into.oldest_ns.max(other.oldest_ns);
}

/// The share of its second during which allocations made at `time_ns` were traced.
fn duty_at(segments: &[Segment], time_ns: u64) -> f64 {
    let i = segments.partition_point(|s| s.start_ns <= time_ns).saturating_sub(1);
    segments.get(i).map_or(1.0, |s| s.duty)
}

/// The frames of a stack taken at an allocation's return: every address is a
/// return address (the first one into the allocating function), so the
/// function is the one holding the byte before it.
/// Whether return address `ret` follows a direct call into the function that holds return
/// address `inner`, both named from the symbols of their binaries (false when either is unnamed
/// or the call is indirect: the caller words are then used as before).
fn walk_is_whole(
    ret: u64,
    inner: u64,
    memory: Option<u32>,
    maps: &[Mapping],
    root: &Path,
    symbolizer: &mut Symbolizer,
) -> bool {
    use crate::return_address;
    let Some(target) = return_address::read_before(memory, maps, root, ret)
        .and_then(|before| return_address::direct_call_target(ret, &before))
    else {
        return false;
    };
    // The function holding an address: the last of its frames (the others are inlined into it).
    let mut function = |ip: u64, is_return: bool| {
        let frames = symbolizer.frames_of(root, ip, maps, is_return);
        frames.last().map(|f| f.function.clone()).filter(|name| !name.starts_with("0x") && !name.contains("+0x"))
    };
    match (function(target, false), function(inner, true)) {
        (Some(called), Some(holding)) => called == holding,
        _ => false,
    }
}

fn frames(ips: &[u64], maps: &[Mapping], root: &Path, symbolizer: &mut Symbolizer) -> Vec<Frame> {
    ips.iter().flat_map(|&ip| user_frames::frames(ip, maps, root, symbolizer, true)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_allocation_weighs_the_inverse_of_its_seconds_duty() {
        let segments = [Segment { start_ns: 100, duty: 1.0 }, Segment { start_ns: 200, duty: 0.25 }];
        assert_eq!(duty_at(&segments, 150), 1.0);
        assert_eq!(duty_at(&segments, 200), 0.25);
        assert_eq!(duty_at(&segments, 10_000), 0.25);
        assert_eq!(duty_at(&segments, 50), 1.0, "before the first segment: as the first");
    }

    #[test]
    fn a_stack_is_whole_when_it_reaches_a_start_or_the_c_library() {
        let at =
            |function: &str, file: Option<&str>| Frame { file: file.map(str::to_owned), ..Frame::function(function) };
        assert!(!truncated(3, &[at("leak", None), at("main", None), at("libc.so.6+0x2724a", Some("/lib/libc.so.6"))]));
        assert!(!truncated(2, &[at("work", None), at("libc.so.6+0x1", Some("/usr/lib/x86_64-linux-gnu/libc.so.6"))]));
        assert!(
            truncated(2, &[at("leak", Some("/opt/app")), at("0x1234", None)]),
            "cut by a frame without a frame pointer"
        );
        let deep: Vec<Frame> = (0..crate::shared::MAX_STACK_DEPTH).map(|_| at("main", None)).collect();
        assert!(truncated(deep.len(), &deep), "cut at the depth limit");
        // A few addresses whose inlined calls make more frames than the limit: whole.
        let inlined: Vec<Frame> = (0..crate::shared::MAX_STACK_DEPTH + 5)
            .map(|_| Frame { inlined: true, ..at("helper", None) })
            .chain([at("main", None)])
            .collect();
        assert!(!truncated(4, &inlined), "inlined frames are not addresses");
    }
}

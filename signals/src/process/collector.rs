//! The scrape-time walk over `/proc`.

use super::detail::Refresher;
use super::group::{self, GroupKey, OTHER, Totals};
use super::select::{cgroup_of, cmdline_text};
use super::*;
use crate::collector::{Collection, Collector, ScrapeContext};
use crate::fsroot::{self, FsRoots, ReadError};
use crate::model::CollectorSpec;
use crate::monotonic::{Limits, MonotonicCounters};
use crate::options::Configurable;
use crate::problem::{Problem, ProblemKind};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Scrapes a group with no live member keeps its fault counters (a service
/// restarting between scrapes keeps one series).
const IDLE_GROUP_SCRAPES: u64 = 40;
/// Scrapes a process missing from the walk (a scrape cut by its deadline) is
/// remembered, so its faults are not counted again when it is seen next.
const MISSING_PROCESS_SCRAPES: u64 = 2;
/// Most processes whose fault counts are remembered (new ones past it are not counted).
const MAX_TRACKED_PROCESSES: usize = 1 << 17;
/// Least time between two warnings about denied details: one per hour says it
/// without flooding the log of an exporter that is meant to run unprivileged.
const DENIED_WARNING_EVERY: Duration = Duration::from_secs(3600);
/// How often the deadline is checked in the walk.
const DEADLINE_CHECK_EVERY: usize = 64;

/// What is cached per process for its lifetime: read once, not on every scrape.
#[derive(Debug)]
struct Identity {
    cmdline: String,
    cgroup: String,
    /// The group it is summed into (naming rules, unit, container), when that needs more than `stat`.
    group: String,
}

/// One selected process of this scrape.
#[derive(Debug)]
struct Seen {
    key: ProcKey,
    group: GroupKey,
    stat: stat::ProcStat,
}

/// Reads `/proc/PID/stat` of every process on each scrape and sums selected
/// processes into bounded groups.
#[derive(Debug)]
pub struct ProcessCollector {
    procfs: PathBuf,
    config: Config,
    page_size: u64,
    ticks_per_second: f64,
    boot_time: Option<f64>,
    identities: HashMap<ProcKey, Identity>,
    /// minor, major faults per group, from each process's increase.
    faults: MonotonicCounters<ProcKey, GroupKey, 2>,
    refresher: Option<Refresher>,
    /// When denied details were last logged.
    denied_warned_at: Option<Instant>,
    buf: Vec<u8>,
}

impl ProcessCollector {
    /// Starts the detail refresher thread unless details are turned off.
    pub fn new(roots: &FsRoots, config: Config) -> std::io::Result<Self> {
        let refresher = if config.detail_interval.is_zero() {
            None
        } else {
            Some(Refresher::start(roots.procfs.clone(), config.pss)?)
        };
        let per_pid = config.group_by == GroupBy::Pid;
        let faults = MonotonicCounters::new(Limits {
            max_sources: MAX_TRACKED_PROCESSES,
            max_series: config.max_groups.saturating_mul(2),
            source_ttl: MISSING_PROCESS_SCRAPES,
            // A per-pid series ends with its process.
            series_ttl: if per_pid { 0 } else { IDLE_GROUP_SCRAPES },
        });
        Ok(ProcessCollector {
            procfs: roots.procfs.clone(),
            config,
            page_size: sysconf(libc::_SC_PAGESIZE, 4096),
            ticks_per_second: sysconf(libc::_SC_CLK_TCK, 100) as f64,
            boot_time: None,
            identities: HashMap::new(),
            faults,
            refresher,
            denied_warned_at: None,
            buf: Vec::with_capacity(1024),
        })
    }

    fn needs_identity(&self) -> bool {
        let s = &self.config.selection;
        s.needs_cmdline()
            || s.needs_cgroup()
            || !self.config.naming.is_empty()
            || matches!(self.config.group_by, GroupBy::Cgroup | GroupBy::Unit | GroupBy::Container)
    }

    fn read_boot_time(&mut self, out: &mut Collection) -> Option<f64> {
        if self.boot_time.is_none() {
            let path = self.procfs.join("stat");
            match fsroot::read_text(&path) {
                Ok(text) => {
                    self.boot_time = text
                        .lines()
                        .find_map(|l| l.strip_prefix("btime "))
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(|v| v as f64);
                    if self.boot_time.is_none() {
                        out.problem(Problem::new(ProblemKind::Parse, path.display(), "no `btime` line", ""));
                    }
                }
                Err(err) => out.problem(err.to_problem(&path, "is procfs mounted at --path.procfs?")),
            }
        }
        self.boot_time
    }

    /// Walks `/proc`, returning the selected processes.
    fn walk(&mut self, ctx: &ScrapeContext, out: &mut Collection) -> Vec<Seen> {
        let entries = match std::fs::read_dir(&self.procfs) {
            Ok(entries) => entries,
            Err(err) => {
                out.problem(ReadError::from(err).to_problem(&self.procfs, "is procfs mounted at --path.procfs?"));
                return Vec::new();
            }
        };
        let pids: Vec<u32> = entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok()).collect();
        let mut seen = Vec::with_capacity(pids.len());
        let mut dir = self.procfs.clone();
        for (i, pid) in pids.iter().enumerate() {
            if i % DEADLINE_CHECK_EVERY == 0 && ctx.expired() {
                out.timed_out(self.procfs.display(), i, pids.len());
                break;
            }
            dir.push(pid.to_string());
            if let Some(s) = self.read_one(*pid, &mut dir, out) {
                seen.push(s);
            }
            dir.pop();
        }
        seen
    }

    fn read_one(&mut self, pid: u32, dir: &mut PathBuf, out: &mut Collection) -> Option<Seen> {
        dir.push("stat");
        let read = fsroot::read_into(dir, &mut self.buf);
        let parsed = match read {
            // Exited between listing and reading: skipped silently.
            Err(ReadError::Missing) => None,
            Err(err) => {
                out.problem(err.to_problem(dir, ""));
                None
            }
            Ok(()) => match stat::parse(&self.buf) {
                Ok(s) => Some(s),
                Err(reason) => {
                    out.problem(Problem::new(ProblemKind::Parse, dir.display(), reason, ""));
                    None
                }
            },
        };
        dir.pop();
        let stat = parsed?;
        if !self.config.selection.admits_comm(&stat.comm, stat.kernel_thread) {
            return None;
        }
        let key = ProcKey { pid, start_ticks: stat.start_ticks };
        let mut group = stat.comm.clone();
        if self.needs_identity() {
            let identity = identity(&mut self.identities, &self.config, key, &stat.comm, dir, &mut self.buf)?;
            if !self.config.selection.admits_identity(&identity.cmdline, &identity.cgroup) {
                return None;
            }
            group.clone_from(&identity.group);
        }
        let pid = if self.config.group_by == GroupBy::Pid { pid.to_string() } else { String::new() };
        let group = GroupKey { group, pid };
        Some(Seen { key, group, stat })
    }

    fn sum(&mut self, seen: &[Seen], boot_time: Option<f64>, out: &mut Collection) -> HashMap<GroupKey, Totals> {
        let keys: Vec<ProcKey> = seen.iter().map(|s| s.key).collect();
        let mut detail_age = None;
        let mut denied = 0;
        let snapshot = self.refresher.as_ref().map(|refresher| {
            let never = refresher.lock().taken_at.is_none();
            if never {
                refresher.refresh_now(&keys);
            }
            let mut snapshot = refresher.lock();
            let age = snapshot.taken_at.map(|t| t.elapsed()).unwrap_or_default();
            if !never && age >= self.config.detail_interval {
                refresher.request(keys.clone());
            }
            detail_age = Some(age.as_secs_f64());
            denied = snapshot.denied;
            out.problems.append(&mut snapshot.problems);
            snapshot
        });
        let mut groups: HashMap<GroupKey, Totals> = HashMap::new();
        for s in seen {
            let t = groups.entry(s.group.clone()).or_default();
            t.processes += 1;
            t.threads += s.stat.num_threads;
            t.resident += s.stat.rss_pages * self.page_size;
            t.virtual_ += s.stat.vsize_bytes;
            if let Some(boot) = boot_time {
                let start = boot + s.stat.start_ticks as f64 / self.ticks_per_second;
                t.oldest_start = Some(t.oldest_start.map_or(start, |o: f64| o.min(start)));
            }
            if let Some(d) = snapshot.as_ref().and_then(|snap| snap.details.get(&s.key)) {
                t.add_detail(d);
            }
        }
        drop(snapshot);
        if let Some(age) = detail_age {
            out.metrics.push(&DETAIL_AGE, &[], age);
            out.metrics.push(&DETAILS_DENIED, &[], denied as f64);
            self.warn_denied(denied, keys.len());
        }
        groups
    }

    /// Says once an hour that details are missing, and how to get them: silence
    /// would leave PSS and mapping series missing with `collector_success` at 1.
    fn warn_denied(&mut self, denied: usize, selected: usize) {
        if denied == 0 || self.denied_warned_at.is_some_and(|at| at.elapsed() < DENIED_WARNING_EVERY) {
            return;
        }
        self.denied_warned_at = Some(Instant::now());
        tracing::warn!(
            denied,
            selected,
            "the PSS and mappings (smaps_rollup, maps) of {denied} of {selected} processes could not be read: \
             they belong to other users and reading them needs ptrace access; run the exporter as root or \
             grant it CAP_SYS_PTRACE (e.g. AmbientCapabilities=CAP_SYS_PTRACE in its systemd unit); \
             memleak_process_details_denied_processes counts them on every scrape (repeated at most hourly)"
        );
    }

    /// Adds each process's fault increase to the series of the group it is
    /// counted in now: its own if the group kept its name, else `__other__`.
    fn count_faults(&mut self, seen: &[Seen], named: &HashSet<&GroupKey>) {
        let other = GroupKey { group: OTHER.into(), pid: String::new() };
        self.faults.begin();
        for s in seen {
            let series = if named.contains(&s.group) { &s.group } else { &other };
            self.faults.observe(s.key, series, [s.stat.minflt, s.stat.majflt]);
        }
        self.faults.finish();
    }
}

impl Configurable for ProcessCollector {
    const SPEC: &'static CollectorSpec = &SPEC;
    type Options = Options;

    fn build(roots: &FsRoots, config: Config) -> std::io::Result<Self> {
        ProcessCollector::new(roots, config)
    }
}

impl Collector for ProcessCollector {
    fn id(&self) -> &'static str {
        SPEC.id
    }

    fn collect(&mut self, ctx: &ScrapeContext, out: &mut Collection) {
        let boot_time = self.read_boot_time(out);
        let seen = self.walk(ctx, out);
        if self.needs_identity() {
            let live: std::collections::HashSet<ProcKey> = seen.iter().map(|s| s.key).collect();
            self.identities.retain(|k, _| live.contains(k));
        }
        let groups = self.sum(&seen, boot_time, out);
        let (groups, folded) = group::cap(groups, self.config.max_groups);
        let named: HashSet<&GroupKey> = groups.iter().map(|(key, _)| key).collect();
        self.count_faults(&seen, &named);
        emit(&groups, &named, &self.faults, out);
        out.metrics.push(&FOLDED_GROUPS, &[], folded as f64);
    }
}

/// Reads `cmdline`, `cgroup` and `exe` once per process, names its group, and caches them. `None`: it exited.
fn identity<'a>(
    cache: &'a mut HashMap<ProcKey, Identity>,
    config: &Config,
    key: ProcKey,
    comm: &str,
    dir: &mut PathBuf,
    buf: &mut Vec<u8>,
) -> Option<&'a Identity> {
    if let std::collections::hash_map::Entry::Vacant(slot) = cache.entry(key) {
        dir.push("cmdline");
        let cmdline = fsroot::read_into(dir, buf).map(|()| cmdline_text(buf));
        dir.pop();
        dir.push("cgroup");
        let cgroup_text = fsroot::read_text(dir);
        dir.pop();
        let (cmdline, cgroup_text) = match (cmdline, cgroup_text) {
            (Err(ReadError::Missing), _) | (_, Err(ReadError::Missing)) => return None,
            // Unreadable (hidepid, LSM): match against empty values rather than lose the process.
            (cmdline, cgroup) => (cmdline.unwrap_or_default(), cgroup.unwrap_or_default()),
        };
        // Another user's executable is unreadable without ptrace access: rules see it empty.
        let exe = if config.naming.is_empty() { String::new() } else { executable(dir) };
        let cgroup = cgroup_of(&cgroup_text).unwrap_or("").to_owned();
        let facts = naming::Facts { comm, exe: &exe, cmdline: &cmdline, cgroup_text: &cgroup_text };
        let group = naming::group_of(&config.naming, config.group_by, &facts, &cgroup);
        slot.insert(Identity { cmdline, cgroup, group });
    }
    cache.get(&key)
}

/// `/proc/PID/exe`'s target, without the ` (deleted)` the kernel adds to a replaced binary.
fn executable(dir: &mut PathBuf) -> String {
    dir.push("exe");
    let target = std::fs::read_link(&*dir).map(|t| t.to_string_lossy().into_owned()).unwrap_or_default();
    dir.pop();
    target.strip_suffix(" (deleted)").map(str::to_owned).unwrap_or(target)
}

/// The groups' gauges, and the fault counters of every group that has them:
/// the live groups first, then those whose members all exited lately.
fn emit(
    groups: &[(GroupKey, Totals)],
    live: &HashSet<&GroupKey>,
    faults: &MonotonicCounters<ProcKey, GroupKey, 2>,
    out: &mut Collection,
) {
    let m = &mut out.metrics;
    let push_faults = |m: &mut crate::model::MetricSet, key: &GroupKey, [minflt, majflt]: [u64; 2]| {
        let labels = [key.group.as_str(), key.pid.as_str()];
        m.push(&MINOR_FAULTS, &labels, minflt as f64);
        m.push(&MAJOR_FAULTS, &labels, majflt as f64);
    };
    for (key, t) in groups {
        let labels = [key.group.as_str(), key.pid.as_str()];
        m.push(&PROCESSES, &labels, t.processes as f64);
        m.push(&THREADS, &labels, t.threads as f64);
        m.push(&RESIDENT, &labels, t.resident as f64);
        m.push(&VIRTUAL, &labels, t.virtual_ as f64);
        if let Some(counts) = faults.get(key) {
            push_faults(m, key, *counts);
        }
        if let Some(start) = t.oldest_start {
            m.push(&START_TIME, &labels, start);
        }
        if t.with_detail > 0 {
            m.push(&ANON, &labels, t.anon as f64);
            m.push(&FILE, &labels, t.file as f64);
            m.push(&SHMEM, &labels, t.shmem as f64);
            m.push(&SWAP, &labels, t.swap as f64);
            m.push(&DATA, &labels, t.data as f64);
            m.push(&RESIDENT_PEAK, &labels, t.resident_peak as f64);
        }
        if t.with_maps > 0 {
            m.push(&MAPPINGS, &labels, t.mappings as f64);
            m.push(&HEAP, &labels, t.heap as f64);
            m.push(&ANON_MAPPED, &labels, t.anon_mapped as f64);
        }
        if t.with_pss > 0 {
            m.push(&PSS, &labels, t.pss as f64);
            m.push(&PSS_ANON, &labels, t.pss_anon as f64);
        }
    }
    for (key, counts) in faults.iter().filter(|(key, _)| !live.contains(key)) {
        push_faults(m, key, *counts);
    }
}

fn sysconf(name: libc::c_int, fallback: u64) -> u64 {
    // SAFETY: sysconf has no preconditions; it returns -1 for unknown names.
    let value = unsafe { libc::sysconf(name) };
    if value > 0 { value as u64 } else { fallback }
}

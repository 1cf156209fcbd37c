//! Loads `page_faults.bpf.c`, attaches it to the `page-faults` software perf
//! event on every online CPU with a sampling period, and reads its per-cgroup
//! sample counts at scrape time. Cgroup ids are the inode numbers of cgroup v2
//! directories; the scrape maps them back to paths.

use aya::Ebpf;
use aya::maps::HashMap as BpfHashMap;
use aya::programs::PerfEvent;
use aya::programs::perf_event::{PerfEventConfig, PerfEventScope, SamplePolicy, SoftwareEvent};
use memleak_signals::page_faults::{ESTIMATED, TRACKED};
use memleak_signals::{Collection, Collector, FsRoots, Problem, ProblemKind, ScrapeContext};
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

const PROGRAM: &str = "page_fault_sample";
const MAP: &str = "page_fault_samples";
/// Depth of the cgroup v2 walk that maps ids back to paths.
const MAX_DEPTH: usize = 8;
/// Most cgroup directories visited per scrape for that mapping.
const MAX_CGROUPS: usize = 8192;

/// The sampled page-fault collector (`--collector.page_faults`, opt-in).
pub struct PageFaultSampler {
    cgroupfs: PathBuf,
    period: u64,
    loaded: Option<Ebpf>,
}

impl std::fmt::Debug for PageFaultSampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageFaultSampler")
            .field("period", &self.period)
            .field("loaded", &self.loaded.is_some())
            .finish()
    }
}

impl PageFaultSampler {
    /// `period`: one sample every `period` page faults (1000 costs ~2 % on a pure fault loop here).
    pub fn new(roots: &FsRoots, period: u64) -> Self {
        PageFaultSampler { cgroupfs: roots.cgroupfs.clone(), period: period.max(1), loaded: None }
    }

    fn load(&self) -> Result<Ebpf, Problem> {
        let here = Path::new("page_faults.bpf.o");
        if !crate::built_with_bpf() {
            return Err(Problem::new(
                ProblemKind::Unsupported,
                here,
                "this build has no BPF programs (clang was missing when it was built)",
                "install clang and rebuild",
            ));
        }
        let denied = |what: String, err: &(dyn std::error::Error + 'static)| {
            let (text, errno) = describe(err);
            let kind = match errno {
                Some(libc::EPERM | libc::EACCES) => ProblemKind::Permission,
                _ => ProblemKind::Unsupported,
            };
            Problem::new(
                kind,
                here,
                format!("{what}: {text}"),
                "needs CAP_BPF and CAP_PERFMON (or root), a kernel with BTF and perf_event BPF programs",
            )
        };
        let mut bpf =
            Ebpf::load(crate::PAGE_FAULTS_OBJECT).map_err(|e| denied("cannot load the BPF object".into(), &e))?;
        let program: &mut PerfEvent = bpf
            .program_mut(PROGRAM)
            .ok_or_else(|| {
                Problem::new(ProblemKind::Unsupported, here, format!("no program {PROGRAM} in the object"), "")
            })?
            .try_into()
            .map_err(|e| denied("not a perf_event program".into(), &e))?;
        program.load().map_err(|e| denied("the kernel refused the program".into(), &e))?;
        let cpus =
            aya::util::online_cpus().map_err(|(what, e)| denied(format!("cannot list online CPUs ({what})"), &e))?;
        for cpu in cpus {
            program
                .attach(
                    PerfEventConfig::Software(SoftwareEvent::PageFaults),
                    PerfEventScope::AllProcessesOneCpu { cpu },
                    SamplePolicy::Period(self.period),
                    false,
                )
                .map_err(|e| denied(format!("cannot attach to page-faults on CPU {cpu}"), &e))?;
        }
        tracing::info!(period = self.period, "sampling page faults per cgroup with eBPF");
        Ok(bpf)
    }

    /// cgroup v2 id (directory inode) → path, for the hierarchy under `cgroupfs`.
    fn cgroup_paths(&self) -> HashMap<u64, String> {
        let root = [self.cgroupfs.clone(), self.cgroupfs.join("unified")]
            .into_iter()
            .find(|p| p.join("cgroup.controllers").is_file())
            .unwrap_or_else(|| self.cgroupfs.clone());
        let mut paths = HashMap::new();
        let mut stack = vec![(root.clone(), 0usize)];
        while let Some((dir, depth)) = stack.pop() {
            if paths.len() >= MAX_CGROUPS {
                break;
            }
            if let Ok(meta) = std::fs::metadata(&dir) {
                let rel = format!("/{}", dir.strip_prefix(&root).unwrap_or(&dir).to_string_lossy());
                paths.insert(meta.ino(), rel);
            }
            if depth < MAX_DEPTH
                && let Ok(entries) = std::fs::read_dir(&dir)
            {
                stack.extend(
                    entries
                        .flatten()
                        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                        .map(|e| (e.path(), depth + 1)),
                );
            }
        }
        paths
    }
}

impl Collector for PageFaultSampler {
    fn id(&self) -> &'static str {
        memleak_signals::page_faults::SIGNAL.id
    }

    fn collect(&mut self, _ctx: &ScrapeContext, out: &mut Collection) {
        if self.loaded.is_none() {
            match self.load() {
                Ok(bpf) => self.loaded = Some(bpf),
                Err(problem) => return out.problem(problem),
            }
        }
        let Some(bpf) = self.loaded.as_ref() else { return };
        let Some(map) = bpf.map(MAP) else {
            return out.problem(Problem::new(
                ProblemKind::Unsupported,
                Path::new(MAP),
                "map missing from the object",
                "",
            ));
        };
        let samples: BpfHashMap<_, u64, u64> = match BpfHashMap::try_from(map) {
            Ok(m) => m,
            Err(e) => {
                return out.problem(Problem::new(
                    ProblemKind::Read,
                    Path::new(MAP),
                    format!("cannot read the map: {e}"),
                    "",
                ));
            }
        };
        let counts: Vec<(u64, u64)> = samples.iter().flatten().collect();
        let entries = counts.len();
        // The cgroup tree is walked only when there is something to name.
        let paths = if counts.is_empty() { HashMap::new() } else { self.cgroup_paths() };
        let period = self.period.to_string();
        let mut by_path: HashMap<String, u64> = HashMap::new();
        for (id, count) in counts {
            let path = paths.get(&id).cloned().unwrap_or_else(|| "(unknown)".to_owned());
            *by_path.entry(path).or_default() += count;
        }
        let mut sorted: Vec<_> = by_path.into_iter().collect();
        sorted.sort();
        for (path, count) in sorted {
            out.metrics.push(&ESTIMATED, &[&path, &period], (count * self.period) as f64);
        }
        out.metrics.push(&TRACKED, &[], entries as f64);
    }
}

/// The whole chain of an error's messages, and the errno of the I/O error in it.
fn describe(err: &(dyn std::error::Error + 'static)) -> (String, Option<i32>) {
    let mut text = err.to_string();
    let mut errno = None;
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            errno = errno.or(io.raw_os_error());
        }
        if !std::ptr::addr_eq(e, err) {
            text.push_str(": ");
            text.push_str(&e.to_string());
        }
        current = e.source();
    }
    (text, errno)
}

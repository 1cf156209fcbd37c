//! Building the enabled collectors from the settings: the one place that knows
//! each collector's constructor and configuration type.

use crate::cli::Settings;
use anyhow::Context;
use memleak_signals::Collector;
use memleak_signals::cgroup::CgroupCollector;
use memleak_signals::host_memory::HostMemoryCollector;
use memleak_signals::process::ProcessCollector;
use memleak_signals::psi::PsiCollector;

/// The enabled collectors, in registry order.
pub fn build(settings: &Settings) -> anyhow::Result<Vec<Box<dyn Collector>>> {
    let roots = &settings.roots;
    let mut collectors: Vec<Box<dyn Collector>> = Vec::new();
    for id in &settings.enabled {
        let collector: Box<dyn Collector> = match *id {
            "psi" => Box::new(PsiCollector::new(roots)),
            "host_memory" => Box::new(HostMemoryCollector::new(roots)),
            "process" => Box::new(
                ProcessCollector::new(roots, settings.process.clone()).context("starting the process detail thread")?,
            ),
            "cgroup" => Box::new(CgroupCollector::new(roots, settings.cgroup.clone())),
            "pmc" => Box::new(memleak_signals::pmc::PmcCollector::new(roots, settings.pmc.clone())),
            "page_faults" => Box::new(memleak_bpf::PageFaultSampler::new(roots, settings.page_faults)),
            "memory_syscalls" => {
                Box::new(memleak_bpf::MemorySyscalls::new(roots, settings.memory_syscalls_max_cgroups))
            }
            other => anyhow::bail!("collector {other:?} is in the registry but has no constructor in collectors.rs"),
        };
        collectors.push(collector);
    }
    if let Some(watch) = &settings.watch {
        let collector = crate::watch::start(watch.clone()).context("starting the ingest watcher")?;
        collectors.push(Box::new(collector));
    }
    Ok(collectors)
}

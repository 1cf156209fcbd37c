//! Building the enabled collectors from the settings: the one place that knows
//! each collector's constructor and configuration type.

use crate::cli::Settings;
use anyhow::Context;
use memleak_signals::Collector;
use memleak_signals::cgroup::CgroupCollector;
use memleak_signals::host_memory::HostMemoryCollector;
use memleak_signals::process::ProcessCollector;
use memleak_signals::psi::PsiCollector;

/// The enabled collectors, and what of theirs the HTTP server serves.
pub struct Built {
    /// In registry order.
    pub collectors: Vec<Box<dyn Collector>>,
    /// The page-fault stack profile, when the `page_faults` collector is on.
    pub fault_profile: Option<memleak_bpf::FaultProfile>,
}

impl std::fmt::Debug for Built {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.collectors.iter().map(|c| c.id()).collect();
        f.debug_struct("Built").field("collectors", &ids).field("fault_profile", &self.fault_profile.is_some()).finish()
    }
}

/// Builds the enabled collectors.
pub fn build(settings: &Settings) -> anyhow::Result<Built> {
    let roots = &settings.roots;
    let mut collectors: Vec<Box<dyn Collector>> = Vec::new();
    let mut fault_profile = None;
    for id in &settings.enabled {
        let collector: Box<dyn Collector> = match *id {
            "psi" => Box::new(PsiCollector::new(roots)),
            "host_memory" => Box::new(HostMemoryCollector::new(roots)),
            "process" => Box::new(
                ProcessCollector::new(roots, settings.process.clone()).context("starting the process detail thread")?,
            ),
            "cgroup" => Box::new(CgroupCollector::new(roots, settings.cgroup.clone())),
            "pmc" => Box::new(memleak_signals::pmc::PmcCollector::new(roots, settings.pmc.clone())),
            "page_faults" => {
                let sampler = memleak_bpf::PageFaultSampler::new(roots, settings.page_faults);
                fault_profile = Some(sampler.profile());
                Box::new(sampler)
            }
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
    Ok(Built { collectors, fault_profile })
}

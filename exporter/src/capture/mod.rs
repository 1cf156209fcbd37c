//! The capture loop: alerts (from the webhook or the Alertmanager poller)
//! become capture plans (`plan`), targets are resolved on this host
//! (`target`, `host`), the scheduler runs them within hard limits
//! (`scheduler`), each capture kind of the table does the work (`kinds`), and
//! the results are kept in a bounded spool (`spool`, `outputs`) served by the
//! captures API (`api`).

pub mod allow;
pub mod api;
pub mod cancel;
pub mod dir;
pub mod host;
pub mod http;
pub mod kinds;
pub mod outputs;
pub mod plan;
pub mod poller;
pub mod process;
pub mod scheduler;
pub mod sources;
pub mod spool;
pub mod target;

use crate::options::capture::Config;
use crate::self_metrics::Counters;
use host::ThisHost;
use scheduler::{Limits, Scheduler};
use spool::Spool;
use std::net::SocketAddr;
use std::sync::Arc;
use target::Resolver;

/// Everything the planner needs; shared by the webhook, the poller and the API.
#[derive(Debug)]
pub struct Captures {
    pub host: ThisHost,
    pub resolver: Resolver,
    pub context: kinds::Context,
    /// The scheduler, or why captures are off (the spool could not be opened).
    pub scheduler: Result<Arc<Scheduler>, String>,
    pub counters: Arc<Counters>,
}

impl Captures {
    /// Opens the spool and sets the planner up. A spool that cannot be opened
    /// turns captures off (said at start-up and in every alert's outcome); the
    /// exporter still serves its metrics.
    pub fn new(config: Config, listen: SocketAddr, resolver: Resolver, counters: Arc<Counters>) -> Captures {
        let scheduler = Spool::open(&config.dir, config.keep, config.max_spool_bytes)
            .map(|spool| {
                let limits = Limits {
                    max_concurrent: config.max_concurrent,
                    max_duration: config.max_duration,
                    cooldown: config.cooldown,
                    max_per_hour: config.max_per_hour,
                };
                Scheduler::new(limits, Arc::new(spool), Arc::clone(&counters))
            })
            .map_err(|e| {
                format!("captures are off: the spool {} cannot be used: {e}; set --capture.dir", config.dir.display())
            });
        let context = kinds::Context {
            sources: config.sources,
            pprof_allow: config.pprof_allow,
            reachability_max_pause: config.reachability_max_pause,
            ebpf_malloc_budget: config.ebpf_malloc_budget,
        };
        Captures { host: ThisHost::new(&config.instance, listen), resolver, context, scheduler, counters }
    }

    /// Stops every running capture (the exporter is stopping).
    pub fn stop(&self) {
        if let Ok(s) = &self.scheduler {
            s.cancel_all("the exporter is stopping");
        }
    }
}

//! Pressure stall information for memory (`/proc/pressure/memory`).
//!
//! PSI says how much wall time tasks lost waiting for memory: the clearest sign
//! that a leak has started to hurt. The per-cgroup `memory.pressure` files are
//! read by the `cgroup` collector with the same parser.

mod parse;

pub use parse::{Pressure, PressureLine, parse};

use crate::collector::{Collection, Collector, ScrapeContext};
use crate::fsroot::{self, FsRoots};
use crate::model::{CollectorSpec, MetricSpec};
use crate::options::{Configurable, NoOptions};
use crate::problem::{Problem, ProblemKind};
use std::path::PathBuf;

pub static STALL_SECONDS: MetricSpec = MetricSpec::counter(
    "memleak_psi_stall_seconds_total",
    "Wall time in which some (kind=some) or all non-idle (kind=full) tasks stalled on memory, host-wide.",
    &["kind"],
);
pub static STALL_RATIO: MetricSpec = MetricSpec::gauge(
    "memleak_psi_stall_ratio",
    "Share of wall time stalled on memory, as the kernel's running average over the window (10s, 60s, 300s).",
    &["kind", "window"],
);

pub static SPEC: CollectorSpec = CollectorSpec {
    id: "psi",
    about: "Host memory pressure stall information (/proc/pressure/memory)",
    enabled_by_default: true,
    metrics: &[&STALL_SECONDS, &STALL_RATIO],
};

pub const MISSING_HINT: &str =
    "the kernel needs CONFIG_PSI=y (and psi=1 on its command line if CONFIG_PSI_DEFAULT_DISABLED=y)";

/// Reads host memory pressure at scrape time.
#[derive(Debug)]
pub struct PsiCollector {
    path: PathBuf,
}

impl PsiCollector {
    pub fn new(roots: &FsRoots) -> Self {
        PsiCollector { path: roots.procfs.join("pressure/memory") }
    }
}

impl Configurable for PsiCollector {
    const SPEC: &'static CollectorSpec = &SPEC;
    type Options = NoOptions;

    fn build(roots: &FsRoots, (): ()) -> std::io::Result<Self> {
        Ok(PsiCollector::new(roots))
    }
}

impl Collector for PsiCollector {
    fn id(&self) -> &'static str {
        SPEC.id
    }

    fn collect(&mut self, _ctx: &ScrapeContext, out: &mut Collection) {
        let text = match fsroot::read_text(&self.path) {
            Ok(text) => text,
            Err(err) => return out.problem(err.to_problem(&self.path, MISSING_HINT)),
        };
        let pressure = match parse(&text) {
            Ok(p) => p,
            Err(err) => {
                return out.problem(Problem::new(ProblemKind::Parse, self.path.display(), err.to_string(), ""));
            }
        };
        for (kind, line) in pressure.lines() {
            out.metrics.push(&STALL_SECONDS, &[kind], line.total_seconds());
            for (window, avg) in [("10s", line.avg10), ("60s", line.avg60), ("300s", line.avg300)] {
                out.metrics.push(&STALL_RATIO, &[kind, window], avg / 100.0);
            }
        }
    }
}

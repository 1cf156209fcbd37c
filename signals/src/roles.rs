//! The three roles a signal technology can play.
//!
//! * [`Collector`]: a scrape-time read of current state (layer 1). Cheap,
//!   synchronous, bounded by the scrape's deadline.
//! * Parser: a pure function from an artifact's text to the model (dev/CI
//!   files, allocator dumps, capture outputs), no I/O, no clock: an entry of
//!   [`crate::artifact::detect::FORMATS`] (its `sniff` and `parse`).
//! * [`Capture`]: a bounded, cancellable deep capture of one target, started by
//!   the Alertmanager webhook (layers 2 and 3).

use crate::model::MetricSet;
use crate::problem::{Problem, ProblemKind};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

/// What a collector may use during one scrape.
#[derive(Debug, Clone, Copy)]
pub struct ScrapeContext {
    /// The collector returns what it has by then, with a `Timeout` problem.
    pub deadline: Instant,
}

impl ScrapeContext {
    pub fn with_budget(budget: Duration) -> Self {
        ScrapeContext { deadline: Instant::now() + budget }
    }

    pub fn expired(&self) -> bool {
        Instant::now() >= self.deadline
    }
}

/// What one collector produced in one scrape.
#[derive(Debug, Default)]
pub struct Collection {
    pub metrics: MetricSet,
    pub problems: Vec<Problem>,
}

impl Collection {
    pub fn problem(&mut self, problem: Problem) {
        self.problems.push(problem);
    }

    /// Records that the scrape budget ran out while reading `path`.
    pub fn timed_out(&mut self, path: &Path, done: usize, total: usize) {
        self.problem(Problem::new(
            ProblemKind::Timeout,
            path,
            format!("scrape deadline reached after {done} of {total} entries; the rest is missing from this scrape"),
            "raise --web.scrape-timeout or narrow the selection",
        ));
    }
}

/// A scrape-time reader of current state.
///
/// `collect` takes `&mut self` so a collector may keep bounded caches between
/// scrapes (the exporter serializes calls per collector). It never fails as a
/// whole: problems go into `out.problems` and the collector emits what it could.
pub trait Collector: Send {
    /// The signal id (module name, config key, `collector` label value).
    fn id(&self) -> &'static str;
    fn collect(&mut self, ctx: &ScrapeContext, out: &mut Collection);
}

/// A failure of a deep capture.
#[derive(Debug, thiserror::Error)]
#[error("capture {kind} failed: {message}")]
pub struct CaptureError {
    pub kind: &'static str,
    pub message: String,
}

/// The process or cgroup a capture is aimed at; resolved by the exporter from
/// alert labels, never taken from a request as a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaptureTarget {
    Process { pid: u32 },
    Cgroup { path_in_hierarchy: String },
}

/// The capture kinds an alert may ask for with its `capture` label. Severity
/// maps to the layers: warning → `allocator-profile` (layer 2), critical →
/// `ebpf-malloc` or `staleness` (layer 3).
pub const CAPTURE_KINDS: &[&str] = &["allocator-profile", "ebpf-malloc", "staleness"];

/// A bounded, cancellable deep capture.
pub trait Capture: Send + Sync {
    fn kind(&self) -> &'static str;
    /// Runs for at most `budget`, returning early when `cancel` becomes true.
    fn run(&self, target: &CaptureTarget, budget: Duration, cancel: &AtomicBool) -> Result<MetricSet, CaptureError>;
}

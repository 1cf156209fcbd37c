//! The `Collector` trait: a scrape-time read of current state, bounded by the scrape's deadline.

use crate::model::MetricSet;
use crate::problem::{Problem, ProblemKind};
use std::fmt;
use std::sync::Arc;
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

    /// Records that the scrape budget ran out while walking `subject`.
    pub fn timed_out(&mut self, subject: impl fmt::Display, done: usize, total: usize) {
        self.problem(Problem::new(
            ProblemKind::Timeout,
            subject,
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
    /// The collector's id (its spec's id: module name, `collector` label value).
    fn id(&self) -> &'static str;
    fn collect(&mut self, ctx: &ScrapeContext, out: &mut Collection);
    /// A profile this collector fills, served at `/debug/pprof/<id>` while it runs.
    fn served_profile(&self) -> Option<Arc<dyn ServedProfile>> {
        None
    }
}

/// A profile that a collector fills between scrapes, rendered on request.
pub trait ServedProfile: Send + Sync {
    /// The profile so far as gzipped pprof; may read files (symbols), so call it off async threads.
    fn pprof(&self) -> Vec<u8>;
}

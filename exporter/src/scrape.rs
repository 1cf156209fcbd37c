//! One scrape: run every enabled collector within the deadline, add the self
//! metrics, and log each problem once with what, where and how to fix it.

use crate::self_metrics::{
    BUILD_INFO, CAPTURE_DURATION, CAPTURE_REJECTIONS, CAPTURE_REQUESTS, CAPTURES, COLLECTOR_DURATION,
    COLLECTOR_SUCCESS, Counters, ERRORS, HTTP_REFUSED, OTLP_DROPPED, OTLP_SENT, WEBHOOK_REQUESTS,
};
use memleak_signals::{Collection, Collector, MetricSet, Problem, ProblemKind, ScrapeContext};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime};

/// Distinct problems remembered so each is logged at warn level once; past
/// this the memory is cleared (and they are logged again), so it stays bounded.
const MAX_REMEMBERED_PROBLEMS: usize = 10_000;
/// Problems logged per collector per scrape; the rest are summed up in one line.
const MAX_LOGGED_PER_SCRAPE: usize = 5;
/// Kept free of the scrape timeout that Prometheus announces, for encoding and transfer.
const TIMEOUT_MARGIN: Duration = Duration::from_millis(500);

pub struct Scraper {
    collectors: Vec<(&'static str, Mutex<Box<dyn Collector>>)>,
    counters: Arc<Counters>,
    warned: Mutex<HashSet<String>>,
    max_budget: Duration,
    /// The latest collection, so that a push shortly after a scrape reuses it.
    latest: Mutex<Option<Shared>>,
    /// Told of each problem the first time it is seen (the OTLP push logs it).
    problem_listener: OnceLock<ProblemListener>,
}

/// Called with the collector id and the problem.
pub type ProblemListener = Box<dyn Fn(&str, &Problem) + Send + Sync>;

/// One collection, shared by a scrape and an OTLP push.
#[derive(Debug, Clone)]
pub struct Shared {
    pub set: Arc<MetricSet>,
    pub at: SystemTime,
    taken: Instant,
}

impl std::fmt::Debug for Scraper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scraper").field("collectors", &self.ids()).finish_non_exhaustive()
    }
}

impl Scraper {
    pub fn new(collectors: Vec<Box<dyn Collector>>, max_budget: Duration, counters: Arc<Counters>) -> Self {
        Scraper {
            collectors: collectors.into_iter().map(|c| (c.id(), Mutex::new(c))).collect(),
            counters,
            warned: Mutex::default(),
            max_budget,
            latest: Mutex::default(),
            problem_listener: OnceLock::new(),
        }
    }

    pub fn ids(&self) -> Vec<&'static str> {
        self.collectors.iter().map(|(id, _)| *id).collect()
    }

    /// The budget for a scrape: ours, or less if Prometheus announced a shorter timeout.
    pub fn budget(&self, announced: Option<Duration>) -> Duration {
        match announced {
            Some(t) => self.max_budget.min(t.saturating_sub(TIMEOUT_MARGIN).max(Duration::from_millis(100))),
            None => self.max_budget,
        }
    }

    /// Runs every collector once at start-up and logs what they cannot do, so
    /// that a missing permission (perf counters, eBPF) or file shows in the log
    /// when the exporter starts rather than at the first scrape. Collectors that
    /// attach to the kernel (perf counters, eBPF programs) start counting then.
    /// Not a scrape: its problems are logged (once, as ever) but not counted.
    pub fn probe(&self, budget: Duration) {
        let started = Instant::now();
        let mut problems = 0;
        for (id, out, _) in self.collect_all(budget) {
            problems += out.problems.len();
            self.log_problems(id, &out.problems);
        }
        tracing::info!(took = ?started.elapsed(), problems, "collectors probed at start-up");
    }

    /// Sets who hears of new problems (once; later calls are ignored).
    pub fn on_new_problem(&self, listener: ProblemListener) {
        let _ = self.problem_listener.set(listener);
    }

    /// A scrape whose result is kept for `recent_or_scrape`.
    pub fn scrape_shared(&self, budget: Duration) -> Arc<MetricSet> {
        let at = SystemTime::now();
        let taken = Instant::now();
        let set = Arc::new(self.scrape(budget));
        *self.latest.lock().unwrap_or_else(PoisonError::into_inner) = Some(Shared { set: Arc::clone(&set), at, taken });
        set
    }

    /// The latest collection if it is at most `max_age` old, else a new one: a push
    /// that follows a scrape closely costs no collection work.
    pub fn recent_or_scrape(&self, max_age: Duration, budget: Duration) -> Shared {
        let latest = self.latest.lock().unwrap_or_else(PoisonError::into_inner).clone();
        if let Some(shared) = latest.filter(|s| s.taken.elapsed() <= max_age) {
            return shared;
        }
        let at = SystemTime::now();
        let taken = Instant::now();
        let shared = Shared { set: Arc::new(self.scrape(budget)), at, taken };
        *self.latest.lock().unwrap_or_else(PoisonError::into_inner) = Some(shared.clone());
        shared
    }

    /// Runs every collector (in parallel: they read different files) and returns all metrics.
    pub fn scrape(&self, budget: Duration) -> MetricSet {
        let results = self.collect_all(budget);
        let mut set = MetricSet::new();
        set.push(&BUILD_INFO, &[env!("CARGO_PKG_VERSION"), "jemalloc"], 1.0);
        crate::process_self::emit(&mut set);
        for (id, out, elapsed) in results {
            set.push(&COLLECTOR_DURATION, &[id], elapsed.as_secs_f64());
            set.push(&COLLECTOR_SUCCESS, &[id], if out.problems.is_empty() { 1.0 } else { 0.0 });
            for problem in &out.problems {
                self.counters.inc(&ERRORS, &[id, problem.kind.as_str()]);
            }
            self.log_problems(id, &out.problems);
            set.append(out.metrics);
        }
        for spec in [
            &ERRORS,
            &WEBHOOK_REQUESTS,
            &CAPTURE_REQUESTS,
            &CAPTURES,
            &CAPTURE_REJECTIONS,
            &OTLP_SENT,
            &OTLP_DROPPED,
            &HTTP_REFUSED,
        ] {
            self.counters.emit(spec, &mut set);
        }
        self.counters.emit_histogram(&CAPTURE_DURATION, &mut set);
        set
    }

    /// Every collector's collection, each on its own thread within `budget`.
    fn collect_all(&self, budget: Duration) -> Vec<(&'static str, Collection, Duration)> {
        let ctx = ScrapeContext::with_budget(budget);
        std::thread::scope(|scope| {
            let handles: Vec<_> = self
                .collectors
                .iter()
                .map(|(id, collector)| {
                    scope.spawn(move || {
                        let started = Instant::now();
                        let mut out = Collection::default();
                        collector.lock().unwrap_or_else(PoisonError::into_inner).collect(&ctx, &mut out);
                        (*id, out, started.elapsed())
                    })
                })
                .collect();
            handles
                .into_iter()
                .zip(self.collectors.iter())
                .map(|(h, (id, _))| h.join().unwrap_or_else(|_| (*id, panicked(id), Duration::ZERO)))
                .collect()
        })
    }

    fn log_problems(&self, collector: &str, problems: &[Problem]) {
        let mut warned = self.warned.lock().unwrap_or_else(PoisonError::into_inner);
        if warned.len() > MAX_REMEMBERED_PROBLEMS {
            warned.clear();
        }
        let mut suppressed = 0;
        let mut logged = 0;
        for p in problems {
            let first_time = warned.insert(format!("{collector}\0{}\0{}", p.kind.as_str(), p.subject));
            if first_time && let Some(listener) = self.problem_listener.get() {
                listener(collector, p);
            }
            if first_time && logged < MAX_LOGGED_PER_SCRAPE {
                logged += 1;
                tracing::warn!(
                    collector,
                    kind = p.kind.as_str(),
                    subject = %p.subject,
                    hint = %p.hint,
                    "{}", p.detail
                );
            } else {
                suppressed += usize::from(first_time);
                tracing::debug!(collector, kind = p.kind.as_str(), subject = %p.subject, "{}", p.detail);
            }
        }
        if suppressed > 0 {
            tracing::warn!(collector, more = suppressed, "more new problems in this scrape (see --log.level=debug)");
        }
    }
}

/// A collector that panicked (a bug): the scrape goes on without it.
fn panicked(id: &str) -> Collection {
    tracing::error!(collector = id, "collector panicked; this is a bug, please report it");
    let mut out = Collection::default();
    out.problem(Problem::new(ProblemKind::Panic, id, "collector panicked", "please report it with the log"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use memleak_signals::MetricSpec;

    static UP: MetricSpec = MetricSpec::gauge("memleak_test_up", "Test.", &[]);

    struct Steady;
    struct Broken;

    impl Collector for Steady {
        fn id(&self) -> &'static str {
            "steady"
        }
        fn collect(&mut self, _: &ScrapeContext, out: &mut Collection) {
            out.metrics.push(&UP, &[], 1.0);
        }
    }

    impl Collector for Broken {
        fn id(&self) -> &'static str {
            "broken"
        }
        fn collect(&mut self, _: &ScrapeContext, _: &mut Collection) {
            panic!("a bug");
        }
    }

    #[test]
    fn a_panicking_collector_fails_alone_and_is_counted_as_a_panic() {
        let counters = Arc::new(Counters::default());
        let scraper = Scraper::new(vec![Box::new(Broken), Box::new(Steady)], Duration::from_secs(1), counters);
        for scrapes in 1..=2 {
            let set = scraper.scrape(Duration::from_secs(1));
            assert_eq!(set.value("memleak_test_up", &[]), Some(1.0), "the others still serve");
            assert_eq!(set.value("memleak_exporter_collector_success", &[("collector", "broken")]), Some(0.0));
            assert_eq!(set.value("memleak_exporter_collector_success", &[("collector", "steady")]), Some(1.0));
            let errors = [("collector", "broken"), ("type", "panic")];
            assert_eq!(set.value("memleak_exporter_errors_total", &errors), Some(f64::from(scrapes)));
        }
    }

    #[test]
    fn the_start_up_probe_runs_the_collectors_but_counts_nothing() {
        let counters = Arc::new(Counters::default());
        let scraper = Scraper::new(vec![Box::new(Broken), Box::new(Steady)], Duration::from_secs(1), counters);
        scraper.probe(Duration::from_secs(1));
        let set = scraper.scrape(Duration::from_secs(1));
        let errors = [("collector", "broken"), ("type", "panic")];
        assert_eq!(set.value("memleak_exporter_errors_total", &errors), Some(1.0), "only the scrape counts");
    }
}

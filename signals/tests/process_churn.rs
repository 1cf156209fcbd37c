#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The process collector's fault counters over hundreds of scrapes of a
//! fixture `/proc` that churns: processes start and exit, pids are reused,
//! processes rename themselves, and groups cross the top-N boundary both ways.
//! Every `_total` series must never fall while it exists, and the increases of
//! all series must add up to the faults the processes took while they were
//! visible (the ground truth the simulation keeps), with no double counting.

mod support {
    pub mod counter_audit;
}

use memleak_signals::process::{self, GroupBy, ProcKey, ProcessCollector};
use memleak_signals::{Collection, Collector, FsRoots, ScrapeContext};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;
use support::counter_audit::CounterAudit;

/// xorshift64: a deterministic churn, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

struct Proc {
    comm: String,
    minflt: u64,
    majflt: u64,
    rss_pages: u64,
}

const PID_SPACE: u32 = 300;
const NAMES: u64 = 120;

/// Brings the fixture `/proc` to the `live` processes: gone pids' folders removed, every stat rewritten.
fn write_proc(procfs: &Path, live: &BTreeMap<ProcKey, Proc>) {
    std::fs::create_dir_all(procfs).unwrap();
    std::fs::write(procfs.join("stat"), "cpu 0 0 0 0\nbtime 1700000000\n").unwrap();
    for entry in std::fs::read_dir(procfs).unwrap() {
        let entry = entry.unwrap();
        let pid = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok());
        if pid.is_some_and(|pid| !live.keys().any(|k| k.pid == pid)) {
            std::fs::remove_dir_all(entry.path()).unwrap();
        }
    }
    for (key, p) in live {
        let dir = procfs.join(key.pid.to_string());
        std::fs::create_dir_all(&dir).unwrap();
        // Fields 3..24 of proc(5): flags 0 (not a kernel thread), minflt, majflt, threads, start, vsize, rss.
        let line = format!(
            "{} ({}) S 1 1 1 0 -1 0 {} 0 {} 0 0 0 0 0 20 0 1 0 {} 4096 {} 0\n",
            key.pid, p.comm, p.minflt, p.majflt, key.start_ticks, p.rss_pages
        );
        std::fs::write(dir.join("stat"), line).unwrap();
    }
}

fn scrape(collector: &mut ProcessCollector) -> Collection {
    let mut out = Collection::default();
    collector.collect(&ScrapeContext::with_budget(Duration::from_secs(30)), &mut out);
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    out
}

/// Runs `scrapes` scrapes of a churning process table; returns the audits of
/// minor and major faults and the ground truth (each process's counts when it
/// was last seen, summed).
fn churn(group_by: GroupBy, max_groups: usize, scrapes: u64) -> ([CounterAudit; 2], [u64; 2]) {
    // A memory file system when there is one: this rewrites thousands of files.
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() }.unwrap();
    let roots = FsRoots::under(dir.path());
    let config = process::Config { group_by, max_groups, detail_interval: Duration::ZERO, ..Default::default() };
    let mut collector = ProcessCollector::new(&roots, config).unwrap();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut live: BTreeMap<ProcKey, Proc> = BTreeMap::new();
    let mut last_seen: HashMap<ProcKey, [u64; 2]> = HashMap::new();
    let mut audits = [
        CounterAudit::new("memleak_process_minor_faults_total"),
        CounterAudit::new("memleak_process_major_faults_total"),
    ];
    let (mut reused, mut renamed, mut hog_up) = (0, 0, 0);
    // The hog: a long-lived group that swings above and below everyone else every 15 scrapes.
    let hog = ProcKey { pid: PID_SPACE + 1, start_ticks: 1 };
    for step in 0..scrapes {
        live.retain(|key, _| *key == hog || rng.below(100) >= 6);
        while live.len() < 220 {
            let pid = 1 + rng.below(u64::from(PID_SPACE)) as u32;
            if live.keys().any(|k| k.pid == pid) {
                continue;
            }
            let key = ProcKey { pid, start_ticks: 100 + step * 10 + rng.below(10) };
            reused += usize::from(last_seen.keys().any(|k| k.pid == pid));
            let comm = format!("svc{}", rng.below(NAMES));
            // A new process has faulted before its first scrape: those count too.
            let p = Proc { comm, minflt: rng.below(5000), majflt: rng.below(3), rss_pages: 1 + rng.below(500) };
            live.insert(key, p);
        }
        for p in live.values_mut() {
            p.minflt += rng.below(400);
            p.majflt += u64::from(rng.below(10) == 0);
            p.rss_pages = (p.rss_pages + rng.below(60)).saturating_sub(30).max(1);
            if rng.below(100) == 0 {
                p.comm = format!("svc{}", rng.below(NAMES));
                renamed += 1;
            }
        }
        let big = (step / 15) % 2 == 1;
        hog_up += usize::from(big);
        let entry = live.entry(hog).or_insert(Proc { comm: "hog".into(), minflt: 0, majflt: 0, rss_pages: 1 });
        entry.minflt += 1000;
        entry.rss_pages = if big { 1 << 20 } else { 1 };

        write_proc(&roots.procfs, &live);
        let out = scrape(&mut collector);
        for (key, p) in &live {
            last_seen.insert(*key, [p.minflt, p.majflt]);
        }
        for audit in &mut audits {
            audit.scrape(&out.metrics);
        }
    }
    assert!(reused > 100 && renamed > 100 && hog_up > 50, "the churn has reuse {reused}, renames {renamed}");
    let truth = [0, 1].map(|i| last_seen.values().map(|v| v[i]).sum::<u64>());
    (audits, truth)
}

fn assert_monotonic_and_conserved(group_by: GroupBy, max_groups: usize) {
    let (audits, truth) = churn(group_by, max_groups, 300);
    for (audit, truth) in audits.iter().zip(truth) {
        assert!(audit.falls.is_empty(), "{} falls:\n{}", audit.falls.len(), audit.falls.join("\n"));
        assert_eq!(audit.total(), truth as f64, "the series' increases add up to the processes' faults");
        assert!(audit.series() <= 2 * max_groups, "{} series", audit.series());
    }
}

#[test]
fn group_counters_never_fall_and_add_up_under_churn() {
    assert_monotonic_and_conserved(GroupBy::Comm, 20);
}

#[test]
fn group_counters_never_fall_when_nothing_is_folded() {
    assert_monotonic_and_conserved(GroupBy::Comm, 500);
}

#[test]
fn per_pid_counters_never_fall_across_pid_reuse() {
    assert_monotonic_and_conserved(GroupBy::Pid, 50);
}

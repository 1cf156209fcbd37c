//! The scheduler: hard limits on captures (concurrency, per-target cooldown, one
//! capture per process at a time, a global hourly rate, room in the spool),
//! duplicates by alert fingerprint,
//! cancellation, and the run of each capture on a thread of its own, whose
//! result goes to the spool with a log record. Every decision is counted and
//! logged once with the alert's fingerprint.

use super::cancel::Cancel;
use super::kinds::{Finished, Job, Kind, Run, Status};
use super::outputs;
use super::spool::{Info, Spool};
use super::target::Target;
use crate::self_metrics::{CAPTURE_DURATION, CAPTURE_REJECTIONS, CAPTURES, Counters};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

/// The scheduler's limits.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_concurrent: usize,
    pub max_duration: Duration,
    pub cooldown: Duration,
    pub max_per_hour: usize,
}

/// Most fingerprints and targets remembered for duplicates and cooldowns.
const MAX_REMEMBERED: usize = 10_000;
const HOUR: Duration = Duration::from_secs(3600);

/// A capture ready to start.
#[derive(Debug)]
pub struct Start {
    pub kind: &'static Kind,
    pub run: Box<dyn Run>,
    pub info: Info,
    pub target: Target,
    pub duration: Duration,
}

/// Why a capture did not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// `duplicate`, `cooldown`, `busy`, `concurrency`, `rate`, `spool`.
    pub reason: &'static str,
    pub message: String,
}

#[derive(Debug, Default)]
struct State {
    /// Running captures by fingerprint: (capture id, its cancel).
    running: HashMap<String, (String, Arc<Cancel>)>,
    /// The processes each running capture acts on, by fingerprint.
    pids: HashMap<String, Vec<u32>>,
    /// When each fingerprint's last capture finished.
    finished: HashMap<String, Instant>,
    /// When each target's last capture started.
    targets: HashMap<String, Instant>,
    /// Start times within the last hour.
    starts: VecDeque<Instant>,
}

/// Starts, limits and cancels captures.
#[derive(Debug)]
pub struct Scheduler {
    limits: Limits,
    spool: Arc<Spool>,
    counters: Arc<Counters>,
    state: Mutex<State>,
    sequence: AtomicU64,
    /// Where finished captures are shipped too (with --otlp.endpoint).
    otlp: std::sync::OnceLock<crate::otlp::OtlpSink>,
}

impl Scheduler {
    pub fn new(limits: Limits, spool: Arc<Spool>, counters: Arc<Counters>) -> Arc<Scheduler> {
        Arc::new(Scheduler {
            limits,
            spool,
            counters,
            state: Mutex::default(),
            sequence: AtomicU64::new(0),
            otlp: std::sync::OnceLock::new(),
        })
    }

    /// Ships every finished capture (outcome and profiles) over OTLP from now on.
    pub fn ship_to(&self, sink: crate::otlp::OtlpSink) {
        let _ = self.otlp.set(sink);
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn spool(&self) -> &Arc<Spool> {
        &self.spool
    }

    /// A new capture id: `<unix ms>-<sequence>`, sorting by start.
    pub fn next_id(&self) -> String {
        let ms = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let n = self.sequence.fetch_add(1, Ordering::Relaxed) % 10_000;
        format!("{ms:013}-{n:04}")
    }

    /// Whether the fingerprint has a running capture or one finished within the cooldown.
    pub fn duplicate(&self, fingerprint: &str) -> Option<String> {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((id, _)) = state.running.get(fingerprint) {
            return Some(format!("capture {id} of this alert is running"));
        }
        let recent = state.finished.get(fingerprint).is_some_and(|t| t.elapsed() < self.limits.cooldown);
        recent.then(|| {
            format!("this alert was captured less than {} ago", humantime::format_duration(self.limits.cooldown))
        })
    }

    /// Starts `start` unless a limit refuses it.
    pub fn start(self: &Arc<Self>, start: Start) -> Result<String, Refused> {
        let fingerprint = start.info.fingerprint.clone();
        let refuse = |reason: &'static str, message: String| Err(Refused { reason, message });
        let cancel = Arc::new(Cancel::default());
        {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            let now = Instant::now();
            state.starts.retain(|t| now.duration_since(*t) < HOUR);
            let cooldown = self.limits.cooldown;
            state.finished.retain(|_, t| now.duration_since(*t) < cooldown);
            state.targets.retain(|_, t| now.duration_since(*t) < cooldown);
            if let Some((id, _)) = state.running.get(&fingerprint) {
                return refuse("duplicate", format!("capture {id} of this alert is running"));
            }
            if let Some(t) = state.targets.get(&start.target.key()) {
                let left = cooldown.saturating_sub(now.duration_since(*t));
                return refuse(
                    "cooldown",
                    format!(
                        "{} was captured recently; the cooldown (--capture.cooldown) ends in {}s",
                        start.info.target_text(),
                        left.as_secs()
                    ),
                );
            }
            if state.running.len() >= self.limits.max_concurrent {
                return refuse(
                    "concurrency",
                    format!(
                        "{} captures are running, the most at once (--capture.max-concurrent)",
                        state.running.len()
                    ),
                );
            }
            if let Some(message) = busy(&state, &start.target.pids()) {
                return refuse("busy", message);
            }
            if state.starts.len() >= self.limits.max_per_hour {
                return refuse(
                    "rate",
                    format!(
                        "{} captures started in the last hour, the most (--capture.max-per-hour)",
                        state.starts.len()
                    ),
                );
            }
            if !self.spool.has_room() {
                return refuse("spool", "the spool is full of running captures (--capture.keep)".into());
            }
            self.spool.evict();
            if self.spool.over_budget() {
                return refuse(
                    "spool",
                    "the spool holds more than --capture.max-spool-bytes in running captures".into(),
                );
            }
            if state.finished.len() >= MAX_REMEMBERED || state.targets.len() >= MAX_REMEMBERED {
                // Past the bound the oldest memories go first; the cooldown holds for the rest.
                forget_oldest(&mut state.finished);
                forget_oldest(&mut state.targets);
            }
            if let Err(e) = self.spool.create(&start.info) {
                return refuse("spool", format!("cannot write to the spool {}: {e}", self.spool.shown().display()));
            }
            state.running.insert(fingerprint.clone(), (start.info.id.clone(), Arc::clone(&cancel)));
            state.pids.insert(fingerprint.clone(), start.target.pids());
            state.targets.insert(start.target.key(), now);
            state.starts.push_back(now);
        }
        let id = start.info.id.clone();
        let me = Arc::clone(self);
        let spawned = std::thread::Builder::new().name(format!("capture-{id}")).spawn(move || me.run(start, &cancel));
        if let Err(e) = spawned {
            tracing::error!(capture = %id, fingerprint = %fingerprint, "cannot start the capture thread: {e}");
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.running.remove(&fingerprint);
            state.pids.remove(&fingerprint);
            return refuse("concurrency", format!("cannot start a thread: {e}"));
        }
        Ok(id)
    }

    /// Cancels the running capture of `fingerprint`; its id when there was one.
    pub fn cancel(&self, fingerprint: &str, reason: &str) -> Option<String> {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (id, cancel) = state.running.get(fingerprint)?;
        cancel.cancel(reason);
        Some(id.clone())
    }

    /// Fingerprints with a running capture that came through `via`.
    pub fn running_via(&self, via: &str) -> Vec<String> {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state
            .running
            .iter()
            .filter(|(_, (id, _))| self.spool.get(id).is_some_and(|i| i.via == via))
            .map(|(fp, _)| fp.clone())
            .collect()
    }

    /// Cancels every running capture (the exporter is stopping).
    pub fn cancel_all(&self, reason: &str) {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        for (_, cancel) in state.running.values() {
            cancel.cancel(reason);
        }
    }

    /// Counts a refusal and logs it once.
    pub fn refused(&self, kind: &str, reason: &str, fingerprint: &str, alertname: &str, message: &str) {
        self.counters.inc(&CAPTURE_REJECTIONS, &[kind, reason]);
        tracing::info!(fingerprint = %fingerprint, alertname = %alertname, capture = kind, reason = reason, "capture not started: {message}");
    }

    fn run(&self, start: Start, cancel: &Cancel) {
        let Start { kind, run, mut info, duration, target } = start;
        let started = Instant::now();
        tracing::info!(capture = %info.id, fingerprint = %info.fingerprint, kind = kind.id, target = %info.target_text(), pids = info.pids.len(), duration = %humantime::format_duration(duration), "capture started");
        let spool = &self.spool;
        let window = {
            let base = info.clone();
            move || {
                let mut i = base.clone();
                i.phase = "window".into();
                let _ = spool.update(&i);
            }
        };
        let job = Job { target: &target, duration, cancel, window_open: &window };
        // A kind that panics fails its capture, not the exporter.
        let finished = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run.run(&job)))
            .unwrap_or_else(|_| Finished::failed(format!("the {} capture panicked; please report it", kind.id)));
        let elapsed = started.elapsed();
        info.status = finished.status;
        info.reason = finished.reason.clone();
        info.phase = "finished".into();
        info.elapsed_seconds = Some(elapsed.as_secs_f64());
        if let Some(result) = &finished.result {
            match outputs::write(spool, &info, result) {
                Ok((files, summary)) => {
                    info.files = files;
                    info.summary = Some(summary);
                }
                Err(e) => {
                    info.status = Status::Failed;
                    info.reason = Some(format!("cannot write the outputs to the spool: {e}"));
                }
            }
        }
        if let Err(e) = spool.update(&info) {
            tracing::warn!(capture = %info.id, "cannot record the capture's end in the spool: {e}");
        }
        self.counters.inc(&CAPTURES, &[kind.id, info.status.as_str()]);
        self.counters.observe(&CAPTURE_DURATION, &[kind.id], elapsed.as_secs_f64());
        if let Some(sink) = self.otlp.get() {
            crate::otlp::captures::ship(sink, &info, finished.result.as_ref());
        }
        tracing::info!(
            capture = %info.id, fingerprint = %info.fingerprint, kind = kind.id, status = info.status.as_str(),
            reason = info.reason.as_deref().unwrap_or(""), seconds = format!("{:.1}", elapsed.as_secs_f64()),
            "capture finished"
        );
        {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.running.remove(&info.fingerprint);
            state.pids.remove(&info.fingerprint);
            state.finished.insert(info.fingerprint.clone(), Instant::now());
        }
        for id in spool.evict() {
            tracing::info!(capture = %id, "evicted from the spool (--capture.keep, --capture.max-spool-bytes)");
        }
    }
}

/// Why a capture acting on `pids` must wait: one of them is in a running capture's target.
/// Two captures on one process would add their costs unseen by each other (two sets of
/// probes, each governor spending the whole budget; pauses; signals) and mix their results.
fn busy(state: &State, pids: &[u32]) -> Option<String> {
    state.pids.iter().find_map(|(fingerprint, theirs)| {
        let pid = pids.iter().find(|p| theirs.contains(p))?;
        let id = state.running.get(fingerprint).map_or("?", |(id, _)| id.as_str());
        Some(format!(
            "process {pid} is in the target of running capture {id}: one capture per process at a time \
             (their costs would add); it can start once that one ends"
        ))
    })
}

fn forget_oldest(map: &mut HashMap<String, Instant>) {
    if let Some(oldest) = map.iter().min_by_key(|(_, t)| **t).map(|(k, _)| k.clone()) {
        map.remove(&oldest);
    }
}

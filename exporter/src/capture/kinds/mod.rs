//! The capture-kind table: one module per kind and one line below. A kind
//! checks an alert when it arrives (`prepare`: is there something to capture,
//! is the request allowed) and returns the work that the scheduler runs on a
//! thread of its own (`Run`), bounded by its duration and cancellable.
//!
//! `ebpf-malloc` is the uprobe tracer of `memleak_bpf::malloc`; reachability
//! is an option of `sampler` (not yet of `ebpf-malloc`).

pub mod allocator_profile;
pub mod ebpf_malloc;
pub mod sampler;
pub mod staleness;

use super::allow::Allowlist;
use super::cancel::Cancel;
use super::sources::Source;
use super::target::Target;
use memleak_artifacts::Ingested;
use std::collections::BTreeMap;
use std::time::Duration;

/// One line of the table.
#[derive(Debug)]
pub struct Kind {
    /// The value of an alert's `capture` label.
    pub id: &'static str,
    pub about: &'static str,
    /// The window when the alert has no `capture_duration` annotation.
    pub default_duration: Duration,
    pub prepare: fn(&Setup) -> Result<Box<dyn Run>, Refusal>,
}

/// Every capture kind.
pub static KINDS: &[&Kind] = &[&allocator_profile::KIND, &ebpf_malloc::KIND, &sampler::KIND, &staleness::KIND];

/// The kind named `id`.
pub fn find(id: &str) -> Option<&'static Kind> {
    KINDS.iter().copied().find(|k| k.id == id)
}

/// The `kind` label of the capture metrics: a kind of the table, or `unknown`
/// (a request's own word would let requests grow the series without bound).
pub fn metric_label(id: &str) -> &'static str {
    find(id).map_or("unknown", |k| k.id)
}

/// What the operator configured for captures, shared by every kind.
#[derive(Debug, Clone)]
pub struct Context {
    pub sources: Vec<Source>,
    pub pprof_allow: Allowlist,
    /// The longest pause of a reachability scan (`--capture.reachability.max-pause`).
    pub reachability_max_pause: Duration,
    /// CPU an `ebpf-malloc` capture may add to its target (a share of one CPU).
    pub ebpf_malloc_budget: f64,
}

/// What a kind sees of an alert when it arrives.
#[derive(Debug)]
pub struct Setup<'a> {
    pub context: &'a Context,
    pub target: &'a Target,
    pub annotations: &'a BTreeMap<String, String>,
}

/// Why a kind will not capture an alert's target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The request asks for something not allowed (a URL outside the allowlist).
    Invalid(String),
    /// The target offers nothing this kind can capture.
    Unavailable(String),
}

/// The running part of a capture.
pub trait Run: Send + std::fmt::Debug {
    fn run(self: Box<Self>, job: &Job) -> Finished;
}

/// What a running capture is given.
pub struct Job<'a> {
    /// The resolved processes, pinned: signals go through `Target::signal`.
    pub target: &'a Target,
    pub duration: Duration,
    pub cancel: &'a Cancel,
    /// Called when the capture window opens (the first profile is taken).
    pub window_open: &'a (dyn Fn() + Sync),
}

/// How a capture window ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Window {
    Elapsed,
    Cancelled(String),
    /// Every process of the target exited: nothing more will come.
    Exited,
}

/// How often a window checks that the target still runs.
const LIVENESS_STEP: Duration = Duration::from_millis(500);

impl Job<'_> {
    /// Waits out the window, ending early when cancelled or when the target has exited.
    pub fn window(&self) -> Window {
        let until = std::time::Instant::now() + self.duration;
        loop {
            let left = until.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Window::Elapsed;
            }
            if let Err(reason) = self.cancel.sleep(left.min(LIVENESS_STEP)) {
                return Window::Cancelled(reason);
            }
            if !self.target.any_alive() {
                return Window::Exited;
            }
        }
    }
}

impl std::fmt::Debug for Job<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("pids", &self.target.pids())
            .field("duration", &self.duration)
            .finish_non_exhaustive()
    }
}

/// How a capture ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Running,
    Done,
    /// Ended early (the target exited, the second profile failed): what was taken is kept.
    Partial,
    Failed,
    Cancelled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Done => "done",
            Status::Partial => "partial",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
    }
}

/// A finished capture: its status, why (unless done), and what it produced.
#[derive(Debug)]
pub struct Finished {
    pub status: Status,
    pub reason: Option<String>,
    /// The main profile comes first (for allocator profiles: the growth).
    pub result: Option<Ingested>,
}

impl Finished {
    pub fn failed(reason: String) -> Finished {
        Finished { status: Status::Failed, reason: Some(reason), result: None }
    }
}

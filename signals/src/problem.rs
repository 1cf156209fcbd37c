//! Problems a collector met while reading: what, where, and how to fix it.
//!
//! A problem marks its collector as failed for that scrape
//! (`memleak_exporter_collector_success 0`) and is counted in
//! `memleak_exporter_errors_total{collector,type}`; the scrape itself still succeeds.

use std::borrow::Cow;
use std::fmt;

/// The class of a problem; its `as_str` is the `type` label of the error counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProblemKind {
    /// An I/O error other than permission.
    Read,
    /// Permission denied (missing capability, hardened /proc, …).
    Permission,
    /// The file was read but its content is not what the kernel writes.
    Parse,
    /// The kernel or host lacks the feature (file absent, controller missing).
    Unsupported,
    /// The collector ran out of its scrape budget and returned partial data.
    Timeout,
    /// The collector panicked (a bug); the scrape went on without it.
    Panic,
}

impl ProblemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::Read => "read",
            ProblemKind::Permission => "permission",
            ProblemKind::Parse => "parse",
            ProblemKind::Unsupported => "unsupported",
            ProblemKind::Timeout => "timeout",
            ProblemKind::Panic => "panic",
        }
    }
}

/// One problem, with what it concerns and a hint for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub kind: ProblemKind,
    /// What the problem concerns: a file, a BPF object or map, a cgroup, a collector.
    pub subject: String,
    pub detail: String,
    pub hint: Cow<'static, str>,
}

impl Problem {
    pub fn new(
        kind: ProblemKind,
        subject: impl fmt::Display,
        detail: impl Into<String>,
        hint: impl Into<Cow<'static, str>>,
    ) -> Self {
        Problem { kind, subject: subject.to_string(), detail: detail.into(), hint: hint.into() }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.subject, self.detail)?;
        if !self.hint.is_empty() {
            write!(f, " (hint: {})", self.hint)?;
        }
        Ok(())
    }
}

//! Pulling a pprof heap profile from the target's own endpoint (Go's
//! `net/http/pprof` `/debug/pprof/heap`, `jemalloc_pprof`, any pprof heap URL).

use super::{diffed, partial};
use crate::capture::allow::Allowlist;
use crate::capture::http::{self, Limits, Url};
use crate::capture::kinds::{Finished, Job, Run, Status, Window};
use memleak_artifacts::pprof_decode::{self, Decoded};
use std::time::Duration;

const LIMITS: Limits = Limits {
    connect_timeout: Duration::from_secs(3),
    read_timeout: Duration::from_secs(10),
    deadline: Duration::from_secs(30),
    max_body_bytes: 32 << 20,
};

/// Pulls at both ends of the window.
#[derive(Debug)]
pub struct Pull {
    pub url: Url,
    pub allow: Allowlist,
}

impl Pull {
    fn pull(&self) -> Result<Decoded, String> {
        let body = http::get(&self.url, LIMITS, Some(&self.allow))?;
        pprof_decode::decode(&body).map_err(|e| format!("{}: {e}", self.url))
    }
}

impl Run for Pull {
    fn run(self: Box<Self>, job: &Job) -> Finished {
        let start = match self.pull() {
            Ok(p) => p,
            Err(e) => return Finished::failed(format!("the first pull failed: {e}")),
        };
        (job.window_open)();
        match job.window() {
            Window::Elapsed => {}
            Window::Cancelled(reason) => {
                return partial("pprof", Status::Cancelled, start.profile, format!("cancelled: {reason}"));
            }
            Window::Exited => {
                let why = "the target exited during the window; the first profile is kept".to_owned();
                return partial("pprof", Status::Partial, start.profile, why);
            }
        }
        match self.pull() {
            Ok(end) => {
                let note = sampling_note(&end);
                let empty = end.profile.samples.iter().all(|s| s.values.iter().all(|v| *v == 0));
                let mut finished = diffed("pprof", &start.profile, end.profile, note);
                if empty
                    && !self.url.target.contains("gc=1")
                    && let Some(result) = &mut finished.result
                {
                    // Go's heap profile is as of the last GC: before one, or without ?gc=1, it may be stale or empty.
                    result.attributes.push((
                        "warning".into(),
                        "the end profile is empty: Go's heap profile shows the heap as of the last GC, so it is \
                         likely stale or no GC has run yet; pull with ?gc=1 (e.g. /debug/pprof/heap?gc=1)"
                            .into(),
                    ));
                }
                finished
            }
            Err(e) => partial(
                "pprof",
                Status::Partial,
                start.profile,
                format!("the second pull failed (has the target exited?): {e}; the first profile is kept"),
            ),
        }
    }
}

/// What the profile's sampling means for the growth's error.
fn sampling_note(p: &Decoded) -> String {
    if p.period <= 1 {
        return "every allocation is recorded (no sampling)".into();
    }
    let r = p.period;
    format!(
        "sampled: one allocation every {r} bytes on average, scaled up by the runtime (Go: runtime.MemProfileRate); \
         an allocation of s bytes is kept with probability p = 1 - exp(-s/{r}), so a site that grew by N allocations of s \
         bytes is estimated within about sqrt((1-p)/(N p)) of its value, one standard error (1000 allocations of 1024 \
         bytes: {:.1} %)",
        100.0 * relative_error(1024.0, r as f64, 1000.0)
    )
}

/// The relative standard error of the bytes of a site that made `allocations` of `size` bytes, sampled at `rate`.
pub fn relative_error(size: f64, rate: f64, allocations: f64) -> f64 {
    let p = 1.0 - (-size / rate).exp();
    ((1.0 - p) / (allocations * p)).sqrt()
}

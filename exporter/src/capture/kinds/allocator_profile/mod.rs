//! Capture kind `allocator-profile` (layer 2): the target's allocator profile
//! taken at the start and at the end of the window, and the growth between
//! the two (what grew is what leaks) with the end profile. Sources, in order:
//! the alert's `pprof_url` annotation when `--capture.pprof.allow` admits it;
//! the operator's `--capture.target` mapping for the group or cgroup (a pprof
//! URL, a gperftools HEAPPROFILE prefix and signal, a jemalloc prof_prefix).

mod dumps;
mod pprof_pull;

use super::{Finished, Kind, Refusal, Run, Setup, Status};
use crate::capture::http::Url;
use crate::capture::sources::{self, Method};
use memleak_artifacts::growth::{Growth, growth};
use memleak_artifacts::{Ingested, Profile};
use std::time::Duration;

pub static KIND: Kind = Kind {
    id: "allocator-profile",
    about: "Allocator heap profiles (pprof endpoint, gperftools or jemalloc dumps) at both ends of the window, diffed",
    default_duration: Duration::from_secs(120),
    prepare,
};

fn prepare(setup: &Setup) -> Result<Box<dyn Run>, Refusal> {
    let context = setup.context;
    if let Some(text) = setup.annotations.get("pprof_url") {
        let url = Url::parse(text).map_err(|e| Refusal::Invalid(format!("pprof_url annotation: {e}")))?;
        if let Err(why) = context.pprof_allow.allows(&url) {
            return Err(Refusal::Invalid(format!("pprof_url {url} is refused: {why}")));
        }
        return Ok(Box::new(pprof_pull::Pull { url, allow: context.pprof_allow.clone() }));
    }
    let named = &setup.target.named;
    let Some(source) = sources::find(&context.sources, named.group.as_deref(), named.cgroup.as_deref()) else {
        return Err(Refusal::Unavailable(format!(
            "{} offers no allocator profile: give the alert a pprof_url annotation, or map the target with --capture.target (pprof_url, heap_profile or jemalloc_prefix)",
            named.describe()
        )));
    };
    match &source.method {
        Method::Pprof(url) => Ok(Box::new(pprof_pull::Pull { url: url.clone(), allow: context.pprof_allow.with(url) })),
        Method::HeapProfile { prefix, signal } => {
            // A process without the heap profiler's handler would die of the signal's default action.
            if setup.target.catching(*signal) == 0 {
                return Err(Refusal::Unavailable(format!(
                    "none of the {} processes of {} catches signal {signal} (SigCgt in /proc/PID/status): \
                     start the target with HEAPPROFILE and HEAPPROFILESIGNAL={signal}; nothing is signalled",
                    setup.target.processes.len(),
                    named.describe()
                )));
            }
            Ok(Box::new(dumps::Dumps { prefix: prefix.clone(), signal: Some(*signal), format: "tcmalloc" }))
        }
        Method::Jemalloc { prefix } => {
            Ok(Box::new(dumps::Dumps { prefix: prefix.clone(), signal: None, format: "jemalloc" }))
        }
    }
}

/// The result of two profiles: the growth first, then the end profile.
fn diffed(format: &'static str, start: &Profile, mut end: Profile, note: String) -> Finished {
    let Growth { profile, grown_bytes, grown_objects, shrunk_bytes } = match growth(start, &end) {
        Ok(g) => g,
        Err(e) => return Finished::failed(e.to_string()),
    };
    let mut out = Ingested::new(format);
    out.totals.extend([
        ("growth_bytes".to_owned(), grown_bytes as f64),
        ("growth_objects".to_owned(), grown_objects as f64),
        ("shrunk_bytes".to_owned(), shrunk_bytes as f64),
        ("end_inuse_bytes".to_owned(), inuse_bytes(&end) as f64),
    ]);
    out.attributes.push(("sampling".into(), note));
    out.profiles.push(profile);
    end.name = "end".into();
    out.profiles.push(end);
    Finished { status: Status::Done, reason: None, result: Some(out) }
}

/// Only the first profile was taken: it is kept, and the reason says why there is no growth.
fn partial(format: &'static str, status: Status, start: Profile, reason: String) -> Finished {
    let mut out = Ingested::new(format);
    out.totals.push(("start_inuse_bytes".to_owned(), inuse_bytes(&start) as f64));
    out.profiles.push(Profile { name: "start".into(), ..start });
    Finished { status, reason: Some(reason), result: Some(out) }
}

fn inuse_bytes(p: &Profile) -> i64 {
    p.sample_types.iter().position(|t| t.kind == "inuse_space").map_or(0, |i| p.total(i))
}

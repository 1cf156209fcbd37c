//! The collectors' profiles (the page-fault profile of `--collector.page_faults`)
//! pushed as OTLP profiles every interval: what each interval added (the
//! collectors keep cumulative counts, a profiler adds up what it receives),
//! with the processes' `process.pid` and `process.executable.name`, and a
//! bytes sample type beside the count so that profilers show them as memory.

use memleak_artifacts::model::PAGE_FAULTS;
use memleak_artifacts::{Frame, Profile, Sample, ValueType};
use memleak_signals::ServedProfile;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Pages made resident by the faults: one page per fault (huge pages and fault-around map more).
pub const FAULTED_SPACE: ValueType = ValueType { kind: "faulted_space", unit: "bytes" };

/// Sample labels that have a semantic-convention name as OTLP attributes.
const SEMCONV_LABELS: [(&str, &str); 3] =
    [("pid", "process.pid"), ("comm", "process.executable.name"), ("cgroup", "process.linux.cgroup")];

type SampleKey = (Vec<Frame>, Vec<(String, String)>);

/// One collector's profile between pushes: the values already pushed, per sample.
pub struct Deltas {
    id: &'static str,
    served: Arc<dyn ServedProfile>,
    pushed: HashMap<SampleKey, Vec<i64>>,
    page_size: i64,
}

impl std::fmt::Debug for Deltas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deltas").field("id", &self.id).field("samples", &self.pushed.len()).finish()
    }
}

impl Deltas {
    pub fn new(id: &'static str, served: Arc<dyn ServedProfile>) -> Deltas {
        Deltas { id, served, pushed: HashMap::new(), page_size: page_size() }
    }

    pub fn id(&self) -> &'static str {
        self.id
    }

    /// What the profile gained since the last call, ready to push; None when nothing did or it
    /// cannot be read (logged). Renders the profile (reads symbols): call it off async threads.
    pub fn since_last_push(&mut self) -> Option<Profile> {
        let bytes = self.served.pprof();
        let decoded = match memleak_artifacts::pprof_decode::decode(&bytes) {
            Ok(decoded) => decoded.profile,
            Err(e) => {
                tracing::warn!(profile = self.id, error = %e, "cannot read the collector's profile for OTLP; not pushed");
                return None;
            }
        };
        let gained = self.gained(decoded);
        (!gained.samples.is_empty()).then(|| self.as_memory(gained))
    }

    /// The samples' increase since the last call; a sample whose value fell (the collector
    /// restarted) counts from zero again. The collector bounds its samples, so this map is bounded too.
    fn gained(&mut self, profile: Profile) -> Profile {
        // Entries that render alike (two cgroups of one name) are one sample here, summed.
        let mut now: HashMap<SampleKey, Vec<i64>> = HashMap::with_capacity(profile.samples.len());
        for sample in profile.samples {
            let values = now.entry((sample.stack, sample.labels)).or_insert_with(|| vec![0; sample.values.len()]);
            for (total, value) in values.iter_mut().zip(&sample.values) {
                *total = total.saturating_add(*value);
            }
        }
        let mut seen = HashMap::with_capacity(now.len());
        let mut gained = Profile::new(self.id, profile.sample_types.clone());
        for (key, totals) in now {
            let before = self.pushed.get(&key);
            let values: Vec<i64> = totals
                .iter()
                .enumerate()
                .map(|(i, now)| {
                    let was = before.and_then(|b| b.get(i)).copied().unwrap_or(0);
                    if *now >= was { now - was } else { *now }
                })
                .collect();
            if values.iter().any(|v| *v != 0) {
                gained.samples.push(Sample { stack: key.0.clone(), values, labels: key.1.clone() });
            }
            seen.insert(key, totals);
        }
        // Samples gone from the collector (exited processes leave a full table) are forgotten.
        self.pushed = seen;
        gained
    }

    /// Page-fault counts get their bytes beside them; labels get their semantic-convention names.
    fn as_memory(&self, mut profile: Profile) -> Profile {
        let faults = profile.sample_types.iter().position(|t| *t == PAGE_FAULTS);
        if let Some(i) = faults {
            profile.sample_types.push(FAULTED_SPACE);
            for sample in &mut profile.samples {
                let count = sample.values.get(i).copied().unwrap_or(0);
                sample.values.push(count.saturating_mul(self.page_size));
            }
        }
        for sample in &mut profile.samples {
            for (key, _) in &mut sample.labels {
                if let Some((_, name)) = SEMCONV_LABELS.iter().find(|(label, _)| label == key) {
                    *key = (*name).to_owned();
                }
            }
        }
        profile
    }
}

/// One `Deltas` per profile that the enabled collectors serve.
pub fn of(served: &BTreeMap<&'static str, Arc<dyn ServedProfile>>) -> Vec<Deltas> {
    served.iter().map(|(id, profile)| Deltas::new(id, Arc::clone(profile))).collect()
}

fn page_size() -> i64 {
    // SAFETY: sysconf has no preconditions; it returns -1 for an unknown name.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size > 0 { size } else { 4096 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A collector's profile that grows between renders, as the page-fault one does.
    struct Growing(Mutex<Profile>);

    impl ServedProfile for Growing {
        fn pprof(&self) -> Vec<u8> {
            memleak_artifacts::encode::pprof::encode(&self.0.lock().unwrap(), "test")
        }
    }

    fn faults(stack: &str, pid: &str, count: i64) -> Sample {
        Sample {
            stack: vec![Frame::function(stack), Frame::function("main")],
            values: vec![count],
            labels: vec![("region".into(), "anon".into()), ("pid".into(), pid.into()), ("comm".into(), "app".into())],
        }
    }

    #[test]
    fn each_push_carries_what_the_interval_added_in_faults_and_bytes() {
        let profile = Profile::new("page_faults", vec![PAGE_FAULTS]);
        let served = Arc::new(Growing(Mutex::new(profile)));
        let mut deltas = Deltas::new("page_faults", served.clone());
        assert!(deltas.since_last_push().is_none(), "an empty profile is not pushed");
        served.0.lock().unwrap().samples = vec![faults("fill", "42", 1000), faults("grow", "42", 10)];
        let first = deltas.since_last_push().unwrap();
        assert_eq!(first.sample_types, vec![PAGE_FAULTS, FAULTED_SPACE]);
        let fill = first.samples.iter().find(|s| s.stack[0].function == "fill").unwrap();
        assert_eq!(fill.values, vec![1000, 1000 * page_size()]);
        let labels: Vec<&str> = fill.labels.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(labels, ["region", "process.pid", "process.executable.name"]);

        // Two entries that render alike are one sample: 1,200 + 300 is 500 more than 1,000.
        served.0.lock().unwrap().samples =
            vec![faults("fill", "42", 1200), faults("grow", "42", 10), faults("fill", "42", 300)];
        let second = deltas.since_last_push().unwrap();
        assert_eq!(second.samples.len(), 1, "an unchanged sample is left out");
        assert_eq!(second.samples[0].values, vec![500, 500 * page_size()]);
        assert!(deltas.since_last_push().is_none(), "nothing new, nothing pushed");

        // The collector started over (its counts fell): the new count is what was added.
        served.0.lock().unwrap().samples = vec![faults("fill", "42", 30)];
        assert_eq!(deltas.since_last_push().unwrap().samples[0].values[0], 30);
    }
}

//! The growth between two heap profiles of one process: per stack, the in-use
//! bytes and objects at the end minus those at the start. What grew during a
//! window is what leaks; what shrank is reported as a total, not drawn.

use crate::model::{GROWTH_OBJECTS, GROWTH_SPACE, INUSE_OBJECTS, INUSE_SPACE, Profile, Sample};
use std::collections::HashMap;

/// The growth profile and its totals.
#[derive(Debug, Clone, PartialEq)]
pub struct Growth {
    /// Sample types `growth_space/bytes`, `growth_objects/count`; only stacks that grew.
    pub profile: Profile,
    /// Bytes and objects added by the stacks that grew.
    pub grown_bytes: i64,
    pub grown_objects: i64,
    /// Bytes released by the stacks that shrank (a positive number).
    pub shrunk_bytes: i64,
}

/// Why two profiles cannot be diffed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the {which} profile has no {missing} sample type; growth needs in-use bytes and objects")]
pub struct GrowthError {
    which: &'static str,
    missing: &'static str,
}

/// `end - start` per stack (stacks compared by function, file and line, not by
/// address, so a profile symbolized twice still matches).
pub fn growth(start: &Profile, end: &Profile) -> Result<Growth, GrowthError> {
    let (s_space, s_objects) = inuse_indices(start, "start")?;
    let (e_space, e_objects) = inuse_indices(end, "end")?;
    type Key = Vec<(String, Option<String>, Option<u32>)>;
    let key = |s: &Sample| -> Key { s.stack.iter().map(|f| (f.function.clone(), f.file.clone(), f.line)).collect() };
    let value = |s: &Sample, i: usize| s.values.get(i).copied().unwrap_or(0);
    let mut net: HashMap<Key, (i64, i64, Option<&Sample>)> = HashMap::new();
    for s in &end.samples {
        let entry = net.entry(key(s)).or_insert((0, 0, Some(s)));
        entry.0 += value(s, e_space);
        entry.1 += value(s, e_objects);
    }
    for s in &start.samples {
        let entry = net.entry(key(s)).or_insert((0, 0, None));
        entry.0 -= value(s, s_space);
        entry.1 -= value(s, s_objects);
    }
    let mut profile = Profile::new("growth", vec![GROWTH_SPACE, GROWTH_OBJECTS]);
    let (mut grown_bytes, mut grown_objects, mut shrunk_bytes) = (0, 0, 0);
    for (bytes, objects, sample) in net.into_values() {
        match sample {
            Some(sample) if bytes > 0 => {
                grown_bytes += bytes;
                grown_objects += objects.max(0);
                profile.samples.push(Sample {
                    stack: sample.stack.clone(),
                    values: vec![bytes, objects.max(0)],
                    labels: Vec::new(),
                });
            }
            _ if bytes < 0 => shrunk_bytes -= bytes,
            _ => {}
        }
    }
    // Largest first: the order a reader expects, and a stable one.
    profile.samples.sort_by(|a, b| b.values[0].cmp(&a.values[0]).then_with(|| a.stack.cmp(&b.stack)));
    Ok(Growth { profile, grown_bytes, grown_objects, shrunk_bytes })
}

fn inuse_indices(p: &Profile, which: &'static str) -> Result<(usize, usize), GrowthError> {
    let find = |kind: &'static str| {
        p.sample_types.iter().position(|t| t.kind == kind).ok_or(GrowthError { which, missing: kind })
    };
    Ok((find(INUSE_SPACE.kind)?, find(INUSE_OBJECTS.kind)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ALLOC_SPACE, Frame};

    fn profile(samples: &[(&str, i64, i64)]) -> Profile {
        let mut p = Profile::new("heap", vec![ALLOC_SPACE, INUSE_OBJECTS, INUSE_SPACE]);
        for (f, bytes, objects) in samples {
            p.samples.push(Sample {
                stack: vec![Frame::function(*f), Frame::function("main")],
                values: vec![999, *objects, *bytes],
                labels: vec![],
            });
        }
        p
    }

    #[test]
    fn what_grew_is_kept_and_what_shrank_is_counted() {
        let start = profile(&[("leak", 1000, 10), ("cache", 500, 5), ("steady", 300, 3)]);
        // `leak` appears twice at the end (two samples of one stack are summed).
        let end =
            profile(&[("leak", 3000, 30), ("leak", 1000, 10), ("cache", 100, 1), ("steady", 300, 3), ("new", 64, 1)]);
        let g = growth(&start, &end).unwrap();
        let rows: Vec<(&str, i64, i64)> =
            g.profile.samples.iter().map(|s| (s.stack[0].function.as_str(), s.values[0], s.values[1])).collect();
        assert_eq!(rows, [("leak", 3000, 30), ("new", 64, 1)]);
        assert_eq!((g.grown_bytes, g.grown_objects, g.shrunk_bytes), (3064, 31, 400));
        assert_eq!(g.profile.sample_types, [GROWTH_SPACE, GROWTH_OBJECTS]);
    }

    #[test]
    fn needs_inuse_types() {
        let mut alloc_only = profile(&[]);
        alloc_only.sample_types = vec![ALLOC_SPACE];
        let err = growth(&alloc_only, &profile(&[])).unwrap_err().to_string();
        assert!(err.contains("start profile has no inuse_space"), "{err}");
    }
}

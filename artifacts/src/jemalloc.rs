//! jemalloc heap profiles (`heap_v2/<period>`: `prof_final`, interval and
//! manual dumps, `jeprof.<pid>.<seq>.<kind>.heap`): an inuse profile per stack
//! (unsampled when the period is above 1), with addresses mapped through the
//! dump's `MAPPED_LIBRARIES` section; `heapprof::symbolize` names them. The
//! totals are the sum of the unsampled stacks, as jeprof shows them: the
//! dump's own `t*:` total line counts sampled objects only.

use crate::format::Format;
use crate::heapprof;
use crate::meter::{Meter, sample_cost};
use crate::model::{ArtifactError, INUSE_OBJECTS, INUSE_SPACE, Ingested, Profile, Sample};

const ID: &str = "jemalloc";

fn sniff(head: &str) -> bool {
    head.starts_with("heap_v2/")
}

fn parse(text: &str, meter: &mut Meter) -> Result<Ingested, ArtifactError> {
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    let (_, header) = lines.next().ok_or_else(|| malformed(1, "empty file"))?;
    let period: u64 = header
        .strip_prefix("heap_v2/")
        .and_then(|p| p.trim().parse().ok())
        .ok_or_else(|| malformed(1, "expected `heap_v2/<sampling period>`"))?;
    let maps = heapprof::mapped_libraries(text, ID, meter)?;
    let mut profile = Profile::new("inuse", vec![INUSE_OBJECTS, INUSE_SPACE]);
    let mut stack = None;
    let mut totals = (0i64, 0i64);
    let mut header_seen = false;
    for (n, line) in lines {
        let t = line.trim();
        if t == "MAPPED_LIBRARIES:" {
            break;
        }
        if let Some(addrs) = t.strip_prefix("@ ") {
            stack = Some(heapprof::stack(addrs, &maps, meter).ok_or_else(|| malformed(n, "bad address in a stack"))?);
        } else if let Some(counts) = t.strip_prefix("t*: ") {
            let (objects, bytes) =
                counts_pair(counts).ok_or_else(|| malformed(n, "expected `t*: <objects>: <bytes>`"))?;
            match stack.take() {
                None => header_seen = true,
                Some(frames) => {
                    if objects == 0 && bytes == 0 {
                        continue;
                    }
                    let scale = heapprof::unsample_scale(objects, bytes, period);
                    let values = [(objects as f64 * scale).round() as i64, (bytes as f64 * scale).round() as i64];
                    // Every stack counts, kept or not: the budget leaves out detail, not bytes.
                    totals = (totals.0.saturating_add(values[0]), totals.1.saturating_add(values[1]));
                    let sample = Sample { stack: frames, values: values.to_vec(), labels: Vec::new() };
                    if meter.admit("stacks", sample_cost(&sample)) {
                        profile.samples.push(sample);
                    }
                }
            }
        }
    }
    if !header_seen {
        return Err(malformed(2, "no `t*: <objects>: <bytes>` total line after the header"));
    }
    let mut out = Ingested::new(ID);
    out.totals.push(("inuse_objects".into(), totals.0 as f64));
    out.totals.push(("inuse_bytes".into(), totals.1 as f64));
    out.totals.push(("sampling_period_bytes".into(), period as f64));
    // The space of each stack is what callers rank by: put it first.
    profile.sample_types.swap(0, 1);
    for s in &mut profile.samples {
        s.values.swap(0, 1);
    }
    out.profiles.push(profile);
    Ok(out)
}

/// `602: 491616 [0: 0]` → (602, 491616).
fn counts_pair(text: &str) -> Option<(u64, u64)> {
    let (objects, rest) = text.split_once(':')?;
    let bytes = rest.split_whitespace().next()?;
    Some((objects.trim().parse().ok()?, bytes.parse().ok()?))
}

fn malformed(line: usize, message: &str) -> ArtifactError {
    ArtifactError::Malformed { format: ID, line, message: message.into() }
}

/// The jemalloc line of the format table.
pub static FORMAT: Format = Format { id: ID, about: ABOUT, sniff, parse };

const ABOUT: &str = "jemalloc heap_v2 profiles (prof_final, interval and manual dumps), symbolized";

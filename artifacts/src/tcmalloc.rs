//! gperftools / tcmalloc legacy heap profiles (`heap profile: … @ heapprofile`,
//! `HEAPPROFILE` interval dumps): in-use and allocated objects and bytes per
//! stack, addresses mapped through `MAPPED_LIBRARIES`. The totals are the sum
//! of the (unsampled) records: a sampled profile's header counts samples.

use crate::format::Format;
use crate::heapprof;
use crate::meter::{Meter, sample_cost};
use crate::model::{ALLOC_OBJECTS, ALLOC_SPACE, ArtifactError, INUSE_OBJECTS, INUSE_SPACE, Ingested, Profile, Sample};

const ID: &str = "tcmalloc";

fn sniff(head: &str) -> bool {
    head.starts_with("heap profile:")
}

/// `   200:   307200 [   200:   307200] @ 0x… 0x…` → the four counts and the addresses.
fn record(line: &str) -> Option<([u64; 4], &str)> {
    let (counts, stack) = line.split_once('@')?;
    let mut numbers = counts.split([' ', '\t', '[', ']', ':']).filter(|w| !w.is_empty()).map(|w| w.parse().ok());
    let mut next = || numbers.next().flatten();
    let four = [next()?, next()?, next()?, next()?];
    // Exactly four counts.
    numbers.next().is_none().then_some((four, stack.trim()))
}

fn parse(text: &str, meter: &mut Meter) -> Result<Ingested, ArtifactError> {
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    let (_, header) = lines.next().ok_or_else(|| malformed(1, "empty file"))?;
    let (_, kind) = record(header.trim_start_matches("heap profile:"))
        .ok_or_else(|| malformed(1, "expected `heap profile: N: B [N: B] @ heapprofile`"))?;
    // `@ heap_v2/<period>` marks a sampled profile.
    let period = kind.strip_prefix("heap_v2/").and_then(|p| p.parse().ok()).unwrap_or(1);
    let maps = heapprof::mapped_libraries(text, ID, meter)?;
    let mut profile = Profile::new("inuse", vec![INUSE_SPACE, INUSE_OBJECTS, ALLOC_SPACE, ALLOC_OBJECTS]);
    let mut totals = [0i64; 4];
    for (n, line) in lines {
        if line.trim().is_empty() || line.starts_with("MAPPED_LIBRARIES:") {
            break;
        }
        let ([objects, bytes, alloc_objects, alloc_bytes], stack) =
            record(line).ok_or_else(|| malformed(n, "expected `N: B [N: B] @ addresses`"))?;
        let frames = heapprof::stack(stack, &maps, meter).ok_or_else(|| malformed(n, "bad address in a stack"))?;
        let inuse = heapprof::unsample_scale(objects, bytes, period);
        let alloc = heapprof::unsample_scale(alloc_objects, alloc_bytes, period);
        let scaled = |v: u64, s: f64| (v as f64 * s).round() as i64;
        let sample = Sample {
            stack: frames,
            values: vec![
                scaled(bytes, inuse),
                scaled(objects, inuse),
                scaled(alloc_bytes, alloc),
                scaled(alloc_objects, alloc),
            ],
            labels: Vec::new(),
        };
        // Every record counts, kept or not: the budget leaves out detail, not bytes.
        for (total, v) in totals.iter_mut().zip(&sample.values) {
            *total = total.saturating_add(*v);
        }
        if meter.admit("stacks", sample_cost(&sample)) {
            profile.samples.push(sample);
        }
    }
    let mut out = Ingested::new(ID);
    for (name, v) in ["inuse_bytes", "inuse_objects", "alloc_bytes", "alloc_objects"].iter().zip(totals) {
        out.totals.push(((*name).into(), v as f64));
    }
    out.profiles.push(profile);
    Ok(out)
}

fn malformed(line: usize, message: &str) -> ArtifactError {
    ArtifactError::Malformed { format: ID, line, message: message.into() }
}

/// The tcmalloc line of the format table.
pub static FORMAT: Format = Format { id: ID, about: ABOUT, sniff, parse };

const ABOUT: &str = "gperftools / tcmalloc heap profiles (HEAPPROFILE dumps), symbolized";

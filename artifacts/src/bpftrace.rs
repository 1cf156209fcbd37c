//! bpftrace map dumps (`@name[key]: value`, `@name: value`, and keys that are
//! stacks printed over several lines) and BCC `memleak` reports
//! ("N bytes in M allocations from stack"). Map entries become totals
//! (`malloc_bytes{a_cachesvc}` → `malloc_bytes[a_cachesvc]`); stack-keyed maps
//! and memleak's outstanding allocations become a profile.

use crate::format::Format;
use crate::meter::{Meter, sample_cost, total_cost};
use crate::model::{ArtifactError, Frame, INUSE_OBJECTS, INUSE_SPACE, Ingested, Profile, Sample};

const ID: &str = "bpftrace";

fn sniff(head: &str) -> bool {
    let maps = head.starts_with("Attaching ") && head.lines().any(|l| l.starts_with('@'));
    let memleak = head.contains("stacks with outstanding allocations:");
    maps || memleak
}

fn parse(text: &str, meter: &mut Meter) -> Result<Ingested, ArtifactError> {
    let mut out = Ingested::new(ID);
    // Map entries and stacks seen, kept or not: whether the dump held anything.
    let mut entries = 0u64;
    let mut stacks = Profile::new("stacks", vec![INUSE_SPACE, INUSE_OBJECTS]);
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l)).peekable();
    while let Some((n, line)) = lines.next() {
        if let Some(rest) = line.strip_prefix('@') {
            if let Some(name) = rest.strip_suffix('[').filter(|name| !name.contains(' ')) {
                // A stack key: frames until `]: value`.
                let mut frames = Vec::new();
                let mut value = None;
                for (m, l) in lines.by_ref() {
                    if let Some(v) = l.trim().strip_prefix("]:") {
                        value = Some(v.trim().parse::<i64>().map_err(|_| malformed(m, "map value is not a number"))?);
                        break;
                    }
                    if !meter.stack_full(frames.len()) {
                        meter.push_frame(&mut frames, stack_frame(l.trim()));
                    }
                }
                let value = value.ok_or_else(|| ArtifactError::Truncated {
                    format: ID,
                    line: n,
                    message: format!("stack key of @{} never closed", meter.name(name)),
                })?;
                entries += 1;
                let sample =
                    Sample { stack: frames, values: vec![value, 0], labels: vec![("map".into(), meter.name(name))] };
                if meter.admit("stacks", sample_cost(&sample)) {
                    stacks.samples.push(sample);
                }
                continue;
            }
            let (key, value) = rest.rsplit_once(':').ok_or_else(|| malformed(n, "expected `@name[key]: value`"))?;
            // Histograms (`@h:` then `[1, 2) 3 |@@@|` lines) and stats have no single value: skipped.
            if let Ok(value) = value.trim().parse::<f64>() {
                entries += 1;
                if meter.admit("map entries", total_cost(key)) {
                    out.totals.push((meter.name(key), value));
                }
            }
        } else if let Some(rest) = line.trim().split_once(" bytes in ") {
            // BCC memleak: "\t307200 bytes in 200 allocations from stack"
            let (bytes, rest) = rest;
            let Some((count, _)) = rest.split_once(" allocations from stack") else { continue };
            let (bytes, count) = (
                bytes.trim().parse::<i64>().map_err(|_| malformed(n, "byte count is not a number"))?,
                count.trim().parse::<i64>().map_err(|_| malformed(n, "allocation count is not a number"))?,
            );
            let mut frames = Vec::new();
            while lines.peek().is_some_and(|(_, l)| l.starts_with("\t\t") || l.starts_with("        ")) {
                if let Some((_, l)) = lines.next()
                    && !meter.stack_full(frames.len())
                {
                    meter.push_frame(&mut frames, stack_frame(l.trim()));
                }
            }
            entries += 1;
            let sample =
                Sample { stack: frames, values: vec![bytes, count], labels: vec![("map".into(), "memleak".into())] };
            if meter.admit("stacks", sample_cost(&sample)) {
                stacks.samples.push(sample);
            }
        }
    }
    if entries == 0 {
        return Err(ArtifactError::Truncated {
            format: ID,
            line: text.lines().count(),
            message: "no map entries and no stacks".into(),
        });
    }
    if !stacks.samples.is_empty() {
        out.profiles.push(stacks);
    }
    Ok(out)
}

/// `leak_request_buffer+27`, `0x7f…\tmalloc+0x1b [libc.so.6]`, `leak_request_buffer+0x1b [a_cachesvc]`.
fn stack_frame(text: &str) -> Frame {
    let text = text.rsplit('\t').next().unwrap_or(text).trim();
    let (symbol, module) = match text.rsplit_once(" [") {
        Some((s, m)) => (s, m.strip_suffix(']')),
        None => (text, None),
    };
    let symbol = symbol.split_whitespace().last().unwrap_or(symbol);
    let function = match symbol.rsplit_once('+') {
        Some((f, off)) if !f.is_empty() && off.trim_start_matches("0x").bytes().all(|b| b.is_ascii_hexdigit()) => f,
        _ => symbol,
    };
    Frame { file: module.map(str::to_owned), ..Frame::function(crate::demangle::demangle(function)) }
}

fn malformed(line: usize, message: &str) -> ArtifactError {
    ArtifactError::Malformed { format: ID, line, message: message.into() }
}

/// The bpftrace line of the format table.
pub static FORMAT: Format = Format { id: ID, about: ABOUT, sniff, parse };

const ABOUT: &str = "bpftrace map dumps and BCC memleak reports";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sites;

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!("{}/tests/fixtures/bpftrace/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    fn parse(text: &str) -> Result<Ingested, ArtifactError> {
        super::parse(text, &mut Meter::default())
    }

    #[test]
    fn map_dumps_of_the_fixture_runs() {
        let out = parse(&fixture("malloc-bytes-per-comm.txt")).unwrap();
        // README: @malloc_calls[a_cachesvc]: 1401, @malloc_bytes[a_cachesvc]: 3694496 (exact).
        assert_eq!(out.total("malloc_calls[a_cachesvc]"), Some(1401.0));
        assert_eq!(out.total("malloc_bytes[a_cachesvc]"), Some(3_694_496.0));
        let faults = parse(&fixture("page-faults-per-comm.txt")).unwrap();
        // README: a_cachesvc page faults ≈ 160 (varies by a few).
        let a = faults.totals.iter().find(|(k, _)| k.ends_with("[a_cachesvc]")).unwrap().1;
        assert!((140.0..=180.0).contains(&a), "{a}");
    }

    #[test]
    fn stack_keyed_maps_and_memleak_reports_become_profiles() {
        let text = "Attaching 1 probe...\n\n@bytes[\n    leak_request_buffer+27\n    handle_request+40\n    main+25\n]: 307200\n@bytes[\n    leaky_cache_insert+30\n    main+25\n]: 102400\n";
        let out = parse(text).unwrap();
        let top = sites::top(&out.profiles[0], 0, 2);
        assert_eq!((top[0].frame.function.as_str(), top[0].values[0]), ("leak_request_buffer", 307_200));
        let memleak = "[11:21:33] Top 10 stacks with outstanding allocations:\n\t102400 bytes in 400 allocations from stack\n\t\tmalloc+0x1b [libc.so.6]\n\t\tleaky_cache_insert+0x1e [a_cachesvc]\n\t\tmain+0x19 [a_cachesvc]\n\t307200 bytes in 200 allocations from stack\n\t\t0x00007f10\tmalloc+0x1b [libc.so.6]\n\t\tleak_request_buffer+0x1b [a_cachesvc]\n";
        let out = parse(memleak).unwrap();
        let top = sites::top(&out.profiles[0], 0, 2);
        assert_eq!(
            (top[0].frame.function.as_str(), top[0].values.as_slice()),
            ("leak_request_buffer", &[307_200, 200][..])
        );
        assert_eq!(top[1].frame.file.as_deref(), Some("a_cachesvc"));
        assert!(parse("Attaching 1 probe...\n@bytes[\n  f+1\n").is_err());
        let hist = "Attaching 1 probe...\n\n@sizes: \n[1, 2)     3 |@@@@|\n[2, 4)     1 |@   |\n\n@calls[a]: 4\n";
        assert_eq!(parse(hist).unwrap().totals, [("calls[a]".to_owned(), 4.0)]);
    }
}

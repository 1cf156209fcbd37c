//! `heaptrack_print` text reports: the MEMORY LEAKS section (each site with
//! its call stacks) and the closing statistics. heaptrack prints sizes with
//! K = 1000 and two decimals, so bytes are exact only to that rounding.

use crate::meter::{Meter, sample_cost};
use crate::model::{ArtifactError, Frame, Ingested, LEAKED_OBJECTS, LEAKED_SPACE, Profile, Sample};

pub fn sniff(head: &str) -> bool {
    head.starts_with("reading file \"") && head.contains("heaptrack")
}

pub fn parse(text: &str, meter: &mut Meter) -> Result<Ingested, ArtifactError> {
    let mut out = Ingested::new(super::ID);
    let mut leaks = Profile::new("leaks", vec![LEAKED_SPACE, LEAKED_OBJECTS]);
    let mut section = "";
    let mut lines = text.lines().peekable();
    let mut site: Option<Frame> = None;
    while let Some(line) = lines.next() {
        if !line.is_empty() && line.chars().all(|c| c.is_ascii_uppercase() || c == ' ') {
            section = line;
            continue;
        }
        for (prefix, name) in [
            ("total memory leaked: ", "leaked_bytes"),
            ("peak heap memory consumption: ", "peak_bytes"),
            ("calls to allocation functions: ", "allocations"),
            ("temporary memory allocations: ", "temporary_allocations"),
        ] {
            if let Some(v) =
                line.strip_prefix(prefix).and_then(|v| size(v.split_whitespace().next().unwrap_or_default()))
            {
                // A repeated statistics line replaces the earlier one.
                out.totals.retain(|(n, _)| n != name);
                out.totals.push((name.into(), v));
            }
        }
        if section != "MEMORY LEAKS" {
            continue;
        }
        let Some((amount, calls)) = line.split_once(" leaked over ") else { continue };
        let count: i64 = calls.split_whitespace().next().and_then(|c| c.parse().ok()).unwrap_or(0);
        let bytes = size(amount).unwrap_or(0.0).round() as i64;
        if line.ends_with("from") {
            // The site: function, then `  at file:line`, `  in module`.
            site = lines.next().map(|f| frame(f.trim(), &mut lines, 2));
        } else if line.ends_with("from:") {
            let mut stack = Vec::new();
            if let Some(site) = &site {
                meter.push_frame(&mut stack, site.clone());
            }
            while lines.peek().is_some_and(|l| l.starts_with("    ") && !l.starts_with("      ")) {
                if let Some(f) = lines.next() {
                    let f = frame(f.trim(), &mut lines, 6);
                    meter.push_frame(&mut stack, f);
                }
            }
            let sample = Sample { stack, values: vec![bytes, count], labels: Vec::new() };
            if meter.admit("leak sites", sample_cost(&sample)) {
                leaks.samples.push(sample);
            }
        }
    }
    if out.totals.is_empty() {
        return Err(ArtifactError::Truncated {
            format: super::ID,
            line: text.lines().count(),
            message: "no closing statistics: heaptrack_print output is incomplete".into(),
        });
    }
    let leaked = out.total("leaked_bytes").unwrap_or(0.0);
    if leaks.samples.is_empty() && leaked > 0.0 {
        out.hints.push(format!(
            "heaptrack_print printed no MEMORY LEAKS section, so the {leaked} leaked bytes have no sites: run it \
             with -l (--print-leaks=1), or ingest heaptrack's own data file (heaptrack.NAME.PID.zst)"
        ));
    }
    out.profiles.push(leaks);
    Ok(out)
}

/// A function line and its `at file:line` / `in module` lines at `indent`.
fn frame<'a>(function: &str, lines: &mut std::iter::Peekable<impl Iterator<Item = &'a str>>, indent: usize) -> Frame {
    let mut f = Frame::function(crate::demangle::demangle(function));
    let pad = " ".repeat(indent);
    while let Some(l) = lines.peek().and_then(|l| l.strip_prefix(pad.as_str())) {
        if let Some(at) = l.strip_prefix("at ") {
            let (file, line) = at.rsplit_once(':').map_or((at, None), |(f, n)| (f, n.parse().ok()));
            f.file = Some(file.to_owned());
            f.line = line;
        } else if let Some(module) = l.strip_prefix("in ") {
            if f.file.is_none() {
                f.file = Some(module.to_owned());
            }
        } else {
            break;
        }
        lines.next();
    }
    f
}

/// `307.20K`, `96B`, `4.44M`, `1402` → bytes (K = 1000).
fn size(text: &str) -> Option<f64> {
    let (number, scale) = match text.chars().last()? {
        'B' => (&text[..text.len() - 1], 1.0),
        'K' => (&text[..text.len() - 1], 1e3),
        'M' => (&text[..text.len() - 1], 1e6),
        'G' => (&text[..text.len() - 1], 1e9),
        _ => (text, 1.0),
    };
    number.parse::<f64>().ok().map(|n| n * scale)
}

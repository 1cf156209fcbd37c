//! Heaptrack data files (`heaptrack.<name>.<pid>.zst`/`.gz`, after
//! decompression; file version 2 and 3): every allocation and free, replayed
//! to get what leaked (allocated, never freed) per stack, the peak, and the
//! allocation statistics. Symbol names are demangled (heaptrack 1.4 leaves
//! Rust v0 names of std mangled).
//!
//! The format, line by line (numbers in hex, string and index references 1-based):
//! `s <len> <string>` string table; `i <ip> <module> [<function> <file> <line>]…`
//! instruction pointers (a frame, then its inlined frames); `t <ip> <parent>`
//! trace tree; `a <size> <trace>` allocation kinds; `+ <kind>` / `- <kind>`
//! allocation and free events (kinds 0-based); `c <ms>` time; `X` command.

use crate::format::Format;
use crate::meter::{FRAMES_PER_STACK, Meter, sample_cost, string_cost};
use crate::model::{
    ALLOC_OBJECTS, ALLOC_SPACE, ArtifactError, Frame, Ingested, LEAKED_OBJECTS, LEAKED_SPACE, Profile, Sample,
};
use std::mem::size_of;

pub mod print;

const ID: &str = "heaptrack";

fn sniff(head: &str) -> bool {
    (head.starts_with("v ") && head.lines().nth(1).is_some_and(|l| l.starts_with("X ") || l.starts_with("I ")))
        || print::sniff(head)
}

#[derive(Debug, Default)]
struct Ip {
    module: usize,
    /// (function, file, line) for the frame, then its inlined frames.
    frames: Vec<(usize, usize, u32)>,
}

#[derive(Debug, Default)]
struct Data {
    strings: Vec<String>,
    ips: Vec<Ip>,
    /// (ip index, parent trace index); trace 0 is the root.
    traces: Vec<(usize, usize)>,
    /// (size, trace index)
    kinds: Vec<(u64, usize)>,
}

fn parse(text: &str, meter: &mut Meter) -> Result<Ingested, ArtifactError> {
    if print::sniff(text) {
        return print::parse(text, meter);
    }
    let mut data = Data::default();
    let mut command = String::new();
    let mut live: Vec<i64> = Vec::new();
    let mut allocations: Vec<u64> = Vec::new();
    let (mut current, mut peak, mut total_allocs, mut temporary) = (0i64, 0i64, 0u64, 0u64);
    let mut last_plus: Option<usize> = None;
    for (i, raw) in text.as_bytes().split(|&b| b == b'\n').enumerate() {
        let n = i + 1;
        // The hot path: millions of `+ <kind>` and `- <kind>` lines.
        if let [tag @ (b'+' | b'-'), b' ', digits @ ..] = raw {
            let kind = hex_bytes(digits).ok_or_else(|| malformed(n, "expected a hex allocation kind".into()))? as usize;
            let size =
                data.kinds.get(kind).ok_or_else(|| malformed(n, format!("allocation kind {kind} is not defined")))?.0;
            let size = size.min(i64::MAX as u64) as i64;
            if *tag == b'+' {
                live[kind] += 1;
                allocations[kind] += 1;
                total_allocs += 1;
                current = current.saturating_add(size);
                peak = peak.max(current);
                last_plus = Some(kind);
            } else {
                live[kind] -= 1;
                current = current.saturating_sub(size);
                // heaptrack's "temporary": freed right after it was allocated.
                if last_plus == Some(kind) {
                    temporary += 1;
                }
                last_plus = None;
            }
            continue;
        }
        let line = String::from_utf8_lossy(raw);
        let line = line.trim_end_matches('\r');
        let tag_len = line.chars().next().map_or(0, char::len_utf8);
        let (tag, rest) = line.split_at(tag_len);
        let rest = rest.trim_start();
        let hex = |s: &str| {
            u64::from_str_radix(s, 16).map_err(|_| malformed(n, format!("expected a hex number, found {s:?}")))
        };
        let mut fields = rest.split_ascii_whitespace();
        let mut next = || -> Result<u64, ArtifactError> {
            hex(fields.next().ok_or_else(|| malformed(n, "too few fields".into()))?)
        };
        match tag {
            "s" => {
                // Version 3 writes the length first; version 2 only the string.
                let string = match rest.split_once(' ') {
                    Some((len, s)) if u64::from_str_radix(len, 16).is_ok_and(|l| l as usize == s.len()) => s,
                    _ => rest,
                };
                let string = crate::demangle::demangle(string);
                meter.require("the string table", string_cost(&string))?;
                data.strings.push(string);
            }
            "i" => {
                let _ip = next()?;
                let module = next()? as usize;
                let mut frames = Vec::new();
                // A frame may stop after its function (no file and line known); past
                // the frames a stack keeps, the rest of the line is not read.
                while frames.len() < FRAMES_PER_STACK
                    && let Ok(function) = next()
                {
                    let file = next().unwrap_or(0);
                    let line = next().unwrap_or(0);
                    frames.push((function as usize, file as usize, line as u32));
                }
                meter.require(
                    "the instruction table",
                    (size_of::<Ip>() + frames.len() * size_of::<(usize, usize, u32)>()) as u64,
                )?;
                data.ips.push(Ip { module, frames });
            }
            "t" => {
                let (ip, parent) = (next()? as usize, next()? as usize);
                meter.require("the trace tree", size_of::<(usize, usize)>() as u64)?;
                data.traces.push((ip, parent));
            }
            "a" => {
                let (size, trace) = (next()?, next()? as usize);
                meter.require("the allocation kinds", (size_of::<(u64, usize)>() + 2 * size_of::<u64>()) as u64)?;
                data.kinds.push((size, trace));
                live.push(0);
                allocations.push(0);
            }
            "X" => command = meter.name(rest),
            _ => {}
        }
    }
    if data.strings.is_empty() && data.kinds.is_empty() {
        return Err(ArtifactError::Truncated {
            format: ID,
            line: text.lines().count(),
            message: "no strings and no allocations".into(),
        });
    }
    let mut leaks = Profile::new("leaks", vec![LEAKED_SPACE, LEAKED_OBJECTS, ALLOC_SPACE, ALLOC_OBJECTS]);
    let (mut leaked_bytes, mut leaked_count) = (0i64, 0i64);
    // Once a site does not fit, the rest are counted but not built: building them would cost the time anyway.
    let mut full = false;
    for (kind, &(size, trace)) in data.kinds.iter().enumerate() {
        let count = live[kind].max(0);
        let bytes = count.saturating_mul(size.min(i64::MAX as u64) as i64);
        leaked_bytes = leaked_bytes.saturating_add(bytes);
        leaked_count = leaked_count.saturating_add(count);
        if full {
            meter.skip("allocation sites");
            continue;
        }
        let sample = Sample {
            stack: data.stack(trace, meter),
            values: vec![
                bytes,
                count,
                allocations[kind].saturating_mul(size).min(i64::MAX as u64) as i64,
                allocations[kind].min(i64::MAX as u64) as i64,
            ],
            labels: Vec::new(),
        };
        if meter.admit("allocation sites", sample_cost(&sample)) {
            leaks.samples.push(sample);
        } else {
            full = true;
        }
    }
    let mut out = Ingested::new(ID);
    out.attributes.push(("command".into(), command));
    out.totals = vec![
        ("leaked_bytes".into(), leaked_bytes as f64),
        ("leaked_allocations".into(), leaked_count as f64),
        ("peak_bytes".into(), peak as f64),
        ("allocations".into(), total_allocs as f64),
        ("temporary_allocations".into(), temporary as f64),
    ];
    out.profiles.push(leaks);
    Ok(out)
}

impl Data {
    fn string(&self, index: usize) -> Option<&str> {
        index.checked_sub(1).and_then(|i| self.strings.get(i)).map(String::as_str)
    }

    /// The stack of a trace, innermost frame first (inlined frames before
    /// their caller), at most the meter's per-stack cap of frames.
    fn stack(&self, mut trace: usize, meter: &mut Meter) -> Vec<Frame> {
        let mut frames = Vec::new();
        // Each step of a real trace yields a frame: more steps than frames kept means a loop.
        let mut steps = 0;
        while trace != 0 && steps < FRAMES_PER_STACK && !meter.stack_full(frames.len()) {
            steps += 1;
            let Some(&(ip, parent)) = trace.checked_sub(1).and_then(|t| self.traces.get(t)) else { break };
            if let Some(ip) = ip.checked_sub(1).and_then(|i| self.ips.get(i)) {
                let module = self.string(ip.module).unwrap_or("??");
                let mut ip_frames: Vec<Frame> = ip
                    .frames
                    .iter()
                    .take(FRAMES_PER_STACK)
                    .map(|&(f, file, line)| Frame {
                        function: self.string(f).unwrap_or("??").to_owned(),
                        file: self.string(file).map(str::to_owned).or_else(|| Some(module.to_owned())),
                        line: (line > 0).then_some(line),
                        address: None,
                        inlined: true,
                    })
                    .collect();
                if ip_frames.is_empty() {
                    ip_frames.push(Frame {
                        function: format!("?? ({module})"),
                        file: Some(module.to_owned()),
                        line: None,
                        address: None,
                        inlined: false,
                    });
                }
                // The first triple is the real frame, the rest are inlined into it (innermost last).
                let real = Frame { inlined: false, ..ip_frames.remove(0) };
                for frame in ip_frames.into_iter().rev().chain([real]) {
                    meter.push_frame(&mut frames, frame);
                }
            }
            trace = parent;
        }
        frames
    }
}

/// A hex number from ASCII digits (trailing spaces and `\r` end it).
fn hex_bytes(digits: &[u8]) -> Option<u64> {
    let mut value: u64 = 0;
    let mut any = false;
    for &b in digits {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            b' ' | b'\r' => break,
            _ => return None,
        };
        value = value.checked_mul(16)?.checked_add(u64::from(d))?;
        any = true;
    }
    any.then_some(value)
}

fn malformed(line: usize, message: String) -> ArtifactError {
    ArtifactError::Malformed { format: ID, line, message }
}

/// The heaptrack line of the format table.
pub static FORMAT: Format = Format { id: ID, about: ABOUT, sniff, parse };

const ABOUT: &str = "Heaptrack data files (.zst, .gz; file versions 2 and 3) and heaptrack_print reports";

//! What ASan and LSan reports share: their stack frame lines (gcc and clang).
//!
//! `#1 0x55e1 in leak_request_buffer /build/leaky_a.c:69` (gcc),
//! `#1 0x5604 in overflow_bug /build/leaky_a.c:124:27` (clang, with a column),
//! `#0 0x5604 in __interceptor_malloc (/build/a.out+0xa416e) (BuildId: fc45…)`,
//! `#4 0x5604 in _start (/build/a.out+0x21320)` and `#3 0x7f10  (/lib/x.so+0x2a)`.

use crate::meter::Meter;
use crate::model::Frame;

/// Parses one frame line, or `None` when the line is not a frame.
pub fn frame(line: &str) -> Option<Frame> {
    let rest = line.trim_start().strip_prefix('#')?;
    let (index, rest) = rest.split_once(' ')?;
    index.parse::<u32>().ok()?;
    let rest = rest.trim_start();
    let (address, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    let address = address.strip_prefix("0x").and_then(|h| u64::from_str_radix(h, 16).ok());
    let rest = strip_build_id(rest.trim());
    let Some(body) = rest.strip_prefix("in ") else {
        // No symbol: `(/lib/x.so+0x2a)`.
        let module = rest.trim_start_matches('(').trim_end_matches(')');
        return Some(Frame {
            function: address.map_or_else(|| "??".into(), |a| format!("0x{a:x}")),
            file: (!module.is_empty()).then(|| module.to_owned()),
            line: None,
            address,
            inlined: false,
        });
    };
    if body.ends_with(')')
        && let Some(open) = body.rfind(" (")
    {
        return Some(Frame {
            function: body[..open].to_owned(),
            file: Some(body[open + 2..body.len() - 1].to_owned()),
            line: None,
            address,
            inlined: false,
        });
    }
    let (function, location) = match body.rsplit_once(' ') {
        Some((f, l)) if l.contains(':') || l.contains('/') => (f, Some(l)),
        _ => (body, None),
    };
    let (file, line) = match location {
        Some(loc) => split_location(loc),
        None => (None, None),
    };
    Some(Frame { function: function.to_owned(), file, line, address, inlined: false })
}

fn strip_build_id(text: &str) -> &str {
    match text.find(" (BuildId:") {
        Some(i) => text[..i].trim_end(),
        None => text,
    }
}

/// `file:line` or `file:line:column`.
fn split_location(loc: &str) -> (Option<String>, Option<u32>) {
    let mut parts = loc.rsplitn(3, ':');
    let last = parts.next().unwrap_or_default();
    let middle = parts.next();
    let first = parts.next();
    let is_num = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match (first, middle) {
        (Some(file), Some(line)) if is_num(line) && is_num(last) => (Some(file.to_owned()), line.parse().ok()),
        (_, Some(_)) if is_num(last) => {
            let (file, _) = loc.rsplit_once(':').unwrap_or((loc, ""));
            (Some(file.to_owned()), last.parse().ok())
        }
        _ => (Some(loc.to_owned()), None),
    }
}

/// Reads the frame lines that follow, stopping at the first line that is not
/// a frame; frames past the meter's per-stack cap are read and dropped.
pub fn stack<'a>(
    lines: &mut std::iter::Peekable<impl Iterator<Item = (usize, &'a str)>>,
    meter: &mut Meter,
) -> Vec<Frame> {
    let mut frames = Vec::new();
    while let Some((_, line)) = lines.peek() {
        match frame(line) {
            Some(f) => {
                meter.push_frame(&mut frames, f);
                lines.next();
            }
            None => break,
        }
    }
    frames
}

/// `307,200` or `307200` → 307200.
pub fn number(text: &str) -> Option<u64> {
    text.replace(',', "").parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcc_clang_and_module_frames() {
        let f = frame("    #1 0x55e112a133b9 in leak_request_buffer /build/leakfix/build/leaky_a.c:69").unwrap();
        assert_eq!(
            (f.function.as_str(), f.file.as_deref(), f.line),
            ("leak_request_buffer", Some("/build/leakfix/build/leaky_a.c"), Some(69))
        );
        assert_eq!(f.address, Some(0x55e1_12a1_33b9));
        let f = frame("    #0 0x560436f434d4 in overflow_bug /build/leakfix/build/leaky_a.c:124:27").unwrap();
        assert_eq!((f.file.as_deref(), f.line), (Some("/build/leakfix/build/leaky_a.c"), Some(124)));
        let f =
            frame("    #0 0x5604 in __interceptor_malloc (/build/a.out+0xa416e) (BuildId: fc4569c4b548908d)").unwrap();
        assert_eq!((f.function.as_str(), f.file.as_deref()), ("__interceptor_malloc", Some("/build/a.out+0xa416e")));
        let f = frame("    #3 0x7f10  (/lib/x.so+0x2a)").unwrap();
        assert_eq!((f.function.as_str(), f.file.as_deref()), ("0x7f10", Some("/lib/x.so+0x2a")));
        let f =
            frame("    #2 0x1 in std::vector<int, std::allocator<int> >::push_back(int const&) /usr/include/v.h:12")
                .unwrap();
        assert_eq!(f.function, "std::vector<int, std::allocator<int> >::push_back(int const&)");
        assert!(frame("SUMMARY: AddressSanitizer: x").is_none());
        assert!(frame("#x 0x1 in f").is_none());
    }
}

//! Output names from input names anyone may have chosen: valid UTF-8, no
//! path separator or control character, never hidden, short enough for the
//! outputs' suffixes to fit the 255-byte limit, never ending like an output,
//! unique (`~N`); and input names shown escaped in logs and summaries.

use std::fmt::Write as _;

/// What the outputs of `NAME` add to it (and what the state folders use).
pub const OUTPUT_SUFFIXES: &[&str] = &[".pb.gz", ".folded", ".svg", ".json", ".error.txt"];

/// Suffixes of the watched folders' private names (`.NAME.work`, `.NAME.retry`, `.NAME.json.tmp`).
const STATE_SUFFIXES: &[&str] = &[".work", ".retry", ".tmp"];

/// Longest stem in bytes: with `~999`, a dot, the longest suffix and `.tmp`, a name stays under 255.
const STEM_BYTES: usize = 200;

/// Tries of `~N` before giving up on a name.
const MAX_TRIES: usize = 1000;

/// The name `input` gives its outputs: control characters and `/` replaced
/// by `_`, invalid UTF-8 by `_`, a leading `.` by `_`, cut to `STEM_BYTES`,
/// and `_` appended when it ends like an output or a private name (so an
/// input named `x.json` cannot be taken for the summary of `x`).
pub fn stem(input: &[u8]) -> String {
    let mut out = String::new();
    for chunk in input.utf8_chunks() {
        for c in chunk.valid().chars() {
            out.push(if c.is_control() || c == '/' { '_' } else { c });
        }
        if !chunk.invalid().is_empty() {
            out.push('_');
        }
    }
    if out.starts_with('.') {
        out.replace_range(..1, "_");
    }
    if out.len() > STEM_BYTES {
        let mut end = STEM_BYTES;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
    }
    if out.is_empty() {
        out.push_str("artifact");
    }
    if OUTPUT_SUFFIXES.iter().chain(STATE_SUFFIXES).any(|s| out.ends_with(s)) {
        out.push('_');
    }
    out
}

/// `stem`, or `stem~1`, `stem~2`… : the first that `taken` does not refuse;
/// `None` after `MAX_TRIES`.
pub fn unique(stem: &str, mut taken: impl FnMut(&str) -> bool) -> Option<String> {
    (0..MAX_TRIES).map(|n| if n == 0 { stem.to_owned() } else { format!("{stem}~{n}") }).find(|name| !taken(name))
}

/// `name` as text for logs and summaries: valid UTF-8 as it is, control
/// characters and invalid bytes as `\xNN`, backslashes doubled.
pub fn escaped(name: &[u8]) -> String {
    let mut out = String::new();
    for chunk in name.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                c if c.is_control() => {
                    let mut buf = [0u8; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        let _ = write!(out, "\\x{b:02x}");
                    }
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems_are_valid_visible_short_and_unlike_outputs() {
        assert_eq!(stem(b"massif.out.1234"), "massif.out.1234");
        assert_eq!(stem("résumé leak.log".as_bytes()), "résumé leak.log");
        assert_eq!(stem(b"a\xffb\x1b[31m"), "a_b_[31m");
        assert_eq!(stem(b".hidden"), "_hidden");
        assert_eq!(stem(b""), "artifact");
        assert_eq!(stem(b"x.json"), "x.json_");
        assert_eq!(stem(b"y.error.txt"), "y.error.txt_");
        assert_eq!(stem(b"z.work"), "z.work_");
        let long = "é".repeat(200);
        let s = stem(long.as_bytes());
        assert!(s.len() <= STEM_BYTES && s.chars().all(|c| c == 'é'));
        // The longest private name still fits a file name.
        assert!(format!(".{s}~999.error.txt.tmp").len() <= 255);
    }

    #[test]
    fn unique_names_and_a_bound() {
        let taken = ["dup.out", "dup.out~1"];
        assert_eq!(unique("dup.out", |n| taken.contains(&n)).as_deref(), Some("dup.out~2"));
        assert_eq!(unique("free", |_| false).as_deref(), Some("free"));
        assert_eq!(unique("full", |_| true), None);
    }

    #[test]
    fn escaping_for_logs() {
        assert_eq!(escaped(b"ok.log"), "ok.log");
        assert_eq!(escaped(b"a\xff\x1b[2J\\"), "a\\xff\\x1b[2J\\\\");
        assert_eq!(escaped("é".as_bytes()), "é");
    }
}

//! Parsing of the kernel's `key value [kB]` files (meminfo, vmstat, status,
//! smaps_rollup, memory.stat, memory.events).

use std::fmt;

/// A line that does not have the `key value` shape, with its 1-based number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvError {
    pub line: usize,
    pub text: String,
}

impl fmt::Display for KvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: expected `key value`, found {:?}", self.line, self.text)
    }
}

/// One `key value` line; `value` is the raw text after the key.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    pub line: usize,
    pub key: &'a str,
    pub raw: &'a str,
}

impl Entry<'_> {
    /// The value as a number, in bytes when the line carries a `kB` unit.
    pub fn value(&self) -> Result<u64, KvError> {
        parse_value(self.raw).ok_or_else(|| KvError { line: self.line, text: format!("{} {}", self.key, self.raw) })
    }
}

/// Splits `text` into entries; the key ends at the first `:` or whitespace.
pub fn entries(text: &str) -> impl Iterator<Item = Entry<'_>> {
    text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()).map(|(i, line)| {
        let end = line.find(|c: char| c == ':' || c.is_whitespace()).unwrap_or(line.len());
        let (key, rest) = line.split_at(end);
        let raw = rest.strip_prefix(':').unwrap_or(rest).trim();
        Entry { line: i + 1, key, raw }
    })
}

/// `123`, `123 kB` (bytes = 123 × 1024).
pub fn parse_value(raw: &str) -> Option<u64> {
    let mut parts = raw.split_whitespace();
    let number: u64 = parts.next()?.parse().ok()?;
    match (parts.next(), parts.next()) {
        (None, _) => Some(number),
        (Some("kB"), None) => number.checked_mul(1024),
        _ => None,
    }
}

/// Looks up `keys` in `text`, checking only the lines named: other lines may
/// hold anything (`/proc/PID/status` has text fields).
pub fn lookup<const N: usize>(text: &str, keys: [&str; N]) -> Result<[Option<u64>; N], KvError> {
    let mut found = [None; N];
    for entry in entries(text) {
        if let Some(i) = keys.iter().position(|k| *k == entry.key) {
            found[i] = Some(entry.value()?);
        }
    }
    Ok(found)
}

/// Parses every line strictly: a line without a numeric value is an error.
pub fn parse_all(text: &str) -> Result<Vec<(&str, u64)>, KvError> {
    entries(text).map(|e| e.value().map(|v| (e.key, v))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_keys() {
        let text = "MemTotal:       24576000 kB\nHugePages_Total:       0\n";
        assert_eq!(parse_all(text), Ok(vec![("MemTotal", 24_576_000 * 1024), ("HugePages_Total", 0)]));
        assert_eq!(parse_all("pgfault 47751216\n"), Ok(vec![("pgfault", 47_751_216)]));
    }

    #[test]
    fn reports_the_line_of_a_bad_value() {
        let err = parse_all("a 1\nb x\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.to_string().contains("line 2"));
        assert_eq!(parse_value("1 MB"), None);
        assert_eq!(parse_value(""), None);
        assert_eq!(parse_value("18446744073709551615 kB"), None);
    }

    #[test]
    fn lookup_ignores_text_lines() {
        let text = "Name:\tfoo bar\nVmHWM:\t    1304 kB\nThreads:\t1\n";
        assert_eq!(lookup(text, ["VmHWM", "Threads", "VmSwap"]), Ok([Some(1304 * 1024), Some(1), None]));
        assert!(lookup("VmHWM: lots\n", ["VmHWM"]).is_err());
    }
}

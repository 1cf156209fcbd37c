//! The PSI file format: `some avg10=0.00 avg60=0.00 avg300=0.00 total=0`
//! (a `full` line follows for memory). `total` is in microseconds.

use std::fmt;

/// One line of a pressure file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PressureLine {
    /// Percentages of wall time, as the kernel prints them.
    pub avg10: f64,
    pub avg60: f64,
    pub avg300: f64,
    pub total_us: u64,
}

impl PressureLine {
    pub fn total_seconds(&self) -> f64 {
        self.total_us as f64 / 1e6
    }
}

/// A parsed pressure file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pressure {
    pub some: PressureLine,
    /// Absent for the host CPU file on older kernels; present for memory.
    pub full: Option<PressureLine>,
}

impl Pressure {
    /// `("some", line)` and, when present, `("full", line)`.
    pub fn lines(&self) -> impl Iterator<Item = (&'static str, &PressureLine)> {
        std::iter::once(("some", &self.some)).chain(self.full.as_ref().map(|f| ("full", f)))
    }
}

/// What was wrong with a pressure file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PsiParseError {
    pub line: usize,
    pub reason: String,
}

impl fmt::Display for PsiParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

/// Parses a PSI file; unknown extra fields are ignored, missing ones are errors.
pub fn parse(text: &str) -> Result<Pressure, PsiParseError> {
    let mut some = None;
    let mut full = None;
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let mut words = line.split_whitespace();
        let slot = match words.next() {
            Some("some") => &mut some,
            Some("full") => &mut full,
            Some(other) => {
                return Err(PsiParseError {
                    line: i + 1,
                    reason: format!("expected `some` or `full`, found {other:?}"),
                });
            }
            None => continue,
        };
        *slot = Some(parse_fields(words).map_err(|reason| PsiParseError { line: i + 1, reason })?);
    }
    let some = some.ok_or(PsiParseError { line: 1, reason: "no `some` line (empty or truncated file)".into() })?;
    Ok(Pressure { some, full })
}

fn parse_fields<'a>(words: impl Iterator<Item = &'a str>) -> Result<PressureLine, String> {
    let (mut avg10, mut avg60, mut avg300, mut total) = (None, None, None, None);
    for word in words {
        let (key, value) = word.split_once('=').ok_or_else(|| format!("expected key=value, found {word:?}"))?;
        let bad = || format!("{key} is not a number: {value:?}");
        match key {
            "avg10" => avg10 = Some(value.parse::<f64>().map_err(|_| bad())?),
            "avg60" => avg60 = Some(value.parse::<f64>().map_err(|_| bad())?),
            "avg300" => avg300 = Some(value.parse::<f64>().map_err(|_| bad())?),
            "total" => total = Some(value.parse::<u64>().map_err(|_| bad())?),
            _ => {}
        }
    }
    match (avg10, avg60, avg300, total) {
        (Some(avg10), Some(avg60), Some(avg300), Some(total_us))
            if [avg10, avg60, avg300].iter().all(|a| a.is_finite()) =>
        {
            Ok(PressureLine { avg10, avg60, avg300, total_us })
        }
        _ => Err("missing one of avg10, avg60, avg300, total".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_fixture_snapshot() {
        // ../shared/fixtures/proc/t1/pressure_memory: no pressure during the capture.
        let text = include_str!("../../tests/fixtures/proc-snapshots/t1/pressure_memory");
        let p = parse(text).unwrap();
        assert_eq!(p.some, PressureLine { avg10: 0.0, avg60: 0.0, avg300: 0.0, total_us: 0 });
        assert_eq!(p.full.map(|f| f.total_us), Some(0));
    }

    #[test]
    fn parses_values_under_pressure() {
        let p = parse(
            "some avg10=1.50 avg60=0.25 avg300=0.05 total=2500000\nfull avg10=0.50 avg60=0.00 avg300=0.00 total=1000\n",
        )
        .unwrap();
        assert_eq!(p.some.avg10, 1.5);
        assert_eq!(p.some.total_seconds(), 2.5);
        assert_eq!(p.full.map(|f| f.total_us), Some(1000));
    }

    #[test]
    fn rejects_truncated_and_garbage() {
        assert!(parse("").unwrap_err().reason.contains("no `some` line"));
        assert_eq!(parse("some avg10=0.00 avg60=0.00\n").unwrap_err().line, 1);
        assert!(parse("full avg10=x avg60=0 avg300=0 total=1\n").is_err());
        assert!(parse("bogus\n").unwrap_err().reason.contains("bogus"));
        assert!(parse("some avg10=NaN avg60=0 avg300=0 total=1\n").is_err());
    }
}

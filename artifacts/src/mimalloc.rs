//! mimalloc statistics (`MIMALLOC_SHOW_STATS=1`, `MIMALLOC_VERBOSE=1`): every
//! row of the `heap stats` tables as totals (`bin_26_current_bytes`,
//! `committed_peak_bytes`, …), and a leak record for each row marked
//! "not all freed". mimalloc prints sizes rounded to one decimal of KiB/MiB
//! (and computes KiB as /1024 then /102 for tenths), so bytes are approximate.

use crate::format::Format;
use crate::meter::{Meter, record_cost, total_cost};
use crate::model::{ArtifactError, Ingested, Record, Severity};

const ID: &str = "mimalloc";

/// Columns of a statistics table, and values of a row, read at most: mimalloc prints about six.
const MAX_COLUMNS: usize = 64;

fn sniff(head: &str) -> bool {
    head.contains("heap stats:") && (head.contains(" committed:") || head.contains("mimalloc:"))
}

fn parse(text: &str, meter: &mut Meter) -> Result<Ingested, ArtifactError> {
    let mut out = Ingested::new(ID);
    // (name, end position in the header line): values are right-aligned under them.
    let mut columns: Vec<(String, usize)> = Vec::new();
    let mut rows = 0;
    let mut not_freed = 0u64;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if let Some(version) = t.strip_prefix("mimalloc: v") {
            if out.attributes.is_empty() {
                out.attributes
                    .push(("version".into(), meter.name(version.split_whitespace().next().unwrap_or_default())));
            }
            continue;
        }
        if t.starts_with("heap stats:") {
            columns = words_with_ends(line)
                .skip(2)
                .take(MAX_COLUMNS)
                .map(|(c, end)| (if c == "total#" || c == "count" { "count".to_owned() } else { c.to_owned() }, end))
                .collect();
            continue;
        }
        if columns.is_empty() {
            continue;
        }
        let Some((label, rest)) = t.split_once(':') else { continue };
        if label.is_empty() || label == "process" || label.starts_with("mimalloc") {
            continue;
        }
        // A row's label is a word or two (`bin 26`, `pages`): more are not read.
        let words: Vec<&str> = label.trim_start_matches('-').split_whitespace().take(16).collect();
        let name = meter.name(&words.join("_"));
        let offset = rest.as_ptr() as usize - line.as_ptr() as usize;
        let (values, status) = values_and_status(rest).ok_or_else(|| ArtifactError::Malformed {
            format: ID,
            line: i + 1,
            message: format!("cannot read the values of row {label:?}"),
        })?;
        rows += 1;
        // Each value belongs to the column whose header ends nearest to where the value ends.
        let mut named: Vec<(&str, f64, bool)> = Vec::new();
        for (value, sized, end) in &values {
            let at = offset + end;
            if let Some((column, _)) = columns.iter().min_by_key(|(_, e)| e.abs_diff(at)) {
                named.push((column, *value, *sized));
            }
        }
        for (column, value, sized) in &named {
            let suffix = if *sized { "_bytes" } else { "" };
            let total = format!("{name}_{column}{suffix}");
            if meter.admit("statistics", total_cost(&total)) {
                out.totals.push((total, *value));
            }
        }
        let get = |c: &str| named.iter().find(|(n, _, _)| *n == c).map(|(_, v, _)| *v);
        if status.starts_with("not all freed") {
            let current = get("current");
            let mut r = Record::new(
                Severity::Warn,
                "mimalloc.not_freed",
                format!("{}: not all freed at exit", meter.name(label)),
            );
            r.bytes = current.map(|v| v as u64);
            if let Some(count) = get("count") {
                r.blocks = Some(count as u64);
            }
            if let Some(block) = get("block") {
                r.attributes.push(("block_bytes".into(), block.to_string()));
            }
            not_freed += 1;
            if meter.admit("rows not all freed", record_cost(&r)) {
                out.records.push(r);
            }
        }
    }
    if rows == 0 {
        return Err(ArtifactError::Truncated {
            format: ID,
            line: text.lines().count(),
            message: "no statistics rows".into(),
        });
    }
    out.totals.push(("rows_not_all_freed".into(), not_freed as f64));
    Ok(out)
}

/// The words of a line with the byte position where each ends.
fn words_with_ends(line: &str) -> impl Iterator<Item = (&str, usize)> {
    line.split_whitespace().map(move |w| (w, w.as_ptr() as usize - line.as_ptr() as usize + w.len()))
}

/// One value of a row: the amount (bytes when `sized`), and where its text ends.
type Value = (f64, bool, usize);

/// `  100.3 KiB   100.3 KiB   100.3 KiB   256   B     400        not all freed`
/// → [(102707, true, end), …, (400, false, end)] and the status text.
fn values_and_status(rest: &str) -> Option<(Vec<Value>, String)> {
    // Values with their units, `avg` and a short status: a row has no more words than this.
    let words: Vec<(&str, usize)> = words_with_ends(rest).take(3 * MAX_COLUMNS).collect();
    let mut values = Vec::new();
    let mut i = 0;
    while i < words.len() && values.len() < MAX_COLUMNS {
        let Ok(number) = words[i].0.parse::<f64>() else { break };
        match words.get(i + 1).and_then(|(u, _)| unit(u)) {
            Some(scale) => {
                values.push((number * scale, true, words[i + 1].1));
                i += 2;
            }
            None => {
                values.push((number, false, words[i].1));
                i += 1;
                // `0.8 avg`: a unit word that is not a size.
                if words.get(i).is_some_and(|(w, _)| *w == "avg") {
                    i += 1;
                }
            }
        }
    }
    let status: Vec<&str> = words[i..].iter().map(|(w, _)| *w).collect();
    (!values.is_empty()).then(|| (values, status.join(" ")))
}

fn unit(word: &str) -> Option<f64> {
    Some(match word {
        "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        "TiB" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    })
}

/// The mimalloc line of the format table.
pub static FORMAT: Format = Format { id: ID, about: ABOUT, sniff, parse };

const ABOUT: &str = "mimalloc statistics (MIMALLOC_SHOW_STATS=1, MIMALLOC_VERBOSE=1)";

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!("{}/tests/fixtures/mimalloc/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    fn parse(text: &str) -> Result<Ingested, ArtifactError> {
        super::parse(text, &mut Meter::default())
    }

    #[test]
    fn statistics_build_names_the_leaking_bins() {
        let out = parse(&fixture("stat-build-verbose.txt")).unwrap();
        // README: bins 10 (96 B, 1), 16 (256 B, 400) and 26 (1.5 KiB, 200) not all freed;
        // bin 4 and bin 36 ok; binned current 401.6 KiB; malloc req 3.5 MiB.
        let not_freed: Vec<&str> = out.records.iter().map(|r| r.message.split(':').next().unwrap()).collect();
        assert_eq!(not_freed, ["bin  10", "bin  16", "bin  26", "binned"]);
        let bin16 = &out.records[1];
        assert_eq!((bin16.blocks, bin16.attributes[0].1.as_str()), (Some(400), "256"));
        assert_eq!(out.records[2].blocks, Some(200));
        assert_eq!(out.records[2].attributes[0].1, "1536");
        // mimalloc's "301.1 KiB" for 307,200 B: within its rounding (README's quirk).
        let bytes = out.records[2].bytes.unwrap() as f64;
        assert!((bytes - 307_200.0).abs() / 307_200.0 < 0.01, "{bytes}");
        let binned = out.total("binned_current_bytes").unwrap();
        assert!((binned - 401.6 * 1024.0).abs() < 1.0);
        assert!((out.total("malloc_req_total_bytes").unwrap() - 3.5 * 1024.0 * 1024.0).abs() < 1.0);
        assert_eq!(out.total("bin_26_count"), Some(200.0));
        assert_eq!(out.attributes[0], ("version".into(), "2.3.2".into()));
    }

    #[test]
    fn release_build_still_reports_not_all_freed() {
        let out = parse(&fixture("debian-stats.txt")).unwrap();
        // Debian's MI_STAT=0 build: only reserved/committed/touched/segments; touched and segments not all freed.
        assert_eq!(out.total("committed_peak_bytes"), Some(32.0 * 1024.0 * 1024.0));
        let rows: Vec<&str> = out.records.iter().map(|r| r.message.split(':').next().unwrap()).collect();
        assert_eq!(rows, ["touched", "segments"]);
    }
}

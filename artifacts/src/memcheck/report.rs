//! memcheck's errors made into the model as the readers hand them over, one
//! at a time: a record per loss record and per error, the leak profile, the
//! leak totals. Nothing waits for the end of the file but the totals.
//!
//! Indirect bytes: a definitely-lost record whose blocks point to others says
//! "102,400 (256 direct, 102,144 indirect) bytes". When the report also has
//! indirectly-lost records (`--show-leak-kinds` names `indirect` or `all`),
//! they carry those bytes at their own allocation sites, so the definite
//! record's site takes only its direct part; when it has none (Valgrind's
//! default, `definite,possible`), the definite record's site takes all of them.
//! Either way the sites add up to the LEAK SUMMARY's definitely + indirectly
//! lost, and nothing is counted twice.
//!
//! Leaked means definitely + indirectly lost, as in the LEAK SUMMARY (and in
//! LeakSanitizer's); possibly-lost and still-reachable blocks are records and
//! totals of their own, not leak sites. The text log's LEAK SUMMARY, when
//! there is one, gives the totals; the XML has none, so its totals are the
//! records', and what `--show-leak-kinds` hid from them is said in `hints`.

use super::{Error, ID};
use crate::meter::{Meter, record_cost, sample_cost};
use crate::model::{Ingested, LEAKED_OBJECTS, LEAKED_SPACE, Profile, Record, Sample, Severity};

/// The kinds of loss records, in the LEAK SUMMARY's order.
const KINDS: [&str; 4] = ["definite", "indirect", "possible", "reachable"];

/// The model being built from a report.
#[derive(Debug)]
pub struct Report {
    out: Ingested,
    leaks: Profile,
    /// Bytes and blocks per kind of `KINDS`, from the loss records.
    totals: [u64; 8],
    /// The LEAK SUMMARY's bytes and blocks per kind (text logs only).
    summary: Option<[u64; 8]>,
    /// Indirectly-lost records seen: whether indirect bytes have sites of their own.
    indirect_records: u64,
    /// Definitely-lost records' indirect parts: (their sample's index if kept, bytes).
    indirect_parts: Vec<(Option<usize>, u64)>,
    /// `--show-leak-kinds=` and `--leak-check=` as given (XML `<args>`).
    shown_kinds: Option<String>,
    leak_check: Option<String>,
    /// Whether the report is XML, whose `<args>` always say how memcheck ran.
    xml: bool,
    errors: u64,
}

impl Default for Report {
    fn default() -> Report {
        Report {
            out: Ingested::new(ID),
            leaks: Profile::new("leaks", vec![LEAKED_SPACE, LEAKED_OBJECTS]),
            totals: [0; 8],
            summary: None,
            indirect_records: 0,
            indirect_parts: Vec::new(),
            shown_kinds: None,
            leak_check: None,
            xml: false,
            errors: 0,
        }
    }
}

impl Report {
    /// A fact about the run (`pid`, `command`); the first of each is kept.
    pub fn attribute(&mut self, key: &str, value: String) {
        if !self.out.attributes.iter().any(|(k, _)| k == key) {
            self.out.attributes.push((key.to_owned(), value));
        }
    }

    /// The report is XML: Valgrind's defaults apply to the arguments it does not list.
    pub fn xml(&mut self) {
        self.xml = true;
    }

    /// One of Valgrind's own command-line arguments (the XML's `<args>`).
    pub fn valgrind_arg(&mut self, arg: &str, meter: &mut Meter) {
        if let Some(kinds) = arg.strip_prefix("--show-leak-kinds=") {
            self.shown_kinds = Some(meter.name(kinds));
        } else if let Some(mode) = arg.strip_prefix("--leak-check=") {
            self.leak_check = Some(meter.name(mode));
        }
    }

    /// One LEAK SUMMARY line: `definitely lost: 10,080 bytes in 12 blocks`.
    pub fn summary_line(&mut self, kind: &str, bytes: u64, blocks: u64) {
        let Some(i) = KINDS.iter().position(|k| *k == kind) else { return };
        let summary = self.summary.get_or_insert([0; 8]);
        summary[2 * i] = bytes;
        summary[2 * i + 1] = blocks;
    }

    /// "All heap blocks were freed -- no leaks are possible": a LEAK SUMMARY of zeros.
    pub fn no_leaks(&mut self) {
        self.summary.get_or_insert([0; 8]);
    }

    /// One error or loss record: counted always, kept as far as the meter allows.
    pub fn error(&mut self, e: Error, meter: &mut Meter) {
        let Some(leak) = leak_kind(&e.kind) else {
            self.errors += 1;
            let record = error_record(e);
            if meter.admit("error records", record_cost(&record)) {
                self.out.records.push(record);
            }
            return;
        };
        let bytes = e.leaked_bytes.unwrap_or(0);
        let blocks = e.leaked_blocks.unwrap_or(0);
        let direct = direct_bytes(&e.what).unwrap_or(bytes).min(bytes);
        let slot = 2 * KINDS.iter().position(|k| *k == leak).unwrap_or(3);
        self.totals[slot] = self.totals[slot].saturating_add(direct);
        self.totals[slot + 1] = self.totals[slot + 1].saturating_add(blocks);
        if leak == "indirect" {
            self.indirect_records += 1;
        }
        let stack = e.stacks.into_iter().next().map(|(_, s)| s).unwrap_or_default();
        let sample = matches!(leak, "definite" | "indirect").then(|| Sample {
            stack: stack.clone(),
            values: vec![direct as i64, blocks as i64],
            labels: vec![("kind".into(), leak.into())],
        });
        let mut r = Record::new(
            if matches!(leak, "possible" | "reachable") { Severity::Info } else { Severity::Error },
            format!("leak.{leak}"),
            e.what,
        );
        r.bytes = Some(bytes);
        r.blocks = Some(blocks);
        r.stacks.push(("allocation".into(), stack));
        let cost = record_cost(&r) + sample.as_ref().map_or(0, sample_cost);
        let kept = meter.admit("loss records", cost);
        if kept {
            self.leaks.samples.extend(sample);
            self.out.records.push(r);
        }
        if leak == "definite" && bytes > direct {
            let index = (kept && leak == "definite").then(|| self.leaks.samples.len() - 1);
            self.indirect_parts.push((index, bytes - direct));
        }
    }

    /// The model, with the totals of every error seen.
    pub fn finish(mut self) -> Ingested {
        let mut totals = self.totals;
        // Known only from an indirectly-lost record or a LEAK SUMMARY.
        let mut indirect_blocks_known = self.indirect_records > 0 || self.indirect_parts.is_empty();
        if self.indirect_records == 0 {
            for &(index, bytes) in &self.indirect_parts {
                totals[2] = totals[2].saturating_add(bytes);
                if let Some(sample) = index.and_then(|i| self.leaks.samples.get_mut(i)) {
                    sample.values[0] = sample.values[0].saturating_add(bytes as i64);
                }
            }
        }
        if let Some(summary) = self.summary {
            totals = summary;
            indirect_blocks_known = true;
        } else if let Some(hint) = self.hidden_kinds_hint() {
            self.out.hints.push(hint);
        }
        for (i, name) in KINDS.iter().enumerate() {
            self.out.totals.push((format!("{name}_bytes"), totals[2 * i] as f64));
            if i != 1 || indirect_blocks_known {
                self.out.totals.push((format!("{name}_blocks"), totals[2 * i + 1] as f64));
            }
        }
        let leaked = totals[0].saturating_add(totals[2]);
        self.out.totals.push(("leaked_bytes".into(), leaked as f64));
        if indirect_blocks_known {
            self.out.totals.push(("leaked_blocks".into(), totals[1].saturating_add(totals[3]) as f64));
        }
        self.out.totals.push(("errors".into(), self.errors as f64));
        let on_sites = u64::try_from(self.leaks.total(0)).unwrap_or(0);
        if self.summary.is_some() && on_sites < leaked {
            self.out.hints.push(format!(
                "the leak sites hold {on_sites} of the LEAK SUMMARY's {leaked} lost bytes: memcheck printed no \
                 loss record for the rest (run it with --leak-check=full --show-leak-kinds=all)"
            ));
        }
        self.out.profiles.push(self.leaks);
        self.out
    }

    /// What an XML report's `--leak-check` / `--show-leak-kinds` kept out of its records.
    fn hidden_kinds_hint(&self) -> Option<String> {
        if !self.xml {
            return None;
        }
        // Valgrind's defaults: --leak-check=summary, --show-leak-kinds=definite,possible.
        if let Some(mode) =
            Some(self.leak_check.as_deref().unwrap_or("summary")).filter(|m| matches!(*m, "no" | "summary"))
        {
            return Some(format!(
                "memcheck ran with --leak-check={mode}: the XML holds no loss record, so no leak is counted \
                 (run it with --leak-check=full --show-leak-kinds=all)"
            ));
        }
        let kinds = self.shown_kinds.as_deref()?;
        let shown = |k: &str| kinds.split(',').any(|x| x == k || x == "all");
        let hidden: Vec<&str> = ["definite", "possible"].into_iter().filter(|k| !shown(k)).collect();
        (!hidden.is_empty()).then(|| {
            format!(
                "memcheck ran with --show-leak-kinds={kinds}: the XML holds no {} loss record, so the leak \
                 totals and sites leave those bytes out (run it with --show-leak-kinds=all, or ingest the text \
                 log, whose LEAK SUMMARY has them)",
                hidden.join(" or ")
            )
        })
    }
}

fn leak_kind(kind: &str) -> Option<&'static str> {
    match kind {
        "Leak_DefinitelyLost" => Some("definite"),
        "Leak_IndirectlyLost" => Some("indirect"),
        "Leak_PossiblyLost" => Some("possible"),
        "Leak_StillReachable" => Some("reachable"),
        _ => None,
    }
}

/// `102,400 (256 direct, 102,144 indirect) bytes …` → 256.
fn direct_bytes(what: &str) -> Option<u64> {
    let open = what.find('(')?;
    let close = what[open..].find(')')? + open;
    let (direct, _) = what[open + 1..close].split_once(" direct")?;
    direct.replace(',', "").trim().parse().ok()
}

fn error_record(e: Error) -> Record {
    let mut r = Record::new(Severity::Error, format!("memcheck.{}", e.kind), e.what);
    for (i, (_, stack)) in e.stacks.into_iter().enumerate() {
        let role = if i == 0 {
            "access".to_owned()
        } else {
            let aux = e.auxwhat.get(i - 1).map(String::as_str).unwrap_or_default();
            if aux.contains("free'd") {
                "free".into()
            } else if aux.contains("alloc'd") {
                "allocation".into()
            } else {
                format!("aux{i}")
            }
        };
        r.stacks.push((role, stack));
    }
    for aux in e.auxwhat {
        r.attributes.push(("auxwhat".into(), aux));
    }
    r
}

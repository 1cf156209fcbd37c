//! memcheck's errors made into the model as the readers hand them over, one
//! at a time: a record per loss record and per error, the leak profile, the
//! leak totals. Nothing waits for the end of the file but the totals.
//!
//! Double counting: a definitely-lost record whose blocks point to others says
//! "102,400 (256 direct, 102,144 indirect) bytes", and the indirect bytes also
//! have their own record. The profile and the totals take only the direct part
//! of such a record, so per-site sums and totals match the LEAK SUMMARY.

use super::{Error, ID};
use crate::meter::{Meter, record_cost, sample_cost};
use crate::model::{Ingested, LEAKED_OBJECTS, LEAKED_SPACE, Profile, Record, Sample, Severity};

/// The model being built from a report.
#[derive(Debug)]
pub struct Report {
    out: Ingested,
    leaks: Profile,
    /// bytes and blocks of definite, indirect, possible and reachable leaks.
    totals: [u64; 8],
    errors: u64,
}

impl Default for Report {
    fn default() -> Report {
        Report {
            out: Ingested::new(ID),
            leaks: Profile::new("leaks", vec![LEAKED_SPACE, LEAKED_OBJECTS]),
            totals: [0; 8],
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
        // Only the direct part of a record that also reports indirect bytes.
        let direct = direct_bytes(&e.what).unwrap_or(bytes);
        let slot = match leak {
            "definite" => 0,
            "indirect" => 2,
            "possible" => 4,
            _ => 6,
        };
        self.totals[slot] += direct;
        self.totals[slot + 1] += blocks;
        let stack = e.stacks.into_iter().next().map(|(_, s)| s).unwrap_or_default();
        let sample = (leak != "reachable").then(|| Sample {
            stack: stack.clone(),
            values: vec![direct as i64, blocks as i64],
            labels: vec![("kind".into(), leak.into())],
        });
        let mut r = Record::new(
            if leak == "reachable" { Severity::Info } else { Severity::Error },
            format!("leak.{leak}"),
            e.what,
        );
        r.bytes = Some(bytes);
        r.blocks = Some(blocks);
        r.stacks.push(("allocation".into(), stack));
        let cost = record_cost(&r) + sample.as_ref().map_or(0, sample_cost);
        if meter.admit("loss records", cost) {
            self.leaks.samples.extend(sample);
            self.out.records.push(r);
        }
    }

    /// The model, with the totals of every error seen.
    pub fn finish(mut self) -> Ingested {
        let totals = self.totals;
        for (i, name) in ["definite", "indirect", "possible", "reachable"].iter().enumerate() {
            self.out.totals.push((format!("{name}_bytes"), totals[2 * i] as f64));
            self.out.totals.push((format!("{name}_blocks"), totals[2 * i + 1] as f64));
        }
        self.out.totals.push(("leaked_bytes".into(), (totals[0] + totals[2] + totals[4]) as f64));
        self.out.totals.push(("leaked_blocks".into(), (totals[1] + totals[3] + totals[5]) as f64));
        self.out.totals.push(("errors".into(), self.errors as f64));
        self.out.profiles.push(self.leaks);
        self.out
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

//! AddressSanitizer error reports (gcc and clang, stderr or `log_path` files):
//! one record per error with its kind, the access (READ/WRITE and size), how
//! the address relates to the region, and the access, free and allocation stacks.

use crate::format::Format;
use crate::meter::{Meter, record_cost};
use crate::model::{ArtifactError, Frame, Ingested, Record, Severity};
use crate::sanitizer;

const ID: &str = "asan";

/// A report has an access, a free and an allocation stack, and a few thread
/// creation stacks; more are not kept (nor more attributes than this).
const STACKS_PER_RECORD: usize = 16;
const ATTRIBUTES_PER_RECORD: usize = 32;

fn sniff(head: &str) -> bool {
    head.contains("ERROR: AddressSanitizer:")
}

fn parse(text: &str, meter: &mut Meter) -> Result<Ingested, ArtifactError> {
    let mut out = Ingested::new(ID);
    let mut errors = 0u64;
    let mut current: Option<Record> = None;
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l)).peekable();
    while let Some((n, line)) = lines.next() {
        let t = line.trim();
        if let Some((pid, rest)) = t.strip_prefix("==").and_then(|r| r.split_once("==ERROR: AddressSanitizer: ")) {
            if let Some(done) = current.take() {
                keep(&mut out, done, meter);
            }
            errors += 1;
            let kind = rest.split_whitespace().next().unwrap_or("unknown");
            let mut r = Record::new(Severity::Error, format!("asan.{}", meter.name(kind)), meter.name(rest));
            attribute(&mut r, "pid", meter.name(pid));
            current = Some(r);
        } else if let Some(r) = current.as_mut() {
            if let Some(first) = sanitizer::frame(t).filter(|_| r.stacks.is_empty()) {
                // Errors without an access line (double-free, bad-free, SEGV) put their stack right here.
                let mut stack = Vec::new();
                meter.push_frame(&mut stack, first);
                stack.extend(sanitizer::stack(&mut lines, meter));
                stack.truncate(crate::meter::FRAMES_PER_STACK);
                push_stack(r, "access", stack);
            } else if let Some((access, size)) = access_line(t) {
                attribute(r, "access", access.into());
                attribute(r, "access_size", size.to_string());
                r.bytes = Some(size);
                push_stack(r, "access", sanitizer::stack(&mut lines, meter));
            } else if let Some(relation) = t.split_once(" is located ").map(|(_, rel)| rel) {
                attribute(r, "location", format!("located {}", meter.name(relation)));
                if let Some(size) = region_size(relation) {
                    attribute(r, "region_size", size.to_string());
                }
            } else if t.starts_with("freed by thread") {
                push_stack(r, "free", sanitizer::stack(&mut lines, meter));
            } else if t.starts_with("previously allocated by thread") || t.starts_with("allocated by thread") {
                push_stack(r, "allocation", sanitizer::stack(&mut lines, meter));
            } else if let Some(summary) = t.strip_prefix("SUMMARY: AddressSanitizer: ") {
                attribute(r, "summary", meter.name(summary));
                // The SUMMARY names the kind canonically (`double-free`, `bad-free`), the ERROR line not always.
                if let Some(kind) = summary.split_whitespace().next() {
                    r.kind = format!("asan.{}", meter.name(kind));
                }
                if let Some(done) = current.take() {
                    keep(&mut out, done, meter);
                }
            }
        } else if t.starts_with("SUMMARY: AddressSanitizer:") {
            return Err(ArtifactError::Malformed {
                format: ID,
                line: n,
                message: "SUMMARY without an ERROR line".into(),
            });
        }
    }
    if let Some(open) = current {
        return Err(ArtifactError::Truncated {
            format: ID,
            line: text.lines().count(),
            message: format!("the report of {} has no SUMMARY line", open.kind),
        });
    }
    out.totals.push(("errors".into(), errors as f64));
    Ok(out)
}

/// Keeps a finished record when the budget allows (the error count has it either way).
fn keep(out: &mut Ingested, record: Record, meter: &mut Meter) {
    if meter.admit("error records", record_cost(&record)) {
        out.records.push(record);
    }
}

fn attribute(r: &mut Record, key: &str, value: String) {
    if r.attributes.len() < ATTRIBUTES_PER_RECORD {
        r.attributes.push((key.into(), value));
    }
}

fn push_stack(r: &mut Record, role: &str, stack: Vec<Frame>) {
    if !stack.is_empty() && r.stacks.len() < STACKS_PER_RECORD {
        r.stacks.push((role.into(), stack));
    }
}

/// `READ of size 4 at 0x6110… thread T0`
fn access_line(t: &str) -> Option<(&'static str, u64)> {
    let (access, rest) = if let Some(r) = t.strip_prefix("READ of size ") {
        ("READ", r)
    } else if let Some(r) = t.strip_prefix("WRITE of size ") {
        ("WRITE", r)
    } else {
        return None;
    };
    let size = rest.split_whitespace().next().and_then(sanitizer::number)?;
    Some((access, size))
}

/// `8 bytes inside of 256-byte region [0x…,0x…)` → 256.
fn region_size(relation: &str) -> Option<u64> {
    let before = relation.split("-byte region").next()?;
    before.rsplit(' ').next().and_then(sanitizer::number)
}

/// The asan line of the format table.
pub static FORMAT: Format = Format { id: ID, about: ABOUT, sniff, parse };

const ABOUT: &str = "AddressSanitizer error reports (gcc and clang, stderr or log_path)";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sites;

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!("{}/tests/fixtures/asan/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    fn parse(text: &str) -> Result<Ingested, ArtifactError> {
        super::parse(text, &mut Meter::default())
    }

    fn attr<'a>(r: &'a Record, key: &str) -> Option<&'a str> {
        r.attributes.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    fn line(r: &Record, role: &str) -> Option<u32> {
        r.stacks.iter().find(|(x, _)| x == role).and_then(|(_, s)| sites::site(s)).and_then(|f| f.line)
    }

    #[test]
    fn use_after_free_from_gcc_clang_and_log_path() {
        for name in ["uaf.txt", "clang-uaf.txt", "log_path-uaf.txt"] {
            let out = parse(&fixture(name)).unwrap();
            assert_eq!(out.records.len(), 1, "{name}");
            let r = &out.records[0];
            // README: READ of size 4, 8 bytes inside of a 256-byte region; :118 read, :117 free, :115 malloc.
            assert_eq!(r.kind, "asan.heap-use-after-free", "{name}");
            assert_eq!((attr(r, "access"), attr(r, "access_size")), (Some("READ"), Some("4")), "{name}");
            assert!(attr(r, "location").unwrap().starts_with("located 8 bytes inside of 256-byte region"), "{name}");
            assert_eq!(attr(r, "region_size"), Some("256"), "{name}");
            assert_eq!(
                (line(r, "access"), line(r, "free"), line(r, "allocation")),
                (Some(118), Some(117), Some(115)),
                "{name}"
            );
            assert_eq!(sites::site(&r.stacks[0].1).unwrap().function, "use_after_free_bug", "{name}");
            assert!(attr(r, "summary").unwrap().contains("in use_after_free_bug"), "{name}");
        }
    }

    #[test]
    fn overflow_from_gcc_and_clang() {
        for name in ["overflow.txt", "clang-overflow.txt"] {
            let r = parse(&fixture(name)).unwrap().records.remove(0);
            // README: WRITE of size 1, 0 bytes to the right of a 1536-byte region; :124 write, :123 malloc.
            assert_eq!(r.kind, "asan.heap-buffer-overflow", "{name}");
            assert_eq!((attr(&r, "access"), attr(&r, "access_size")), (Some("WRITE"), Some("1")), "{name}");
            assert!(
                attr(&r, "location").unwrap().starts_with("located 0 bytes to the right of 1536-byte region"),
                "{name}"
            );
            assert_eq!((line(&r, "access"), line(&r, "allocation")), (Some(124), Some(123)), "{name}");
            assert_eq!(line(&r, "free"), None);
        }
    }

    #[test]
    fn double_free_takes_its_kind_from_the_summary_and_keeps_its_stack() {
        let text = "=================================================================\n\
==7==ERROR: AddressSanitizer: attempting double-free on 0x602000000010 in thread T0:\n\
    #0 0x7f in __interceptor_free ../asan_malloc_linux.cpp:52\n\
    #1 0x55 in release_twice /src/b.c:31\n\
    #2 0x55 in main /src/b.c:40\n\
\n\
0x602000000010 is located 0 bytes inside of 16-byte region [0x602000000010,0x602000000020)\n\
freed by thread T0 here:\n\
    #0 0x7f in __interceptor_free ../asan_malloc_linux.cpp:52\n\
    #1 0x55 in release_twice /src/b.c:30\n\
\n\
previously allocated by thread T0 here:\n\
    #0 0x7f in __interceptor_malloc ../asan_malloc_linux.cpp:69\n\
    #1 0x55 in make /src/b.c:20\n\
\n\
SUMMARY: AddressSanitizer: double-free ../asan_malloc_linux.cpp:52 in __interceptor_free\n";
        let r = parse(text).unwrap().records.remove(0);
        assert_eq!(r.kind, "asan.double-free");
        assert_eq!((line(&r, "access"), line(&r, "free"), line(&r, "allocation")), (Some(31), Some(30), Some(20)));
        assert_eq!(attr(&r, "region_size"), Some("16"));
    }

    #[test]
    fn a_report_without_summary_is_truncated() {
        let text = fixture("uaf.txt");
        let cut: String = text.lines().take(10).map(|l| format!("{l}\n")).collect();
        assert!(matches!(parse(&cut), Err(ArtifactError::Truncated { .. })));
    }
}

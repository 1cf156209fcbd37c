//! Every parser keeps its model within the parsed-size budget on inputs built
//! to amplify memory (a few bytes of input per frame, stacks shared by many
//! records, deep trees, long names), measured by a counting allocator (the
//! real heap, not the meter's own account); totals still count everything,
//! and the result says what was left out.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use memleak_artifacts::detect::ingest_within;
use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The system allocator, counting live bytes and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's layout, passed on.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::SeqCst) + layout.size();
            PEAK.fetch_max(now, Ordering::SeqCst);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's pointer and layout, passed on.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const BUDGET: u64 = 4 << 20;

/// The counts are process-wide: tests that measure run one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Parses `text` within `BUDGET`; returns the result and the peak heap growth while parsing.
fn measured(text: &str) -> (memleak_artifacts::Ingested, usize) {
    let before = LIVE.load(Ordering::SeqCst);
    PEAK.store(before, Ordering::SeqCst);
    let out = ingest_within(text, BUDGET).unwrap_or_else(|e| panic!("{e}"));
    (out, PEAK.load(Ordering::SeqCst) - before)
}

fn lsan(leaks: usize, depth: usize) -> String {
    let mut s = String::from("==1==ERROR: LeakSanitizer: detected memory leaks\n\n");
    for i in 0..leaks {
        let _ = writeln!(s, "Direct leak of 8 byte(s) in 1 object(s) allocated from:");
        for d in 0..depth {
            let _ = writeln!(s, "    #{d} 0x{:x} in f{} /src/a.c:{d}", 0x1000 + d, i % 7);
        }
        s.push('\n');
    }
    let _ = writeln!(s, "SUMMARY: AddressSanitizer: {} byte(s) leaked in {leaks} allocation(s).", leaks * 8);
    s
}

fn asan(reports: usize) -> String {
    let mut s = String::new();
    for _ in 0..reports {
        s.push_str("==7==ERROR: AddressSanitizer: heap-use-after-free on address 0x1 at pc 0x2\n");
        s.push_str("READ of size 4 at 0x1 thread T0\n");
        for d in 0..30 {
            let _ = writeln!(s, "    #{d} 0x1 in g /b.c:1");
        }
        s.push_str("SUMMARY: AddressSanitizer: heap-use-after-free /b.c:1 in g\n");
    }
    s
}

fn memcheck_text(records: usize) -> String {
    let mut s = String::from("==9== Memcheck, a memory error detector\n==9== Command: ./a\n==9==\n");
    for _ in 0..records {
        s.push_str("==9== 16 bytes in 1 blocks are definitely lost in loss record 1 of 1\n");
        s.push_str("==9==    at 0x1: malloc (in /lib/vg.so)\n");
        for _ in 0..12 {
            s.push_str("==9==    by 0x2: h (c.c:3)\n");
        }
        s.push_str("==9==\n");
    }
    s.push_str("==9== ERROR SUMMARY: 1 errors from 1 contexts\n");
    s
}

/// A massif tree where every node has a leaf and a deeper sibling: leaves × depth frames.
fn massif(depth: usize) -> String {
    let mut s = String::from("desc: x\ncmd: ./a\ntime_unit: i\n#-----------\nsnapshot=0\n#-----------\n");
    s.push_str("time=0\nmem_heap_B=1000000\nmem_heap_extra_B=0\nmem_stacks_B=0\nheap_tree=peak\n");
    let _ = writeln!(s, "n1: {} (heap allocation functions) malloc/new/new[], --alloc-fns, etc.", depth * 2);
    for d in 1..=depth {
        let indent = " ".repeat(d);
        let _ = writeln!(s, "{indent}n2: {} 0x1: f{d} (a.c:{d})", (depth - d + 1) * 2);
        let _ = writeln!(s, "{indent} n0: 1 0x2: leaf{d} (a.c:1)");
    }
    // Close the last node's second child.
    let _ = writeln!(s, "{} n0: 1 0x3: end (a.c:1)", " ".repeat(depth));
    s
}

/// A heaptrack file whose traces form one long chain, and many allocation kinds on its deepest trace.
fn heaptrack(chain: usize, kinds: usize) -> String {
    let mut s = String::from("v 10400 3\nX ./a\ns 1 f\ns 1 a\ni 1 2 1\n");
    for t in 0..chain {
        let _ = writeln!(s, "t 1 {t:x}");
    }
    for k in 0..kinds {
        let _ = writeln!(s, "a {:x} {chain:x}", k + 1);
    }
    for k in 0..kinds {
        let _ = writeln!(s, "+ {k:x}");
    }
    s
}

fn jemalloc(stacks: usize) -> String {
    let long_path = format!("/{}", "d/".repeat(1500));
    let mut s = format!("heap_v2/1\n  t*: {stacks}: {} [0: 0]\n", 8 * stacks);
    for _ in 0..stacks {
        s.push_str("@ ");
        for _ in 0..100 {
            s.push_str("0x1010 ");
        }
        s.push_str("\n  t*: 1: 8 [0: 0]\n");
    }
    let _ = write!(s, "\nMAPPED_LIBRARIES:\n1000-2000 r-xp 00000000 00:00 0 {long_path}lib.so\n");
    s
}

fn bpftrace(keys: usize) -> String {
    let mut s = String::from("Attaching 1 probe...\n\n");
    for k in 0..keys {
        let _ = writeln!(s, "@bytes[comm{k}]: {k}");
    }
    s
}

#[test]
fn every_parser_stays_within_its_budget_and_says_what_it_left_out() {
    let _serial = serial();
    let cases: Vec<(&str, String, &str, f64)> = vec![
        ("lsan deep stacks", lsan(8_000, 60), "leaked_bytes", 64_000.0),
        ("lsan tiny frames", lsan(150_000, 2), "leaked_bytes", 1_200_000.0),
        ("asan", asan(20_000), "errors", 20_000.0),
        ("memcheck", memcheck_text(40_000), "definite_bytes", 640_000.0),
        ("massif", massif(900), "peak_heap_bytes", 1_000_000.0),
        ("heaptrack", heaptrack(20_000, 60_000), "allocations", 60_000.0),
        ("jemalloc", jemalloc(20_000), "inuse_bytes", 160_000.0),
        ("bpftrace", bpftrace(300_000), "", 0.0),
    ];
    for (name, text, total, expected) in cases {
        let (out, peak) = measured(&text);
        eprintln!("{name}: {} MiB of text, peak {} KiB while parsing", text.len() >> 20, peak >> 10);
        // The model's budget, with room for vectors that double and the demangler's scratch.
        assert!(peak <= 3 * BUDGET as usize, "{name}: {peak} bytes at the peak, budget {BUDGET}");
        assert!(!out.left_out.is_empty(), "{name}: nothing left out of an input built to exceed the budget");
        if !total.is_empty() {
            assert_eq!(out.total(total), Some(expected), "{name}: totals count everything");
        }
    }
}

/// `prefix`, then one line of `words` short words, then `suffix`: a line that splits into millions of pieces.
fn long_line(prefix: &str, word: &str, words: usize, suffix: &str) -> String {
    let mut s = String::with_capacity(prefix.len() + word.len() * words + suffix.len());
    s.push_str(prefix);
    for _ in 0..words {
        s.push_str(word);
    }
    s.push_str(suffix);
    s
}

#[test]
fn a_line_of_millions_of_words_costs_no_more_than_the_budget() {
    let _serial = serial();
    let mib = 1 << 20;
    let cases = [
        (
            "lsan suppressions",
            long_line(&format!("{}Suppressions used:\n  count      bytes template\n", lsan(1, 2)), "1 ", 6 * mib, "\n"),
        ),
        (
            "tcmalloc counts",
            long_line(
                "heap profile: 1: 8 [1: 8] @ heapprofile\n1: 8 [",
                "1 ",
                6 * mib,
                "] @ 0x1\n\nMAPPED_LIBRARIES:\n",
            ),
        ),
        ("heaptrack inlined frames", long_line("v 10400 3\nX a\ns 1 f\ni 1 1", " 1", 6 * mib, "\nt 1 0\na 8 1\n+ 0\n")),
        ("mimalloc label", long_line("mimalloc: v2.1.2\nheap stats:    peak      total\n", " a", 6 * mib, ": 1 2\n")),
        (
            "mimalloc row",
            long_line(
                "mimalloc: v2.1.2\nheap stats:    peak      total      current    block   total#\n  bin 1:",
                " 1",
                6 * mib,
                "\n",
            ),
        ),
    ];
    for (name, text) in cases {
        let before = LIVE.load(Ordering::SeqCst);
        PEAK.store(before, Ordering::SeqCst);
        let result = ingest_within(&text, BUDGET);
        let peak = PEAK.load(Ordering::SeqCst) - before;
        eprintln!("{name}: {} MiB line, peak {} KiB, {}", text.len() >> 20, peak >> 10, result.is_ok());
        assert!(peak <= 3 * BUDGET as usize, "{name}: {peak} bytes at the peak, budget {BUDGET}");
    }
}

#[test]
fn tables_a_parse_cannot_do_without_refuse_the_artifact_past_the_budget() {
    let _serial = serial();
    // 200,000 allocation kinds are 6 MB of index: the file is refused, not half read.
    let err = ingest_within(&heaptrack(10, 200_000), BUDGET).unwrap_err();
    assert_eq!(err.reason(), "parsed_too_large", "{err}");
}

#[test]
fn within_budget_nothing_is_left_out() {
    let _serial = serial();
    let text = lsan(10, 5);
    let out = ingest_within(&text, BUDGET).unwrap();
    assert!(out.left_out.is_empty(), "{:?}", out.left_out);
    assert_eq!(out.records.len(), 10);
}

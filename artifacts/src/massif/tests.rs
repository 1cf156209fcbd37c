//! Against the fixture README's ground truth for program A and R.

use super::*;
use crate::sites;

/// The parser within the `ingest` command's budget.
fn parse(text: &str) -> Result<Ingested, ArtifactError> {
    super::parse(text, &mut crate::Meter::default())
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/fixtures/massif/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[test]
fn program_a_peak_matches_the_ground_truth() {
    let out = parse(&fixture("a.massif.out")).unwrap();
    // README: 98 snapshots; peak is the last one, mem_heap_B=415860, mem_heap_extra_B=4812.
    assert_eq!(out.total("snapshots"), Some(98.0));
    assert_eq!(out.total("peak_heap_bytes"), Some(415_860.0));
    assert_eq!(out.total("peak_heap_extra_bytes"), Some(4812.0));
    assert_eq!(out.records.len(), 98);
    let peak = &out.profiles[0];
    assert_eq!(peak.total(0), 415_860, "the leaves add up to the peak");
    let top = sites::top(peak, 0, 5);
    // leak_request_buffer 305,664 B (199 × 1536), leaky_cache_insert 101,888 B (398 × 256),
    // handle_request scratch 8,192 B, 116 B below the threshold.
    assert_eq!(top[0].frame.function, "leak_request_buffer");
    assert_eq!(top[0].values[0], 305_664);
    assert_eq!((top[0].frame.file.as_deref(), top[0].frame.line), (Some("leaky_a.c"), Some(69)));
    assert_eq!(top[1].frame.function, "leaky_cache_insert");
    assert_eq!(top[1].values[0], 101_888);
    assert_eq!(top[2].frame.function, "handle_request");
    assert_eq!(top[2].values[0], 8192);
    assert_eq!(top[3].frame.function, "[below threshold]");
    assert_eq!(top[3].values[0], 116);
    let stack: Vec<&str> = peak.samples[0].stack.iter().map(|f| f.function.as_str()).collect();
    assert_eq!(stack, ["leak_request_buffer", "handle_request", "run_service", "main"]);
}

#[test]
fn program_r_top_site_is_the_rust_function() {
    let out = parse(&fixture("r.massif.out")).unwrap();
    // README: 85 snapshots, peak 528,644 B; leak_token_buffer below the raw_vec frames.
    assert_eq!(out.total("snapshots"), Some(85.0));
    assert_eq!(out.total("peak_heap_bytes"), Some(528_644.0));
    let top = sites::top(&out.profiles[0], 0, 3);
    assert_eq!(top[0].frame.function, "leaky_r::leak_token_buffer");
    assert!(top[0].values[0] >= 505_856, "{top:?}");
}

#[test]
fn pages_as_heap_puts_the_loader_mmap_on_top() {
    let out = parse(&fixture("a-pages.massif.out")).unwrap();
    // README: 40 snapshots, peak 4,632,576 B, top entry __mmap64 (3,850,240 B); the heap under brk.
    assert_eq!(out.total("snapshots"), Some(40.0));
    assert_eq!(out.total("peak_heap_bytes"), Some(4_632_576.0));
    let by_innermost = |name: &str| -> i64 {
        out.profiles[0].samples.iter().filter(|s| s.stack[0].function == name).map(|s| s.values[0]).sum()
    };
    assert_eq!(by_innermost("__mmap64"), 3_850_240);
    assert_eq!(by_innermost("brk"), 524_288);
}

#[test]
fn truncated_and_foreign_input_is_an_error_with_a_line() {
    let text = fixture("a.massif.out");
    let cut: String = text.lines().take(1633).map(|l| format!("{l}\n")).collect();
    match parse(&cut) {
        Err(ArtifactError::Truncated { line, .. }) => assert!(line > 1600, "line {line}"),
        other => panic!("expected Truncated, got {other:?}"),
    }
    let garbled = text.replacen("mem_heap_B=415860", "mem_heap_B=lots", 1);
    assert!(matches!(parse(&garbled), Err(ArtifactError::Malformed { .. })));
    assert!(!sniff("==123== Memcheck, a memory error detector"));
    assert!(sniff(&text[..200]));
}

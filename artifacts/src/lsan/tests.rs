//! Against the fixture README's ground truth (program A).

use super::*;
use crate::sites;

/// The parser within the `ingest` command's budget.
fn parse(text: &str) -> Result<Ingested, ArtifactError> {
    super::parse(text, &mut crate::Meter::default())
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/fixtures/lsan/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[test]
fn every_variant_reports_the_ground_truth() {
    for name in ["asan.txt", "standalone.txt", "clang.txt", "log_path.txt", "asan-report-objects.txt"] {
        let out = parse(&fixture(name)).unwrap();
        // 409,600 B leaked in 600 blocks: direct 307,200/200 + 256/1, indirect 102,144/399.
        assert_eq!(out.total("leaked_bytes"), Some(409_600.0), "{name}");
        assert_eq!(out.total("leaked_allocations"), Some(600.0), "{name}");
        assert_eq!(out.total("direct_bytes"), Some(307_456.0), "{name}");
        assert_eq!(out.total("indirect_objects"), Some(399.0), "{name}");
        let top = sites::top(&out.profiles[0], 0, 3);
        assert_eq!(
            (top[0].frame.function.as_str(), top[0].values.as_slice()),
            ("leak_request_buffer", &[307_200, 200][..]),
            "{name}"
        );
        assert_eq!(
            (top[1].frame.function.as_str(), top[1].values.as_slice()),
            ("leaky_cache_insert", &[102_400, 400][..]),
            "{name}"
        );
        assert_eq!(top[0].frame.line, Some(69), "{name}");
        assert!(out.records.iter().all(|r| r.kind != "lsan.inconsistent"), "{name}");
    }
}

#[test]
fn listed_objects_and_suppressions_are_counted() {
    let out = parse(&fixture("asan-report-objects.txt")).unwrap();
    let listed: u64 = out
        .records
        .iter()
        .flat_map(|r| {
            r.attributes.iter().filter(|(k, _)| k == "objects_listed").map(|(_, v)| v.parse::<u64>().unwrap())
        })
        .sum();
    assert_eq!(listed, 600, "README: 600 `0xADDR (N bytes)` lines");
    let out = parse(&fixture("asan-suppressions.txt")).unwrap();
    // leak:leak_request_buffer suppressed 200 × 1536 B; what remains is the cache.
    assert_eq!(out.total("suppressed_bytes"), Some(307_200.0));
    assert_eq!(out.total("suppressed_allocations"), Some(200.0));
    assert_eq!(out.total("leaked_bytes"), Some(102_400.0));
    assert_eq!(sites::top(&out.profiles[0], 0, 1)[0].frame.function, "leaky_cache_insert");
}

#[test]
fn a_cut_report_is_truncated() {
    let text = fixture("asan.txt");
    let cut: String = text.lines().take(12).map(|l| format!("{l}\n")).collect();
    assert!(matches!(parse(&cut), Err(ArtifactError::Truncated { .. })));
}

//! Against the fixture README's ground truth.

use super::*;
use crate::sites;

/// The parser within the `ingest` command's budget.
fn parse(text: &str) -> Result<Ingested, ArtifactError> {
    super::parse(text, &mut crate::Meter::default())
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/fixtures/memcheck/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[test]
fn program_a_leaks_without_double_counting() {
    for name in ["a.xml", "a.txt"] {
        program_a(&parse(&fixture(name)).unwrap(), name);
    }
}

fn program_a(out: &Ingested, name: &str) {
    // LEAK SUMMARY: definitely lost 307,456 B in 201 blocks, indirectly lost 102,144 B in 399,
    // possibly 0, still reachable 96 B in 1 block.
    assert_eq!(out.total("definite_bytes"), Some(307_456.0));
    assert_eq!(out.total("definite_blocks"), Some(201.0));
    assert_eq!(out.total("indirect_bytes"), Some(102_144.0));
    assert_eq!(out.total("indirect_blocks"), Some(399.0));
    assert_eq!(out.total("possible_bytes"), Some(0.0));
    assert_eq!(out.total("reachable_bytes"), Some(96.0));
    assert_eq!(out.total("leaked_bytes"), Some(409_600.0), "not 511,840: the trap of the README");
    assert_eq!(out.total("leaked_blocks"), Some(600.0));
    // Per site: leak_request_buffer 307,200 B / 200 blocks, leaky_cache_insert 102,400 B / 400 blocks.
    let top = sites::top(&out.profiles[0], 0, 5);
    assert_eq!(top.len(), 2, "still-reachable init_config is not a leak: {top:?}");
    assert_eq!(
        (top[0].frame.function.as_str(), top[0].values.as_slice()),
        ("leak_request_buffer", &[307_200, 200][..])
    );
    assert_eq!((top[1].frame.function.as_str(), top[1].values.as_slice()), ("leaky_cache_insert", &[102_400, 400][..]));
    assert_eq!((top[0].frame.file.as_deref(), top[0].frame.line), (Some("leaky_a.c"), Some(69)));
    // Four loss records, one record each.
    let kinds: Vec<&str> = out.records.iter().map(|r| r.kind.as_str()).collect();
    assert_eq!(kinds, ["leak.reachable", "leak.indirect", "leak.definite", "leak.definite"]);
    assert_eq!(out.records[2].bytes, Some(102_400));
    assert!(out.attributes.contains(&("command".into(), "/build/leakfix/build/a_cachesvc leak".into())), "{name}");
}

#[test]
fn use_after_free_is_an_error_record_with_three_stacks() {
    for name in ["a-uaf.xml", "a-uaf.txt"] {
        use_after_free(&parse(&fixture(name)).unwrap());
    }
}

fn use_after_free(out: &Ingested) {
    assert_eq!(out.total("errors"), Some(1.0));
    let r = &out.records[0];
    assert_eq!(r.kind, "memcheck.InvalidRead");
    assert_eq!(r.message, "Invalid read of size 4");
    assert!(r.attributes.iter().any(|(_, v)| v.contains("8 bytes inside a block of size 256 free'd")));
    let roles: Vec<&str> = r.stacks.iter().map(|(role, _)| role.as_str()).collect();
    assert_eq!(roles, ["access", "free", "allocation"]);
    // README: read at :118, freed at :117, allocated at :115.
    let line_of =
        |role: &str| r.stacks.iter().find(|(x, _)| x == role).and_then(|(_, s)| sites::site(s)).and_then(|f| f.line);
    assert_eq!((line_of("access"), line_of("free"), line_of("allocation")), (Some(118), Some(117), Some(115)));
}

#[test]
fn program_r_merges_the_calloc_and_malloc_records() {
    let out = parse(&fixture("r.xml")).unwrap();
    let text = parse(&fixture("r.txt")).unwrap();
    assert_eq!(text.totals, out.totals, "the text log says what the XML says");
    // README: definitely lost 528,000 B in 300 blocks; leak_token_buffer 509,952/249 + 2,048/1.
    assert_eq!(out.total("leaked_bytes"), Some(528_000.0));
    assert_eq!(out.total("leaked_blocks"), Some(300.0));
    let top = sites::top(&out.profiles[0], 0, 3);
    assert_eq!(top[0].frame.function, "leaky_r::leak_token_buffer");
    assert_eq!(top[0].values, [512_000, 250]);
    assert_eq!(top[1].frame.function, "leaky_r::leak_boxed_record");
    assert_eq!(top[1].values, [16_000, 50]);
}

#[test]
fn truncated_xml_is_reported() {
    let text = fixture("a.xml");
    let cut = &text[..text.len() / 2];
    assert!(matches!(parse(cut), Err(ArtifactError::Truncated { .. }) | Err(ArtifactError::Malformed { .. })));
    assert!(matches!(parse("<valgrindoutput><error></x>"), Err(ArtifactError::Malformed { line: 1, .. })));
    // Cut inside a tag: truncated (the watched folder tries such a file once more), not malformed.
    assert!(matches!(parse("<valgrindoutput>\n<error><kind>Leak_Def"), Err(ArtifactError::Truncated { .. })));
    assert!(matches!(parse("<valgrindoutput>\n<error><ki"), Err(ArtifactError::Truncated { line: 2, .. })));
    let log = fixture("a.txt");
    let cut: String = log.lines().take(20).map(|l| format!("{l}\n")).collect();
    assert!(matches!(parse(&cut), Err(ArtifactError::Truncated { .. })));
}

//! Heaptrack data files of programs A and R, against the fixture README's
//! ground truth (heaptrack_print's own report of the same files).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use memleak_artifacts::{Ingested, detect, sites};

fn ingest(name: &str) -> Ingested {
    let path = format!("{}/tests/fixtures/heaptrack/{name}", env!("CARGO_MANIFEST_DIR"));
    detect::ingest_bytes(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn program_a_leaks_and_statistics() {
    let out = ingest("a.zst");
    assert_eq!(out.format, "heaptrack");
    // heaptrack_print: total memory leaked 409.70K (K = 1000 B; init_config's 96 B counts),
    // 1,402 allocations, 400 temporary, peak heap 490.36K.
    assert_eq!(out.total("leaked_bytes"), Some(409_696.0));
    assert_eq!(out.total("leaked_allocations"), Some(601.0));
    assert_eq!(out.total("allocations"), Some(1402.0));
    assert_eq!(out.total("temporary_allocations"), Some(400.0));
    let peak = out.total("peak_bytes").unwrap();
    assert!((peak - 490_360.0).abs() < 10.0, "peak {peak}");
    let top = sites::top(&out.profiles[0], 0, 3);
    assert_eq!(
        (top[0].frame.function.as_str(), top[0].values[0], top[0].values[1]),
        ("leak_request_buffer", 307_200, 200)
    );
    assert_eq!(
        (top[1].frame.function.as_str(), top[1].values[0], top[1].values[1]),
        ("leaky_cache_insert", 102_400, 400)
    );
    assert_eq!((top[2].frame.function.as_str(), top[2].values[0]), ("init_config", 96));
    assert_eq!(top[0].frame.line, Some(69));
    let stack: Vec<&str> = out.profiles[0]
        .samples
        .iter()
        .find(|s| s.values[0] == 307_200)
        .unwrap()
        .stack
        .iter()
        .map(|f| f.function.as_str())
        .collect();
    assert_eq!(&stack[..4], ["leak_request_buffer", "handle_request", "run_service", "main"]);
}

#[test]
fn program_r_std_symbols_are_demangled() {
    let out = ingest("r.zst");
    // README: total leaked 528.54K; top site leak_token_buffer (512,000 B in 250 blocks).
    assert_eq!(out.total("leaked_bytes"), Some(528_544.0));
    let top = sites::top(&out.profiles[0], 0, 2);
    assert_eq!(top[0].frame.function, "leaky_r::leak_token_buffer");
    assert_eq!((top[0].values[0], top[0].values[1]), (512_000, 250));
    let names: Vec<&str> =
        out.profiles[0].samples.iter().flat_map(|s| s.stack.iter().map(|f| f.function.as_str())).collect();
    assert!(
        !names.iter().any(|n| n.starts_with("_RNv")),
        "v0-mangled names remain: {:?}",
        names.iter().filter(|n| n.starts_with("_R")).collect::<Vec<_>>()
    );
    assert!(names.iter().any(|n| n.contains("RawVecInner") && n.contains("try_allocate_in")));
}

#[test]
fn truncated_zstd_is_an_error() {
    let path = format!("{}/tests/fixtures/heaptrack/a.zst", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(path).unwrap();
    assert!(detect::ingest_bytes(&bytes[..bytes.len() / 2]).is_err());
}

#[test]
fn heaptrack_print_reports_say_the_same_within_rounding() {
    for (name, leaked, top) in
        [("a-print.txt", 409_700.0, "leak_request_buffer"), ("r-print.txt", 528_540.0, "leaky_r::leak_token_buffer")]
    {
        let out = ingest(name);
        assert_eq!(out.format, "heaptrack", "{name}");
        // heaptrack_print rounds to 10 B (K = 1000, two decimals).
        assert_eq!(out.total("leaked_bytes"), Some(leaked), "{name}");
        let t = sites::top(&out.profiles[0], 0, 1);
        assert_eq!(t[0].frame.function, top, "{name}");
    }
    let out = ingest("a-print.txt");
    assert_eq!(out.total("allocations"), Some(1402.0));
    assert_eq!(out.total("temporary_allocations"), Some(400.0));
    let t = sites::top(&out.profiles[0], 0, 3);
    assert_eq!((t[0].values[0], t[0].values[1]), (307_200, 200));
    assert_eq!((t[1].frame.function.as_str(), t[1].values[0], t[1].values[1]), ("leaky_cache_insert", 102_400, 400));
    let stack: Vec<&str> = out.profiles[0].samples[0].stack.iter().map(|f| f.function.as_str()).collect();
    assert_eq!(stack, ["leak_request_buffer", "handle_request", "run_service", "main"]);
}

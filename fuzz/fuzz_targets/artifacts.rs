//! Every artifact parser on arbitrary bytes: through detection (with zstd and
//! gzip decompression) and each parser directly. Any panic is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;
use memleak_artifacts::detect::ingest_bytes;
use memleak_artifacts::{FORMATS, Meter};

fuzz_target!(|data: &[u8]| {
    let _ = ingest_bytes(data);
    let text = String::from_utf8_lossy(data);
    for format in FORMATS {
        // A small parsed-size budget, so running out of it is fuzzed too.
        let _ = (format.parse)(&text, &mut Meter::new(1 << 16));
    }
});

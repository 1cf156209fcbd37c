//! The sampler-marker probes' compiled object (unprivileged): the programs and the maps the loader
//! in `src/sampler_markers/` reads, with the sizes of its Rust mirrors. The probes on a real
//! process are tested through the exporter's `sampler` capture (`exporter/tests/capture_sampler.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{map_shape, parsed_object};
use memleak_bpf::SAMPLER_MARKERS;
use memleak_bpf::sampler_markers::{MAX_OUTSTANDING, SampledBlock, SampledKey};

#[test]
fn the_object_holds_the_probes_and_the_table_the_loader_expects() {
    let Some(object) = parsed_object(SAMPLER_MARKERS.bytes) else { return };
    for program in ["sampler_alloc", "sampler_free"] {
        assert!(object.programs.contains_key(program), "{program}");
    }
    let (key, value) = (size_of::<SampledKey>() as u32, size_of::<SampledBlock>() as u32);
    // A hash (1) of (tgid, pointer) → the sampled block; the per-CPU scratch block (6); 4 counters.
    assert_eq!(map_shape(&object, "outstanding"), (1, key, value, MAX_OUTSTANDING as u32));
    assert_eq!(map_shape(&object, "scratch"), (6, 4, value, 1));
    assert_eq!(map_shape(&object, "sampler_counters"), (6, 4, 8, 4));
}

//! A Rust service sampled through `memleak_sampler::Sampled`: keeps KEPT buffers to the end (a
//! leak), churns strings, maps and boxes, and grows a vector by reallocation. Prints
//! "kept=N kept_size=S grown=S" and the sampler's counters read after its last allocation and
//! free (it leaves with `_exit`): "sampled=N sampled_freed=N dropped=N mean_bytes=N".

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::Ordering;

#[global_allocator]
static ALLOCATOR: memleak_sampler::Sampled<std::alloc::System> = memleak_sampler::Sampled::new(std::alloc::System);

const KEPT: usize = 32;
const KEPT_SIZE: usize = 1 << 20;
const GROWN: usize = 4 << 20;

fn main() {
    let kept: Vec<Vec<u8>> = (0..KEPT).map(|i| vec![i as u8 + 1; KEPT_SIZE]).collect();
    let mut index: HashMap<String, Vec<u64>> = HashMap::new();
    for i in 0..50_000u64 {
        index.entry(format!("key-{}", i % 300)).or_default().push(i);
        let boxed = Box::new([i; 16]);
        std::hint::black_box(&boxed);
    }
    let mut grown = Vec::new();
    while grown.len() < GROWN {
        grown.push(grown.len() as u8);
    }
    let total: usize = index.values().map(Vec::len).sum::<usize>() + grown.len();
    drop(index);
    drop(grown);
    std::mem::forget(kept);

    // Format into a stack buffer and write it in one call: nothing allocated after the counters are read.
    let stats = &memleak_sampler::memleak_sampler_stats;
    let mut out = std::io::stdout().lock();
    writeln!(out, "kept={KEPT} kept_size={KEPT_SIZE} grown={GROWN} total={total}").unwrap();
    out.flush().unwrap();
    let mut line = [0u8; 256];
    let mut cursor = std::io::Cursor::new(&mut line[..]);
    write!(
        cursor,
        "sampled={} sampled_freed={} dropped={} mean_bytes={}\n",
        stats.sampled.load(Ordering::Relaxed),
        stats.sampled_freed.load(Ordering::Relaxed),
        stats.dropped.load(Ordering::Relaxed),
        stats.mean_bytes.load(Ordering::Relaxed),
    )
    .unwrap();
    let length = cursor.position() as usize;
    out.write_all(&line[..length]).unwrap();
    out.flush().unwrap();
    drop(out);
    // Leave without the runtime's exit-time cleanup, which frees std's own blocks (stdout's
    // buffer, thread data) after the counters above were read.
    // SAFETY: _exit ends the process at once; nothing is left to flush.
    unsafe { _exit(0) }
}

unsafe extern "C" {
    fn _exit(status: i32) -> !;
}

//! Robustness of every artifact parser on hostile input: truncations at many
//! offsets, flipped and deleted bytes, duplicated and shuffled lines of every
//! fixture, plus pathological small inputs. No parser may panic, and each must
//! finish quickly (a stand-in for coverage-guided fuzzing that runs in CI).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use memleak_artifacts::detect::{ingest, ingest_bytes};
use memleak_artifacts::{FORMATS, Meter};
use std::path::Path;
use std::time::{Duration, Instant};

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn fixtures() -> Vec<(String, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut out = Vec::new();
    for dir in std::fs::read_dir(&root).unwrap() {
        let dir = dir.unwrap().path();
        if dir.file_name().is_some_and(|n| n == "bin") {
            continue;
        }
        for file in std::fs::read_dir(&dir).unwrap() {
            let path = file.unwrap().path();
            out.push((path.display().to_string(), std::fs::read(&path).unwrap()));
        }
    }
    out
}

fn mutations(bytes: &[u8], rng: &mut Rng) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    // Truncations at 16 spread offsets.
    for i in 1..=16 {
        out.push(bytes[..bytes.len() * i / 17].to_vec());
    }
    for _ in 0..24 {
        let mut m = bytes.to_vec();
        match rng.below(4) {
            0 => {
                for _ in 0..8 {
                    let i = rng.below(m.len());
                    if let Some(b) = m.get_mut(i) {
                        *b = (rng.next() & 0xff) as u8;
                    }
                }
            }
            1 => {
                let at = rng.below(m.len());
                let len = rng.below(64).min(m.len() - at.min(m.len()));
                m.drain(at..at + len);
            }
            2 => {
                let text = String::from_utf8_lossy(&m).into_owned();
                let mut lines: Vec<&str> = text.lines().collect();
                if !lines.is_empty() {
                    let i = rng.below(lines.len());
                    let line = lines[i];
                    lines.insert(rng.below(lines.len()), line);
                }
                m = lines.join("\n").into_bytes();
            }
            _ => {
                let text = String::from_utf8_lossy(&m).into_owned();
                let mut lines: Vec<&str> = text.lines().collect();
                let n = lines.len();
                for _ in 0..4 {
                    let (a, b) = (rng.below(n), rng.below(n));
                    if a < n && b < n {
                        lines.swap(a, b);
                    }
                }
                m = lines.join("\n").into_bytes();
            }
        }
        out.push(m);
    }
    out
}

#[test]
fn no_parser_panics_or_hangs_on_mutated_fixtures() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut cases = 0;
    for (name, bytes) in fixtures() {
        for m in mutations(&bytes, &mut rng) {
            let started = Instant::now();
            // Through detection (as ingest sees it) and through every parser directly.
            let _ = ingest_bytes(&m);
            let text = String::from_utf8_lossy(&m);
            for format in FORMATS {
                let _ = (format.parse)(&text, &mut Meter::default());
            }
            cases += 1;
            assert!(started.elapsed() < Duration::from_secs(5), "{name}: a mutation took {:?}", started.elapsed());
        }
    }
    assert!(cases > 500, "{cases}");
}

#[test]
fn pathological_small_inputs() {
    let deep_massif = format!(
        "desc: x\ncmd: y\ntime_unit: i\nsnapshot=0\ntime=0\nmem_heap_B=1\nmem_heap_extra_B=0\nmem_stacks_B=0\nheap_tree=peak\n{}",
        (0..1500).map(|d| format!("{}n1: 1 0x1: f (a.c:1)\n", " ".repeat(d))).collect::<String>()
    );
    let huge_counts = "desc: x\ntime_unit: i\nsnapshot=0\nheap_tree=detailed\nn999999999999: 1 root\n";
    let nested_xml = format!("<valgrindoutput><protocoltool>memcheck</protocoltool>{}", "<a>".repeat(100_000));
    let heaptrack_bad_refs = "v 10400 3\nX cmd\na ffffffffffffffff 12345\n+ 0\n+ 99\n";
    for input in
        [deep_massif.as_str(), huge_counts, nested_xml.as_str(), heaptrack_bad_refs, "", "\0\0\0", "heap_v2/0\n@ 0x1\n"]
    {
        let started = Instant::now();
        let _ = ingest(input);
        for format in FORMATS {
            let _ = (format.parse)(input, &mut Meter::default());
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?} on {:?}",
            started.elapsed(),
            &input[..input.len().min(40)]
        );
    }
    // A 1 KB zstd frame claiming a huge window must not allocate gigabytes: it errors out.
    let mut bomb = vec![0x28, 0xb5, 0x2f, 0xfd, 0x04, 0x58];
    bomb.extend(std::iter::repeat_n(0u8, 1000));
    let _ = ingest_bytes(&bomb);
}

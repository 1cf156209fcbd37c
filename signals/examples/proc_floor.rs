//! The physical floor of a process scrape: how long a minimal loop takes to
//! read one file of every process in /proc. Used by `benches/process_scrape.sh`.
//!
//! Usage: proc_floor [RUNS] [FILE...]   (default: 30 runs of stat, statm, status, smaps_rollup)
//! Prints one line per file: `floor file=stat processes=N p50_ms=… p90_ms=…`.

use std::io::Read;
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(30);
    let mut files: Vec<String> = args.collect();
    if files.is_empty() {
        files = ["stat", "statm", "status", "smaps_rollup"].map(String::from).to_vec();
    }
    let mut buf = Vec::with_capacity(4096);
    for file in &files {
        let mut times = Vec::with_capacity(runs);
        let mut processes = 0;
        for _ in 0..runs {
            let started = Instant::now();
            processes = 0;
            let Ok(entries) = std::fs::read_dir("/proc") else { return };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let Some(pid) = name.to_str().filter(|n| n.bytes().all(|b| b.is_ascii_digit())) else { continue };
                buf.clear();
                if let Ok(mut f) = std::fs::File::open(format!("/proc/{pid}/{file}"))
                    && f.read_to_end(&mut buf).is_ok()
                {
                    processes += 1;
                }
            }
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        let p = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
        println!("floor file={file} processes={processes} p50_ms={:.2} p90_ms={:.2}", p(0.5), p(0.9));
    }
}

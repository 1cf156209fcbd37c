//! The standard `process_*` metrics every Prometheus exporter serves about
//! itself (the names and meanings of client_golang's process collector), read
//! from the exporter's own `/proc/self`, never from `--path.procfs`.

use memleak_signals::{MetricSet, MetricSpec};

pub static CPU_SECONDS: MetricSpec =
    MetricSpec::counter("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", &[]);
pub static OPEN_FDS: MetricSpec = MetricSpec::gauge("process_open_fds", "Number of open file descriptors.", &[]);
pub static MAX_FDS: MetricSpec = MetricSpec::gauge("process_max_fds", "Maximum number of open file descriptors.", &[]);
pub static VIRTUAL_MEMORY: MetricSpec =
    MetricSpec::gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.", &[]);
pub static VIRTUAL_MEMORY_MAX: MetricSpec = MetricSpec::gauge(
    "process_virtual_memory_max_bytes",
    "Maximum amount of virtual memory available in bytes (-1: unlimited).",
    &[],
);
pub static RESIDENT_MEMORY: MetricSpec =
    MetricSpec::gauge("process_resident_memory_bytes", "Resident memory size in bytes.", &[]);
pub static START_TIME: MetricSpec =
    MetricSpec::gauge("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", &[]);

/// Every standard process metric, for the README table and the naming test.
pub static ALL: &[&MetricSpec] =
    &[&CPU_SECONDS, &OPEN_FDS, &MAX_FDS, &VIRTUAL_MEMORY, &VIRTUAL_MEMORY_MAX, &RESIDENT_MEMORY, &START_TIME];

/// Pushes the metrics that could be read; one unreadable file leaves its metrics out, not the scrape.
pub fn emit(set: &mut MetricSet) {
    let ticks = rustix::param::clock_ticks_per_second().max(1) as f64;
    if let Some(stat) = read_small("/proc/self/stat").as_deref().and_then(Stat::parse) {
        set.push(&CPU_SECONDS, &[], (stat.utime + stat.stime) as f64 / ticks);
        set.push(&VIRTUAL_MEMORY, &[], stat.vsize as f64);
        set.push(&RESIDENT_MEMORY, &[], stat.rss_pages as f64 * rustix::param::page_size() as f64);
        if let Some(boot) = read_small("/proc/stat").as_deref().and_then(boot_time) {
            set.push(&START_TIME, &[], boot as f64 + stat.start_ticks as f64 / ticks);
        }
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        // The directory being listed holds a descriptor of its own: not counted.
        set.push(&OPEN_FDS, &[], fds.count().saturating_sub(1) as f64);
    }
    let limit = |resource| rustix::process::getrlimit(resource).current.map_or(-1.0, |v| v as f64);
    set.push(&MAX_FDS, &[], limit(rustix::process::Resource::Nofile));
    set.push(&VIRTUAL_MEMORY_MAX, &[], limit(rustix::process::Resource::As));
}

/// `/proc/self/stat` and `/proc/stat` are a few KiB; more is not read.
fn read_small(path: &str) -> Option<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path).ok()?.take(64 << 10).read_to_string(&mut text).ok()?;
    Some(text)
}

/// The fields of `/proc/self/stat` used here.
#[derive(Debug, PartialEq)]
struct Stat {
    utime: u64,
    stime: u64,
    start_ticks: u64,
    vsize: u64,
    rss_pages: u64,
}

impl Stat {
    /// Fields after the command (which may hold spaces and parentheses), by proc(5)'s numbering.
    fn parse(text: &str) -> Option<Stat> {
        let (_, rest) = text.rsplit_once(')')?;
        // rest starts at field 3 (state).
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
        Some(Stat {
            utime: field(14)?,
            stime: field(15)?,
            start_ticks: field(22)?,
            vsize: field(23)?,
            rss_pages: field(24)?,
        })
    }
}

/// `btime 1700000000` of `/proc/stat`.
fn boot_time(text: &str) -> Option<u64> {
    text.lines().find_map(|l| l.strip_prefix("btime "))?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_follow_the_command_whatever_it_holds() {
        let line = "4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 500 0 0 0 150 25 0 0 20 0 3 0 9000 123456789 321 \
                    18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let stat = Stat::parse(line).unwrap();
        assert_eq!(stat, Stat { utime: 150, stime: 25, start_ticks: 9000, vsize: 123_456_789, rss_pages: 321 });
        assert_eq!(boot_time("cpu 1 2 3\nbtime 1700000000\n"), Some(1_700_000_000));
        assert_eq!(Stat::parse("4242 (cut"), None);
    }
}

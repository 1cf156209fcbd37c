//! The log records the exporter makes of events: OOM kills (from the kernel
//! log `/dev/kmsg` when readable: victim pid, command, cgroup and memory; else
//! from the vmstat `oom_kill` counter) and collector degradations (a problem
//! seen for the first time).

use super::OtlpSink;
use crate::scrape::Scraper;
use memleak_artifacts::{Record, Severity};
use memleak_signals::FsRoots;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::Path;
use std::time::Duration;

/// How often the vmstat fallback looks at the OOM kill counter.
const OOM_COUNTER_PERIOD: Duration = Duration::from_secs(10);
/// Longest kernel log record read (the kernel's own limit is about 1 KiB).
const MAX_KMSG_RECORD: usize = 8192;

/// Starts the OOM kill watcher and hooks collector degradations.
pub fn start(sink: &OtlpSink, scraper: &Scraper, roots: &FsRoots) {
    let degraded = sink.clone();
    scraper.on_new_problem(Box::new(move |collector, problem| {
        let mut record = Record::new(Severity::Warn, "collector.degraded", problem.detail.clone());
        record.attributes = vec![
            ("memleak.collector".into(), collector.to_owned()),
            ("memleak.problem.type".into(), problem.kind.as_str().to_owned()),
            ("memleak.problem.subject".into(), problem.subject.to_string()),
            ("memleak.problem.hint".into(), problem.hint.to_string()),
        ];
        degraded.ship_log(&record, &[]);
    }));
    let sink = sink.clone();
    let vmstat = roots.procfs.join("vmstat");
    let spawned = std::thread::Builder::new().name("oom-watch".into()).spawn(move || match open_kmsg() {
        Ok(kmsg) => follow_kmsg(kmsg, &sink),
        Err(e) => {
            tracing::info!("OOM kills are reported from the vmstat counter without victim details: /dev/kmsg: {e}");
            follow_counter(&vmstat, &sink);
        }
    });
    if let Err(e) = spawned {
        tracing::warn!("cannot start the OOM kill watcher: {e}; OOM kills are not shipped as logs");
    }
}

fn open_kmsg() -> std::io::Result<std::fs::File> {
    let mut file = std::fs::File::open("/dev/kmsg")?;
    // Only kills from now on: older ones were reported by an earlier run, or are history.
    file.seek(SeekFrom::End(0))?;
    Ok(file)
}

fn follow_kmsg(kmsg: std::fs::File, sink: &OtlpSink) {
    let mut reader = BufReader::with_capacity(MAX_KMSG_RECORD, kmsg);
    let mut parser = OomParser::default();
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => return,
            Ok(_) => {
                if let Some(record) = parser.line(&line) {
                    sink.ship_log(&record, &[]);
                }
            }
            // EPIPE: records were overwritten before we read them; go on with the next.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            Err(e) => {
                tracing::warn!("reading /dev/kmsg failed: {e}; OOM kills are no longer shipped as logs");
                return;
            }
        }
    }
}

fn follow_counter(vmstat: &Path, sink: &OtlpSink) {
    let read = || {
        let text = std::fs::read_to_string(vmstat).ok()?;
        text.lines().find_map(|l| l.strip_prefix("oom_kill ")).and_then(|v| v.trim().parse::<u64>().ok())
    };
    let mut last = read();
    loop {
        std::thread::sleep(OOM_COUNTER_PERIOD);
        let now = read();
        if let (Some(before), Some(after)) = (last, now)
            && after > before
        {
            let n = after - before;
            let mut record =
                Record::new(Severity::Error, "oom.kill", format!("{n} processes killed by the OOM killer"));
            record.attributes.push(("memleak.oom.kills".into(), n.to_string()));
            record.attributes.push(("memleak.oom.source".into(), "vmstat oom_kill".into()));
            sink.ship_log(&record, &[]);
        }
        last = now.or(last);
    }
}

/// Turns the kernel's OOM lines into one record per victim.
#[derive(Debug, Default)]
pub struct OomParser {
    /// From the `oom-kill:` line that precedes the victim's line: (pid, cgroup, constraint).
    pending: Option<(String, String, String)>,
}

impl OomParser {
    /// Reads one `/dev/kmsg` record (`PRIO,SEQ,USEC,FLAGS;MESSAGE`), or a plain message line.
    pub fn line(&mut self, raw: &str) -> Option<Record> {
        let message = raw.split_once(';').map_or(raw, |(_, m)| m).trim_end();
        if let Some(fields) = message.strip_prefix("oom-kill:") {
            let field = |key: &str| {
                fields
                    .split(',')
                    .find_map(|f| f.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
                    .unwrap_or("")
                    .to_owned()
            };
            self.pending = Some((field("pid"), field("task_memcg"), field("constraint")));
            return None;
        }
        let (_, victim) = message.split_once("Killed process ")?;
        let (pid, rest) = victim.split_once(' ')?;
        let comm = rest.strip_prefix('(')?.split_once(") ")?.0;
        let kib = |key: &str| {
            rest.split([',', ' '])
                .find_map(|f| f.strip_prefix(key))
                .and_then(|v| v.strip_suffix("kB"))
                .and_then(|v| v.parse::<u64>().ok())
        };
        let mut record = Record::new(Severity::Error, "oom.kill", format!("OOM killer killed process {pid} ({comm})"));
        record.attributes.push(("process.pid".into(), pid.to_owned()));
        record.attributes.push(("process.executable.name".into(), comm.to_owned()));
        let anon = kib("anon-rss:");
        for (key, value) in [
            ("total-vm:", "memleak.oom.total_vm_bytes"),
            ("anon-rss:", "memleak.oom.anon_rss_bytes"),
            ("file-rss:", "memleak.oom.file_rss_bytes"),
            ("shmem-rss:", "memleak.oom.shmem_rss_bytes"),
        ] {
            if let Some(k) = kib(key) {
                record.attributes.push((value.into(), (k * 1024).to_string()));
            }
        }
        record.bytes = anon.map(|k| k * 1024);
        if let Some((_, cgroup, constraint)) = self.pending.take().filter(|(p, _, _)| p == pid) {
            record.attributes.push(("process.linux.cgroup".into(), cgroup));
            record.attributes.push(("memleak.oom.constraint".into(), constraint));
        }
        record.attributes.push(("memleak.oom.source".into(), "kernel log".into()));
        Some(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel's own format (mm/oom_kill.c, dump_oom_summary and __oom_kill_process).
    #[test]
    fn a_kernel_oom_report_names_the_victim_its_cgroup_and_memory() {
        let mut parser = OomParser::default();
        let summary = "6,1234,5678901,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,\
                       oom_memcg=/system.slice/leaky.service,task_memcg=/system.slice/leaky.service,task=leaky,pid=4242,uid=0\n";
        assert!(parser.line(summary).is_none());
        let killed = "3,1235,5678902,-;Memory cgroup out of memory: Killed process 4242 (leaky) total-vm:1050000kB, \
                      anon-rss:1048576kB, file-rss:1024kB, shmem-rss:0kB, UID:0 pgtables:2100kB oom_score_adj:0\n";
        let record = parser.line(killed).unwrap();
        let get = |k: &str| record.attributes.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
        assert_eq!(get("process.pid"), Some("4242"));
        assert_eq!(get("process.executable.name"), Some("leaky"));
        assert_eq!(get("process.linux.cgroup"), Some("/system.slice/leaky.service"));
        assert_eq!(get("memleak.oom.constraint"), Some("CONSTRAINT_MEMCG"));
        assert_eq!(record.bytes, Some(1_073_741_824));
        assert_eq!(get("memleak.oom.file_rss_bytes"), Some("1048576"));
        assert!(parser.line("6,1236,5678903,-;eth0: link up\n").is_none());
    }
}

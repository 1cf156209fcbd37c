//! `/proc/PID/stat`: the one file read for every process on every scrape.

/// The fields of `/proc/PID/stat` that the process collector uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcStat {
    pub comm: String,
    /// Kernel threads (PF_KTHREAD) have no user memory.
    pub kernel_thread: bool,
    pub minflt: u64,
    pub majflt: u64,
    pub num_threads: u64,
    /// Start time after boot, in clock ticks; with the pid it identifies a process.
    pub start_ticks: u64,
    pub vsize_bytes: u64,
    pub rss_pages: u64,
}

/// `flags` bit of a kernel thread (include/linux/sched.h).
const PF_KTHREAD: u64 = 0x0020_0000;

/// The highest field number we read (24 = rss, see proc(5)).
const LAST_FIELD: usize = 24;

/// Parses a stat line. `comm` may contain spaces and parentheses, so the fields
/// start after the *last* `)`. Returns a description of the first problem.
pub fn parse(line: &[u8]) -> Result<ProcStat, String> {
    let open = line.iter().position(|&b| b == b'(').ok_or("no `(` before the command name")?;
    let close = line.iter().rposition(|&b| b == b')').ok_or("no `)` after the command name")?;
    if close < open {
        return Err("`)` before `(`".into());
    }
    let comm = String::from_utf8_lossy(&line[open + 1..close]).into_owned();
    let rest = std::str::from_utf8(&line[close + 1..]).map_err(|_| "fields after the command name are not text")?;
    // fields[0] is field 3 (state) in proc(5) numbering.
    let mut fields = [""; LAST_FIELD - 2];
    let mut count = 0;
    for (slot, word) in fields.iter_mut().zip(rest.split_ascii_whitespace()) {
        *slot = word;
        count += 1;
    }
    let number = |n: usize| -> Result<u64, String> {
        if n - 3 >= count {
            return Err(format!("truncated: {} fields, field {n} missing", count + 2));
        }
        let text = fields[n - 3];
        text.parse::<u64>().map_err(|_| format!("field {n} is not a number: {text:?}"))
    };
    Ok(ProcStat {
        kernel_thread: number(9)? & PF_KTHREAD != 0,
        comm,
        minflt: number(10)?,
        majflt: number(12)?,
        num_threads: number(20)?,
        start_ticks: number(22)?,
        vsize_bytes: number(23)?,
        rss_pages: number(24)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_fixture_process() {
        // ../shared/fixtures/proc/t1/stat of a_cachesvc (pid 20805).
        let line = include_bytes!("../../tests/fixtures/proc-snapshots/t1/stat");
        let stat = parse(line).unwrap();
        assert_eq!(stat.comm, "a_cachesvc");
        assert!(!stat.kernel_thread);
        // Ground truth from the fixture README: minflt grows ~26/s, RSS ~1.3 MB.
        assert_eq!(stat.minflt, 125);
        assert_eq!(stat.majflt, 0);
        assert_eq!(stat.num_threads, 1);
        assert_eq!(stat.start_ticks, 134_940);
        assert_eq!(stat.vsize_bytes, 2_535_424);
        // status says VmSize 2476 kB: the same number.
        assert_eq!(stat.vsize_bytes, 2476 * 1024);
        assert_eq!(stat.rss_pages, 304);
    }

    #[test]
    fn minor_faults_grow_across_the_fixture_timeline() {
        let t: Vec<u64> = [
            &include_bytes!("../../tests/fixtures/proc-snapshots/t1/stat")[..],
            include_bytes!("../../tests/fixtures/proc-snapshots/t2/stat"),
            include_bytes!("../../tests/fixtures/proc-snapshots/t3/stat"),
        ]
        .iter()
        .map(|b| parse(b).unwrap().minflt)
        .collect();
        assert!(t[0] < t[1] && t[1] < t[2], "{t:?}");
    }

    #[test]
    fn comm_with_spaces_and_parens() {
        let stat = parse(b"7 (a (b) c) S 1 1 1 0 -1 0 5 0 6 0 0 0 0 0 20 0 3 0 99 4096 2 0\n").unwrap();
        assert_eq!(stat.comm, "a (b) c");
        assert_eq!((stat.minflt, stat.majflt, stat.num_threads, stat.start_ticks, stat.rss_pages), (5, 6, 3, 99, 2));
    }

    #[test]
    fn rejects_truncated_and_garbage() {
        assert!(parse(b"").is_err());
        assert!(parse(b"7 (x) S 1 2 3").unwrap_err().contains("truncated"));
        assert!(parse(b"7 (x) S 1 1 1 0 -1 0 z 0 6 0 0 0 0 0 20 0 3 0 99 4096 2").unwrap_err().contains("field 10"));
        assert!(parse(b"7 )x( S").is_err());
    }
}

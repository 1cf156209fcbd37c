//! Which processes are reported: include/exclude by comm, cmdline and cgroup.

use regex::Regex;

/// The selection rules. A process is reported when it matches every include
/// rule that is set and no exclude rule. Regexes match the whole value.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub include_comm: Option<Regex>,
    pub exclude_comm: Option<Regex>,
    pub include_cmdline: Option<Regex>,
    pub exclude_cmdline: Option<Regex>,
    pub include_cgroup: Option<Regex>,
    pub exclude_cgroup: Option<Regex>,
    /// Kernel threads have no user memory; they are left out unless asked for.
    pub kernel_threads: bool,
}

impl Selection {
    pub fn needs_cmdline(&self) -> bool {
        self.include_cmdline.is_some() || self.exclude_cmdline.is_some()
    }

    pub fn needs_cgroup(&self) -> bool {
        self.include_cgroup.is_some() || self.exclude_cgroup.is_some()
    }

    /// The checks that need only `stat`.
    pub fn admits_comm(&self, comm: &str, kernel_thread: bool) -> bool {
        (self.kernel_threads || !kernel_thread) && admits(&self.include_comm, &self.exclude_comm, comm)
    }

    /// The checks on the cached identity.
    pub fn admits_identity(&self, cmdline: &str, cgroup: &str) -> bool {
        admits(&self.include_cmdline, &self.exclude_cmdline, cmdline)
            && admits(&self.include_cgroup, &self.exclude_cgroup, cgroup)
    }
}

fn admits(include: &Option<Regex>, exclude: &Option<Regex>, value: &str) -> bool {
    include.as_ref().is_none_or(|r| r.is_match(value)) && !exclude.as_ref().is_some_and(|r| r.is_match(value))
}

/// The cgroup path of a process from `/proc/PID/cgroup`: the memory
/// controller's hierarchy when it is on cgroup v1 (hybrid hosts), else v2's.
pub fn cgroup_of(text: &str) -> Option<&str> {
    let mut unified = None;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if controllers.split(',').any(|c| c == "memory") {
            return Some(path);
        }
        if id == "0" && controllers.is_empty() {
            unified = Some(path);
        }
    }
    unified
}

/// `cmdline` with its NUL separators turned into spaces.
pub fn cmdline_text(raw: &[u8]) -> String {
    let trimmed = raw.strip_suffix(b"\0").unwrap_or(raw);
    String::from_utf8_lossy(trimmed).replace('\0', " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::whole_match;

    #[test]
    fn include_and_exclude_combine() {
        let s = Selection {
            include_comm: Some(whole_match("include_comm", "a_.*|nginx").unwrap()),
            exclude_comm: Some(whole_match("exclude_comm", "a_test").unwrap()),
            ..Selection::default()
        };
        assert!(s.admits_comm("a_cachesvc", false));
        assert!(s.admits_comm("nginx", false));
        assert!(!s.admits_comm("nginx2", false), "regexes match the whole comm");
        assert!(!s.admits_comm("a_test", false));
        assert!(!Selection::default().admits_comm("kworker/0:1", true));
        assert!(Selection { kernel_threads: true, ..Selection::default() }.admits_comm("kworker/0:1", true));
    }

    #[test]
    fn picks_the_memory_hierarchy() {
        // This machine: a v1+v2 hybrid with memory on v1.
        let hybrid = "9:name=systemd:/\n4:memory:/process_api/2e5a\n1:cpu,cpuacct:/\n0::/\n";
        assert_eq!(cgroup_of(hybrid), Some("/process_api/2e5a"));
        assert_eq!(cgroup_of("0::/system.slice/nginx.service\n"), Some("/system.slice/nginx.service"));
        assert_eq!(cgroup_of("garbage"), None);
    }

    #[test]
    fn cmdline_joins_arguments() {
        assert_eq!(cmdline_text(b"/build/a_cachesvc\0leak\x0010000\0"), "/build/a_cachesvc leak 10000");
        assert_eq!(cmdline_text(b""), "");
    }
}

//! Resolving an alert's target to processes on this host: a `group` under the
//! exporter's own grouping (comm, cgroup or pid, with the process collector's
//! selection), a `cgroup` path (its `cgroup.procs`, reached one component at a
//! time under the cgroup file system's root, never as a path from the
//! request), or a `pid`.

use super::dir::{Dir, is_plain_name};
use memleak_signals::process::{GroupBy, select};
use std::path::{Path, PathBuf};

/// Most processes a capture acts on (signals sent, dumps awaited).
pub const MAX_PIDS: usize = 64;
/// Most /proc entries looked at while resolving a group.
const MAX_SCAN: usize = 1 << 20;

/// What an alert names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Named {
    pub group: Option<String>,
    pub cgroup: Option<String>,
    pub pid: Option<String>,
}

impl Named {
    /// A stable key for cooldowns: the same target named the same way.
    pub fn key(&self) -> String {
        format!(
            "group={};cgroup={};pid={}",
            self.group.as_deref().unwrap_or(""),
            self.cgroup.as_deref().unwrap_or(""),
            self.pid.as_deref().unwrap_or("")
        )
    }

    /// `group=cachesvc`, for logs and the captures list.
    pub fn describe(&self) -> String {
        let parts: Vec<String> = [("group", &self.group), ("cgroup", &self.cgroup), ("pid", &self.pid)]
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
            .collect();
        parts.join(",")
    }
}

/// Finds processes on this host.
#[derive(Debug, Clone)]
pub struct Resolver {
    pub procfs: PathBuf,
    pub cgroupfs: PathBuf,
    pub process: memleak_signals::process::Config,
}

impl Resolver {
    /// The pids of the target, at most `MAX_PIDS`; an error says why none matched.
    pub fn resolve(&self, named: &Named) -> Result<Vec<u32>, String> {
        let mut pids = match (&named.pid, &named.cgroup, &named.group) {
            (Some(pid), _, _) => self.pid(pid, named.group.as_deref())?,
            (None, Some(cgroup), _) => self.cgroup(cgroup)?,
            (None, None, Some(group)) => self.group(group),
            (None, None, None) => return Err("the alert names no group, cgroup or pid".into()),
        };
        pids.sort_unstable();
        pids.truncate(MAX_PIDS);
        if pids.is_empty() {
            return Err(format!("no process matches {} on this host", named.describe()));
        }
        Ok(pids)
    }

    fn pid(&self, text: &str, group: Option<&str>) -> Result<Vec<u32>, String> {
        let pid: u32 =
            text.parse().ok().filter(|p| *p > 0).ok_or_else(|| format!("pid {text:?} is not a process id"))?;
        let comm = self.comm(pid).ok_or_else(|| format!("no process {pid} on this host"))?;
        if let Some(group) = group
            && self.process.group_by != GroupBy::Cgroup
            && comm != group
        {
            return Err(format!("process {pid} is {comm:?}, not group {group:?}"));
        }
        Ok(vec![pid])
    }

    fn comm(&self, pid: u32) -> Option<String> {
        let text = std::fs::read_to_string(self.procfs.join(pid.to_string()).join("comm")).ok()?;
        Some(text.trim_end_matches('\n').to_owned())
    }

    /// The processes the process collector would sum into `group`.
    fn group(&self, group: &str) -> Vec<u32> {
        let Ok(entries) = std::fs::read_dir(&self.procfs) else { return Vec::new() };
        let selection = &self.process.selection;
        let mut out = Vec::new();
        for entry in entries.take(MAX_SCAN).flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
            let dir = self.procfs.join(pid.to_string());
            let Some(comm) = self.comm(pid) else { continue };
            // Kernel threads have an empty cmdline and no user memory to profile.
            let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
            if cmdline.is_empty() || !selection.admits_comm(&comm, false) {
                continue;
            }
            let cgroup_text = std::fs::read_to_string(dir.join("cgroup")).unwrap_or_default();
            let cgroup = select::cgroup_of(&cgroup_text).unwrap_or("");
            if !selection.admits_identity(&select::cmdline_text(&cmdline), cgroup) {
                continue;
            }
            let matches = match self.process.group_by {
                GroupBy::Comm | GroupBy::Pid => comm == group,
                GroupBy::Cgroup => cgroup == group,
            };
            if matches {
                out.push(pid);
                if out.len() >= MAX_PIDS {
                    break;
                }
            }
        }
        out
    }

    /// The processes in the cgroup `path` (its own, not its descendants').
    fn cgroup(&self, path: &str) -> Result<Vec<u32>, String> {
        let components = components(path)?;
        let mut bases: Vec<PathBuf> = Vec::new();
        if let Ok(h) = memleak_signals::cgroup::hierarchy::discover(&self.cgroupfs) {
            bases.push(h.root);
        }
        bases.extend([self.cgroupfs.clone(), self.cgroupfs.join("unified")]);
        let mut last = format!("cgroup {path:?} does not exist on this host");
        for base in bases {
            match read_procs(&base, &components) {
                Ok(pids) => return Ok(pids),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => last = format!("cannot read cgroup {path:?} under {}: {e}", base.display()),
            }
        }
        Err(last)
    }
}

/// `/system.slice/a.service` → its components; `..`, `.`, empty components and NUL are refused.
pub fn components(path: &str) -> Result<Vec<&str>, String> {
    let rest = path.strip_prefix('/').ok_or_else(|| format!("cgroup {path:?} must start with /"))?;
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    let parts: Vec<&str> = rest.split('/').collect();
    if parts.len() > 32 || !parts.iter().all(|p| is_plain_name(p)) {
        return Err(format!("cgroup {path:?}: components must be plain names (no . or .., no //), at most 32"));
    }
    Ok(parts)
}

fn read_procs(base: &Path, components: &[&str]) -> std::io::Result<Vec<u32>> {
    let mut dir = Dir::open(base)?;
    for c in components {
        dir = dir.open_dir(c)?;
    }
    let text = dir.read("cgroup.procs", 4 << 20)?;
    Ok(String::from_utf8_lossy(&text).lines().filter_map(|l| l.trim().parse().ok()).take(MAX_PIDS).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_paths_are_components_only() {
        assert_eq!(components("/system.slice/a.service").unwrap(), ["system.slice", "a.service"]);
        assert!(components("/").unwrap().is_empty());
        for bad in ["system.slice", "/a/../../etc", "/a//b", "/a/./b", "/a\0"] {
            assert!(components(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn this_process_is_found_by_pid_group_and_cgroup() {
        let r = Resolver {
            procfs: "/proc".into(),
            cgroupfs: "/sys/fs/cgroup".into(),
            process: memleak_signals::process::Config::default(),
        };
        let me = std::process::id();
        let comm = std::fs::read_to_string("/proc/self/comm").unwrap().trim().to_owned();
        let named = |group: Option<&str>, cgroup: Option<&str>, pid: Option<&str>| Named {
            group: group.map(Into::into),
            cgroup: cgroup.map(Into::into),
            pid: pid.map(Into::into),
        };
        assert_eq!(r.resolve(&named(Some(&comm), None, Some(&me.to_string()))).unwrap(), [me]);
        assert!(r.resolve(&named(Some("other"), None, Some(&me.to_string()))).is_err());
        assert!(r.resolve(&named(Some(&comm), None, None)).unwrap().contains(&me));
        assert!(r.resolve(&named(Some("no-such-comm-here"), None, None)).unwrap_err().contains("no process matches"));
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        if let Some(cgroup) = select::cgroup_of(&own) {
            let pids = r.resolve(&named(None, Some(cgroup), None));
            // Under a v1 memory cgroup the test's own threads are in `tasks`, its pid in cgroup.procs.
            assert!(pids.as_ref().is_ok_and(|p| !p.is_empty()), "{cgroup}: {pids:?}");
        }
        assert!(r.resolve(&named(None, Some("/surely/not/here"), None)).is_err());
    }
}

//! Resolving an alert's target to processes on this host: a `group` under the
//! exporter's own grouping (comm, cgroup or pid, with the process collector's
//! selection) or a `cgroup` path (its `cgroup.procs`, reached one component at
//! a time under the cgroup file system's root, never as a path from the
//! request), optionally narrowed to one `pid` of it. A pid alone names
//! nothing: any alert could otherwise make the exporter signal any process.
//! Each process is pinned by a pidfd (`process`), and checked again against
//! the group or cgroup whenever it is signalled.

use super::dir::{Dir, is_plain_name};
use super::process::{self, Process, Stat};
use memleak_signals::process::{naming, select};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Most processes a capture acts on (signals sent, dumps awaited).
pub const MAX_PIDS: usize = 64;
/// Most /proc entries looked at while resolving a group.
const MAX_SCAN: usize = 1 << 20;
/// Largest `cgroup.procs` read.
const MAX_PROCS_BYTES: u64 = 4 << 20;

/// What an alert names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Named {
    pub group: Option<String>,
    pub cgroup: Option<String>,
    pub pid: Option<String>,
}

impl Named {
    /// `group=cachesvc`, for logs and the captures list.
    pub fn describe(&self) -> String {
        let parts: Vec<String> = [("group", &self.group), ("cgroup", &self.cgroup), ("pid", &self.pid)]
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
            .collect();
        parts.join(",")
    }
}

/// Why an alert's target was not resolved: the request is wrong (`invalid`), or nothing matches (`no-such-target`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unresolved {
    Invalid(String),
    NoSuchTarget(String),
}

/// A resolved target: the canonical names (the pid as a number, the cgroup
/// as its components) and its processes, pinned.
#[derive(Debug)]
pub struct Target {
    pub named: Named,
    pub processes: Vec<Process>,
    resolver: Resolver,
}

/// What came of signalling a target.
#[derive(Debug, Default)]
pub struct Signalled {
    pub sent: usize,
    /// Why each process not signalled was left out.
    pub skipped: Vec<String>,
}

impl Target {
    /// The cooldown key: the same processes named the same way, however the alert spelled them.
    pub fn key(&self) -> String {
        format!(
            "group={};cgroup={};pid={}",
            self.named.group.as_deref().unwrap_or(""),
            self.named.cgroup.as_deref().unwrap_or(""),
            self.named.pid.as_deref().unwrap_or("")
        )
    }

    pub fn pids(&self) -> Vec<u32> {
        self.processes.iter().map(|p| p.pid).collect()
    }

    /// Whether any pinned process still runs.
    pub fn any_alive(&self) -> bool {
        self.processes.iter().any(Process::is_alive)
    }

    /// How many processes catch `signal` (the others would die of its default action).
    pub fn catching(&self, signal: i32) -> usize {
        self.processes.iter().filter(|p| process::catches(&self.resolver.procfs, p.pid, signal)).count()
    }

    /// Sends `signal` to each pinned process that is still the one resolved,
    /// still in the group or cgroup, and catches the signal; through its pidfd.
    pub fn signal(&self, signal: i32) -> Signalled {
        let procfs = &self.resolver.procfs;
        let procs = match &self.named.cgroup {
            Some(c) => match self.resolver.cgroup_procs(c) {
                Ok(p) => Some(p),
                Err(e) => return Signalled { sent: 0, skipped: vec![e] },
            },
            None => None,
        };
        let mut out = Signalled::default();
        for p in &self.processes {
            let pid = p.pid;
            let checked = if !p.is_same_at(procfs) {
                Err(format!("process {pid} has exited"))
            } else if let Err(why) = self.resolver.member(&self.named, pid, procs.as_ref()) {
                Err(why)
            } else if !process::catches(procfs, pid, signal) {
                Err(format!(
                    "process {pid} does not catch signal {signal} (SigCgt): not signalled, its default action could kill it"
                ))
            } else {
                p.send(signal).map_err(|e| format!("process {pid}: {e}"))
            };
            match checked {
                Ok(()) => out.sent += 1,
                Err(why) => out.skipped.push(why),
            }
        }
        out
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
    /// The target's processes (at most `MAX_PIDS`), pinned; an error says why none.
    pub fn resolve(&self, named: &Named) -> Result<Target, Unresolved> {
        let invalid = |why: String| Unresolved::Invalid(why);
        let pid = named.pid.as_deref().map(canonical_pid).transpose().map_err(invalid)?;
        let cgroup = match &named.cgroup {
            Some(c) => Some(format!("/{}", components(c).map_err(invalid)?.join("/"))),
            None => None,
        };
        let canonical = Named { group: named.group.clone(), cgroup, pid: pid.map(|p| p.to_string()) };
        if canonical.group.is_none() && canonical.cgroup.is_none() {
            return Err(invalid(match pid {
                Some(_) => "a pid label only narrows a group or cgroup label: name the group or cgroup too".into(),
                None => "the alert names no group or cgroup".into(),
            }));
        }
        let none = |why: String| Unresolved::NoSuchTarget(why);
        let procs = match &canonical.cgroup {
            Some(c) => Some(self.cgroup_procs(c).map_err(none)?),
            None => None,
        };
        let candidates: Vec<u32> = match (pid, &procs, &canonical.group) {
            (Some(pid), _, _) => vec![pid],
            (None, Some(procs), _) => procs.iter().copied().collect(),
            (None, None, Some(group)) => self.group(group),
            (None, None, None) => Vec::new(),
        };
        let mut processes = Vec::new();
        let mut last = None;
        for pid in candidates {
            // The pidfd is opened first, so the membership checked is the pinned process's.
            let pinned = Process::open(&self.procfs, pid).and_then(|p| {
                self.member(&canonical, pid, procs.as_ref())?;
                if p.is_same_at(&self.procfs) { Ok(p) } else { Err(format!("process {pid} exited")) }
            });
            match pinned {
                Ok(p) => processes.push(p),
                Err(why) => last = Some(why),
            }
            if processes.len() >= MAX_PIDS {
                break;
            }
        }
        if processes.is_empty() {
            let why = last.map_or_else(String::new, |w| format!(": {w}"));
            return Err(none(format!("no process matches {} on this host{why}", canonical.describe())));
        }
        Ok(Target { named: canonical, processes, resolver: self.clone() })
    }

    /// `Ok` when `pid` is in the named group and cgroup (`procs`: the cgroup's, read once).
    fn member(&self, named: &Named, pid: u32, procs: Option<&BTreeSet<u32>>) -> Result<(), String> {
        if let (Some(cgroup), Some(procs)) = (&named.cgroup, procs)
            && !procs.contains(&pid)
        {
            return Err(format!("process {pid} is not in cgroup {cgroup}"));
        }
        if let Some(group) = &named.group
            && !self.in_group(pid, group)
        {
            return Err(format!("process {pid} is not in group {group:?}"));
        }
        Ok(())
    }

    fn comm(&self, pid: u32) -> Option<String> {
        let text = std::fs::read_to_string(self.procfs.join(pid.to_string()).join("comm")).ok()?;
        Some(text.trim_end_matches('\n').to_owned())
    }

    /// Whether the process collector would sum `pid` into `group`.
    fn in_group(&self, pid: u32, group: &str) -> bool {
        let dir = self.procfs.join(pid.to_string());
        let Some(comm) = self.comm(pid) else { return false };
        // Kernel threads have no user memory to profile.
        if Stat::read(&self.procfs, pid).is_none_or(|s| s.is_kernel_thread()) {
            return false;
        }
        let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
        let selection = &self.process.selection;
        if cmdline.is_empty() || !selection.admits_comm(&comm, false) {
            return false;
        }
        let cgroup_text = std::fs::read_to_string(dir.join("cgroup")).unwrap_or_default();
        let cgroup = select::cgroup_of(&cgroup_text).unwrap_or("");
        if !selection.admits_identity(&select::cmdline_text(&cmdline), cgroup) {
            return false;
        }
        let exe = std::fs::read_link(dir.join("exe")).map(|t| t.to_string_lossy().into_owned()).unwrap_or_default();
        let cmdline = select::cmdline_text(&cmdline);
        let facts = naming::Facts {
            comm: &comm,
            exe: exe.trim_end_matches(" (deleted)"),
            cmdline: &cmdline,
            cgroup_text: &cgroup_text,
        };
        naming::group_of(&self.process.naming, self.process.group_by, &facts, cgroup) == group
    }

    /// The processes the process collector would sum into `group` (at most `MAX_PIDS`, beyond the forbidden ones).
    fn group(&self, group: &str) -> Vec<u32> {
        let Ok(entries) = std::fs::read_dir(&self.procfs) else { return Vec::new() };
        let mut out = Vec::new();
        for entry in entries.take(MAX_SCAN).flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
            if pid == 1 || pid == std::process::id() || !self.in_group(pid, group) {
                continue;
            }
            out.push(pid);
            if out.len() >= MAX_PIDS {
                break;
            }
        }
        out.sort_unstable();
        out
    }

    /// The processes in the cgroup `path` (its own, not its descendants').
    fn cgroup_procs(&self, path: &str) -> Result<BTreeSet<u32>, String> {
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

/// `0031052` → 31052: digits only (no sign, no spaces), a pid above 0.
fn canonical_pid(text: &str) -> Result<u32, String> {
    let ok = !text.is_empty() && text.len() <= 20 && text.bytes().all(|b| b.is_ascii_digit());
    ok.then(|| text.trim_start_matches('0').parse::<u32>().ok())
        .flatten()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("pid {text:?} is not a process id"))
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

fn read_procs(base: &Path, components: &[&str]) -> std::io::Result<BTreeSet<u32>> {
    let mut dir = Dir::open(base)?;
    for c in components {
        dir = dir.open_dir(c)?;
    }
    let text = dir.read("cgroup.procs", MAX_PROCS_BYTES)?;
    Ok(String::from_utf8_lossy(&text).lines().filter_map(|l| l.trim().parse().ok()).collect())
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

    fn resolver() -> Resolver {
        Resolver {
            procfs: "/proc".into(),
            cgroupfs: "/sys/fs/cgroup".into(),
            process: memleak_signals::process::Config::default(),
        }
    }

    /// A `sleep` child once its exec is done: between fork and exec it carries the
    /// test binary's name, and exec names it before its command line exists (which
    /// group membership requires), so resolving it earlier races.
    fn spawn_sleep(arg: &str) -> std::process::Child {
        let child = std::process::Command::new("sleep").arg(arg).spawn().unwrap();
        let proc_dir = format!("/proc/{}", child.id());
        let exec_done = || {
            std::fs::read_to_string(format!("{proc_dir}/comm")).unwrap_or_default().trim() == "sleep"
                && !std::fs::read(format!("{proc_dir}/cmdline")).unwrap_or_default().is_empty()
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !exec_done() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        child
    }

    fn named(group: Option<&str>, cgroup: Option<&str>, pid: Option<&str>) -> Named {
        Named { group: group.map(Into::into), cgroup: cgroup.map(Into::into), pid: pid.map(Into::into) }
    }

    #[test]
    fn a_pid_only_narrows_a_group_or_cgroup() {
        let r = resolver();
        let mut child = spawn_sleep("30");
        let pid = child.id();
        let padded = format!("00{pid}");
        let t = r.resolve(&named(Some("sleep"), None, Some(&padded))).unwrap();
        assert_eq!(t.pids(), [pid]);
        assert_eq!(t.named.pid.as_deref(), Some(pid.to_string().as_str()), "the pid is canonical");
        let again = r.resolve(&named(Some("sleep"), None, Some(&pid.to_string()))).unwrap();
        assert_eq!(t.key(), again.key(), "the cooldown key does not depend on the spelling");
        assert!(matches!(r.resolve(&named(None, None, Some(&pid.to_string()))), Err(Unresolved::Invalid(_))));
        assert!(matches!(
            r.resolve(&named(Some("other"), None, Some(&pid.to_string()))),
            Err(Unresolved::NoSuchTarget(_))
        ));
        for bad in ["+5", "-1", "0", "1e3", " 5", "99999999999999999999"] {
            assert!(matches!(r.resolve(&named(Some("sleep"), None, Some(bad))), Err(Unresolved::Invalid(_))), "{bad}");
        }
        let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        if let Some(cgroup) = select::cgroup_of(&own) {
            let t = r.resolve(&named(None, Some(cgroup), None)).unwrap();
            assert!(t.pids().contains(&pid) && !t.pids().contains(&std::process::id()), "{cgroup}: {:?}", t.pids());
            let narrowed = r.resolve(&named(None, Some(cgroup), Some(&pid.to_string()))).unwrap();
            assert_eq!(narrowed.pids(), [pid]);
            assert!(r.resolve(&named(None, Some("/surely/not/here"), Some(&pid.to_string()))).is_err());
        }
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn a_group_named_by_a_rule_resolves_to_the_processes_the_rule_names() {
        let tag = format!("3600.{}7", std::process::id());
        let rule = memleak_signals::process::naming::NameRule {
            name: "nap-$1".into(),
            comm: Some("sleep".into()),
            cmdline: Some(format!("sleep ({})", regex::escape(&tag))),
            exe: None,
        };
        let naming = memleak_signals::process::naming::Naming::compile(&[rule]).unwrap();
        let r = Resolver { process: memleak_signals::process::Config { naming, ..Default::default() }, ..resolver() };
        let mut child = spawn_sleep(&tag);
        let pid = child.id();
        let named_by_rule = r.resolve(&named(Some(&format!("nap-{tag}")), None, None)).map(|t| t.pids());
        let by_comm = r.resolve(&named(Some("sleep"), None, Some(&pid.to_string()))).map(|t| t.pids());
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(named_by_rule.unwrap(), [pid]);
        assert!(by_comm.is_err(), "the rule took it out of the comm group, as the collector does");
    }

    #[test]
    fn init_kernel_threads_and_the_exporter_are_never_targets() {
        let r = resolver();
        let me = std::process::id();
        let comm = std::fs::read_to_string("/proc/self/comm").unwrap().trim().to_owned();
        let init = std::fs::read_to_string("/proc/1/comm").unwrap().trim().to_owned();
        let kthreadd = std::fs::read_to_string("/proc/2/comm").unwrap_or_default().trim().to_owned();
        for (group, pid) in [(comm.as_str(), me), (init.as_str(), 1), (kthreadd.as_str(), 2)] {
            let t = r.resolve(&named(Some(group), None, Some(&pid.to_string())));
            assert!(t.is_err(), "{group} {pid}: {t:?}");
            let t = r.resolve(&named(Some(group), None, None));
            assert!(t.as_ref().map_or(true, |t| !t.pids().contains(&pid)), "{group}: {t:?}");
        }
        assert!(matches!(r.resolve(&named(None, Some("/a/../../etc"), None)), Err(Unresolved::Invalid(_))));
    }
}

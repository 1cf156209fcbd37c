//! Where a target's allocator profile comes from, as the operator configured
//! it (`--capture.target group=NAME,pprof_url=URL`, or a gperftools or jemalloc
//! dump prefix): never from a request, which may only name a `pprof_url` that
//! the allowlist admits.

use super::http::Url;
use std::path::{Component, Path, PathBuf};

/// Which targets a mapping is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    Group(String),
    Cgroup(String),
}

/// How the allocator profile of the selected targets is obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    /// A pprof heap endpoint, pulled at the start and the end of the window.
    Pprof(Url),
    /// gperftools' HEAPPROFILE prefix: `signal` makes the target dump `PREFIX.NNNN.heap`.
    HeapProfile { prefix: DumpPrefix, signal: i32 },
    /// jemalloc's prof_prefix: dumps the target writes by itself (lg_prof_interval).
    Jemalloc { prefix: DumpPrefix },
}

/// A dump prefix: a configured folder and the start of the dump files' names in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpPrefix {
    pub dir: PathBuf,
    pub stem: String,
}

/// One mapping of `--capture.target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub selector: Selector,
    pub method: Method,
}

/// Parses `group=NAME,pprof_url=URL` (or `cgroup=PATH`, `heap_profile=PREFIX[,signal=N]`, `jemalloc_prefix=PREFIX`).
pub fn parse(text: &str) -> Result<Source, String> {
    let mut selector = None;
    let mut method = None;
    let mut signal = None;
    for pair in text.split(',') {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("{text:?}: {pair:?} is not KEY=VALUE (keys: group, cgroup, pprof_url, heap_profile, signal, jemalloc_prefix)"))?;
        let set_method = |m: &mut Option<Method>, new: Method| match m {
            Some(_) => Err(format!("{text:?}: give one of pprof_url, heap_profile, jemalloc_prefix")),
            None => {
                *m = Some(new);
                Ok(())
            }
        };
        match key {
            "group" | "cgroup" if selector.is_some() => return Err(format!("{text:?}: give one of group, cgroup")),
            "group" if !value.is_empty() => selector = Some(Selector::Group(value.to_owned())),
            "cgroup" if value.starts_with('/') => selector = Some(Selector::Cgroup(value.to_owned())),
            "pprof_url" => set_method(&mut method, Method::Pprof(Url::parse(value)?))?,
            "heap_profile" => set_method(&mut method, Method::HeapProfile { prefix: prefix(value)?, signal: 12 })?,
            "jemalloc_prefix" => set_method(&mut method, Method::Jemalloc { prefix: prefix(value)? })?,
            "signal" => {
                signal = Some(value.parse::<i32>().ok().filter(|s| (1..=64).contains(s) && ![9, 19].contains(s)).ok_or_else(|| {
                    format!("{text:?}: signal {value:?} must be a number from 1 to 64, not SIGKILL or SIGSTOP (gperftools' HEAPPROFILESIGNAL)")
                })?)
            }
            _ => return Err(format!("{text:?}: unknown or empty key {key:?}")),
        }
    }
    let selector = selector.ok_or_else(|| format!("{text:?}: name the target with group=NAME or cgroup=/PATH"))?;
    let mut method = method.ok_or_else(|| format!("{text:?}: give pprof_url, heap_profile or jemalloc_prefix"))?;
    if let (Some(s), Method::HeapProfile { signal, .. }) = (signal, &mut method) {
        *signal = s;
    } else if signal.is_some() {
        return Err(format!("{text:?}: signal goes with heap_profile"));
    }
    Ok(Source { selector, method })
}

/// `/var/lib/app/prof` → folder `/var/lib/app`, stem `prof`: absolute, no `..`.
fn prefix(text: &str) -> Result<DumpPrefix, String> {
    let path = Path::new(text);
    let plain = path.components().all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    let (Some(dir), Some(stem)) = (path.parent(), path.file_name().and_then(|s| s.to_str())) else {
        return Err(format!("{text:?}: a dump prefix is a folder and a file name start, e.g. /var/lib/app/heap/prof"));
    };
    if !path.is_absolute() || !plain {
        return Err(format!("{text:?}: a dump prefix must be an absolute path without . or .."));
    }
    Ok(DumpPrefix { dir: dir.to_owned(), stem: stem.to_owned() })
}

/// The mapping for a target named by `group` or `cgroup`, the first that matches.
pub fn find<'a>(sources: &'a [Source], group: Option<&str>, cgroup: Option<&str>) -> Option<&'a Source> {
    sources.iter().find(|s| match &s.selector {
        Selector::Group(g) => Some(g.as_str()) == group,
        Selector::Cgroup(c) => Some(c.as_str()) == cgroup,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mappings_parse_and_bad_ones_say_why() {
        let s = parse("group=cachesvc,pprof_url=http://127.0.0.1:6060/debug/pprof/heap").unwrap();
        assert_eq!(s.selector, Selector::Group("cachesvc".into()));
        assert!(matches!(s.method, Method::Pprof(ref u) if u.port == 6060));
        let s = parse("cgroup=/system.slice/a.service,heap_profile=/var/lib/a/prof,signal=10").unwrap();
        let want = DumpPrefix { dir: "/var/lib/a".into(), stem: "prof".into() };
        assert_eq!(s.method, Method::HeapProfile { prefix: want, signal: 10 });
        for (bad, why) in [
            ("pprof_url=http://x/", "name the target"),
            ("group=a", "give pprof_url"),
            ("group=a,heap_profile=rel/prof", "absolute"),
            ("group=a,heap_profile=/a/../etc/prof", "without . or .."),
            ("group=a,heap_profile=/a/p,signal=9", "SIGKILL"),
            ("group=a,pprof_url=http://x/,jemalloc_prefix=/a/p", "one of"),
            ("group=a,colour=red", "unknown"),
            ("cgroup=relative,pprof_url=http://x/", "unknown or empty"),
        ] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}

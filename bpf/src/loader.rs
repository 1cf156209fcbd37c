//! The loader of embedded BPF objects that every BPF collector uses, and how
//! each way of failing becomes a `Problem` that names the cause and the fix.

use aya::{Ebpf, EbpfLoader};
use memleak_signals::{Problem, ProblemKind};
use std::path::Path;

/// One compiled object embedded in the binary.
#[derive(Debug)]
pub struct BpfObject {
    /// Its file name, used in messages.
    pub file: &'static str,
    /// The ELF bytes; empty when the build had no clang.
    pub bytes: &'static [u8],
}

const PRIVILEGE_HINT: &str =
    "needs CAP_BPF and CAP_PERFMON (or root), a kernel with BTF, and perf_event and tracepoint BPF programs";

impl BpfObject {
    /// Loads the object's maps (programs are loaded by the collector that attaches them).
    /// `globals` sets `const volatile` variables of the object before the kernel sees it.
    pub fn load(&self, globals: &[(&'static str, u64)]) -> Result<Ebpf, Problem> {
        if self.bytes.is_empty() {
            return Err(Problem::new(
                ProblemKind::Unsupported,
                self.file,
                "this build has no BPF programs (clang was missing when it was built)",
                "install clang and rebuild",
            ));
        }
        let mut loader = EbpfLoader::new();
        for (name, value) in globals {
            loader.override_global(name, value, true);
        }
        loader.load(self.bytes).map_err(|e| self.denied("cannot load the BPF object", &e))
    }

    /// A problem for an error of aya: a permission problem when the kernel said
    /// EPERM/EACCES, otherwise "unsupported here".
    pub fn denied(&self, what: &str, err: &(dyn std::error::Error + 'static)) -> Problem {
        let (text, errno) = describe(err);
        let kind = match errno {
            Some(libc::EPERM | libc::EACCES) => ProblemKind::Permission,
            _ => ProblemKind::Unsupported,
        };
        Problem::new(kind, self.file, format!("{what}: {text}"), PRIVILEGE_HINT)
    }

    /// A program of the object, as its aya type.
    pub fn program_mut<'a, P>(&self, bpf: &'a mut Ebpf, name: &str) -> Result<&'a mut P, Problem>
    where
        &'a mut P: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
    {
        let program = bpf.program_mut(name).ok_or_else(|| {
            Problem::new(
                ProblemKind::Unsupported,
                self.file,
                format!("no program {name} in the object"),
                "the build is inconsistent; rebuild",
            )
        })?;
        program.try_into().map_err(|e| self.denied(&format!("{name} is not of the expected type"), &e))
    }
}

/// A map of a loaded object, as its aya type.
pub fn typed_map<'a, T>(bpf: &'a Ebpf, name: &str) -> Result<T, Problem>
where
    T: TryFrom<&'a aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = bpf.map(name).ok_or_else(|| {
        Problem::new(
            ProblemKind::Unsupported,
            name,
            "map missing from the object",
            "the build is inconsistent; rebuild",
        )
    })?;
    T::try_from(map).map_err(|e| Problem::new(ProblemKind::Read, name, format!("cannot read the map: {e}"), ""))
}

/// The sum over CPUs of slot `index` of a per-CPU array of counters (0 if unreadable).
pub fn per_cpu_sum(counters: &aya::maps::PerCpuArray<&aya::maps::MapData, u64>, index: u32) -> u64 {
    counters.get(&index, 0).map(|per_cpu| per_cpu.iter().sum()).unwrap_or(0)
}

/// Where tracefs must be for tracepoints to be attached by name (aya looks
/// there and in the older debugfs location).
const TRACEFS: &str = "/sys/kernel/tracing";
const TRACEFS_OLD: &str = "/sys/kernel/debug/tracing";

/// Makes sure tracefs is mounted, mounting it at `/sys/kernel/tracing` if
/// needed (as `bpftrace` does; some hosts never mount it). Must run before the
/// first tracepoint attach of the process: aya remembers where it found tracefs.
pub fn ensure_tracefs() -> Result<(), Problem> {
    let mounted = |dir: &str| Path::new(dir).join("events").is_dir();
    if mounted(TRACEFS) || mounted(TRACEFS_OLD) {
        return Ok(());
    }
    let result = nix_mount_tracefs();
    if result == 0 && mounted(TRACEFS) {
        tracing::info!(path = TRACEFS, "mounted tracefs to attach tracepoints");
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    let kind = match err.raw_os_error() {
        Some(libc::EPERM | libc::EACCES) => ProblemKind::Permission,
        _ => ProblemKind::Unsupported,
    };
    Err(Problem::new(
        kind,
        TRACEFS,
        format!("tracefs is not mounted and mounting it failed: {err}"),
        "mount it (mount -t tracefs nodev /sys/kernel/tracing), or run with CAP_SYS_ADMIN so the exporter can",
    ))
}

fn nix_mount_tracefs() -> i32 {
    let (Ok(source), Ok(target), Ok(fstype)) =
        (std::ffi::CString::new("nodev"), std::ffi::CString::new(TRACEFS), std::ffi::CString::new("tracefs"))
    else {
        return -1;
    };
    // SAFETY: three valid NUL-terminated strings and no data; mount(2) copies them.
    unsafe { libc::mount(source.as_ptr(), target.as_ptr(), fstype.as_ptr(), 0, std::ptr::null()) }
}

/// The whole chain of an error's messages, and the errno of the I/O error in it.
fn describe(err: &(dyn std::error::Error + 'static)) -> (String, Option<i32>) {
    let mut text = err.to_string();
    let mut errno = None;
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            errno = errno.or(io.raw_os_error());
        }
        // aya's wrappers often repeat their source's message ("failed to create map `x`: failed to create map `x`").
        let message = e.to_string();
        if !std::ptr::addr_eq(e, err) && !text.contains(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        current = e.source();
    }
    (text, errno)
}

#[cfg(test)]
mod tests {
    use super::describe;

    /// An error saying `text`, caused by `source`.
    #[derive(Debug)]
    struct Wrapped(&'static str, Option<std::io::Error>);
    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_ref().map(|e| e as _)
        }
    }

    #[test]
    fn the_chain_is_said_once_with_its_errno() {
        let denied = || Some(std::io::Error::from_raw_os_error(libc::EPERM));
        let (text, errno) = describe(&Wrapped("failed to create map `m`", denied()));
        assert_eq!(errno, Some(libc::EPERM));
        assert_eq!(text, format!("failed to create map `m`: {}", std::io::Error::from_raw_os_error(libc::EPERM)));
        // A wrapper that already says its source's message does not get it twice.
        let io = std::io::Error::other(Wrapped("failed to create map `m`", None));
        let (text, _) = describe(&Wrapped("failed to create map `m`", Some(io)));
        assert_eq!(text, "failed to create map `m`");
    }
}

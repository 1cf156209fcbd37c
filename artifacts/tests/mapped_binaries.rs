//! Frames of a live process are named from the file it mapped, never from the
//! file its path names now: not after the library was replaced on disk, not
//! when the process swapped a folder of its own mount namespace for a symbolic
//! link into a host-only folder (the exporter is root: following it would read
//! host files a container chose). Needs root (`unshare -m`, `map_files`): in CI.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use memleak_artifacts::heapprof::{self, Mapping};
use memleak_artifacts::symbolize::{self, Symbolizer};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Root, or a skip outside CI (a failure under CI=true, where tests run as root).
fn root_or_skip() -> bool {
    let root = rustix::process::geteuid().is_root();
    if !root {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "these tests need root (CI runs them as root)");
    }
    root
}

/// This process's C library mapping: the pristine file the copies are made of.
fn own_libc() -> Mapping {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    heapprof::mappings(maps.lines()).into_iter().find(|m| m.path.contains("/libc.so.6")).expect("libc.so.6 is mapped")
}

/// Kills the child when the test ends, however it ends.
struct Reaped(Child);
impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until `pid` maps a file whose path ends with `suffix`; that mapping's
/// address where the pristine libc has `malloc` (`offset` in the file).
fn mapped_address(pid: u32, suffix: &str, offset: u64) -> (Vec<Mapping>, u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let maps = heapprof::mappings(std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default().lines());
        let holding = maps.iter().find(|m| {
            m.path.ends_with(suffix) && m.file_offset <= offset && offset < m.file_offset + (m.end - m.start)
        });
        if let Some(m) = holding {
            let address = m.start + offset - m.file_offset;
            return (maps, address);
        }
        assert!(Instant::now() < deadline, "process {pid} never mapped {suffix}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `malloc`'s offset in the pristine libc, and the name its frame gets there (a malloc alias).
fn malloc_in_libc() -> (u64, String) {
    let libc = own_libc();
    let root = Path::new("/proc/self/root");
    let offsets = symbolize::function_offsets(root, &libc, &["malloc"], 64 << 20).unwrap();
    let offset = offsets.first().expect("libc defines malloc").1;
    let maps = heapprof::mappings(std::fs::read_to_string("/proc/self/maps").unwrap().lines());
    let own = maps
        .iter()
        .find(|m| m.path == libc.path && m.file_offset <= offset && offset < m.file_offset + (m.end - m.start));
    let own = own.expect("malloc's page is mapped");
    let frames = Symbolizer::default().frames_of(root, own.start + offset - own.file_offset, &maps, false);
    assert!(frames[0].function.contains("malloc"), "{frames:?}");
    (offset, frames[0].function.clone())
}

fn other_library(libc: &Mapping) -> PathBuf {
    Path::new(&libc.path).with_file_name("libm.so.6")
}

#[test]
fn a_library_replaced_after_it_was_mapped_is_named_from_the_mapped_file() {
    if !root_or_skip() {
        return;
    }
    let (offset, malloc) = malloc_in_libc();
    let libc = own_libc();
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("libc.so.6");
    std::fs::copy(&libc.path, &copy).unwrap();
    // Preloaded, the copy (same soname) is the process's C library.
    let child = Command::new("sleep").arg("60").env("LD_PRELOAD", &copy).spawn().unwrap();
    let child = Reaped(child);
    let pid = child.0.id();
    let (maps, address) = mapped_address(pid, &copy.to_string_lossy(), offset);
    // Replaced on disk: another library now sits at the mapped path.
    let replacement = dir.path().join("new");
    std::fs::copy(other_library(&libc), &replacement).unwrap();
    std::fs::rename(&replacement, &copy).unwrap();
    let root = PathBuf::from(format!("/proc/{pid}/root"));
    let mut symbolizer = Symbolizer::default();
    let frames = symbolizer.frames_of(&root, address, &maps, false);
    assert_eq!(frames[0].function, malloc, "named from the file at the path, not the mapped one: {frames:?}");
    assert!(symbolizer.unsymbolized().is_empty(), "{:?}", symbolizer.unsymbolized());
    // A file that is not the one the maps line names (device and inode) is not read, and the result says so.
    let mut forged = maps.clone();
    let at = forged.iter().position(|m| m.start <= address && address < m.end).unwrap();
    forged[at].inode += 1;
    let mut symbolizer = Symbolizer::default();
    let frames = symbolizer.frames_of(&root, address, &forged, false);
    assert!(frames[0].function.starts_with("libc.so.6+0x"), "{frames:?}");
    let said = symbolizer.unsymbolized();
    assert_eq!(said.len(), 1, "{said:?}");
    assert_eq!(said[0].module, forged[at].path);
    assert!(said[0].reason.contains("not the one mapped"), "{said:?}");
}

#[test]
fn a_folder_swapped_for_a_symbolic_link_out_of_the_mount_namespace_is_not_followed() {
    if !root_or_skip() {
        return;
    }
    let (offset, malloc) = malloc_in_libc();
    let libc = own_libc();
    let dir = tempfile::tempdir().unwrap();
    let w = dir.path().to_str().unwrap().to_owned();
    // The host's own folder, which the namespace hides: a library of another name table.
    std::fs::create_dir_all(format!("{w}/hostonly")).unwrap();
    std::fs::create_dir_all(format!("{w}/ns")).unwrap();
    std::fs::copy(other_library(&libc), format!("{w}/hostonly/libc.so.6")).unwrap();
    let script = format!(
        "set -e; mount -t tmpfs none {w}/ns; mount -t tmpfs none {w}/hostonly; mkdir {w}/ns/sub; \
         cp {libc} {w}/ns/sub/libc.so.6; LD_PRELOAD={w}/ns/sub/libc.so.6 sleep 60 & echo $! > {w}/pid.tmp; \
         mv {w}/pid.tmp {w}/pid; while [ ! -e {w}/swap ]; do sleep 0.05; done; \
         rm -r {w}/ns/sub; ln -s {w}/hostonly {w}/ns/sub; touch {w}/swapped; wait",
        libc = libc.path
    );
    let shell = Command::new("unshare").args(["-m", "--propagation", "private", "sh", "-c", &script]).spawn();
    let _shell = Reaped(shell.expect("unshare (util-linux) runs"));
    let wait_for = |name: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !Path::new(&format!("{w}/{name}")).exists() {
            assert!(Instant::now() < deadline, "the namespace never wrote {name}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_for("pid");
    let pid: u32 = std::fs::read_to_string(format!("{w}/pid")).unwrap().trim().parse().unwrap();
    let _target = ReapedPid(pid);
    let (maps, address) = mapped_address(pid, "/ns/sub/libc.so.6", offset);
    std::fs::write(format!("{w}/swap"), b"").unwrap();
    wait_for("swapped");
    let root = PathBuf::from(format!("/proc/{pid}/root"));
    // The walk by name that used to be made leads to the host's file: the attack is in place.
    let walked = root.join(format!("{w}/ns/sub/libc.so.6").trim_start_matches('/'));
    assert_eq!(std::fs::read(&walked).unwrap(), std::fs::read(format!("{w}/hostonly/libc.so.6")).unwrap());
    let mut symbolizer = Symbolizer::default();
    let frames = symbolizer.frames_of(&root, address, &maps, false);
    assert_eq!(frames[0].function, malloc, "not named from the mapped library: {frames:?}");
    // The allocator lookup reads the same mapped file: malloc where the pristine libc has it.
    let mapping = heapprof::find(&maps, address).unwrap();
    let found = symbolize::function_offsets(&root, mapping, &["malloc"], 64 << 20).unwrap();
    assert_eq!(found.first().map(|f| f.1), Some(offset));
}

/// Kills a grandchild by pid when the test ends.
struct ReapedPid(u32);
impl Drop for ReapedPid {
    fn drop(&mut self) {
        let _ = rustix::process::kill_process(
            rustix::process::Pid::from_raw(self.0 as i32).expect("a pid is positive"),
            rustix::process::Signal::KILL,
        );
    }
}

#[test]
fn unusable_line_info_of_a_mapped_binary_reaches_the_result() {
    use object::{Object, ObjectSection};
    if !root_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("idle.c");
    std::fs::write(&source, "#include <unistd.h>\nint main(void) { for (;;) pause(); }\n").unwrap();
    let binary = dir.path().join("idle");
    let built = Command::new("cc").args(["-g", "-O0", "-o"]).arg(&binary).arg(&source).status();
    assert!(built.is_ok_and(|s| s.success()), "cc (gcc) builds a C program (install-test-deps.sh)");
    // Its .debug_line overwritten with bytes that are no line program.
    let mut bytes = std::fs::read(&binary).unwrap();
    let (at, size) =
        object::File::parse(bytes.as_slice()).unwrap().section_by_name(".debug_line").unwrap().file_range().unwrap();
    let (at, size) = (at as usize, size as usize);
    bytes[at..at + size].iter_mut().enumerate().for_each(|(i, b)| *b = (i as u8).wrapping_mul(151) | 0x80);
    std::fs::write(&binary, &bytes).unwrap();
    let child = Reaped(Command::new(&binary).spawn().unwrap());
    let pid = child.0.id();
    let root = PathBuf::from(format!("/proc/{pid}/root"));
    let (maps, _) = mapped_address(pid, "/idle", 0);
    let mapping = maps.iter().find(|m| m.path.ends_with("/idle")).unwrap();
    let main = symbolize::function_offsets(&root, mapping, &["main"], 64 << 20).unwrap()[0].1;
    let (maps, address) = mapped_address(pid, "/idle", main);
    let mut symbolizer = Symbolizer::default();
    let frames = symbolizer.frames_of(&root, address, &maps, false);
    assert_eq!(frames[0].function, "main", "{frames:?}");
    assert_eq!(frames[0].line, None, "{frames:?}");
    let said = symbolizer.unsymbolized();
    let note = said.iter().find(|u| u.module.ends_with("/idle")).unwrap_or_else(|| panic!("{said:?}"));
    assert!(note.reason.starts_with("line info unusable"), "{note:?}");
}

/// `tool`'s output; a skip outside CI when it is missing (binutils).
fn output(tool: &str, args: &[&str]) -> Option<String> {
    match Command::new(tool).args(args).output() {
        Ok(out) if out.status.success() => Some(String::from_utf8_lossy(&out.stdout).into_owned()),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{tool} (binutils) is missing (install-test-deps.sh)"
            );
            None
        }
    }
}

#[test]
fn a_stripped_library_is_named_from_its_build_id_debug_file() {
    let libc = own_libc();
    let Some(notes) = output("readelf", &["-n", &libc.path]) else { return };
    let id = notes.lines().find_map(|l| l.trim().strip_prefix("Build ID: ")).expect("Debian's libc has a build id");
    let debug = format!("/usr/lib/debug/.build-id/{}/{}.debug", &id[..2], &id[2..]);
    if !Path::new(&debug).exists() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{debug} is missing: libc6-dbg (install-test-deps.sh)");
        return;
    }
    // Only the debug file's .symtab names it (libc's .dynsym does not): nm says where.
    let Some(symbols) = output("nm", &["--defined-only", &debug]) else { return };
    let vaddr = symbols
        .lines()
        .find_map(|l| l.strip_suffix(" __libc_start_call_main").and_then(|l| u64::from_str_radix(&l[..16], 16).ok()))
        .expect("the debug file names __libc_start_call_main");
    let Some(dynamic) = output("nm", &["-D", "--defined-only", &libc.path]) else { return };
    assert!(!dynamic.contains(" __libc_start_call_main\n"), "libc itself exports it: the test shows nothing");
    // Its file offset, from the loadable segment readelf says holds it.
    let Some(segments) = output("readelf", &["-lW", &libc.path]) else { return };
    let offset = segments
        .lines()
        .filter(|l| l.trim_start().starts_with("LOAD"))
        .find_map(|l| {
            let f: Vec<u64> = l
                .split_whitespace()
                .skip(1)
                .take(5)
                .filter_map(|x| u64::from_str_radix(x.trim_start_matches("0x"), 16).ok())
                .collect();
            let (file_offset, start, size) = (f[0], f[1], f[3]);
            (start <= vaddr && vaddr < start + size).then(|| vaddr - start + file_offset)
        })
        .expect("a LOAD segment holds it");
    let maps = heapprof::mappings(std::fs::read_to_string("/proc/self/maps").unwrap().lines());
    let m = maps
        .iter()
        .find(|m| m.path == libc.path && m.file_offset <= offset && offset < m.file_offset + (m.end - m.start))
        .expect("its code is mapped");
    let address = m.start + offset - m.file_offset + 1;
    let frames = Symbolizer::default().frames_of(Path::new("/proc/self/root"), address, &maps, false);
    assert_eq!(frames.last().unwrap().function, "__libc_start_call_main", "{frames:?}");
}

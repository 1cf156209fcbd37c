//! Uprobe-multi programs and links (Linux 6.6+), which aya 0.14 cannot make:
//! a program of the object loaded with `BPF_TRACE_UPROBE_MULTI` as its
//! expected attach type, its map references pointing at the maps aya created,
//! and one `BPF_LINK_CREATE` link for all its entry points in one binary.
//! Closing a link removes all its breakpoints at once, then waits for one
//! grace period (a perf-event link per probe waits once per probe).

use aya::Ebpf;
use aya::maps::{Map, MapData};
use aya_obj::generated::{BPF_F_UPROBE_MULTI_RETURN, bpf_attach_type, bpf_attr, bpf_cmd, bpf_insn, bpf_prog_type};
use std::collections::HashSet;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// The verifier's log kept when a program is refused.
const LOG_BYTES: usize = 64 << 10;
/// Most entry points in one link (the kernel allows more; no allocator has this many).
pub const MAX_OFFSETS: usize = 4096;

/// The programs `names` of the object `bytes`, loaded as uprobe-multi
/// programs over the maps of `bpf` (the same object, loaded by aya).
pub fn load_programs(bytes: &[u8], bpf: &Ebpf, names: &[&str]) -> Result<Vec<OwnedFd>, io::Error> {
    let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
    let mut object = aya_obj::Object::parse(bytes).map_err(|e| invalid(format!("cannot parse the object: {e}")))?;
    let text_sections: HashSet<usize> = object.functions.keys().map(|(section, _)| *section).collect();
    let definitions = object.maps.clone();
    let mut maps = Vec::with_capacity(definitions.len());
    for (name, definition) in &definitions {
        let data = bpf.map(name).and_then(map_data).ok_or_else(|| invalid(format!("aya created no map {name}")))?;
        maps.push((name.as_str(), data.fd().as_fd().as_raw_fd(), definition));
    }
    object
        .relocate_maps(maps.into_iter(), &text_sections)
        .map_err(|e| invalid(format!("cannot relocate its maps: {e}")))?;
    object.relocate_calls(&text_sections).map_err(|e| invalid(format!("cannot relocate its calls: {e}")))?;
    let mut loaded = Vec::with_capacity(names.len());
    for name in names {
        let program = object.programs.get(*name).ok_or_else(|| invalid(format!("no program {name} in the object")))?;
        let function = object
            .functions
            .get(&program.function_key())
            .ok_or_else(|| invalid(format!("no code for program {name}")))?;
        let fd = load_program(name, &function.instructions, &program.license)
            .map_err(|e| io::Error::new(e.kind(), format!("the kernel refused {name}: {e}")))?;
        loaded.push(fd);
    }
    Ok(loaded)
}

/// The map's data, for the map types this object has.
fn map_data(map: &Map) -> Option<&MapData> {
    match map {
        Map::Array(data)
        | Map::HashMap(data)
        | Map::LruHashMap(data)
        | Map::PerCpuArray(data)
        | Map::StackTraceMap(data)
        | Map::Unsupported(data) => Some(data),
        _ => None,
    }
}

fn load_program(name: &str, instructions: &[bpf_insn], license: &CString) -> Result<OwnedFd, io::Error> {
    let attempt = |log: Option<&mut Vec<u8>>| {
        // SAFETY: bpf_attr is plain integers; all zero is the kernel's "unset".
        let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
        // SAFETY: the member BPF_PROG_LOAD reads, of a zeroed (initialized) union.
        let load = unsafe { &mut attr.__bindgen_anon_3 };
        load.prog_type = bpf_prog_type::BPF_PROG_TYPE_KPROBE as u32;
        load.expected_attach_type = bpf_attach_type::BPF_TRACE_UPROBE_MULTI as u32;
        load.insns = instructions.as_ptr() as u64;
        load.insn_cnt = u32::try_from(instructions.len()).unwrap_or(u32::MAX);
        load.license = license.as_ptr() as u64;
        for (to, from) in load.prog_name.iter_mut().zip(name.bytes().take(15)) {
            *to = from as std::ffi::c_char;
        }
        if let Some(log) = log {
            load.log_level = 1;
            load.log_buf = log.as_mut_ptr() as u64;
            load.log_size = u32::try_from(log.len()).unwrap_or(u32::MAX);
        }
        bpf(bpf_cmd::BPF_PROG_LOAD, &attr)
    };
    attempt(None).or_else(|first| {
        let mut log = vec![0u8; LOG_BYTES];
        attempt(Some(&mut log)).map_err(|_| {
            let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end]);
            let tail: Vec<&str> = text.lines().rev().take(3).collect();
            let hint = if first.raw_os_error() == Some(libc::EINVAL) && tail.is_empty() {
                " (uprobe_multi programs need Linux 6.6 or later)".to_owned()
            } else if tail.is_empty() {
                String::new()
            } else {
                format!("; verifier: {}", tail.into_iter().rev().collect::<Vec<_>>().join(" | "))
            };
            io::Error::new(first.kind(), format!("{first}{hint}"))
        })
    })
}

/// One link of `program` (loaded by `load_programs`) on `offsets` of `binary`
/// for process `pid`: return probes when `returns`, else entry probes with
/// `cookies` (one per offset).
pub fn attach(
    program: BorrowedFd<'_>,
    binary: &CString,
    offsets: &[u64],
    cookies: Option<&[u64]>,
    pid: u32,
    returns: bool,
) -> Result<OwnedFd, io::Error> {
    if offsets.is_empty() || offsets.len() > MAX_OFFSETS || cookies.is_some_and(|c| c.len() != offsets.len()) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{} offsets to probe", offsets.len())));
    }
    // SAFETY: as in load_program.
    let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
    // SAFETY: the members BPF_LINK_CREATE reads for uprobe_multi, of a zeroed (initialized) union.
    let link = unsafe { &mut attr.link_create };
    link.__bindgen_anon_1.prog_fd = u32::try_from(program.as_raw_fd()).unwrap_or(u32::MAX);
    link.attach_type = bpf_attach_type::BPF_TRACE_UPROBE_MULTI as u32;
    // SAFETY: as above.
    let multi = unsafe { &mut link.__bindgen_anon_3.uprobe_multi };
    multi.path = binary.as_ptr() as u64;
    multi.offsets = offsets.as_ptr() as u64;
    multi.cookies = cookies.map_or(0, |c| c.as_ptr() as u64);
    multi.cnt = u32::try_from(offsets.len()).unwrap_or(u32::MAX);
    multi.flags = if returns { BPF_F_UPROBE_MULTI_RETURN } else { 0 };
    multi.pid = pid;
    bpf(bpf_cmd::BPF_LINK_CREATE, &attr)
}

/// The bpf(2) system call for a command that returns a new file descriptor.
fn bpf(command: bpf_cmd, attr: &bpf_attr) -> Result<OwnedFd, io::Error> {
    // SAFETY: `attr` is a complete bpf_attr whose pointers (instructions,
    // license, log, path, offsets, cookies) outlive the call.
    let fd = unsafe {
        libc::syscall(libc::SYS_bpf, command as libc::c_long, std::ptr::from_ref(attr), size_of::<bpf_attr>())
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = RawFd::try_from(fd).map_err(|_| io::Error::other("bpf(2) returned no file descriptor"))?;
    // SAFETY: the kernel just opened it for us, and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

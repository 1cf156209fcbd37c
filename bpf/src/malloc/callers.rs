//! The callers the kernel's frame-pointer walk skips, put back: a function without a frame
//! pointer between the allocator and its caller (libstdc++'s `operator new`, glibc's `strdup`)
//! leaves `rbp` to its caller, or clobbers it, so the walk from the allocator's return skips
//! that caller. The BPF program keeps the first words above the stack pointer that point into
//! the process's code (`Code`, written before the probes go in); here the first of them that
//! follows a call instruction goes in after the walk's first address, unless the walk has it.

use crate::return_address;
use crate::shared::{MALLOC_MAX_CODE_RANGES, MallocCodeRanges};
use memleak_artifacts::heapprof::Mapping;
use std::io::Read;
use std::path::Path;

/// `/proc/PID/maps` read at most (as `allocator::read_maps`).
const MAX_MAPS_BYTES: u64 = 8 << 20;

/// The process's file-backed code when the trace began.
#[derive(Debug, Clone)]
pub struct Code {
    /// Executable file mappings, sorted: where a return address can be.
    executable: Vec<(u64, u64)>,
    /// Executable anonymous mappings, sorted (JIT-compiled code): frames a walk may pass through.
    anonymous: Vec<(u64, u64)>,
    /// What the BPF program searches: the same, neighbours merged across what holds no
    /// anonymous memory (a library's data between its code and the next library's), then split
    /// only at the widest gaps when more than `MALLOC_MAX_CODE_RANGES` are left. Wider than the code, never
    /// narrower: it only keeps data words out so that one call path makes one site.
    pub ranges: MallocCodeRanges,
}

impl Code {
    /// Reads `/proc/PID/maps` under `procfs`.
    pub fn read(procfs: &Path, pid: u32) -> std::io::Result<Code> {
        let mut text = String::new();
        std::fs::File::open(procfs.join(pid.to_string()).join("maps"))?
            .take(MAX_MAPS_BYTES)
            .read_to_string(&mut text)?;
        Ok(Code::parse(&text))
    }

    /// Parses maps text (`/proc/PID/maps` format).
    pub fn parse(maps: &str) -> Code {
        let mut executable = Vec::new();
        let mut anonymous = Vec::new();
        // Merged ranges, and whether anonymous memory came since the last one's end.
        let mut merged: Vec<(u64, u64)> = Vec::new();
        let mut anonymous_since = true;
        for line in maps.lines() {
            let Some((start, end, perms, path)) = return_address::maps_line(line) else { continue };
            if !path.starts_with('/') {
                anonymous_since = true;
                if perms.contains('x') {
                    anonymous.push((start, end));
                }
                continue;
            }
            if !perms.contains('x') {
                continue;
            }
            executable.push((start, end));
            match merged.last_mut() {
                Some(last) if !anonymous_since && last.1 <= start => last.1 = end,
                _ => merged.push((start, end)),
            }
            anonymous_since = false;
        }
        executable.sort_unstable();
        anonymous.sort_unstable();
        merged.sort_unstable();
        let merged = fewest_gaps(merged);
        let mut ranges = MallocCodeRanges {
            count: merged.len() as u64,
            start: [0; MALLOC_MAX_CODE_RANGES],
            end: [0; MALLOC_MAX_CODE_RANGES],
        };
        for (i, (start, end)) in merged.into_iter().enumerate() {
            ranges.start[i] = start;
            ranges.end[i] = end;
        }
        Code { executable, anonymous, ranges }
    }

    fn is_code(&self, ip: u64) -> bool {
        within(&self.executable, ip)
    }

    /// Whether `ip` was in executable memory when the trace began, file-backed or not.
    pub fn is_executable(&self, ip: u64) -> bool {
        within(&self.executable, ip) || within(&self.anonymous, ip)
    }

    /// Whether `ip` is a return address: in the code, after a call instruction (read from the
    /// memory of process `memory`, or from the file `files` say was mapped, read through `root`).
    pub fn is_return_address(&self, memory: Option<u32>, files: &[Mapping], root: &Path, ip: u64) -> bool {
        self.is_code(ip) && return_address::follows_call(memory, files, root, ip)
    }
}

/// Whether `ip` is in one of `ranges` (sorted, not overlapping: maps never overlap, so the
/// last range starting at or below `ip` is the only candidate).
fn within(ranges: &[(u64, u64)], ip: u64) -> bool {
    let i = ranges.partition_point(|&(start, _)| start <= ip);
    i.checked_sub(1).and_then(|i| ranges.get(i)).is_some_and(|&(_, end)| ip < end)
}

/// The stack cut at its first address after the innermost that is in no executable memory
/// (`executable`): a function that used `rbp` as a plain register (glibc's `strndup`,
/// `vasprintf`) leaves data there, and the kernel's walk from it returns that data (text read
/// as an address, stack addresses) and whatever follows. Cut, the stack is labelled truncated
/// and one call path stays one site.
pub fn cut_at_data(stack: &mut Vec<u64>, executable: &dyn Fn(u64) -> bool) {
    if let Some(i) = stack.iter().skip(1).position(|&ip| !executable(ip)) {
        stack.truncate(i + 1);
    }
}

/// `ranges` (sorted) as at most `MALLOC_MAX_CODE_RANGES`, split only at the widest gaps, in
/// O(n log n): a target's maps may hold a hundred thousand code mappings.
fn fewest_gaps(ranges: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    if ranges.len() <= MALLOC_MAX_CODE_RANGES {
        return ranges;
    }
    let mut gaps: Vec<(u64, usize)> =
        ranges.windows(2).enumerate().map(|(i, w)| (w[1].0.saturating_sub(w[0].1), i + 1)).collect();
    gaps.sort_unstable_by(|a, b| b.cmp(a));
    let mut splits: Vec<usize> = gaps.iter().take(MALLOC_MAX_CODE_RANGES - 1).map(|&(_, i)| i).collect();
    splits.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(MALLOC_MAX_CODE_RANGES);
    for (i, &(start, end)) in ranges.iter().enumerate() {
        match out.last_mut() {
            Some(last) if splits.binary_search(&i).is_err() => last.1 = last.1.max(end),
            _ => out.push((start, end)),
        }
    }
    out
}

/// The stack of an allocation: `walk` (the kernel's, from the allocator's return: its first
/// address is the return into the function that called the allocator) with the first of
/// `callers` that `is_return` says is a return address put in after that first address,
/// unless the walk already has it (the caller kept a frame pointer: the walk is whole).
///
/// `called_from`: whether the walk's second address returns from a direct call into the
/// function that holds its first, i.e. the walk skipped nothing (a function with a frame pointer
/// that called the allocator itself). Its frame may hold stale return addresses of calls made
/// earlier (an uninitialised array): put in, one would be a false caller.
pub fn rebuild(
    walk: &[u64],
    callers: &[u64],
    is_return: &mut dyn FnMut(u64) -> bool,
    called_from: &mut dyn FnMut(u64, u64) -> bool,
) -> Vec<u64> {
    let mut stack = walk.to_vec();
    if walk.is_empty() {
        return stack;
    }
    if let [first, second, ..] = walk
        && called_from(*second, *first)
    {
        return stack;
    }
    if let Some(caller) = callers.iter().copied().filter(|&c| c != 0).find(|&c| is_return(c))
        && !walk.contains(&caller)
    {
        stack.insert(1, caller);
    }
    stack
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_skipped_caller_goes_in_after_the_function_that_called_the_allocator() {
        let returns = |ip: u64| ip != 0x400100;
        // operator new (no frame pointer) called by leak_objects: the walk goes from
        // operator new to main; the words hold a code pointer that follows no call, then the
        // return into leak_objects.
        let walk = [0x7f00_0050, 0x400300, 0x400400];
        assert_eq!(
            rebuild(&walk, &[0x400100, 0x400200], &mut { returns }, &mut |_, _| false),
            vec![0x7f00_0050, 0x400200, 0x400300, 0x400400]
        );
        // A caller with a frame pointer: the first code word is the walk's next address, not doubled.
        assert_eq!(rebuild(&walk, &[0x400300, 0x400400], &mut { returns }, &mut |_, _| false), walk.to_vec());
        // strdup clobbers rbp: the walk stops at strdup; the caller comes from the words.
        assert_eq!(
            rebuild(&[0x7f00_0090], &[0x400200, 0], &mut { returns }, &mut |_, _| false),
            vec![0x7f00_0090, 0x400200]
        );
        // No stack, no code words, or none that follows a call: as the walk.
        assert_eq!(rebuild(&[], &[0x400200, 0], &mut { returns }, &mut |_, _| false), Vec::<u64>::new());
        assert_eq!(rebuild(&walk, &[0, 0], &mut { returns }, &mut |_, _| false), walk.to_vec());
        assert_eq!(rebuild(&walk, &[0x400100, 0], &mut { returns }, &mut |_, _| false), walk.to_vec());
        // A function with a frame pointer that called malloc itself: main's return address follows
        // a direct call into it, so the walk is whole; a stale return address in its frame (an
        // uninitialised array) must not go in.
        let whole = |ret: u64, inner: u64| (ret, inner) == (0x400300, 0x7f00_0050);
        assert_eq!(rebuild(&walk, &[0x400200, 0], &mut { returns }, &mut { whole }), walk.to_vec());
    }

    #[test]
    fn a_walk_is_cut_at_its_first_address_in_no_executable_memory() {
        let code = Code::parse(
            "400000-401000 r-xp 00000000 fe:01 10 /srv/app\n\
             7f00000000-7f00001000 rwxp 00000000 00:00 0 \n\
             7f10000000-7f10001000 r-xp 00000000 fe:01 11 /lib/libc.so.6\n\
             7f10001000-7f10002000 rw-p 00000000 00:00 0 \n",
        );
        let executable = |ip: u64| code.is_executable(ip);
        // strndup's clobbered rbp: its caller put back, then text read as an address, then more.
        let mut stack = vec![0x7f10000050, 0x400200, 0x696874202c646c72, 0x400300];
        cut_at_data(&mut stack, &executable);
        assert_eq!(stack, [0x7f10000050, 0x400200]);
        // A JIT frame (anonymous, executable) is kept; libc's data page is not.
        let mut stack = vec![0x7f10000050, 0x7f00000100, 0x400300, 0x7f10001100, 0x400400];
        cut_at_data(&mut stack, &executable);
        assert_eq!(stack, [0x7f10000050, 0x7f00000100, 0x400300]);
        // The innermost address is never cut (it is where the probe fired).
        let mut stack = vec![0x1234];
        cut_at_data(&mut stack, &executable);
        assert_eq!(stack, [0x1234]);
    }

    #[test]
    fn code_ranges_cover_every_executable_file_mapping_and_no_anonymous_memory() {
        let maps = "\
55d000-55e000 r-xp 00001000 fe:01 10 /srv/app
55e000-55f000 rw-p 00002000 fe:01 10 /srv/app
560000-580000 rw-p 00000000 00:00 0 [heap]
7f0000-7f1000 r-xp 00001000 fe:01 11 /lib/libc.so.6
7f1000-7f2000 r--p 00002000 fe:01 11 /lib/libc.so.6
7f2000-7f3000 r-xp 00001000 fe:01 12 /lib/libstdc++.so.6
7f3000-7f4000 rw-p 00000000 00:00 0
7f4000-7f5000 r-xp 00001000 fe:01 13 /lib/ld.so
7ffd000-7ffe000 r-xp 00000000 00:00 0 [vdso]
";
        let code = Code::parse(maps);
        assert_eq!(
            code.executable,
            vec![(0x55d000, 0x55e000), (0x7f0000, 0x7f1000), (0x7f2000, 0x7f3000), (0x7f4000, 0x7f5000)]
        );
        // libc and libstdc++ merge across libc's read-only data; the heap and the anonymous
        // mapping separate the others; the vdso is no file.
        assert_eq!(code.ranges.count, 3);
        assert_eq!((code.ranges.start[0], code.ranges.end[0]), (0x55d000, 0x55e000));
        assert_eq!((code.ranges.start[1], code.ranges.end[1]), (0x7f0000, 0x7f3000));
        assert_eq!((code.ranges.start[2], code.ranges.end[2]), (0x7f4000, 0x7f5000));
        assert!(code.is_code(0x7f2800) && !code.is_code(0x7f1800) && !code.is_code(0x560000));
    }

    #[test]
    fn more_code_ranges_than_the_program_searches_split_at_the_widest_gaps_and_still_cover_all() {
        // A hundred thousand libraries (a hostile target can map as many), each followed by
        // anonymous memory; every 1,000th gap is the widest.
        let gap = |i: u64| if i % 1000 == 999 { 0x100_000 } else { 0x1000 + (i % 7) * 0x1000 };
        let mut start = 0x10_0000u64;
        let mut maps = String::new();
        for i in 0..100_000u64 {
            maps.push_str(&format!("{start:x}-{:x} r-xp 0 fe:01 {i} /lib/l{i}.so\n", start + 0x1000));
            maps.push_str(&format!("{:x}-{:x} rw-p 0 00:00 0\n", start + 0x1000, start + 0x1000 + gap(i)));
            start += 0x1000 + gap(i);
        }
        let code = Code::parse(&maps);
        let n = MALLOC_MAX_CODE_RANGES;
        assert_eq!(code.ranges.count as usize, n);
        assert!(code.ranges.start[..n].windows(2).all(|w| w[0] < w[1]), "sorted");
        for &(s, e) in &code.executable {
            assert!((0..n).any(|i| code.ranges.start[i] <= s && e <= code.ranges.end[i]), "{s:x}-{e:x} covered");
        }
        // The 63 separations are the widest gaps: each range but the last ends before one.
        for i in 0..n - 1 {
            assert_eq!(code.ranges.start[i + 1] - code.ranges.end[i], 0x100_000, "range {i}");
        }
        assert!(code.is_code(0x10_0800) && !code.is_code(0x10_1800));
    }
}

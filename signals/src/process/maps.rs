//! One line of `/proc/PID/maps` (`start-end perms offset dev inode [name]`),
//! read from bytes without copying, and the kind of memory region it is. Used
//! for the brk-heap and anonymous-mapping sizes of the process collector and by
//! the eBPF fault sampler to say which region a faulting address fell in.

/// The kinds of memory region a leak can grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Region {
    /// The brk area (`[heap]`): malloc's main arena.
    Heap,
    /// Anonymous mappings: malloc's mmap'd arenas and large blocks, thread
    /// stacks, JIT and GC heaps (unnamed, or named with `PR_SET_VMA`).
    Anon,
    /// File-backed mappings, including shared memory (`/memfd:`, `/dev/shm`).
    File,
    /// The main thread's stack (`[stack]`).
    Stack,
    /// The kernel's own areas: `[vdso]`, `[vvar]`, `[vsyscall]`, …
    Other,
}

impl Region {
    pub const ALL: [Region; 5] = [Region::Heap, Region::Anon, Region::File, Region::Stack, Region::Other];

    pub fn as_str(self) -> &'static str {
        match self {
            Region::Heap => "heap",
            Region::Anon => "anon",
            Region::File => "file",
            Region::Stack => "stack",
            Region::Other => "other",
        }
    }
}

/// One mapping: `[start, end)` and its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    pub region: Region,
}

impl Mapping {
    pub fn size(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    pub fn contains(&self, addr: u64) -> bool {
        self.start <= addr && addr < self.end
    }
}

/// Parses one line; `None` for a line that is not a mapping.
pub fn parse_line(line: &[u8]) -> Option<Mapping> {
    let mut fields = line.split(|b| b.is_ascii_whitespace()).filter(|f| !f.is_empty());
    let (range, _perms, _offset, _dev, inode) =
        (fields.next()?, fields.next()?, fields.next()?, fields.next()?, fields.next()?);
    let dash = range.iter().position(|&b| b == b'-')?;
    let (start, end) = (hex(&range[..dash])?, hex(&range[dash + 1..])?);
    let region = match fields.next() {
        Some(b"[heap]") => Region::Heap,
        Some(b"[stack]") => Region::Stack,
        Some(name) if name.starts_with(b"[anon") => Region::Anon,
        Some(name) if name.starts_with(b"[") => Region::Other,
        Some(_) => Region::File,
        None if inode == b"0" => Region::Anon,
        None => Region::File,
    };
    Some(Mapping { start, end, region })
}

fn hex(digits: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(digits).ok()?;
    u64::from_str_radix(text, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_line_gets_its_region() {
        let cases: &[(&str, Region)] = &[
            ("55d0c6b9e000-55d0c6bbf000 rw-p 00000000 00:00 0                          [heap]", Region::Heap),
            ("7ffd5a8c1000-7ffd5a8e2000 rw-p 00000000 00:00 0                          [stack]", Region::Stack),
            ("7f1c2a000000-7f1c2a021000 rw-p 00000000 00:00 0 ", Region::Anon),
            ("7f1c2a000000-7f1c2a021000 rw-p 00000000 00:00 0   [anon:glibc: malloc arena]", Region::Anon),
            ("7f1c2b600000-7f1c2b628000 r--p 00000000 fe:01 1837  /usr/lib/x86_64-linux-gnu/libc.so.6", Region::File),
            ("7f1c2b600000-7f1c2b628000 rw-s 00000000 00:01 1024  /memfd:wayland (deleted)", Region::File),
            ("7ffd5a9b1000-7ffd5a9b3000 r-xp 00000000 00:00 0                          [vdso]", Region::Other),
        ];
        for (line, region) in cases {
            let mapping = parse_line(line.as_bytes()).unwrap_or_else(|| panic!("no mapping in {line}"));
            assert_eq!(mapping.region, *region, "{line}");
        }
        let heap = parse_line(cases[0].0.as_bytes()).map(|m| (m.size(), m.contains(0x55d0c6b9e000)));
        assert_eq!(heap, Some((0x21000, true)));
    }

    #[test]
    fn garbage_is_not_a_mapping() {
        for line in ["", "55d0c6b9e000 rw-p 0 00:00 0", "zz-yy rw-p 0 00:00 0", "1-2 rw-p 0 00:00"] {
            assert_eq!(parse_line(line.as_bytes()), None, "{line:?}");
        }
    }
}

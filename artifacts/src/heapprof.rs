//! What jemalloc (`heap_v2`) and gperftools (`heap profile:`) dumps share:
//! stacks of raw return addresses (`@ 0x… 0x…`) and a `MAPPED_LIBRARIES:`
//! section (a copy of /proc/PID/maps) that turns each address into a module
//! and an offset. Frames stay `module+0xoffset` until `symbolize` resolves
//! them against the binaries, when they can be found.

use crate::meter::{Meter, NAME_BYTES};
use crate::model::{ArtifactError, Frame};

/// Mappings kept from `MAPPED_LIBRARIES`: Linux's default `vm.max_map_count` is 65,530.
const MAX_MAPPINGS: usize = 65_536;

/// One executable mapping of the dumped process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    pub file_offset: u64,
    pub path: String,
    /// The mapped file's device (as `st_dev`) and inode: which file it was
    /// when mapped, whatever its path names now (0 when the line had none).
    pub dev: u64,
    pub inode: u64,
}

/// Parses maps lines (`/proc/PID/maps` format) into the file-backed mappings,
/// sorted by start address (as `frame` needs); anonymous mappings are skipped,
/// and so is every mapping past `MAX_MAPPINGS`.
pub fn mappings<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<Mapping> {
    collect(lines, |_| Ok(())).unwrap_or_default()
}

/// `mappings`, each charged by `charge` before it is kept.
fn collect<'a>(
    lines: impl Iterator<Item = &'a str>,
    mut charge: impl FnMut(&str) -> Result<(), ArtifactError>,
) -> Result<Vec<Mapping>, ArtifactError> {
    let mut out = Vec::new();
    for line in lines {
        if out.len() >= MAX_MAPPINGS {
            break;
        }
        let mut fields = line.split_whitespace();
        let (Some(range), Some(_perms), Some(offset), Some(dev), Some(inode), Some(path)) =
            (fields.next(), fields.next(), fields.next(), fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let Some((start, end)) = range.split_once('-') else { continue };
        let hex = |s: &str| u64::from_str_radix(s, 16).ok();
        if let (Some(start), Some(end), Some(file_offset)) = (hex(start), hex(end), hex(offset))
            && path.starts_with('/')
        {
            charge(path)?;
            let (dev, inode) = (device(dev).unwrap_or(0), inode.parse().unwrap_or(0));
            out.push(Mapping { start, end, file_offset, path: path.to_owned(), dev, inode });
        }
    }
    out.sort_by_key(|m| m.start);
    Ok(out)
}

/// `fd:01` (maps' hexadecimal major:minor) as `st_dev` encodes it.
fn device(text: &str) -> Option<u64> {
    let (major, minor) = text.split_once(':')?;
    let (major, minor) = (u32::from_str_radix(major, 16).ok()?, u32::from_str_radix(minor, 16).ok()?);
    Some(rustix::fs::makedev(major, minor))
}

/// The mappings of the dump's `MAPPED_LIBRARIES:` section; its absence means
/// the dump was cut short.
pub fn mapped_libraries(text: &str, format: &'static str, meter: &mut Meter) -> Result<Vec<Mapping>, ArtifactError> {
    let at = text.find("\nMAPPED_LIBRARIES:").ok_or_else(|| ArtifactError::Truncated {
        format,
        line: text.lines().count(),
        message: "no MAPPED_LIBRARIES section: the dump is incomplete".into(),
    })?;
    let mut maps = collect(text[at..].lines().skip(2), |path| {
        meter.require("mapped libraries", (std::mem::size_of::<Mapping>() + path.len()) as u64)
    })?;
    // A path too long to be real names no binary: the frames keep the address.
    for m in &mut maps {
        if m.path.len() > NAME_BYTES {
            m.path = meter.name(&m.path);
        }
    }
    Ok(maps)
}

/// `0x7f81a90a2630 0x55ac559d122e …` → the stack's frames, innermost first, at
/// most the meter's per-stack cap of them; `None` when an address is not one.
pub fn stack(text: &str, maps: &[Mapping], meter: &mut Meter) -> Option<Vec<Frame>> {
    let mut frames = Vec::new();
    for word in text.split_whitespace() {
        let address = word.strip_prefix("0x").and_then(|h| u64::from_str_radix(h, 16).ok())?;
        if !meter.stack_full(frames.len()) {
            meter.push_frame(&mut frames, frame(address, maps));
        }
    }
    Some(frames)
}

/// The mapping of `maps` (sorted by start) that holds `address`.
pub fn find(maps: &[Mapping], address: u64) -> Option<&Mapping> {
    let i = maps.partition_point(|m| m.start <= address).checked_sub(1)?;
    maps.get(i).filter(|m| address < m.end)
}

/// The frame of a raw address: `module+0xoffset` (file = module path, address =
/// offset in the file) when a mapping of `maps` (sorted by start) holds it, the bare address otherwise.
pub fn frame(address: u64, maps: &[Mapping]) -> Frame {
    match find(maps, address) {
        Some(m) => {
            let offset = address - m.start + m.file_offset;
            let module = m.path.rsplit('/').next().unwrap_or(&m.path);
            Frame {
                function: format!("{module}+0x{offset:x}"),
                file: Some(m.path.clone()),
                line: None,
                address: Some(offset),
                inlined: false,
            }
        }
        None => Frame::function(format!("0x{address:x}")),
    }
}

/// Undoes sampling: a site seen `count` times with `bytes` bytes under an
/// average sampling period of `period` bytes stands for this many times more
/// (the estimator of jeprof and pprof: 1 / (1 - e^(-size/period))).
pub fn unsample_scale(count: u64, bytes: u64, period: u64) -> f64 {
    if period <= 1 || count == 0 || bytes == 0 {
        return 1.0;
    }
    let average = bytes as f64 / count as f64;
    1.0 / (1.0 - (-average / period as f64).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_and_frames() {
        let mut meter = Meter::default();
        let maps = mappings(
            [
                "7f81a7600000-7f81a7a00000 rw-p 00000000 00:00 0 ",
                "55ac559d1000-55ac559d2000 r-xp 00001000 fe:00 2408493                    /build/leakfix/build/a_cachesvc",
                "1000-2000 r-xp 00000000 fe:00 1 /low",
            ]
            .into_iter(),
        );
        assert_eq!(frame(0x7f81_a760_0010, &maps).function, "0x7f81a7600010", "anonymous mappings are skipped");
        let f = frame(0x55ac_559d_122e, &maps);
        assert_eq!((f.function.as_str(), f.address), ("a_cachesvc+0x122e", Some(0x122e)));
        assert_eq!(frame(0x10, &maps).function, "0x10");
        assert_eq!(frame(0x1800, &maps).function, "low+0x800");
        assert_eq!(frame(0x2000, &maps).function, "0x2000");
        let names = |s: Vec<Frame>| s.into_iter().map(|f| f.function).collect::<Vec<_>>();
        assert_eq!(stack("0x1 0x1800", &maps, &mut meter).map(names), Some(vec!["0x1".into(), "low+0x800".into()]));
        assert_eq!(stack("0x1 zz", &maps, &mut meter), None);
        let deep = "0x1 ".repeat(crate::meter::FRAMES_PER_STACK * 2);
        assert_eq!(stack(&deep, &maps, &mut meter).unwrap().len(), crate::meter::FRAMES_PER_STACK);
        assert_eq!(unsample_scale(10, 1000, 1), 1.0);
        // 100-byte objects sampled every 512 KiB: each sample stands for ~5243 objects.
        assert!((unsample_scale(1, 100, 524_288) - 5243.38).abs() < 0.5);
    }
}

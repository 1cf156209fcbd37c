//! What jemalloc (`heap_v2`) and gperftools (`heap profile:`) dumps share:
//! stacks of raw return addresses (`@ 0x… 0x…`) and a `MAPPED_LIBRARIES:`
//! section (a copy of /proc/PID/maps) that turns each address into a module
//! and an offset. Frames stay `module+0xoffset` until `symbolize` resolves
//! them against the binaries, when they can be found.

use crate::model::{ArtifactError, Frame};

/// One executable mapping of the dumped process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    pub file_offset: u64,
    pub path: String,
}

/// Parses the `MAPPED_LIBRARIES:` lines (maps format); anonymous mappings are skipped.
pub fn mappings<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<Mapping> {
    let mut out = Vec::new();
    for line in lines {
        let mut fields = line.split_whitespace();
        let (Some(range), Some(_perms), Some(offset), Some(_dev), Some(_inode), Some(path)) =
            (fields.next(), fields.next(), fields.next(), fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let Some((start, end)) = range.split_once('-') else { continue };
        let hex = |s: &str| u64::from_str_radix(s, 16).ok();
        if let (Some(start), Some(end), Some(file_offset)) = (hex(start), hex(end), hex(offset))
            && path.starts_with('/')
        {
            out.push(Mapping { start, end, file_offset, path: path.to_owned() });
        }
    }
    out
}

/// The mappings of the dump's `MAPPED_LIBRARIES:` section; its absence means
/// the dump was cut short.
pub fn mapped_libraries(text: &str, format: &'static str) -> Result<Vec<Mapping>, ArtifactError> {
    let at = text.find("\nMAPPED_LIBRARIES:").ok_or_else(|| ArtifactError::Truncated {
        format,
        line: text.lines().count(),
        message: "no MAPPED_LIBRARIES section: the dump is incomplete".into(),
    })?;
    Ok(mappings(text[at..].lines().skip(2)))
}

/// `0x7f81a90a2630 0x55ac559d122e …` → addresses.
pub fn addresses(text: &str) -> Option<Vec<u64>> {
    text.split_whitespace().map(|a| a.strip_prefix("0x").and_then(|h| u64::from_str_radix(h, 16).ok())).collect()
}

/// The frame of a raw address: `module+0xoffset` (file = module path, address =
/// offset in the file) when a mapping holds it, the bare address otherwise.
pub fn frame(address: u64, maps: &[Mapping]) -> Frame {
    match maps.iter().find(|m| m.start <= address && address < m.end) {
        Some(m) => {
            let offset = address - m.start + m.file_offset;
            let module = m.path.rsplit('/').next().unwrap_or(&m.path);
            Frame {
                function: format!("{module}+0x{offset:x}"),
                file: Some(m.path.clone()),
                line: None,
                address: Some(offset),
            }
        }
        None => Frame { function: format!("0x{address:x}"), file: None, line: None, address: None },
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
        let maps = mappings(
            [
                "55ac559d1000-55ac559d2000 r-xp 00001000 fe:00 2408493                    /build/leakfix/build/a_cachesvc",
                "7f81a7600000-7f81a7a00000 rw-p 00000000 00:00 0 ",
            ]
            .into_iter(),
        );
        assert_eq!(maps.len(), 1);
        let f = frame(0x55ac_559d_122e, &maps);
        assert_eq!((f.function.as_str(), f.address), ("a_cachesvc+0x122e", Some(0x122e)));
        assert_eq!(frame(0x10, &maps).function, "0x10");
        assert_eq!(addresses("0x1 0x2"), Some(vec![1, 2]));
        assert_eq!(addresses("0x1 zz"), None);
        assert_eq!(unsample_scale(10, 1000, 1), 1.0);
        // 100-byte objects sampled every 512 KiB: each sample stands for ~5243 objects.
        assert!((unsample_scale(1, 100, 524_288) - 5243.38).abs() < 0.5);
    }
}

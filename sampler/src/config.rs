//! The sampling mean, read once from `MEMLEAK_SAMPLER_MEAN_BYTES` without allocating.

use crate::stats::memleak_sampler_stats;
use std::ffi::CStr;
use std::sync::atomic::Ordering;

/// jemalloc's `lg_prof_sample:19`: one sample per 512 KiB allocated, on average.
pub const DEFAULT_MEAN_BYTES: u64 = 1 << 19;
/// Above 1 TiB nothing would ever be sampled; such a value is a typo.
pub const MAX_MEAN_BYTES: u64 = 1 << 40;
const VARIABLE: &CStr = c"MEMLEAK_SAMPLER_MEAN_BYTES";

/// The mean distance in bytes between samples. Read from the environment once, on first use (the
/// preloaded library's constructor, or an allocation before it; the `GlobalAlloc` wrapper's first
/// sampling decision; a race of threads reads the same value twice), then kept in the exported
/// statistics, where an observer reads it to weight the samples. Unset or empty: the default.
pub fn mean_bytes() -> u64 {
    let mean = memleak_sampler_stats.mean_bytes.load(Ordering::Relaxed);
    if mean != 0 {
        return mean;
    }
    // SAFETY: getenv reads the environment without allocating; the pointer, when not null, is a
    // NUL-terminated string that lives as long as nobody calls setenv on it, and it is read at once.
    let raw = unsafe { libc::getenv(VARIABLE.as_ptr()) };
    // SAFETY: not null, NUL-terminated (see above).
    let value = if raw.is_null() { b"".as_slice() } else { unsafe { CStr::from_ptr(raw) }.to_bytes() };
    // Empty is unset, as `Environment=MEMLEAK_SAMPLER_MEAN_BYTES=` or an empty template value gives.
    let mean = if value.is_empty() {
        DEFAULT_MEAN_BYTES
    } else {
        parse_mean(value).unwrap_or_else(|| {
            warn_invalid(value);
            DEFAULT_MEAN_BYTES
        })
    };
    memleak_sampler_stats.mean_bytes.store(mean, Ordering::Relaxed);
    mean
}

/// A whole number of bytes in `1..=MAX_MEAN_BYTES`, nothing else (no sign, unit or spaces).
pub fn parse_mean(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 20 {
        return None;
    }
    let mut mean: u64 = 0;
    for &byte in value {
        let digit = byte.checked_sub(b'0').filter(|d| *d <= 9)?;
        mean = mean.checked_mul(10)?.checked_add(u64::from(digit))?;
    }
    (1..=MAX_MEAN_BYTES).contains(&mean).then_some(mean)
}

/// One line on stderr with raw `write(2)`s: no formatting, no allocation, no stdio lock; errno
/// is kept, since this runs inside an allocation call.
fn warn_invalid(value: &[u8]) {
    const SHOWN: usize = 64;
    let shown = value.get(..SHOWN).unwrap_or(value);
    let parts: [&[u8]; 3] = [
        b"memleak-sampler: MEMLEAK_SAMPLER_MEAN_BYTES=",
        shown,
        b" is not a whole number of bytes from 1 to 1099511627776; sampling with the default mean, 524288 bytes \
          (set it to e.g. 524288 to silence this)\n",
    ];
    // SAFETY: __errno_location returns this thread's errno; write gets valid buffers and lengths.
    unsafe {
        let errno = *libc::__errno_location();
        for part in parts {
            let _ = libc::write(libc::STDERR_FILENO, part.as_ptr().cast(), part.len());
        }
        *libc::__errno_location() = errno;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_whole_numbers_in_range() {
        assert_eq!(parse_mean(b"524288"), Some(524_288));
        assert_eq!(parse_mean(b"1"), Some(1));
        assert_eq!(parse_mean(b"1099511627776"), Some(MAX_MEAN_BYTES));
    }

    #[test]
    fn rejects_everything_else() {
        for bad in [
            &b""[..],
            b"0",
            b"-1",
            b"+4096",
            b" 4096",
            b"4096 ",
            b"4k",
            b"1.5",
            b"0x1000",
            b"1099511627777",
            b"18446744073709551616",
            b"99999999999999999999999",
        ] {
            assert_eq!(parse_mean(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }
}

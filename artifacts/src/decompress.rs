//! Reading an artifact's text within its budget: streaming decompression of
//! zstd and gzip (heaptrack writes `.zst` or `.gz`), with the stored size,
//! the decompressed size, the ratio and the deadline checked as bytes arrive,
//! and invalid UTF-8 replaced chunk by chunk (no second copy of the text; a
//! run of invalid bytes becomes one U+FFFD, and what is held is what counts).

use crate::budget::{Budget, RATIO_FROM_BYTES};
use crate::model::ArtifactError;
use std::cell::Cell;
use std::io::{self, Read};
use std::rc::Rc;
use std::time::Instant;

const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Compressions and archives recognized by their magic numbers, read or not.
const MAGICS: &[(&[u8], &str)] = &[
    (&ZSTD_MAGIC, "zstd"),
    (&GZIP_MAGIC, "gzip"),
    (&[0xfd, b'7', b'z', b'X', b'Z', 0x00], "xz"),
    (&[0x04, 0x22, 0x4d, 0x18], "lz4"),
    (&[b'P', b'K', 0x03, 0x04], "zip"),
    (&[b'P', b'K', 0x05, 0x06], "zip"),
    (&[b'7', b'z', 0xbc, 0xaf, 0x27, 0x1c], "7z"),
    (&[0x5d, 0x00, 0x00], "lzma"),
];

/// The compression `bytes` start with, by its magic number (bzip2: `BZh` and a block size digit).
fn compression_of(bytes: &[u8]) -> Option<&'static str> {
    if bytes.len() >= 4 && bytes.starts_with(b"BZh") && (b'1'..=b'9').contains(&bytes[3]) {
        return Some("bzip2");
    }
    MAGICS.iter().find(|(magic, _)| bytes.starts_with(magic)).map(|(_, codec)| *codec)
}
const CHUNK: usize = 64 << 10;

/// The text of the artifact read from `input`: decompressed when it starts
/// with a zstd or gzip magic number, as it is otherwise. `stored_size`, when
/// known, reserves the text's memory at once. Refused as soon as a cap of
/// `budget` is passed or `deadline` is: at most `decompressed_bytes` are ever
/// held for the text (its capacity, replacements included), besides a zstd
/// window of at most half that and one 64 KiB chunk.
pub fn read_text(
    input: impl Read,
    stored_size: Option<u64>,
    budget: &Budget,
    deadline: Instant,
) -> Result<String, ArtifactError> {
    let consumed = Rc::new(Cell::new(0u64));
    let ended = Rc::new(Cell::new(false));
    let mut raw =
        Counted { inner: input.take(budget.file_bytes + 1), consumed: consumed.clone(), ended: ended.clone() };
    let mut head = [0u8; 18];
    let head_len = read_full(&mut raw, &mut head).map_err(unreadable)?;
    let head = &head[..head_len];
    let rest = head.chain(raw);
    let mut text = Text::new(budget.decompressed_bytes);
    if head.starts_with(&ZSTD_MAGIC) {
        let window = zstd_window(head).ok_or_else(|| ArtifactError::Malformed {
            format: "zstd",
            line: 0,
            message: "cannot read the frame header".into(),
        })?;
        let limit = budget.decompressed_bytes / 2;
        if window > limit {
            return Err(ArtifactError::ZstdWindow { window, limit });
        }
        let decoder = ruzstd::decoding::StreamingDecoder::new(rest).map_err(|e| corrupt("zstd", e.to_string()))?;
        inflate("zstd", decoder, &mut text, budget, deadline, &consumed, &ended)?;
    } else if head.starts_with(&GZIP_MAGIC) {
        inflate("gzip", flate2::read::GzDecoder::new(rest), &mut text, budget, deadline, &consumed, &ended)?;
    } else if let Some(codec) = compression_of(head) {
        return Err(ArtifactError::UnsupportedCompression { codec, inside: None });
    } else {
        if let Some(size) = stored_size {
            text.reserve(size);
        }
        copy(rest, &mut text, budget, deadline)?;
    }
    if consumed.get() > budget.file_bytes {
        return Err(ArtifactError::FileTooLarge { size: consumed.get(), limit: budget.file_bytes });
    }
    text.finish()
}

/// Inflates `decoder` into `text`, checking the caps and the ratio after every chunk.
fn inflate(
    codec: &'static str,
    mut decoder: impl Read,
    text: &mut Text,
    budget: &Budget,
    deadline: Instant,
    consumed: &Cell<u64>,
    ended: &Cell<bool>,
) -> Result<(), ArtifactError> {
    let mut chunk = vec![0u8; CHUNK];
    loop {
        let n = match decoder.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // The whole input was read and the stream still wants more: cut short (a writer may still be busy).
            Err(e) if ended.get() || e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(ArtifactError::Truncated {
                    format: codec,
                    line: 0,
                    message: format!("the compressed stream ends early ({e})"),
                });
            }
            Err(e) => return Err(corrupt(codec, e.to_string())),
        };
        // Compressed again inside (the first read of a stream holds far more than a magic number).
        if text.bytes == 0
            && let Some(inner) = compression_of(&chunk[..n])
        {
            return Err(ArtifactError::UnsupportedCompression { codec: inner, inside: Some(codec) });
        }
        text.push(&chunk[..n])?;
        let plain = text.bytes;
        if plain > RATIO_FROM_BYTES && plain > budget.ratio.saturating_mul(consumed.get().max(1)) {
            return Err(ArtifactError::CompressionRatio { codec, limit: budget.ratio });
        }
        if Instant::now() > deadline {
            return Err(ArtifactError::TimedOut { limit: budget.time });
        }
    }
}

/// Copies uncompressed input into `text`.
fn copy(mut input: impl Read, text: &mut Text, budget: &Budget, deadline: Instant) -> Result<(), ArtifactError> {
    let mut chunk = vec![0u8; CHUNK];
    loop {
        let n = match input.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(unreadable(e)),
        };
        text.push(&chunk[..n])?;
        if Instant::now() > deadline {
            return Err(ArtifactError::TimedOut { limit: budget.time });
        }
    }
}

/// Text being assembled from bytes: valid UTF-8 kept, a run of invalid
/// sequences replaced by one U+FFFD, a sequence split across chunks carried
/// over. What is held (the string's capacity) never exceeds `limit`: the
/// capacity is grown by hand, and a replacement (3 bytes for what may be one
/// input byte) counts as what it takes, not as the input it stands for.
struct Text {
    text: String,
    /// The start of a UTF-8 sequence that the next chunk completes (at most 3 bytes).
    pending: Vec<u8>,
    /// Bytes taken in so far (what the decompressed size and the ratio are about).
    bytes: u64,
    /// Whether the last thing kept is a replacement (a run of invalid bytes gets one).
    replaced: bool,
    limit: u64,
}

impl Text {
    fn new(limit: u64) -> Text {
        Text { text: String::new(), pending: Vec::new(), bytes: 0, replaced: false, limit }
    }

    fn reserve(&mut self, size: u64) {
        self.text.reserve_exact(usize::try_from(size.min(self.limit)).unwrap_or(0));
    }

    fn push(&mut self, chunk: &[u8]) -> Result<(), ArtifactError> {
        self.bytes += chunk.len() as u64;
        if self.bytes > self.limit {
            return Err(ArtifactError::DecompressedTooLarge { limit: self.limit });
        }
        // A sequence split across chunks: its start was kept back from the last one.
        let joined;
        let mut bytes = chunk;
        if !self.pending.is_empty() {
            let mut carried = std::mem::take(&mut self.pending);
            carried.extend_from_slice(chunk);
            joined = carried;
            bytes = &joined;
        }
        loop {
            match std::str::from_utf8(bytes) {
                Ok(s) => return self.keep(s),
                Err(e) => {
                    let (valid, after) = bytes.split_at(e.valid_up_to());
                    self.keep(std::str::from_utf8(valid).unwrap_or_default())?;
                    match e.error_len() {
                        Some(len) => {
                            self.replace()?;
                            // Bytes that can start no sequence (continuations, C0, C1, F5–FF) are
                            // the same run: skipped at once, not one UTF-8 check each (16 MiB of
                            // 0xff took over a minute of a debug build's time, byte by byte).
                            let rest = &after[len..];
                            let run = rest.iter().position(|&b| b < 0x80 || (0xc2..=0xf4).contains(&b));
                            bytes = &rest[run.unwrap_or(rest.len())..];
                        }
                        None => {
                            self.pending = after.to_vec();
                            return Ok(());
                        }
                    }
                }
            }
        }
    }

    /// Appends valid text, growing the capacity by hand so that it never passes the limit.
    fn keep(&mut self, s: &str) -> Result<(), ArtifactError> {
        if s.is_empty() {
            return Ok(());
        }
        let limit = usize::try_from(self.limit).unwrap_or(usize::MAX);
        let needed = self.text.len().saturating_add(s.len());
        if needed > limit {
            return Err(ArtifactError::DecompressedTooLarge { limit: self.limit });
        }
        if needed > self.text.capacity() {
            let grown = needed.max(self.text.capacity().saturating_mul(2).min(limit));
            self.text.reserve_exact(grown - self.text.len());
        }
        self.text.push_str(s);
        self.replaced = false;
        Ok(())
    }

    /// Stands for an invalid sequence: one U+FFFD for a whole run of them.
    fn replace(&mut self) -> Result<(), ArtifactError> {
        if self.replaced {
            return Ok(());
        }
        self.keep("\u{fffd}")?;
        self.replaced = true;
        Ok(())
    }

    fn finish(mut self) -> Result<String, ArtifactError> {
        if !self.pending.is_empty() {
            self.replace()?;
        }
        Ok(self.text)
    }
}

/// Counts the bytes read from the input and notes its end.
struct Counted<R> {
    inner: R,
    consumed: Rc<Cell<u64>>,
    ended: Rc<Cell<bool>>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.consumed.set(self.consumed.get() + n as u64);
        if n == 0 && !buf.is_empty() {
            self.ended.set(true);
        }
        Ok(n)
    }
}

/// Fills `buf` unless the input ends first; returns how many bytes were read.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The window size a zstd frame header declares (RFC 8878, 3.1.1.1), from the
/// first bytes of the input: what the decoder will keep in memory.
fn zstd_window(head: &[u8]) -> Option<u64> {
    let descriptor = *head.get(4)?;
    let single_segment = descriptor & 0x20 != 0;
    if !single_segment {
        let byte = *head.get(5)?;
        let base = 1u64 << (10 + u64::from(byte >> 3));
        return Some(base + (base / 8) * u64::from(byte & 7));
    }
    // Single segment: the window is the content size that follows the dictionary id.
    let dict_bytes = [0usize, 1, 2, 4][usize::from(descriptor & 3)];
    let size_bytes = [1usize, 2, 4, 8][usize::from(descriptor >> 6)];
    let at = 5 + dict_bytes;
    let field = head.get(at..at + size_bytes)?;
    let value = field.iter().rev().fold(0u64, |v, b| (v << 8) | u64::from(*b));
    Some(if size_bytes == 2 { value + 256 } else { value })
}

fn corrupt(codec: &'static str, message: String) -> ArtifactError {
    ArtifactError::Malformed { format: codec, line: 0, message: format!("cannot decompress: {message}") }
}

fn unreadable(e: io::Error) -> ArtifactError {
    ArtifactError::Unreadable { message: e.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::time::Duration;

    fn budget(decompressed: u64) -> Budget {
        Budget { decompressed_bytes: decompressed, ..Budget::WATCHED }
    }

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    /// A stream of `n` zeros, never held whole in memory.
    struct Zeros(u64);

    impl Read for Zeros {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = (buf.len() as u64).min(self.0) as usize;
            buf[..n].fill(b'0');
            self.0 -= n as u64;
            Ok(n)
        }
    }

    fn gzip_of(mut input: impl Read) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        io::copy(&mut input, &mut gz).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn plain_gzip_and_invalid_utf8() {
        let text = read_text(&b"hello\n"[..], Some(6), &Budget::WATCHED, later()).unwrap();
        assert_eq!(text, "hello\n");
        let gz = gzip_of(&b"one\ntwo\n"[..]);
        assert_eq!(read_text(&gz[..], None, &Budget::WATCHED, later()).unwrap(), "one\ntwo\n");
        // Invalid bytes are replaced; a sequence split across reads is kept whole.
        let mut bytes = "é".repeat(CHUNK / 2 + 1).into_bytes();
        bytes.push(0xff);
        bytes.extend_from_slice("ok".as_bytes());
        let text = read_text(&bytes[..], None, &Budget::WATCHED, later()).unwrap();
        assert_eq!(text, format!("{}\u{fffd}ok", "é".repeat(CHUNK / 2 + 1)));
        let cut = &"€".as_bytes()[..2];
        assert_eq!(read_text(cut, None, &Budget::WATCHED, later()).unwrap(), "\u{fffd}");
    }

    #[test]
    fn a_split_sequence_is_joined_in_every_position() {
        let s = "a€b😀c";
        for split in 0..=s.len() {
            let mut t = Text::new(1 << 20);
            t.push(&s.as_bytes()[..split]).unwrap();
            t.push(&s.as_bytes()[split..]).unwrap();
            assert_eq!(t.finish().unwrap(), s, "split at {split}");
        }
        let mut t = Text::new(1 << 20);
        for b in s.as_bytes() {
            t.push(&[*b]).unwrap();
        }
        assert_eq!(t.finish().unwrap(), s, "byte by byte");
    }

    #[test]
    fn what_is_held_never_passes_the_cap_whatever_the_invalid_bytes() {
        // A run of invalid bytes (16 MiB of 0xff) is one replacement, not 48 MiB of them.
        let limit = 16u64 << 20;
        let ff = vec![0xffu8; 16 << 20];
        let text = read_text(&ff[..], Some(ff.len() as u64), &budget(limit), later()).unwrap();
        assert_eq!(text, "\u{fffd}");
        let mut t = Text::new(limit);
        t.push(b"==1==ERROR: LeakSanitizer: detected memory leaks\n").unwrap();
        for _ in 0..(16 << 4) - 1 {
            t.push(&ff[..64 << 10]).unwrap();
        }
        assert_eq!(t.finish().unwrap(), "==1==ERROR: LeakSanitizer: detected memory leaks\n\u{fffd}");
        // Isolated invalid bytes each take 3 bytes: counted as held, and the capacity never passes the cap.
        let limit = 1u64 << 20;
        let mut t = Text::new(limit);
        let err = loop {
            if let Err(e) = t.push(&b"a\xff".repeat(4096)) {
                break e;
            }
            assert!(t.text.capacity() as u64 <= limit, "capacity {} over {limit}", t.text.capacity());
        };
        assert_eq!(err, ArtifactError::DecompressedTooLarge { limit });
        assert!(t.text.capacity() as u64 <= limit && t.bytes < limit, "{} {}", t.text.capacity(), t.bytes);
    }

    #[test]
    fn a_gzip_bomb_stops_at_the_cap_or_the_ratio() {
        // 64 MiB of zeros (≈64 KB of gzip, 1:1000): the decompressed cap stops it at 4 MiB…
        let gz = gzip_of(Zeros(64 << 20));
        assert!(gz.len() < 100 << 10, "{}", gz.len());
        let err = read_text(&gz[..], None, &budget(4 << 20), later()).map(|t| t.len()).unwrap_err();
        assert_eq!(err, ArtifactError::DecompressedTooLarge { limit: 4 << 20 });
        // …and under a cap far above it, the ratio does, long before the end.
        let err = read_text(&gz[..], None, &budget(1 << 30), later()).map(|t| t.len()).unwrap_err();
        assert_eq!(err.reason(), "compression_ratio", "{err}");
        // The same ratio of a small input is no bomb.
        let small = gzip_of(Zeros(512 << 10));
        assert_eq!(read_text(&small[..], None, &budget(1 << 30), later()).unwrap().len(), 512 << 10);
    }

    #[test]
    fn compressions_not_read_are_named() {
        let cases: [(&[u8], &str); 4] = [
            (&[0xfd, b'7', b'z', b'X', b'Z', 0, 0, 4], "xz-compressed: only zstd and gzip are read"),
            (b"BZh91AY&SY", "bzip2-compressed"),
            (b"PK\x03\x04\x14\0", "zip-compressed"),
            (&[0x04, 0x22, 0x4d, 0x18, 0x64], "lz4-compressed"),
        ];
        for (bytes, said) in cases {
            let err = read_text(bytes, None, &Budget::WATCHED, later()).unwrap_err();
            assert_eq!(err.reason(), "unsupported_compression");
            assert!(err.to_string().contains(said), "{err}");
        }
        // gzip inside gzip, and zstd inside gzip.
        let twice = gzip_of(&gzip_of(&b"text\n"[..])[..]);
        let err = read_text(&twice[..], None, &Budget::WATCHED, later()).unwrap_err();
        assert!(err.to_string().starts_with("gzip inside gzip: nested compression is not read"), "{err}");
        let zstd_in_gzip = gzip_of(&[0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x58, 0, 0][..]);
        let err = read_text(&zstd_in_gzip[..], None, &Budget::WATCHED, later()).unwrap_err();
        assert!(err.to_string().starts_with("zstd inside gzip"), "{err}");
        // Text that merely starts like "BZh" is text.
        assert_eq!(read_text(&b"BZhello"[..], None, &Budget::WATCHED, later()).unwrap(), "BZhello");
    }

    #[test]
    fn stored_size_and_deadline() {
        let small = Budget { file_bytes: 10, ..Budget::WATCHED };
        let err = read_text(Zeros(100), None, &small, later()).unwrap_err();
        assert_eq!(err.reason(), "file_too_large", "{err}");
        let err = read_text(Zeros(1 << 20), None, &Budget::WATCHED, Instant::now()).unwrap_err();
        assert_eq!(err.reason(), "timeout");
    }

    #[test]
    fn truncated_and_corrupt_streams() {
        let gz = gzip_of(&b"some text that is long enough\n"[..]);
        let err = read_text(&gz[..gz.len() - 6], None, &Budget::WATCHED, later()).unwrap_err();
        assert_eq!(err.reason(), "truncated", "{err}");
        let mut bad = gz.clone();
        bad[12] ^= 0xff;
        bad[13] ^= 0xff;
        assert!(read_text(&bad[..], None, &Budget::WATCHED, later()).is_err());
    }

    #[test]
    fn zstd_windows() {
        // Window descriptor 0x58: exponent 11, mantissa 0 → 2 MiB.
        assert_eq!(zstd_window(&[0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x58]), Some(2 << 20));
        // Single segment, 2-byte content size 0x0100 (+256).
        assert_eq!(zstd_window(&[0x28, 0xb5, 0x2f, 0xfd, 0x60, 0x00, 0x01]), Some(512));
        // A frame claiming a 1 GiB window is refused before any decoding.
        let head = [0x28, 0xb5, 0x2f, 0xfd, 0x00, 0xa0, 0, 0];
        let err = read_text(&head[..], None, &Budget::WATCHED, later()).unwrap_err();
        assert_eq!(err, ArtifactError::ZstdWindow { window: 1 << 30, limit: 8 << 20 });
        let mut out = Vec::new();
        out.write_all(&head).unwrap();
        assert!(zstd_window(&out[..5]).is_none());
    }
}

//! Decompression of zstd and gzip input (heaptrack writes `.zst` or `.gz`), bounded.

use crate::model::ArtifactError;
use std::borrow::Cow;
use std::io::Read;

/// Largest artifact read into memory, compressed or not (a bigger one is refused, not truncated).
pub const MAX_ARTIFACT_BYTES: u64 = 1 << 30;

/// The plain bytes of `bytes`: decompressed when they start with a zstd or
/// gzip magic number, at most `MAX_ARTIFACT_BYTES` of output; as they are otherwise.
pub fn decompress(bytes: &[u8]) -> Result<Cow<'_, [u8]>, ArtifactError> {
    let limit = MAX_ARTIFACT_BYTES;
    let mut plain = Vec::new();
    if bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        let decoder = ruzstd::decoding::StreamingDecoder::new(bytes).map_err(|e| corrupt("zstd", e.to_string()))?;
        decoder.take(limit + 1).read_to_end(&mut plain).map_err(|e| corrupt("zstd", e.to_string()))?;
    } else if bytes.starts_with(&[0x1f, 0x8b]) {
        flate2::read::GzDecoder::new(bytes)
            .take(limit + 1)
            .read_to_end(&mut plain)
            .map_err(|e| corrupt("gzip", e.to_string()))?;
    } else {
        return Ok(Cow::Borrowed(bytes));
    }
    if plain.len() as u64 > limit {
        return Err(ArtifactError::TooLarge { limit });
    }
    Ok(Cow::Owned(plain))
}

fn corrupt(codec: &'static str, message: String) -> ArtifactError {
    ArtifactError::Malformed { format: codec, line: 0, message: format!("cannot decompress: {message}") }
}

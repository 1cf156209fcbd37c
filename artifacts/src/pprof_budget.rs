//! What decoding a pprof message would allocate, found by walking its wire
//! format before anything is materialised: a 2-byte empty sample becomes a
//! 72-byte struct, a 1-byte packed location id an 8-byte integer, so a 64 MiB
//! message of empty samples would take gigabytes once decoded. The walk
//! follows profile.proto's known fields (prost skips the others without
//! allocating), counts the samples, and adds up the heap the decoded message
//! would hold (element sizes, doubled for the vectors' growth slack).

use crate::encode::pprof::{PbFunction, PbLabel, PbLine, PbLocation, PbMapping, PbSample, PbValueType};
use std::mem::size_of;

/// How one field of a message is decoded.
#[derive(Clone, Copy)]
enum Field {
    /// A repeated (or optional) message of this in-memory size and these fields.
    Message(usize, &'static [(u32, Field)]),
    /// A repeated integer, packed or not.
    Integers,
    /// A repeated string.
    Text,
}

const VALUE_TYPE: Field = Field::Message(size_of::<PbValueType>(), &[]);
const LABEL: Field = Field::Message(size_of::<PbLabel>(), &[]);
const SAMPLE: Field = Field::Message(size_of::<PbSample>(), &[(1, Field::Integers), (2, Field::Integers), (3, LABEL)]);
const LINE: Field = Field::Message(size_of::<PbLine>(), &[]);
const LOCATION: Field = Field::Message(size_of::<PbLocation>(), &[(4, LINE)]);
const PROFILE: &[(u32, Field)] = &[
    (1, VALUE_TYPE),
    (2, SAMPLE),
    (3, Field::Message(size_of::<PbMapping>(), &[])),
    (4, LOCATION),
    (5, Field::Message(size_of::<PbFunction>(), &[])),
    (6, Field::Text),
    (11, VALUE_TYPE),
];
/// Tag of `Profile.sample`.
const SAMPLE_TAG: u32 = 2;

/// What the walk found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Estimate {
    pub samples: usize,
    /// Heap bytes the decoded message would hold, at most.
    pub bytes: u64,
}

/// Walks a Profile message; `Err` when it is malformed or would need more than `budget` bytes once decoded.
pub fn estimate(raw: &[u8], budget: u64) -> Result<Estimate, String> {
    let mut out = Estimate { samples: 0, bytes: 0 };
    walk(raw, PROFILE, budget, &mut out, true)?;
    Ok(out)
}

fn walk(mut bytes: &[u8], fields: &[(u32, Field)], budget: u64, out: &mut Estimate, top: bool) -> Result<(), String> {
    while !bytes.is_empty() {
        let key = varint(&mut bytes)?;
        let (tag, wire) = ((key >> 3) as u32, key & 7);
        let payload: &[u8] = match wire {
            0 => {
                varint(&mut bytes)?;
                &[]
            }
            1 => take(&mut bytes, 8)?,
            2 => {
                let len = usize::try_from(varint(&mut bytes)?).map_err(|_| "a length past memory".to_owned())?;
                take(&mut bytes, len)?
            }
            5 => take(&mut bytes, 4)?,
            _ => return Err(format!("wire type {wire} (groups are not pprof's)")),
        };
        let Some((_, field)) = fields.iter().find(|(t, _)| *t == tag) else { continue };
        let cost = match (*field, wire) {
            (Field::Integers, 2) => 8 * count_varints(payload)?,
            (Field::Integers, _) => 8,
            (Field::Text, _) => (size_of::<String>() + payload.len()) as u64,
            (Field::Message(size, inner), 2) => {
                if top && tag == SAMPLE_TAG {
                    out.samples += 1;
                }
                walk(payload, inner, budget, out, false)?;
                size as u64
            }
            (Field::Message(..), _) => return Err(format!("field {tag} should be a message")),
        };
        // Doubled: a vector that grows by pushing may hold twice its length.
        out.bytes = out.bytes.saturating_add(2 * cost);
        if out.bytes > budget {
            return Err(format!("decoding it would take more than {budget} bytes of memory"));
        }
    }
    Ok(())
}

fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
    if bytes.len() < n {
        return Err("a field is cut short".into());
    }
    let (head, rest) = bytes.split_at(n);
    *bytes = rest;
    Ok(head)
}

fn varint(bytes: &mut &[u8]) -> Result<u64, String> {
    let mut value = 0u64;
    for (i, b) in bytes.iter().take(10).enumerate() {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            *bytes = &bytes[i + 1..];
            return Ok(value);
        }
    }
    Err("a varint is cut short or longer than 10 bytes".into())
}

fn count_varints(bytes: &[u8]) -> Result<u64, String> {
    if bytes.last().is_some_and(|b| b & 0x80 != 0) {
        return Err("a packed integer list is cut short".into());
    }
    Ok(bytes.iter().filter(|b| *b & 0x80 == 0).count() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_samples_and_packed_ids_are_counted_before_decoding() {
        // 1000 empty samples: 2 bytes each on the wire, a PbSample each once decoded.
        let empty: Vec<u8> = [0x12, 0x00].repeat(1000);
        let e = estimate(&empty, u64::MAX).unwrap();
        assert_eq!(e.samples, 1000);
        assert_eq!(e.bytes, 2 * 1000 * size_of::<PbSample>() as u64);
        // One sample with 100 packed one-byte location ids: 100 u64s.
        let mut one = vec![0x12, 102, 0x0a, 100];
        one.extend([1u8; 100]);
        assert_eq!(estimate(&one, u64::MAX).unwrap().bytes, 2 * (size_of::<PbSample>() as u64 + 800));
        assert!(estimate(&empty, 10_000).unwrap_err().contains("more than 10000 bytes"));
        assert!(estimate(&[0x12, 0x05, 0x00], u64::MAX).is_err(), "cut short");
        assert!(estimate(&[0x0b], u64::MAX).is_err(), "a group");
    }
}

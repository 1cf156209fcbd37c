//! Reading pprof profiles (profile.proto, gzipped or not) into the model: the
//! heap profiles that Go's `net/http/pprof`, `jemalloc_pprof` and other
//! services serve, so that captures can diff them.
//!
//! Bounded: the decompressed size, the samples, the stack depth, the memory
//! the decoded message would take (walked on the wire before it is decoded:
//! `pprof_budget`) and the memory of the model built from it are capped; a
//! profile past a cap is refused, not truncated. At worst one decode holds
//! the compressed input, `MAX_DECODED_BYTES` of plain message,
//! `MAX_MESSAGE_MEMORY` of decoded message and `MAX_MODEL_MEMORY` of model:
//! under 300 MiB beside its input.

use crate::encode::pprof::{PbFunction, PbLocation, PbMapping, PbProfile};
use crate::model::{
    ALLOC_OBJECTS, ALLOC_SPACE, ArtifactError, Frame, GROWTH_OBJECTS, GROWTH_SPACE, INUSE_OBJECTS, INUSE_SPACE,
    LEAKED_OBJECTS, LEAKED_SPACE, PAGE_FAULTS, Profile, Sample, ValueType,
};
use crate::pprof_budget;
use prost::Message;
use std::collections::HashMap;
use std::io::Read;

/// Largest decompressed profile accepted (a gzip bomb stops here).
pub const MAX_DECODED_BYTES: u64 = 64 << 20;
/// Most samples accepted in one profile.
pub const MAX_SAMPLES: usize = 1_000_000;
/// Most heap the decoded protobuf message may take.
pub const MAX_MESSAGE_MEMORY: u64 = 96 << 20;
/// Most heap the model built from it may take (frames copy their names per sample).
pub const MAX_MODEL_MEMORY: u64 = 96 << 20;
/// Deepest stack kept; deeper stacks keep their innermost frames.
pub const MAX_DEPTH: usize = 256;

const FORMAT: &str = "pprof";

/// A decoded profile and what its header says about sampling.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub profile: Profile,
    /// The sampling period (Go: `runtime.MemProfileRate`, bytes between samples on average); 0 when unsaid.
    pub period: i64,
    /// `period_type` as `type/unit` (`space/bytes`), when given.
    pub period_type: Option<String>,
    pub time_nanos: i64,
}

/// Decodes a pprof profile, gzipped (as served) or plain.
pub fn decode(bytes: &[u8]) -> Result<Decoded, ArtifactError> {
    let plain;
    let raw: &[u8] = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .take(MAX_DECODED_BYTES + 1)
            .read_to_end(&mut out)
            .map_err(|e| malformed(format!("cannot decompress: {e}")))?;
        if out.len() as u64 > MAX_DECODED_BYTES {
            return Err(ArtifactError::DecompressedTooLarge { limit: MAX_DECODED_BYTES });
        }
        plain = out;
        &plain
    } else {
        bytes
    };
    let estimate = pprof_budget::estimate(raw, MAX_MESSAGE_MEMORY)
        .map_err(|e| malformed(format!("not a pprof profile within bounds: {e}")))?;
    if estimate.samples > MAX_SAMPLES {
        return Err(malformed(format!("{} samples; at most {MAX_SAMPLES} are read", estimate.samples)));
    }
    let message = PbProfile::decode(raw).map_err(|e| malformed(format!("not a pprof profile: {e}")))?;
    let strings = &message.string_table;
    let text = |i: i64| usize::try_from(i).ok().and_then(|i| strings.get(i)).map_or("", String::as_str);
    let sample_types =
        message.sample_type.iter().map(|t| value_type(text(t.r#type), text(t.unit))).collect::<Result<Vec<_>, _>>()?;
    let frames = Frames::new(&message);
    let mut profile = Profile::new("heap", sample_types);
    let mut model_bytes = 0u64;
    for (i, sample) in message.sample.iter().enumerate() {
        if sample.value.len() != profile.sample_types.len() {
            return Err(malformed(format!(
                "sample {i} has {} values for {} sample types",
                sample.value.len(),
                profile.sample_types.len()
            )));
        }
        let mut stack = Vec::new();
        for id in &sample.location_id {
            let Some(location) = frames.locations.get(id) else {
                return Err(malformed(format!("sample {i} names location {id}, which the profile lacks")));
            };
            stack.extend(frames.of(location, &text, &mut model_bytes)?);
            if stack.len() >= MAX_DEPTH {
                stack.truncate(MAX_DEPTH);
                break;
            }
        }
        let mut labels = Vec::new();
        for label in sample.label.iter().filter(|l| l.str != 0) {
            let (key, value) = (text(label.key), text(label.str));
            charge(&mut model_bytes, 2 * std::mem::size_of::<String>() + key.len() + value.len())?;
            labels.push((key.to_owned(), value.to_owned()));
        }
        charge(&mut model_bytes, std::mem::size_of::<Sample>() + 8 * sample.value.len())?;
        let sample = Sample { stack, values: sample.value.clone(), labels };
        profile.samples.push(sample);
    }
    let period_type = message.period_type.as_ref().map(|t| format!("{}/{}", text(t.r#type), text(t.unit)));
    Ok(Decoded { profile, period: message.period, period_type, time_nanos: message.time_nanos })
}

/// Counts `bytes` more of the model (doubled for vectors' growth slack); an error past `MAX_MODEL_MEMORY`.
fn charge(spent: &mut u64, bytes: usize) -> Result<(), ArtifactError> {
    *spent = spent.saturating_add(2 * bytes as u64);
    if *spent > MAX_MODEL_MEMORY {
        return Err(malformed(format!(
            "its samples would take more than {MAX_MODEL_MEMORY} bytes of memory once read"
        )));
    }
    Ok(())
}

/// The model's sample type for a pprof one (heap profiles, and the model's own
/// leak, growth and page-fault profiles). jemalloc_pprof names its in-use bytes `space`;
/// the model's types are static, so unknown types are refused.
fn value_type(kind: &str, unit: &str) -> Result<ValueType, ArtifactError> {
    let known = [
        INUSE_SPACE,
        INUSE_OBJECTS,
        ALLOC_SPACE,
        ALLOC_OBJECTS,
        GROWTH_SPACE,
        GROWTH_OBJECTS,
        LEAKED_SPACE,
        LEAKED_OBJECTS,
        PAGE_FAULTS,
    ];
    if let Some(t) = known.iter().find(|t| t.kind == kind && t.unit == unit) {
        return Ok(*t);
    }
    match (kind, unit) {
        ("space", "bytes") => Ok(INUSE_SPACE),
        ("objects", "count") => Ok(INUSE_OBJECTS),
        _ => Err(malformed(format!(
            "sample type {kind}/{unit} is not a heap profile's (inuse_space/bytes, inuse_objects/count, alloc_*)"
        ))),
    }
}

/// The frames of each location, innermost (inlined) first.
struct Frames<'a> {
    locations: HashMap<u64, &'a PbLocation>,
    functions: HashMap<u64, &'a PbFunction>,
    mappings: HashMap<u64, &'a PbMapping>,
}

impl<'a> Frames<'a> {
    fn new(message: &'a PbProfile) -> Self {
        Frames {
            locations: message.location.iter().map(|l| (l.id, l)).collect(),
            functions: message.function.iter().map(|f| (f.id, f)).collect(),
            mappings: message.mapping.iter().map(|m| (m.id, m)).collect(),
        }
    }

    /// Each frame is charged to `spent` before its names are copied.
    fn of(
        &self,
        location: &PbLocation,
        text: &dyn Fn(i64) -> &'a str,
        spent: &mut u64,
    ) -> Result<Vec<Frame>, ArtifactError> {
        let mut named = Vec::new();
        let lines = location.line.iter().take(MAX_DEPTH);
        let last = lines.len().saturating_sub(1);
        for (i, line) in lines.enumerate() {
            let Some(function) = self.functions.get(&line.function_id) else { continue };
            let (name, file) = (text(function.name), text(function.filename));
            charge(spent, std::mem::size_of::<Frame>() + name.len() + file.len())?;
            named.push(Frame {
                function: name.to_owned(),
                file: Some(file).filter(|f| !f.is_empty()).map(str::to_owned),
                line: u32::try_from(line.line).ok().filter(|l| *l > 0),
                address: Some(location.address).filter(|a| *a != 0),
                // pprof lists a location's inlined functions first, the caller last.
                inlined: i < last,
            });
        }
        if !named.is_empty() {
            return Ok(named);
        }
        // An unsymbolized location: `module+0xoffset`, as the heap-dump parsers write them.
        let frame = match self.mappings.get(&location.mapping_id) {
            Some(m) if location.address >= m.memory_start && location.address < m.memory_limit => {
                let path = text(m.filename);
                charge(spent, std::mem::size_of::<Frame>() + 2 * path.len() + 20)?;
                let offset = location.address - m.memory_start + m.file_offset;
                let module = path.rsplit('/').next().unwrap_or(path);
                Frame {
                    function: format!("{module}+0x{offset:x}"),
                    file: Some(path.to_owned()).filter(|p| !p.is_empty()),
                    line: None,
                    address: Some(offset),
                    inlined: false,
                }
            }
            _ => {
                charge(spent, std::mem::size_of::<Frame>() + 18)?;
                Frame::function(format!("0x{:x}", location.address))
            }
        };
        Ok(vec![frame])
    }
}

fn malformed(message: String) -> ArtifactError {
    ArtifactError::Malformed { format: FORMAT, line: 0, message }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::pprof::encode;

    #[test]
    fn reads_back_what_the_encoder_writes() {
        let mut p = Profile::new("leaks", vec![INUSE_SPACE, INUSE_OBJECTS]);
        let leaf = Frame {
            function: "leak".into(),
            file: Some("a.c".into()),
            line: Some(69),
            address: Some(0x10),
            inlined: false,
        };
        p.samples.push(Sample {
            stack: vec![leaf.clone(), Frame::function("main")],
            values: vec![300, 2],
            labels: vec![],
        });
        let d = decode(&encode(&p, "file")).unwrap();
        assert_eq!(d.profile.sample_types, p.sample_types);
        assert_eq!(d.profile.samples[0].values, [300, 2]);
        assert_eq!(d.profile.samples[0].stack[0], leaf);
        assert_eq!(d.profile.samples[0].stack[1].function, "main");
    }

    #[test]
    fn refuses_garbage_bombs_and_unknown_types() {
        assert!(decode(b"\x1f\x8bnot gzip").is_err());
        assert!(decode(&[0xff; 64]).is_err());
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut gz, &vec![0u8; (MAX_DECODED_BYTES + 10) as usize]).unwrap();
        let bomb = gz.finish().unwrap();
        assert!(bomb.len() < 1 << 20);
        assert_eq!(decode(&bomb).unwrap_err(), ArtifactError::DecompressedTooLarge { limit: MAX_DECODED_BYTES });
        // 64 MiB of empty samples (2 bytes each) compress to ~65 KB: refused before decoding.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut gz, &[0x12, 0x00].repeat((MAX_DECODED_BYTES / 2 - 8) as usize)).unwrap();
        let err = decode(&gz.finish().unwrap()).unwrap_err().to_string();
        assert!(err.contains("bytes of memory"), "{err}");
        // A function named by a 1 MiB string and 100 samples of 256 frames of it (25 GiB once
        // copied into the model) in a 1 MiB message: the model's bound stops it.
        let wide = PbProfile {
            string_table: vec!["".into(), "inuse_space".into(), "bytes".into(), "f".repeat(1 << 20)],
            sample_type: vec![crate::encode::pprof::PbValueType { r#type: 1, unit: 2 }],
            function: vec![PbFunction { id: 1, name: 3, ..Default::default() }],
            location: vec![PbLocation {
                id: 1,
                line: vec![crate::encode::pprof::PbLine { function_id: 1, line: 1 }],
                ..Default::default()
            }],
            sample: vec![
                crate::encode::pprof::PbSample { location_id: vec![1; 256], value: vec![1], label: vec![] };
                100
            ],
            ..Default::default()
        };
        let err = decode(&wide.encode_to_vec()).unwrap_err().to_string();
        assert!(err.contains("once read"), "{err}");
        let cpu = PbProfile {
            string_table: vec!["".into(), "cpu".into(), "nanoseconds".into()],
            sample_type: vec![crate::encode::pprof::PbValueType { r#type: 1, unit: 2 }],
            ..Default::default()
        };
        let err = decode(&cpu.encode_to_vec()).unwrap_err().to_string();
        assert!(err.contains("cpu/nanoseconds"), "{err}");
    }
}

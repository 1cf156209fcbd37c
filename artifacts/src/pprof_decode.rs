//! Reading pprof profiles (profile.proto, gzipped or not) into the model: the
//! heap profiles that Go's `net/http/pprof`, `jemalloc_pprof` and other
//! services serve, so that captures can diff them.
//!
//! Bounded: the decompressed size, the samples, the stack depth and the
//! string table are capped; a profile past a cap is refused, not truncated.

use crate::encode::pprof::{PbFunction, PbLocation, PbMapping, PbProfile};
use crate::model::{
    ALLOC_OBJECTS, ALLOC_SPACE, ArtifactError, Frame, GROWTH_OBJECTS, GROWTH_SPACE, INUSE_OBJECTS, INUSE_SPACE,
    LEAKED_OBJECTS, LEAKED_SPACE, Profile, Sample, ValueType,
};
use prost::Message;
use std::collections::HashMap;
use std::io::Read;

/// Largest decompressed profile accepted (a gzip bomb stops here).
pub const MAX_DECODED_BYTES: u64 = 64 << 20;
/// Most samples accepted in one profile.
pub const MAX_SAMPLES: usize = 1_000_000;
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
    let message = PbProfile::decode(raw).map_err(|e| malformed(format!("not a pprof profile: {e}")))?;
    if message.sample.len() > MAX_SAMPLES {
        return Err(malformed(format!("{} samples; at most {MAX_SAMPLES} are read", message.sample.len())));
    }
    let strings = &message.string_table;
    let text = |i: i64| usize::try_from(i).ok().and_then(|i| strings.get(i)).map_or("", String::as_str);
    let sample_types =
        message.sample_type.iter().map(|t| value_type(text(t.r#type), text(t.unit))).collect::<Result<Vec<_>, _>>()?;
    let frames = Frames::new(&message);
    let mut profile = Profile::new("heap", sample_types);
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
            stack.extend(frames.of(location, &text));
            if stack.len() >= MAX_DEPTH {
                stack.truncate(MAX_DEPTH);
                break;
            }
        }
        let labels = sample
            .label
            .iter()
            .filter(|l| l.str != 0)
            .map(|l| (text(l.key).to_owned(), text(l.str).to_owned()))
            .collect();
        profile.samples.push(Sample { stack, values: sample.value.clone(), labels });
    }
    let period_type = message.period_type.as_ref().map(|t| format!("{}/{}", text(t.r#type), text(t.unit)));
    Ok(Decoded { profile, period: message.period, period_type, time_nanos: message.time_nanos })
}

/// The model's sample type for a pprof one (heap profiles, and the model's own
/// leak and growth profiles). jemalloc_pprof names its in-use bytes `space`;
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

    fn of(&self, location: &PbLocation, text: &dyn Fn(i64) -> &'a str) -> Vec<Frame> {
        let named: Vec<Frame> = location
            .line
            .iter()
            .filter_map(|line| {
                let function = self.functions.get(&line.function_id)?;
                let file = Some(text(function.filename)).filter(|f| !f.is_empty()).map(str::to_owned);
                Some(Frame {
                    function: text(function.name).to_owned(),
                    file,
                    line: u32::try_from(line.line).ok().filter(|l| *l > 0),
                    address: Some(location.address).filter(|a| *a != 0),
                })
            })
            .collect();
        if !named.is_empty() {
            return named;
        }
        // An unsymbolized location: `module+0xoffset`, as the heap-dump parsers write them.
        let frame = match self.mappings.get(&location.mapping_id) {
            Some(m) if location.address >= m.memory_start && location.address < m.memory_limit => {
                let path = text(m.filename);
                let offset = location.address - m.memory_start + m.file_offset;
                let module = path.rsplit('/').next().unwrap_or(path);
                Frame {
                    function: format!("{module}+0x{offset:x}"),
                    file: Some(path.to_owned()).filter(|p| !p.is_empty()),
                    line: None,
                    address: Some(offset),
                }
            }
            _ => Frame { function: format!("0x{:x}", location.address), file: None, line: None, address: None },
        };
        vec![frame]
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
        let leaf = Frame { function: "leak".into(), file: Some("a.c".into()), line: Some(69), address: Some(0x10) };
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
        let cpu = PbProfile {
            string_table: vec!["".into(), "cpu".into(), "nanoseconds".into()],
            sample_type: vec![crate::encode::pprof::PbValueType { r#type: 1, unit: 2 }],
            ..Default::default()
        };
        let err = decode(&cpu.encode_to_vec()).unwrap_err().to_string();
        assert!(err.contains("cpu/nanoseconds"), "{err}");
    }
}

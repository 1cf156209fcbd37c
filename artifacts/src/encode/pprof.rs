//! The pprof format (profile.proto, gzipped), written with prost-derived
//! messages: no build script, no protoc.

use crate::model::{Frame, Profile};
use flate2::Compression;
use flate2::write::GzEncoder;
use prost::Message;
use std::collections::HashMap;
use std::io::Write;

#[derive(Clone, PartialEq, Message)]
pub struct PbProfile {
    #[prost(message, repeated, tag = "1")]
    pub sample_type: Vec<PbValueType>,
    #[prost(message, repeated, tag = "2")]
    pub sample: Vec<PbSample>,
    #[prost(message, repeated, tag = "3")]
    pub mapping: Vec<PbMapping>,
    #[prost(message, repeated, tag = "4")]
    pub location: Vec<PbLocation>,
    #[prost(message, repeated, tag = "5")]
    pub function: Vec<PbFunction>,
    #[prost(string, repeated, tag = "6")]
    pub string_table: Vec<String>,
    #[prost(int64, tag = "9")]
    pub time_nanos: i64,
    #[prost(message, optional, tag = "11")]
    pub period_type: Option<PbValueType>,
    #[prost(int64, tag = "12")]
    pub period: i64,
    #[prost(int64, tag = "14")]
    pub default_sample_type: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct PbValueType {
    #[prost(int64, tag = "1")]
    pub r#type: i64,
    #[prost(int64, tag = "2")]
    pub unit: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct PbSample {
    #[prost(uint64, repeated, tag = "1")]
    pub location_id: Vec<u64>,
    #[prost(int64, repeated, tag = "2")]
    pub value: Vec<i64>,
    #[prost(message, repeated, tag = "3")]
    pub label: Vec<PbLabel>,
}

#[derive(Clone, PartialEq, Message)]
pub struct PbLabel {
    #[prost(int64, tag = "1")]
    pub key: i64,
    #[prost(int64, tag = "2")]
    pub str: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct PbMapping {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(uint64, tag = "2")]
    pub memory_start: u64,
    #[prost(uint64, tag = "3")]
    pub memory_limit: u64,
    #[prost(uint64, tag = "4")]
    pub file_offset: u64,
    #[prost(int64, tag = "5")]
    pub filename: i64,
    #[prost(bool, tag = "7")]
    pub has_functions: bool,
}

#[derive(Clone, PartialEq, Message)]
pub struct PbLocation {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(uint64, tag = "2")]
    pub mapping_id: u64,
    #[prost(uint64, tag = "3")]
    pub address: u64,
    #[prost(message, repeated, tag = "4")]
    pub line: Vec<PbLine>,
}

#[derive(Clone, PartialEq, Message)]
pub struct PbLine {
    #[prost(uint64, tag = "1")]
    pub function_id: u64,
    #[prost(int64, tag = "2")]
    pub line: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct PbFunction {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(int64, tag = "2")]
    pub name: i64,
    #[prost(int64, tag = "3")]
    pub system_name: i64,
    #[prost(int64, tag = "4")]
    pub filename: i64,
}

/// Interns strings, functions and locations while building a profile; the
/// keys borrow from the profile, so each name is copied once, into the message.
#[derive(Default)]
struct Tables<'a> {
    strings: Vec<&'a str>,
    string_ids: HashMap<&'a str, i64>,
    functions: Vec<PbFunction>,
    function_ids: HashMap<(&'a str, Option<&'a str>), u64>,
    locations: Vec<PbLocation>,
    /// Keyed by the frames of one address: the inlined ones, then their caller.
    location_ids: HashMap<&'a [Frame], u64>,
}

impl<'a> Tables<'a> {
    fn string(&mut self, s: &'a str) -> i64 {
        if let Some(id) = self.string_ids.get(s) {
            return *id;
        }
        let id = self.strings.len() as i64;
        self.strings.push(s);
        self.string_ids.insert(s, id);
        id
    }

    fn function(&mut self, frame: &'a Frame) -> u64 {
        let key = (frame.function.as_str(), frame.file.as_deref());
        if let Some(id) = self.function_ids.get(&key) {
            return *id;
        }
        let id = self.functions.len() as u64 + 1;
        let name = self.string(&frame.function);
        let filename = frame.file.as_deref().map_or(0, |f| self.string(f));
        self.functions.push(PbFunction { id, name, system_name: name, filename });
        self.function_ids.insert(key, id);
        id
    }

    /// The location of `frames`: one address, with a line per function,
    /// innermost first and the caller they were inlined into last (as pprof specifies).
    fn location(&mut self, frames: &'a [Frame]) -> u64 {
        if let Some(id) = self.location_ids.get(frames) {
            return *id;
        }
        let line = frames
            .iter()
            .map(|f| PbLine { function_id: self.function(f), line: f.line.map_or(0, i64::from) })
            .collect();
        let id = self.locations.len() as u64 + 1;
        self.locations.push(PbLocation {
            id,
            // One synthetic mapping: symbols are already resolved.
            mapping_id: 1,
            address: frames.last().and_then(|f| f.address).unwrap_or(0),
            line,
        });
        self.location_ids.insert(frames, id);
        id
    }
}

/// `stack` cut into the frames of each address: a run of inlined frames with the caller that ends it.
fn addresses(stack: &[Frame]) -> impl Iterator<Item = &[Frame]> {
    stack.split_inclusive(|f| !f.inlined)
}

/// Builds the pprof message of `profile`.
pub fn to_message(profile: &Profile, source: &str) -> PbProfile {
    let mut t = Tables::default();
    t.string("");
    let sample_type =
        profile.sample_types.iter().map(|v| PbValueType { r#type: t.string(v.kind), unit: t.string(v.unit) }).collect();
    let mut samples = Vec::with_capacity(profile.samples.len());
    for s in &profile.samples {
        let location_id = addresses(&s.stack).map(|frames| t.location(frames)).collect();
        let label = s.labels.iter().map(|(k, v)| PbLabel { key: t.string(k), str: t.string(v) }).collect();
        samples.push(PbSample { location_id, value: s.values.clone(), label });
    }
    let mapping = vec![PbMapping { id: 1, filename: t.string(source), has_functions: true, ..Default::default() }];
    // pprof opens on the default sample type (the last one when unset): bytes,
    // as the collapsed stacks and flame graphs show them, not object counts.
    let default_sample_type = profile.sample_types.get(profile.main_index()).map_or(0, |v| t.string(v.kind));
    PbProfile {
        sample_type,
        sample: samples,
        mapping,
        location: t.locations,
        function: t.functions,
        string_table: t.strings.into_iter().map(str::to_owned).collect(),
        time_nanos: 0,
        period_type: None,
        period: 0,
        default_sample_type,
    }
}

/// The gzipped protobuf bytes that `go tool pprof` reads.
pub fn encode(profile: &Profile, source: &str) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = write(profile, source, &mut out);
    out
}

/// Writes the gzipped protobuf of `profile` to `out` (the message is dropped before compressing).
pub fn write(profile: &Profile, source: &str, out: impl Write) -> std::io::Result<()> {
    let bytes = to_message(profile, source).encode_to_vec();
    let mut gz = GzEncoder::new(out, Compression::default());
    gz.write_all(&bytes)?;
    gz.finish()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{INUSE_OBJECTS, INUSE_SPACE, Sample};
    use flate2::read::GzDecoder;
    use std::io::Read;

    #[test]
    fn round_trips_through_protobuf() {
        let mut p = Profile::new("leaks", vec![INUSE_SPACE, INUSE_OBJECTS]);
        let leaf = Frame {
            function: "leak".into(),
            file: Some("a.c".into()),
            line: Some(69),
            address: Some(0x10),
            inlined: false,
        };
        let main = Frame::function("main");
        p.samples.push(Sample { stack: vec![leaf.clone(), main.clone()], values: vec![300, 2], labels: vec![] });
        p.samples.push(Sample { stack: vec![main], values: vec![5, 1], labels: vec![("kind".into(), "x".into())] });
        let mut raw = Vec::new();
        GzDecoder::new(&encode(&p, "file")[..]).read_to_end(&mut raw).unwrap();
        let m = PbProfile::decode(&raw[..]).unwrap();
        assert_eq!(m.string_table[0], "");
        assert_eq!(m.sample.len(), 2);
        assert_eq!(m.location.len(), 2, "main is interned once");
        assert_eq!(m.function.len(), 2);
        let name = |id: u64| {
            let f = m.function.iter().find(|f| f.id == id).unwrap();
            m.string_table[f.name as usize].clone()
        };
        let first = m.location.iter().find(|l| l.id == m.sample[0].location_id[0]).unwrap();
        assert_eq!(name(first.line[0].function_id), "leak");
        assert_eq!(first.line[0].line, 69);
        assert_eq!(m.sample[0].value, [300, 2]);
        assert_eq!(m.string_table[m.sample_type[0].r#type as usize], "inuse_space");
        assert_eq!(m.string_table[m.default_sample_type as usize], "inuse_space", "opens on the first type");
    }

    #[test]
    fn an_inline_chain_is_one_location_innermost_line_first() {
        let at = |function: &str, line, inlined| Frame {
            function: function.into(),
            file: Some("a.c".into()),
            line: Some(line),
            address: Some(0x40),
            inlined,
        };
        let mut p = Profile::new("leaks", vec![INUSE_SPACE]);
        let stack = vec![at("grab", 6, true), at("outer", 13, false), Frame::function("main")];
        p.samples.push(Sample { stack: stack.clone(), values: vec![64], labels: vec![] });
        let m = to_message(&p, "file");
        assert_eq!(m.sample[0].location_id.len(), 2, "grab and outer share one address");
        let first = m.location.iter().find(|l| l.id == m.sample[0].location_id[0]).unwrap();
        let named: Vec<(&str, i64)> = first
            .line
            .iter()
            .map(|l| (m.string_table[m.function[l.function_id as usize - 1].name as usize].as_str(), l.line))
            .collect();
        assert_eq!(named, [("grab", 6), ("outer", 13)]);
        assert_eq!(first.address, 0x40);
        // Read back, the chain is the same frames.
        let decoded = crate::pprof_decode::decode(&encode(&p, "file")).unwrap();
        assert_eq!(decoded.profile.samples[0].stack, stack);
    }
}

//! Profiles of the artifacts model as OTLP profiles (`v1development`, the
//! opentelemetry-proto 1.10.0 messages that the `opentelemetry-proto` crate
//! 0.33 carries): one OTLP profile per sample type (1.10 has one sample type
//! per profile), sharing one dictionary whose tables start with their empty
//! entry, and a period type and period so that profilers (Pyroscope) read
//! them as memory profiles rather than CPU ones.

use super::attributes::{scope, string};
use memleak_artifacts::{Frame, Profile};
use opentelemetry_proto::tonic::collector::profiles::v1development::ExportProfilesServiceRequest;
use opentelemetry_proto::tonic::profiles::v1development::{
    Function, KeyValueAndUnit, Line, Link, Location, Mapping, Profile as OtlpProfile, ProfilesDictionary,
    ResourceProfiles, Sample, ScopeProfiles, Stack, ValueType,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

/// Samples per exported profile; the heaviest are kept.
pub const MAX_SAMPLES: usize = 20_000;
/// Frames per stack (innermost first).
const MAX_FRAMES: usize = 128;

/// The dictionary being built, with the indexes of what it holds.
#[derive(Debug)]
struct Dictionary {
    tables: ProfilesDictionary,
    strings: HashMap<String, i32>,
    functions: HashMap<(i32, i32), i32>,
    locations: HashMap<(i32, u64, i64), i32>,
    stacks: HashMap<Vec<i32>, i32>,
    attributes: HashMap<(i32, String), i32>,
}

impl Dictionary {
    fn new() -> Self {
        // Every table starts with its zero value, which index 0 means "unset".
        let tables = ProfilesDictionary {
            mapping_table: vec![Mapping::default()],
            location_table: vec![Location::default()],
            function_table: vec![Function::default()],
            link_table: vec![Link::default()],
            string_table: vec![String::new()],
            attribute_table: vec![KeyValueAndUnit::default()],
            stack_table: vec![Stack::default()],
        };
        Dictionary {
            tables,
            strings: HashMap::from([(String::new(), 0)]),
            functions: HashMap::new(),
            locations: HashMap::new(),
            stacks: HashMap::new(),
            attributes: HashMap::new(),
        }
    }

    fn string(&mut self, s: &str) -> i32 {
        if let Some(i) = self.strings.get(s) {
            return *i;
        }
        let i = index(self.tables.string_table.len());
        self.tables.string_table.push(s.to_owned());
        self.strings.insert(s.to_owned(), i);
        i
    }

    fn location(&mut self, frame: &Frame) -> i32 {
        let name = self.string(&frame.function);
        let file = frame.file.as_deref().map_or(0, |f| self.string(f));
        let function = *self.functions.entry((name, file)).or_insert_with(|| {
            self.tables.function_table.push(Function {
                name_strindex: name,
                system_name_strindex: name,
                filename_strindex: file,
                start_line: 0,
            });
            index(self.tables.function_table.len() - 1)
        });
        let line = i64::from(frame.line.unwrap_or(0));
        let address = frame.address.unwrap_or(0);
        *self.locations.entry((function, address, line)).or_insert_with(|| {
            self.tables.location_table.push(Location {
                mapping_index: 0,
                address,
                lines: vec![Line { function_index: function, line, column: 0 }],
                attribute_indices: Vec::new(),
            });
            index(self.tables.location_table.len() - 1)
        })
    }

    fn stack(&mut self, frames: &[Frame]) -> i32 {
        let locations: Vec<i32> = frames.iter().take(MAX_FRAMES).map(|f| self.location(f)).collect();
        if let Some(i) = self.stacks.get(&locations) {
            return *i;
        }
        let i = index(self.tables.stack_table.len());
        self.tables.stack_table.push(Stack { location_indices: locations.clone() });
        self.stacks.insert(locations, i);
        i
    }

    fn attribute(&mut self, key: &str, value: &str) -> i32 {
        let key_index = self.string(key);
        if let Some(i) = self.attributes.get(&(key_index, value.to_owned())) {
            return *i;
        }
        let i = index(self.tables.attribute_table.len());
        let kv = string(key, value);
        self.tables.attribute_table.push(KeyValueAndUnit {
            key_strindex: key_index,
            value: kv.value,
            unit_strindex: 0,
        });
        self.attributes.insert((key_index, value.to_owned()), i);
        i
    }

    fn value_type(&mut self, kind: &str, unit: &str) -> ValueType {
        ValueType { type_strindex: self.string(kind), unit_strindex: self.string(unit) }
    }
}

fn index(len: usize) -> i32 {
    i32::try_from(len).unwrap_or(i32::MAX)
}

/// The export of `profile` with `context` as the profiles' attributes, taken at `at_nanos`.
pub fn request(
    profile: &Profile,
    context: &[(String, String)],
    at_nanos: u64,
    resource: &Resource,
) -> ExportProfilesServiceRequest {
    let mut dictionary = Dictionary::new();
    let mut heaviest: Vec<&memleak_artifacts::Sample> = profile.samples.iter().collect();
    if heaviest.len() > MAX_SAMPLES {
        heaviest.sort_by_key(|s| std::cmp::Reverse(s.values.first().copied().unwrap_or(0).unsigned_abs()));
        heaviest.truncate(MAX_SAMPLES);
    }
    let stacks: Vec<(i32, Vec<i32>)> = heaviest
        .iter()
        .map(|s| {
            let stack = dictionary.stack(&s.stack);
            let attributes = s.labels.iter().map(|(k, v)| dictionary.attribute(k, v)).collect();
            (stack, attributes)
        })
        .collect();
    let mut profile_attributes: Vec<i32> = context.iter().map(|(k, v)| dictionary.attribute(k, v)).collect();
    profile_attributes.push(dictionary.attribute("memleak.profile.name", &profile.name));
    let profiles = profile
        .sample_types
        .iter()
        .enumerate()
        .map(|(i, sample_type)| {
            let samples = heaviest
                .iter()
                .zip(&stacks)
                .filter_map(|(s, (stack, attributes))| {
                    let value = s.values.get(i).copied().filter(|v| *v != 0)?;
                    Some(Sample {
                        stack_index: *stack,
                        attribute_indices: attributes.clone(),
                        link_index: 0,
                        values: vec![value],
                        timestamps_unix_nano: Vec::new(),
                    })
                })
                .collect();
            // Memory profiles: "space"/"bytes" or "objects"/"count" per event, one event per unit.
            let (period_kind, period_unit) =
                if sample_type.unit == "bytes" { ("space", "bytes") } else { ("objects", "count") };
            OtlpProfile {
                sample_type: Some(dictionary.value_type(sample_type.kind, sample_type.unit)),
                samples,
                time_unix_nano: at_nanos,
                duration_nano: 0,
                period_type: Some(dictionary.value_type(period_kind, period_unit)),
                period: 1,
                profile_id: profile_id(),
                dropped_attributes_count: 0,
                original_payload_format: String::new(),
                original_payload: Vec::new(),
                attribute_indices: profile_attributes.clone(),
            }
        })
        .collect();
    ExportProfilesServiceRequest {
        resource_profiles: vec![ResourceProfiles {
            resource: Some(resource.clone()),
            scope_profiles: vec![ScopeProfiles { scope: Some(scope()), profiles, schema_url: String::new() }],
            schema_url: String::new(),
        }],
        dictionary: Some(dictionary.tables),
    }
}

/// 16 random bytes, never all zero (which the specification calls invalid).
fn profile_id() -> Vec<u8> {
    let random = || std::collections::hash_map::RandomState::new().build_hasher().finish();
    let mut id = [random().to_le_bytes(), random().to_le_bytes()].concat();
    if id.iter().all(|b| *b == 0) {
        id[0] = 1;
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;
    use memleak_artifacts::model::{LEAKED_OBJECTS, LEAKED_SPACE};

    #[test]
    fn tables_start_empty_and_stacks_resolve_to_their_frames() {
        let mut profile = Profile::new("leaks", vec![LEAKED_SPACE, LEAKED_OBJECTS]);
        let stack = vec![Frame::function("malloc"), Frame::function("leak_request_buffer"), Frame::function("main")];
        profile.samples.push(memleak_artifacts::Sample {
            stack: stack.clone(),
            values: vec![307_200, 3],
            labels: vec![],
        });
        profile.samples.push(memleak_artifacts::Sample { stack, values: vec![0, 0], labels: vec![] });
        let request =
            request(&profile, &[("memleak.artifact.format".into(), "heaptrack".into())], 1, &Resource::default());
        let d = request.dictionary.unwrap();
        assert_eq!(d.string_table[0], "");
        assert_eq!(
            (d.mapping_table[0].clone(), d.location_table[0].clone(), d.function_table[0], d.stack_table[0].clone()),
            Default::default()
        );
        let profiles = &request.resource_profiles[0].scope_profiles[0].profiles;
        assert_eq!(profiles.len(), 2, "one profile per sample type");
        let space = &profiles[0];
        assert_eq!(space.samples.len(), 1, "zero samples are left out");
        assert_eq!(space.samples[0].values, vec![307_200]);
        let names: Vec<&str> = d.stack_table[space.samples[0].stack_index as usize]
            .location_indices
            .iter()
            .map(|l| d.location_table[*l as usize].lines[0].function_index)
            .map(|f| d.string_table[d.function_table[f as usize].name_strindex as usize].as_str())
            .collect();
        assert_eq!(names, ["malloc", "leak_request_buffer", "main"]);
        let st = space.sample_type.unwrap();
        assert_eq!(
            (d.string_table[st.type_strindex as usize].as_str(), d.string_table[st.unit_strindex as usize].as_str()),
            ("leaked_space", "bytes")
        );
        assert!(space.period > 0 && space.period_type.is_some(), "a period, or Pyroscope reads CPU");
    }
}

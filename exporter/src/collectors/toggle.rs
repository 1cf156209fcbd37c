//! A collector's YAML section: the table's `enabled` key beside the collector's own options.
//!
//! The options struct denies unknown keys, so `enabled` is taken out of the
//! mapping before the struct sees it. The keys are still read by the YAML
//! parser itself, one by one, so an unknown key is reported at its own line.

use serde::de::{self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, Visitor};
use std::cell::Cell;
use std::fmt;

/// `collectors.<id>`: whether it is enabled (when the file says), and its options.
#[derive(Debug)]
pub struct Toggled<O> {
    pub enabled: Option<bool>,
    pub options: O,
}

impl<'de, O: de::Deserialize<'de>> de::Deserialize<'de> for Toggled<O> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let enabled = Cell::new(None);
        let options = O::deserialize(WithoutEnabled { inner: deserializer, enabled: &enabled })?;
        Ok(Toggled { enabled: enabled.get(), options })
    }
}

/// A deserializer of the section's mapping that hides its `enabled` entry from the visitor.
struct WithoutEnabled<'a, D> {
    inner: D,
    enabled: &'a Cell<Option<bool>>,
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for WithoutEnabled<'_, D> {
    type Error = D::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.inner.deserialize_map(Mapping { visitor, enabled: self.enabled })
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
        unit_struct newtype_struct seq tuple tuple_struct map struct enum identifier ignored_any
    }
}

struct Mapping<'a, V> {
    visitor: V,
    enabled: &'a Cell<Option<bool>>,
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Mapping<'_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        self.visitor.expecting(f)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.visitor.visit_map(Entries { map, enabled: self.enabled })
    }
}

struct Entries<'a, A> {
    map: A,
    enabled: &'a Cell<Option<bool>>,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Entries<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, A::Error> {
        let mut seed = Some(seed);
        loop {
            match self.map.next_key_seed(Key(&mut seed))? {
                None => return Ok(None),
                Some(Some(key)) => return Ok(Some(key)),
                Some(None) => self.enabled.set(Some(self.map.next_value()?)),
            }
        }
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, A::Error> {
        self.map.next_value_seed(seed)
    }
}

/// One key: `None` for `enabled`; any other goes to the options' own key seed
/// (taken only then, so it is still there for the key after `enabled`).
struct Key<'a, K>(&'a mut Option<K>);

impl<'de, K: DeserializeSeed<'de>> DeserializeSeed<'de> for Key<'_, K> {
    type Value = Option<K::Value>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de, K: DeserializeSeed<'de>> Visitor<'de> for Key<'_, K> {
    type Value = Option<K::Value>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an option name")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
        if key == "enabled" {
            return Ok(None);
        }
        let seed = self.0.take().ok_or_else(|| E::custom("a key was asked for twice"))?;
        seed.deserialize(key.into_deserializer()).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Knobs {
        max: Option<usize>,
        name: Option<String>,
    }

    fn read(yaml: &str) -> Result<Toggled<Knobs>, serde_norway::Error> {
        serde_norway::from_str(yaml)
    }

    #[test]
    fn enabled_is_taken_out_wherever_it_stands() {
        let t = read("max: 3\nenabled: false\nname: x\n").unwrap();
        assert_eq!((t.enabled, t.options), (Some(false), Knobs { max: Some(3), name: Some("x".into()) }));
        let t = read("enabled: true\n").unwrap();
        assert_eq!((t.enabled, t.options), (Some(true), Knobs { max: None, name: None }));
        let t = read("name: y\n").unwrap();
        assert_eq!((t.enabled, t.options.name.as_deref()), (None, Some("y")));
    }

    #[test]
    fn an_unknown_key_or_a_wrong_type_is_reported_at_its_line() {
        let err = read("enabled: true\nmax: 1\nmx: 2\n").unwrap_err().to_string();
        assert!(err.contains("unknown field `mx`") && err.contains("line 3"), "{err}");
        let err = read("max: 1\nenabled: maybe\n").unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
    }
}

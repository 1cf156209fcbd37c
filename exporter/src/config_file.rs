//! The YAML configuration file (`--config.file`), read section by section.
//!
//! Each section is deserialized straight from the text by its own options
//! type, so that an unknown key or a wrong type is reported with the key, the
//! line and the column, even though the collector table's sections are only
//! known at run time (a section is looked up by its path, e.g.
//! `collectors.process`, in a fresh parse of the small file: no intermediate
//! value that would lose the positions).

use serde::de::{self, DeserializeOwned, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use std::fmt;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

/// Largest configuration file read (a larger one is a mistake, not a configuration).
const MAX_BYTES: u64 = 1 << 20;

/// The file's text, or nothing when no file was given.
#[derive(Debug, Default)]
pub struct ConfigFile {
    source: Option<(PathBuf, String)>,
}

impl ConfigFile {
    /// Reads the file (a regular file of at most 1 MiB, see `bounded_file`); the error names it.
    pub fn load(path: &Path) -> anyhow::Result<ConfigFile> {
        let text = crate::bounded_file::read_text(path, MAX_BYTES, "config file")?;
        Ok(ConfigFile { source: Some((path.to_owned(), text)) })
    }

    /// A file with this text (for tests and the README example).
    pub fn from_text(text: &str) -> ConfigFile {
        ConfigFile { source: Some((PathBuf::from("(text)"), text.to_owned())) }
    }

    /// Checks that the top-level keys are among `sections` and the keys under
    /// `collectors` among `collectors`.
    pub fn check_keys(&self, sections: &[&str], collectors: &[&str]) -> anyhow::Result<()> {
        let Some((path, text)) = self.document() else { return Ok(()) };
        let seed = Keys { allowed: sections, nested: Some(("collectors", collectors)) };
        seed.deserialize(serde_norway::Deserializer::from_str(text)).map_err(|e| located(path, &e))
    }

    /// The section at `path` (`["web"]`, `["collectors", "process"]`) as a `T`; `None` when absent or empty.
    pub fn section<T: DeserializeOwned>(&self, path: &[&str]) -> anyhow::Result<Option<T>> {
        let Some((file, text)) = self.document() else { return Ok(None) };
        At { path, target: PhantomData::<T> }
            .deserialize(serde_norway::Deserializer::from_str(text))
            .map_err(|e| located(file, &e))
    }

    /// The path and text, unless there is no file or it holds only blanks.
    fn document(&self) -> Option<(&Path, &str)> {
        let (path, text) = self.source.as_ref()?;
        (!text.trim().is_empty()).then_some((path.as_path(), text.as_str()))
    }
}

/// The error with the file's name and always the line (serde_norway leaves out line 1, column 1).
fn located(file: &Path, err: &serde_norway::Error) -> anyhow::Error {
    let text = err.to_string();
    match err.location() {
        Some(at) if !text.contains(" at line ") => {
            anyhow::anyhow!("config file {}: {text} at line {} column {}", file.display(), at.line(), at.column())
        }
        _ => anyhow::anyhow!("config file {}: {text}", file.display()),
    }
}

/// Finds the value at `path` in nested mappings and deserializes it as `T`.
struct At<'a, T> {
    path: &'a [&'a str],
    target: PhantomData<T>,
}

impl<'de, T: de::Deserialize<'de>> DeserializeSeed<'de> for At<'_, T> {
    type Value = Option<T>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<T>, D::Error> {
        match self.path {
            [] => <Option<T> as de::Deserialize>::deserialize(deserializer),
            _ => deserializer.deserialize_any(self),
        }
    }
}

impl<'de, T: de::Deserialize<'de>> Visitor<'de> for At<'_, T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a mapping with the key {:?}", self.path.first().copied().unwrap_or_default())
    }

    fn visit_unit<E: de::Error>(self) -> Result<Option<T>, E> {
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<T>, A::Error> {
        let [key, rest @ ..] = self.path else { return Ok(None) };
        let mut found = None;
        while let Some(name) = map.next_key::<String>()? {
            if name == *key {
                found = map.next_value_seed(At { path: rest, target: PhantomData::<T> })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// The keys a mapping may have; for one of them, the keys its own mapping may have.
struct Keys<'a> {
    allowed: &'a [&'a str],
    nested: Option<(&'a str, &'a [&'a str])>,
}

impl<'de> DeserializeSeed<'de> for Keys<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Keys<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a mapping with the keys {}", self.allowed.join(", "))
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key_seed(Known(self.allowed))? {
            match self.nested {
                Some((name, allowed)) if name == key => {
                    map.next_value_seed(Keys { allowed, nested: None })?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// A key that must be one of a list, refused while it is read so the error carries its line.
struct Known<'a>(&'a [&'a str]);

impl<'de> DeserializeSeed<'de> for Known<'_> {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<String, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Known<'_> {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<String, E> {
        if self.0.contains(&key) {
            Ok(key.to_owned())
        } else {
            // `unknown_field` needs a 'static list; the message is the same.
            Err(E::custom(format_args!("unknown field `{key}`, expected one of `{}`", self.0.join("`, `"))))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Web {
        listen_address: Option<String>,
        max: Option<usize>,
    }

    const TEXT: &str = "web:\n  listen_address: \":1\"\ncollectors:\n  process:\n    group_by: pid\n  psi:\n";

    #[test]
    fn sections_are_found_by_path() {
        let file = ConfigFile::from_text(TEXT);
        let web: Option<Web> = file.section(&["web"]).unwrap();
        assert_eq!(web, Some(Web { listen_address: Some(":1".into()), max: None }));
        let process: Option<serde_norway::Value> = file.section(&["collectors", "process"]).unwrap();
        assert_eq!(process.unwrap()["group_by"].as_str(), Some("pid"));
        assert!(file.section::<Web>(&["log"]).unwrap().is_none(), "absent");
        assert!(file.section::<Web>(&["collectors", "psi"]).unwrap().is_none(), "empty");
        assert!(ConfigFile::default().section::<Web>(&["web"]).unwrap().is_none(), "no file");
        assert!(ConfigFile::from_text("  \n").section::<Web>(&["web"]).unwrap().is_none(), "blank file");
    }

    #[test]
    fn unknown_keys_and_wrong_types_name_the_key_and_line() {
        let file = ConfigFile::from_text("web:\n  max: 1\n  listen_adress: x\n");
        let err = format!("{:#}", file.section::<Web>(&["web"]).unwrap_err());
        assert!(err.contains("listen_adress") && err.contains("line 3"), "{err}");
        let file = ConfigFile::from_text("web:\n  listen_address: x\n  max: lots\n");
        let err = format!("{:#}", file.section::<Web>(&["web"]).unwrap_err());
        assert!(err.contains("invalid type") && err.contains("line 3"), "{err}");

        let file = ConfigFile::from_text(TEXT);
        assert!(file.check_keys(&["web", "collectors"], &["process", "psi"]).is_ok());
        let err = format!("{:#}", file.check_keys(&["web", "collectors"], &["process"]).unwrap_err());
        assert!(err.contains("unknown field `psi`, expected one of `process`") && err.contains("line 6"), "{err}");
        let err = format!("{:#}", file.check_keys(&["collectors"], &["process", "psi"]).unwrap_err());
        assert!(err.contains("unknown field `web`") && err.contains("line 1"), "{err}");
    }
}

//! Options: one struct per collector that is at once its command-line group
//! (`clap::Args`) and its YAML section (serde), resolved once into its `Config`.
//!
//! Every field is an `Option` (or a list): unset means "the default", so the
//! exporter can lay the command line over the file field by field without a
//! line per knob. A field's name is its YAML key and, in kebab case after the
//! collector's prefix, its flag (`group_by` → `--collector.process.group-by`);
//! the exporter adds the prefix, so no flag name is written twice.

use crate::collector::Collector;
use crate::fsroot::FsRoots;
use crate::model::CollectorSpec;
use regex::Regex;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A group of options and what they resolve into.
pub trait Options: clap::Args + Serialize + DeserializeOwned + Default + 'static {
    /// The validated settings (defaults applied) the options stand for.
    type Config: Send + 'static;

    /// Validates the options and applies the defaults; an error names the field.
    fn resolve(self) -> Result<Self::Config, OptionError>;
}

/// A collector as the exporter's collector table takes it: its spec, its
/// options, and its constructor from their `Config`.
pub trait Configurable: Collector + Sized + 'static {
    const SPEC: &'static CollectorSpec;
    type Options: Options;

    /// Builds the collector (only when it is enabled).
    fn build(roots: &FsRoots, config: <Self::Options as Options>::Config) -> std::io::Result<Self>;
}

/// The options of a collector that has no knob besides being on or off.
#[derive(Debug, Default, Clone, clap::Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoOptions {}

impl Options for NoOptions {
    type Config = ();

    fn resolve(self) -> Result<(), OptionError> {
        Ok(())
    }
}

/// A value `resolve` refused: the field (YAML key) and why, in the user's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct OptionError {
    pub key: &'static str,
    pub message: String,
}

impl OptionError {
    pub fn new(key: &'static str, message: impl Into<String>) -> Self {
        OptionError { key, message: message.into() }
    }

    /// A problem with an environment variable, which no flag or config key sets: the message
    /// names the variable itself.
    pub fn environment(message: impl Into<String>) -> Self {
        OptionError { key: Self::ENVIRONMENT, message: message.into() }
    }

    /// The key of `environment` errors.
    pub const ENVIRONMENT: &'static str = "";
}

/// Compiles `pattern` so that it must match the whole value; an error shows
/// the user's own pattern, not the anchored one.
pub fn whole_match(key: &'static str, pattern: &str) -> Result<Regex, OptionError> {
    let invalid = |e: regex::Error| OptionError::new(key, format!("invalid regex {pattern:?}: {e}"));
    Regex::new(pattern).map_err(invalid)?;
    Regex::new(&format!("^(?:{pattern})$")).map_err(invalid)
}

/// `whole_match` of a pattern that may be unset.
pub fn optional_match(key: &'static str, pattern: Option<&str>) -> Result<Option<Regex>, OptionError> {
    pattern.map(|p| whole_match(key, p)).transpose()
}

/// A count that must be at least 1, or `default` when unset.
pub fn at_least_one(key: &'static str, value: Option<usize>, default: usize) -> Result<usize, OptionError> {
    match value {
        Some(0) => Err(OptionError::new(key, "must be at least 1")),
        Some(n) => Ok(n),
        None => Ok(default),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regexes_match_whole_values_and_errors_show_the_users_pattern() {
        let r = whole_match("include", "a_.*|nginx").unwrap();
        assert!(r.is_match("nginx") && r.is_match("a_x") && !r.is_match("nginx2"));
        let err = whole_match("include", "(java").unwrap_err();
        assert_eq!(err.key, "include");
        assert!(err.message.contains("\"(java\"") && !err.message.contains("^(?:"), "{err}");
    }

    #[test]
    fn counts_are_positive_or_default() {
        assert_eq!(at_least_one("n", None, 5), Ok(5));
        assert_eq!(at_least_one("n", Some(2), 5), Ok(2));
        assert_eq!(at_least_one("n", Some(0), 5).unwrap_err().to_string(), "n: must be at least 1");
    }
}

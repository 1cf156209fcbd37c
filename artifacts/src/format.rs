//! What a format module declares: how to recognize its artifacts and how to parse them.

use crate::model::{ArtifactError, Ingested};

/// A parser of one artifact format.
#[derive(Debug)]
pub struct Format {
    /// The format's id (`massif`, `memcheck`, …): its module name and `Ingested::format`.
    pub id: &'static str,
    /// Whether the input looks like this format (from its first few KiB).
    pub sniff: fn(&str) -> bool,
    /// A pure function of the text: no I/O, no clock.
    pub parse: fn(&str) -> Result<Ingested, ArtifactError>,
}

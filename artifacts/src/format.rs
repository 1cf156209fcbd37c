//! What a format module declares: its id, what it reads, how to recognize it and how to parse it.

use crate::meter::Meter;
use crate::model::{ArtifactError, Ingested};

/// One artifact format; each format module exports one as `FORMAT`.
#[derive(Debug)]
pub struct Format {
    /// The module name, also `Ingested::format`.
    pub id: &'static str,
    /// What the format is, for `ingest --help` and the README.
    pub about: &'static str,
    /// Whether the input looks like this format (from its first 64 KiB).
    pub sniff: fn(&str) -> bool,
    /// A pure function of the text (no I/O, no clock) that keeps its model within the meter's budget.
    pub parse: fn(&str, &mut Meter) -> Result<Ingested, ArtifactError>,
}

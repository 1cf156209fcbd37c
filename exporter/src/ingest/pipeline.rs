//! One artifact from bytes to a symbolized model, within its budget: what the
//! `ingest` command and the watched folders share.

use memleak_artifacts::symbolize::{SymbolPath, Unsymbolized, symbolize};
use memleak_artifacts::{ArtifactError, Budget, Ingested, detect};
use std::io::Read;
use std::time::Instant;

/// An artifact read, parsed and symbolized.
#[derive(Debug)]
pub struct Converted {
    pub ingested: Ingested,
    /// Modules whose frames stay `module+0xoffset`, and why.
    pub unsymbolized: Vec<Unsymbolized>,
}

/// Reads `input` (`stored_size` bytes when known) within `budget`, by `deadline`, and symbolizes it.
pub fn convert(
    input: impl Read,
    stored_size: Option<u64>,
    budget: &Budget,
    symbols: &SymbolPath,
    deadline: Instant,
) -> Result<Converted, ArtifactError> {
    if let Some(size) = stored_size
        && size > budget.file_bytes
    {
        return Err(ArtifactError::FileTooLarge { size, limit: budget.file_bytes });
    }
    let mut ingested = detect::ingest_read(input, stored_size, budget, deadline)?;
    let unsymbolized = symbolize(&mut ingested.profiles, symbols, budget.parsed_bytes, deadline);
    if Instant::now() > deadline {
        return Err(ArtifactError::TimedOut { limit: budget.time });
    }
    Ok(Converted { ingested, unsymbolized })
}

/// The unsymbolized modules as one line: `a.so (not found), b.so (on procfs)`.
pub fn unsymbolized_line(unsymbolized: &[Unsymbolized]) -> String {
    unsymbolized.iter().map(|u| format!("{} ({})", u.module, u.reason)).collect::<Vec<_>>().join(", ")
}

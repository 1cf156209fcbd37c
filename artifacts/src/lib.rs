//! What memory tools and captures produce, read and written: the artifact
//! model (profiles, records, totals), one module per format in one format
//! table, detection and decompression, the pprof / collapsed-stack /
//! flame-graph / JSON-summary encoders, symbolization and leak-site ranking,
//! all within a budget per artifact (`budget`, `meter`).
//!
//! Parsers are pure functions of the text (no I/O, no clock): they import the
//! model and the shared helpers, never the detection that lists them, and
//! keep what they build within the meter they are given.

pub mod ages;
pub mod budget;
pub mod decompress;
pub mod demangle;
pub mod detect;
pub mod encode;
pub mod format;
pub mod formats;
pub mod growth;
pub mod invariant;
pub mod meter;
pub mod model;
pub mod pprof_budget;
pub mod pprof_decode;
pub mod sites;
pub mod symbolize;

pub mod heapprof;
pub mod sanitizer;
pub mod valgrind;

pub mod asan;
pub mod bpftrace;
pub mod heaptrack;
pub mod jemalloc;
pub mod lsan;
pub mod massif;
pub mod memcheck;
pub mod mimalloc;
pub mod tcmalloc;

pub use budget::Budget;
pub use format::Format;
pub use formats::FORMATS;
pub use meter::Meter;
pub use model::{ArtifactError, Frame, Ingested, Profile, Record, Sample, Severity, ValueType};

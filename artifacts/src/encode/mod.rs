//! Encoders of the model: pprof, collapsed stacks, SVG flame graphs and the JSON summary.

pub mod flamegraph;
pub mod folded;
pub mod pprof;
pub mod summary;

//! The metric model of memleak-exporter, its exposition encoders, and one
//! module per live collector (`psi`, `host_memory`, `process`, `cgroup`, `pmc`).
//!
//! A collector module declares its [`MetricSpec`]s next to the code that emits
//! them, lists them in its [`CollectorSpec`], implements [`Collector`], declares
//! its knobs once in an [`Options`] struct, and ties the three together with
//! [`Configurable`]; the exporter's collector table holds one line per collector.

pub mod collector;
pub mod encode;
pub mod fsroot;
pub mod kv;
pub mod model;
pub mod monotonic;
pub mod options;
pub mod problem;

pub mod cgroup;
pub mod host_memory;
pub mod pmc;
pub mod process;
pub mod psi;

pub use collector::{Collection, Collector, ScrapeContext, ServedProfile};
pub use fsroot::FsRoots;
pub use model::{CollectorSpec, Family, HistogramValue, MetricSet, MetricSpec, MetricType, Series};
pub use monotonic::{Limits, MonotonicCounters};
pub use options::{Configurable, NoOptions, OptionError, Options};
pub use problem::{Problem, ProblemKind};

//! The metric model of memleak-exporter, its exposition encoders, and one
//! module per live collector (`psi`, `host_memory`, `process`, `cgroup`, `pmc`).
//!
//! A module declares its [`MetricSpec`]s next to the code that emits them and
//! implements [`Collector`]; [`registry`] lists the collectors.

pub mod encode;
pub mod fsroot;
pub mod kv;
pub mod model;
pub mod problem;
pub mod registry;
pub mod roles;

pub mod cgroup;
pub mod host_memory;
pub mod memory_syscalls;
pub mod page_faults;
pub mod pmc;
pub mod process;
pub mod psi;

pub use fsroot::FsRoots;
pub use model::{Family, HistogramValue, MetricSet, MetricSpec, MetricType, Series};
pub use problem::{Problem, ProblemKind};
pub use roles::{Capture, Collection, Collector, ScrapeContext};

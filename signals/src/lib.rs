//! The common model of memleak-exporter and one module per signal technology.
//!
//! Every technology lives in its own module named after it (`psi`, `host_memory`,
//! `process`, `cgroup`, …). A module declares its [`MetricSpec`]s next to the code
//! that emits them and offers one or more of the three roles in [`roles`]:
//! a scrape-time [`Collector`], a pure parser of artifacts (an entry of
//! [`artifact::detect::FORMATS`]), or a bounded [`Capture`]. [`registry`] lists
//! the collectors; `FORMATS` lists the parsers.

pub mod encode;
pub mod fsroot;
pub mod kv;
pub mod model;
pub mod problem;
pub mod registry;
pub mod roles;
pub mod sanitizer;
pub mod valgrind;

pub mod cgroup;
pub mod host_memory;
pub mod memory_syscalls;
pub mod page_faults;
pub mod pmc;
pub mod process;
pub mod psi;

pub mod artifact;
pub mod asan;
pub mod bpftrace;
pub mod heapprof;
pub mod heaptrack;
pub mod jemalloc;
pub mod lsan;
pub mod massif;
pub mod memcheck;
pub mod mimalloc;
pub mod tcmalloc;

pub use fsroot::FsRoots;
pub use model::{Family, HistogramValue, MetricSet, MetricSpec, MetricType, Series};
pub use problem::{Problem, ProblemKind};
pub use roles::{Capture, Collection, Collector, ScrapeContext};

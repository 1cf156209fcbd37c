//! The format table: every artifact format, in the order detection tries them.

use crate::format::Format;

/// Every artifact format, most specific first.
pub static FORMATS: &[Format] = &[
    Format { id: "massif", sniff: crate::massif::sniff, parse: crate::massif::parse },
    Format { id: "heaptrack", sniff: crate::heaptrack::sniff, parse: crate::heaptrack::parse },
    Format { id: "memcheck", sniff: crate::memcheck::sniff, parse: crate::memcheck::parse },
    Format { id: "lsan", sniff: crate::lsan::sniff, parse: crate::lsan::parse },
    Format { id: "asan", sniff: crate::asan::sniff, parse: crate::asan::parse },
    Format { id: "jemalloc", sniff: crate::jemalloc::sniff, parse: crate::jemalloc::parse },
    Format { id: "tcmalloc", sniff: crate::tcmalloc::sniff, parse: crate::tcmalloc::parse },
    Format { id: "mimalloc", sniff: crate::mimalloc::sniff, parse: crate::mimalloc::parse },
    Format { id: "bpftrace", sniff: crate::bpftrace::sniff, parse: crate::bpftrace::parse },
];

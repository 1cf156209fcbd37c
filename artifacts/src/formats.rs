//! The format table: every artifact format, in the order detection tries them.

use crate::format::Format;
use crate::{asan, bpftrace, heaptrack, jemalloc, lsan, massif, memcheck, mimalloc, tcmalloc};

/// Every artifact format, most specific first: detection takes the first
/// whose `sniff` accepts the input's head.
pub static FORMATS: &[&Format] = &[
    &massif::FORMAT,
    &heaptrack::FORMAT,
    &memcheck::FORMAT,
    &lsan::FORMAT,
    &asan::FORMAT,
    &jemalloc::FORMAT,
    &tcmalloc::FORMAT,
    &mimalloc::FORMAT,
    &bpftrace::FORMAT,
];

#[cfg(test)]
mod tests {
    use super::FORMATS;
    use std::collections::HashSet;

    #[test]
    fn ids_are_unique_and_name_their_module_and_fixtures() {
        let ids: HashSet<&str> = FORMATS.iter().map(|f| f.id).collect();
        assert_eq!(ids.len(), FORMATS.len());
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        for format in FORMATS {
            let file = root.join("src").join(format!("{}.rs", format.id));
            let dir = root.join("src").join(format.id).join("mod.rs");
            assert!(file.is_file() || dir.is_file(), "format {} has no module of that name", format.id);
            assert!(root.join("tests/fixtures").join(format.id).is_dir(), "format {} has no fixtures", format.id);
            assert!(!format.about.is_empty() && !format.about.ends_with('.'), "{}: about is a phrase", format.id);
        }
    }
}

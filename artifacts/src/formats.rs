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

    #[test]
    fn every_format_module_has_its_table_line() {
        // Read from the sources, so a module that `lib.rs` does not declare is found too.
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let ids: HashSet<&str> = FORMATS.iter().map(|f| f.id).collect();
        let declares = |text: String| text.lines().any(|l| l.starts_with("pub static FORMAT: Format"));
        let mut modules = Vec::new();
        for entry in std::fs::read_dir(&src).unwrap() {
            let path = entry.unwrap().path();
            let (name, file) = if path.is_dir() {
                (path.file_name().unwrap().to_string_lossy().into_owned(), path.join("mod.rs"))
            } else {
                (path.file_stem().unwrap().to_string_lossy().into_owned(), path.clone())
            };
            if std::fs::read_to_string(&file).is_ok_and(declares) {
                modules.push(name);
            }
        }
        for module in &modules {
            assert!(
                ids.contains(module.as_str()),
                "the format module {module} has no line in FORMATS (artifacts/src/formats.rs), or its id differs \
                 from its module's name"
            );
        }
        assert_eq!(modules.len(), FORMATS.len(), "format modules {modules:?} against the table {ids:?}");
    }
}

//! Symbol names as people read them: Rust (legacy and v0) and C++ names demangled.

/// A symbol as people read it: Rust names demangled (legacy and v0) without
/// their `::h<hash>` suffix, which tools such as heaptrack leave on names they
/// demangle themselves; C++ (Itanium) names demangled; C names unchanged.
pub fn demangle(name: &str) -> String {
    if let Ok(rust) = rustc_demangle::try_demangle(name) {
        return strip_hash(format!("{rust:#}"));
    }
    if name.starts_with("_Z")
        && let Ok(symbol) = cpp_demangle::Symbol::new(name)
        && let Ok(text) = symbol.demangle()
    {
        return text;
    }
    strip_hash(name.to_owned())
}

fn strip_hash(demangled: String) -> String {
    match demangled.rsplit_once("::h") {
        Some((head, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => head.to_owned(),
        _ => demangled,
    }
}

#[cfg(test)]
mod tests {
    use super::demangle;

    #[test]
    fn demangles_rust_cpp_and_leaves_c() {
        assert_eq!(demangle("_ZN7leaky_r17leak_token_buffer17hc84e8d3c27b8193bE"), "leaky_r::leak_token_buffer");
        assert_eq!(demangle("leaky_r::leak_token_buffer::hc84e8d3c27b8193b"), "leaky_r::leak_token_buffer");
        assert_eq!(demangle("_Znwm"), "operator new(unsigned long)");
        assert_eq!(demangle("_ZN5cache6insertERKSsi"), "cache::insert(std::string const&, int)");
        assert_eq!(demangle("leak_request_buffer"), "leak_request_buffer");
        assert!(
            demangle("_RNvMs4_NtCs6vSB1gVYwcr_5alloc7raw_vecNtB5_11RawVecInner15try_allocate_in")
                .contains("RawVecInner")
        );
    }
}

//! Symbol names as people read them: Rust (legacy and v0) and C++ names
//! demangled, within a size cap (back-references can make a short mangled
//! name expand enormously).

use crate::meter::NAME_BYTES;
use std::fmt::{self, Write};

/// Mangled names longer than this are not demangled (only cut): real ones are far shorter.
const MANGLED_BYTES: usize = 4 * NAME_BYTES;

/// A symbol as people read it: Rust names demangled (legacy and v0) without
/// their `::h<hash>` suffix, which tools such as heaptrack leave on names they
/// demangle themselves; C++ (Itanium) names demangled; C names unchanged. At
/// most `NAME_BYTES` (then ending in `…`).
pub fn demangle(name: &str) -> String {
    if name.len() <= MANGLED_BYTES {
        if let Ok(rust) = rustc_demangle::try_demangle(name) {
            let mut out = Bounded::default();
            let complete = write!(out, "{rust:#}").is_ok();
            return if complete { strip_hash(out.text) } else { out.cut() };
        }
        if name.starts_with("_Z")
            && let Ok(symbol) = cpp_demangle::Symbol::new(name)
        {
            let mut out = Bounded::default();
            match symbol.structured_demangle(&mut out, &cpp_demangle::DemangleOptions::default()) {
                Ok(()) => return out.text,
                Err(_) if out.full => return out.cut(),
                Err(_) => {}
            }
        }
    }
    let mut out = Bounded::default();
    if out.write_str(name).is_err() {
        return out.cut();
    }
    strip_hash(out.text)
}

/// Demangled text that stops at `NAME_BYTES`.
#[derive(Default)]
struct Bounded {
    text: String,
    full: bool,
}

impl Bounded {
    fn cut(mut self) -> String {
        self.text.push('…');
        self.text
    }
}

impl fmt::Write for Bounded {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = NAME_BYTES - '…'.len_utf8() - self.text.len();
        if s.len() <= room {
            self.text.push_str(s);
            return Ok(());
        }
        let mut end = room;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        self.text.push_str(&s[..end]);
        self.full = true;
        Err(fmt::Error)
    }
}

fn strip_hash(demangled: String) -> String {
    match demangled.rsplit_once("::h") {
        Some((head, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => head.to_owned(),
        _ => demangled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn expansion_and_length_are_capped() {
        // Each template argument repeats the previous ones through substitutions: the
        // demangled text doubles per level.
        let mut bomb = String::from("_Z1fI1A");
        for i in 0..40 {
            bomb.push_str(&format!("S{}_", if i == 0 { String::new() } else { (i - 1).to_string() }));
        }
        bomb.push_str("EvT_");
        let out = demangle(&bomb);
        assert!(out.len() <= NAME_BYTES, "{}", out.len());
        let long = "x".repeat(MANGLED_BYTES * 2);
        let out = demangle(&long);
        assert!(out.len() <= NAME_BYTES && out.ends_with('…'));
    }
}

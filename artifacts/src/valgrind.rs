//! What Valgrind tools share: their frame descriptions.

use crate::model::Frame;

/// `0x1092A5: leak_request_buffer (leaky_a.c:69)`, `0x4C2D: malloc (in /lib/x.so)`,
/// `0x1: ???` (Massif tree nodes and memcheck's text stacks after `at`/`by`).
pub fn frame(desc: &str) -> Frame {
    let (address, rest) = match desc.split_once(": ") {
        Some((a, r)) if a.starts_with("0x") => (u64::from_str_radix(&a[2..], 16).ok(), r),
        _ => (None, desc),
    };
    let (function, location) = match rest.rfind(" (") {
        Some(i) if rest.ends_with(')') => (&rest[..i], Some(&rest[i + 2..rest.len() - 1])),
        _ => (rest, None),
    };
    let (file, line) = match location {
        Some(loc) if loc.starts_with("in ") => (Some(loc[3..].to_owned()), None),
        Some(loc) => match loc.rsplit_once(':') {
            Some((f, l)) if !l.is_empty() && l.chars().all(|c| c.is_ascii_digit()) => {
                (Some(f.to_owned()), l.parse().ok())
            }
            _ => (Some(loc.to_owned()), None),
        },
        None => (None, None),
    };
    Frame { function: function.to_owned(), file, line, address, inlined: false }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_with_source_with_object_and_unknown() {
        let f = frame("0x1092A5: leak_request_buffer (leaky_a.c:69)");
        assert_eq!(
            (f.function.as_str(), f.file.as_deref(), f.line, f.address),
            ("leak_request_buffer", Some("leaky_a.c"), Some(69), Some(0x1092a5))
        );
        let f = frame("0x48417B4: malloc (in /usr/libexec/valgrind/vgpreload_memcheck-amd64-linux.so)");
        assert_eq!((f.function.as_str(), f.line), ("malloc", None));
        assert_eq!(f.file.as_deref(), Some("/usr/libexec/valgrind/vgpreload_memcheck-amd64-linux.so"));
        assert_eq!(frame("0x1: ???").function, "???");
    }
}

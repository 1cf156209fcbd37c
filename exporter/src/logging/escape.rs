//! How a value is written into a log line, logfmt or JSON: cut to a bounded
//! length (values can come from requests), and with every control character,
//! terminal escape (ESC, C1 controls such as CSI) and bidirectional override
//! escaped, so that a logged value can neither forge a line nor drive the
//! terminal that shows it.

use std::fmt::Write as _;

/// Longest value written, in bytes of its text before escaping; the rest is cut and counted.
pub const MAX_VALUE_BYTES: usize = 1024;

/// Characters written escaped: C0 and C1 controls and DEL (`char::is_control`),
/// line and paragraph separators, and the bidirectional formatting characters.
fn must_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{2028}' | '\u{2029}')
        || ('\u{202A}'..='\u{202E}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

/// The value cut to `MAX_VALUE_BYTES` (at a character boundary), and the bytes cut.
fn bounded(value: &str) -> (&str, usize) {
    if value.len() <= MAX_VALUE_BYTES {
        return (value, 0);
    }
    let mut end = MAX_VALUE_BYTES;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    (&value[..end], value.len() - end)
}

/// Appends `value` as a logfmt value: bare when it is plain, else quoted with
/// Go's escapes (`\n`, `\t`, `\x1b`, `\u009b`, as logfmt parsers read them).
pub fn logfmt_value(out: &mut String, value: &str) {
    let (value, cut) = bounded(value);
    let plain = cut == 0
        && !value.is_empty()
        && !value.chars().any(|c| c.is_whitespace() || c == '"' || c == '=' || must_escape(c));
    if plain {
        out.push_str(value);
        return;
    }
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if must_escape(c) && c.is_ascii() => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if must_escape(c) => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    if cut > 0 {
        let _ = write!(out, "…(+{cut} bytes)");
    }
    out.push('"');
}

/// Appends `value` as a JSON string, escaping beyond what JSON requires (DEL,
/// C1 controls, bidirectional characters), which is still valid JSON.
pub fn json_string(out: &mut String, value: &str) {
    let (value, cut) = bounded(value);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if must_escape(c) => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    if cut > 0 {
        let _ = write!(out, "…(+{cut} bytes)");
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logfmt(value: &str) -> String {
        let mut out = String::new();
        logfmt_value(&mut out, value);
        out
    }

    fn json(value: &str) -> String {
        let mut out = String::new();
        json_string(&mut out, value);
        out
    }

    /// Every character a terminal or a log reader could act on.
    const HOSTILE: &str = "a\u{1b}[31mred\u{7}\u{0}\r\nlevel=error msg=forged \u{9b}2J\u{7f}\u{202e}txt\u{2028}\"\\";

    #[test]
    fn logfmt_values_are_bare_only_when_plain_and_escape_the_rest() {
        assert_eq!(logfmt("psi"), "psi");
        assert_eq!(logfmt(""), "\"\"");
        assert_eq!(logfmt("a b"), "\"a b\"");
        assert_eq!(logfmt("k=v"), "\"k=v\"");
        assert_eq!(logfmt("C:\\dir"), "C:\\dir", "a backslash alone needs no quotes");
        assert_eq!(logfmt("\u{1b}[31m"), "\"\\x1b[31m\"", "no bare escape byte, even without a space");
        let line = logfmt(HOSTILE);
        assert_eq!(
            line,
            "\"a\\x1b[31mred\\x07\\x00\\r\\nlevel=error msg=forged \\u009b2J\\x7f\\u202etxt\\u2028\\\"\\\\\""
        );
        assert!(!line.chars().any(must_escape), "{line:?}");
    }

    #[test]
    fn json_strings_are_valid_json_with_nothing_raw() {
        let text = json(HOSTILE);
        assert!(!text.chars().any(must_escape), "{text:?}");
        let back: String = serde_json::from_str(&text).unwrap();
        assert_eq!(back, HOSTILE, "JSON readers get the value back");
    }

    #[test]
    fn long_values_are_cut_at_a_character_boundary_and_say_how_much() {
        let long = "é".repeat(1 << 19);
        let text = logfmt(&long);
        assert!(text.len() < MAX_VALUE_BYTES + 40, "{}", text.len());
        assert!(
            text.ends_with(&format!("…(+{} bytes)\"", long.len() - MAX_VALUE_BYTES)),
            "{}",
            &text[text.len() - 30..]
        );
        let back: String = serde_json::from_str(&json(&long)).unwrap();
        assert!(back.starts_with("éé") && back.len() < MAX_VALUE_BYTES + 30);
    }
}

//! `http_server_config.headers`: the response headers the exporter-toolkit
//! lets a web config add, and only those (the values it restricts, restricted
//! the same way).

use axum::http::{HeaderName, HeaderValue};
use std::collections::BTreeMap;

/// Header names the toolkit accepts, with the values it allows (`None`: any).
const ALLOWED: [(&str, Option<&[&str]>); 5] = [
    ("Strict-Transport-Security", None),
    ("X-Content-Type-Options", Some(&["nosniff"])),
    ("X-Frame-Options", Some(&["deny", "sameorigin"])),
    ("X-XSS-Protection", None),
    ("Content-Security-Policy", None),
];

pub fn parse(headers: &BTreeMap<String, String>) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    let mut parsed = Vec::new();
    for (name, value) in headers {
        let Some((_, values)) = ALLOWED.iter().find(|(allowed, _)| allowed == name) else {
            let names: Vec<&str> = ALLOWED.iter().map(|(n, _)| *n).collect();
            return Err(format!(
                "http_server_config.headers: {name:?} cannot be set; the headers that can are {}",
                names.join(", ")
            ));
        };
        if let Some(values) = values
            && !values.iter().any(|v| v.eq_ignore_ascii_case(value))
        {
            return Err(format!("http_server_config.headers.{name}: {value:?}; expected one of {}", values.join(", ")));
        }
        if value.is_empty() {
            // The toolkit's "unset if blank".
            continue;
        }
        let header_value = HeaderValue::from_str(value).map_err(|_| {
            format!("http_server_config.headers.{name}: not a valid header value (control characters?)")
        })?;
        let header_name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| format!("{name}: {e}"))?;
        parsed.push((header_name, header_value));
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_toolkits_headers_and_values() {
        let ok = BTreeMap::from([
            ("X-Frame-Options".to_owned(), "DENY".to_owned()),
            ("Strict-Transport-Security".to_owned(), "max-age=31536000".to_owned()),
            ("X-XSS-Protection".to_owned(), String::new()),
        ]);
        assert_eq!(parse(&ok).unwrap().len(), 2, "a blank value sets nothing");
        for (name, value, needle) in [
            ("Server", "x", "cannot be set"),
            ("Set-Cookie", "a=b", "cannot be set"),
            ("x-frame-options", "deny", "cannot be set"),
            ("X-Frame-Options", "allow-from x", "expected one of deny, sameorigin"),
            ("X-Content-Type-Options", "sniff", "nosniff"),
            ("Content-Security-Policy", "a\nb", "not a valid header value"),
        ] {
            let err = parse(&BTreeMap::from([(name.to_owned(), value.to_owned())])).unwrap_err();
            assert!(err.contains(needle), "{name}: {err}");
        }
    }
}

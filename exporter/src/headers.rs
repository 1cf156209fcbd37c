//! The request headers the routes read, parsed defensively: a value that does
//! not parse, or parses to something out of range, is no value (the route's
//! default applies) or a clear 4xx; never a panic, never an overflow.

use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;
use std::time::Duration;

/// Prometheus's announcement of its scrape timeout.
pub const SCRAPE_TIMEOUT: &str = "X-Prometheus-Scrape-Timeout-Seconds";

/// The scrape timeout Prometheus announced, when it is a usable one: a finite
/// number of seconds above zero. Beyond what a `Duration` holds (1e20, 1e308)
/// it is no limit at all, so `None` as well: the exporter's own applies.
pub fn scrape_timeout(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get(SCRAPE_TIMEOUT)?.to_str().ok()?.trim();
    // Prometheus sends a short decimal ("10", "9.5"); anything long is not one.
    if text.len() > 32 {
        return None;
    }
    let seconds: f64 = text.parse().ok()?;
    if !(seconds.is_finite() && seconds > 0.0) {
        return None;
    }
    Duration::try_from_secs_f64(seconds).ok().filter(|d| !d.is_zero())
}

/// `Ok` when the body is declared JSON (`application/json`, in any case, with
/// parameters; a charset must be UTF-8); otherwise why not, for a 415.
pub fn require_json(headers: &HeaderMap) -> Result<(), String> {
    const EXPECTED: &str = "send the body as Content-Type: application/json (as Alertmanager does)";
    let Some(value) = headers.get(CONTENT_TYPE) else {
        return Err(format!("no Content-Type header; {EXPECTED}"));
    };
    let Ok(text) = value.to_str() else {
        return Err(format!("the Content-Type header is not ASCII; {EXPECTED}"));
    };
    let mut parts = text.split(';');
    let essence = parts.next().unwrap_or_default().trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return Err(format!("Content-Type {:?} is not JSON; {EXPECTED}", shorten(essence)));
    }
    for parameter in parts {
        let Some((name, value)) = parameter.split_once('=') else { continue };
        let charset = value.trim().trim_matches('"');
        if name.trim().eq_ignore_ascii_case("charset")
            && !(charset.eq_ignore_ascii_case("utf-8") || charset.eq_ignore_ascii_case("utf8"))
        {
            return Err(format!("charset {:?} is not UTF-8; JSON is UTF-8: {EXPECTED}", shorten(charset)));
        }
    }
    Ok(())
}

/// At most 64 characters of a value echoed in a message.
fn shorten(text: &str) -> &str {
    text.char_indices().nth(64).map_or(text, |(at, _)| &text[..at])
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(name: &'static str, value: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_bytes(value).unwrap());
        headers
    }

    #[test]
    fn every_scrape_timeout_announcement_is_usable_or_ignored() {
        let announced = |v: &str| scrape_timeout(&with(SCRAPE_TIMEOUT, v.as_bytes()));
        assert_eq!(announced("10"), Some(Duration::from_secs(10)));
        assert_eq!(announced(" 9.5 "), Some(Duration::from_millis(9500)));
        assert_eq!(announced("1e-3"), Some(Duration::from_millis(1)));
        // What once panicked (Duration::from_secs_f64 overflows) and every other unusable value.
        for bad in [
            "1e20",
            "1e308",
            "18446744073709551616",
            "inf",
            "-inf",
            "Infinity",
            "NaN",
            "nan",
            "-1",
            "0",
            "-0",
            "1e-300",
            "",
            "ten",
            "10s",
            "0x10",
            "1,5",
            &"9".repeat(400),
        ] {
            assert_eq!(announced(bad), None, "{bad:?}");
        }
        assert_eq!(scrape_timeout(&with(SCRAPE_TIMEOUT, b"\xff\xfe")), None, "not ASCII");
        assert_eq!(scrape_timeout(&HeaderMap::new()), None);
    }

    #[test]
    fn only_json_bodies_are_accepted() {
        for ok in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            "application/json;charset=\"UTF-8\"",
        ] {
            assert_eq!(require_json(&with("content-type", ok.as_bytes())), Ok(()), "{ok}");
        }
        for (bad, needle) in [
            ("text/plain", "\"text/plain\" is not JSON"),
            ("application/x-www-form-urlencoded", "is not JSON"),
            ("multipart/form-data; boundary=x", "is not JSON"),
            ("application/jsonp", "is not JSON"),
            ("application/json; charset=utf-16", "charset \"utf-16\" is not UTF-8"),
        ] {
            let err = require_json(&with("content-type", bad.as_bytes())).unwrap_err();
            assert!(err.contains(needle) && err.contains("application/json"), "{bad}: {err}");
        }
        assert!(require_json(&HeaderMap::new()).unwrap_err().contains("no Content-Type"));
        assert!(require_json(&with("content-type", b"application/\xffjson")).unwrap_err().contains("not ASCII"));
    }
}

//! A small, bounded HTTP/1.1 client for pulling profiles and polling
//! Alertmanager: `http://` only, connect and read timeouts, an overall
//! deadline, capped headers and body, chunked bodies; with an allowlist,
//! redirects are followed and addresses connected to only when they pass it
//! (without one, for the operator's own Alertmanager, neither is allowed).

use super::allow::Allowlist;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Largest response header section read.
const MAX_HEADER_BYTES: usize = 64 << 10;
/// Redirects followed at most.
const MAX_REDIRECTS: usize = 3;

/// A parsed `http://host:port/path?query` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub host: String,
    pub port: u16,
    /// Path and query, starting with `/`.
    pub target: String,
}

impl Url {
    pub fn parse(text: &str) -> Result<Url, String> {
        let rest = text.strip_prefix("http://").ok_or_else(|| {
            format!("{text:?}: only http:// URLs are pulled (https needs a proxy on the target's host)")
        })?;
        if text.len() > 2048 || text.chars().any(|c| c.is_control() || c == ' ') {
            return Err(format!("{text:?}: longer than 2048 bytes or holds spaces or control characters"));
        }
        let (authority, target) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].to_owned()),
            None => (rest, "/".to_owned()),
        };
        if authority.contains('@') {
            return Err(format!("{text:?}: credentials in a URL are not sent"));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                (h, p.parse::<u16>().map_err(|_| format!("{text:?}: bad port {p:?}"))?)
            }
            _ => (authority, 80),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("{text:?}: no host"));
        }
        Ok(Url { host: host.to_ascii_lowercase(), port, target })
    }

    /// `host:port` (IPv6 in brackets), what allowlist patterns match.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl std::fmt::Display for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}{}", self.authority(), self.target)
    }
}

/// Bounds of one request.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub connect_timeout: Duration,
    /// Longest silence while reading.
    pub read_timeout: Duration,
    /// The whole exchange, redirects included.
    pub deadline: Duration,
    pub max_body_bytes: u64,
}

/// GETs `url`; `allow` decides which redirects are followed and which addresses connected to.
/// Returns the body of a 200 answer; anything else is an error saying what came back.
pub fn get(url: &Url, limits: Limits, allow: Option<&Allowlist>) -> Result<Vec<u8>, String> {
    let started = Instant::now();
    let mut url = url.clone();
    for _ in 0..=MAX_REDIRECTS {
        match get_once(&url, limits, started, allow)? {
            Answer::Body(body) => return Ok(body),
            Answer::Redirect(location) => {
                let next = if location.starts_with('/') {
                    Url { target: location, ..url.clone() }
                } else {
                    Url::parse(&location).map_err(|e| format!("{url} redirects to {e}"))?
                };
                match allow.map(|a| a.allows(&next)) {
                    Some(Ok(())) => {}
                    Some(Err(why)) => return Err(format!("{url} redirects to {next}, which is refused: {why}")),
                    None => return Err(format!("{url} redirects to {next}; redirects are not followed here")),
                }
                url = next;
            }
        }
    }
    Err(format!("{url}: more than {MAX_REDIRECTS} redirects"))
}

enum Answer {
    Body(Vec<u8>),
    Redirect(String),
}

fn get_once(url: &Url, limits: Limits, started: Instant, allow: Option<&Allowlist>) -> Result<Answer, String> {
    let addresses: Vec<SocketAddr> = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(|e| format!("{url}: cannot resolve {}: {e}", url.host))?
        .filter(|a| allow.is_none_or(|list| list.allows_address(url, *a)))
        .collect();
    let mut last = format!("{url}: {} resolves to no allowed address", url.host);
    let stream = addresses.iter().find_map(|a| match TcpStream::connect_timeout(a, limits.connect_timeout) {
        Ok(s) => Some(s),
        Err(e) => {
            last = format!("{url}: cannot connect to {a}: {e}");
            None
        }
    });
    let mut stream = stream.ok_or(last)?;
    let io = |e: std::io::Error| format!("{url}: {e}");
    stream.set_read_timeout(Some(limits.read_timeout)).map_err(io)?;
    stream.set_write_timeout(Some(limits.read_timeout)).map_err(io)?;
    write!(
        stream,
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: memleak-exporter/{}\r\nAccept: */*\r\nAccept-Encoding: identity\r\nConnection: close\r\n\r\n",
        url.target,
        url.authority(),
        env!("CARGO_PKG_VERSION")
    )
    .map_err(io)?;
    let mut reader = BufReader::new(Deadline { inner: stream, until: started + limits.deadline });
    let mut head = Vec::new();
    loop {
        let before = head.len();
        (&mut reader)
            .take((MAX_HEADER_BYTES - head.len().min(MAX_HEADER_BYTES)) as u64)
            .read_until(b'\n', &mut head)
            .map_err(io)?;
        if head.len() == before || head.len() >= MAX_HEADER_BYTES {
            return Err(format!("{url}: the answer's headers are cut short or longer than {MAX_HEADER_BYTES} bytes"));
        }
        if head.ends_with(b"\r\n\r\n") || head.ends_with(b"\n\n") {
            break;
        }
    }
    let head = String::from_utf8_lossy(&head);
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{url}: not an HTTP answer"))?;
    let header = |name: &str| {
        head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    };
    if (300..400).contains(&status) {
        return header("location").map(Answer::Redirect).ok_or_else(|| format!("{url}: {status} without a Location"));
    }
    let chunked = header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let length: Option<u64> = header("content-length").and_then(|v| v.parse().ok());
    if length.is_some_and(|l| l > limits.max_body_bytes) {
        return Err(format!("{url}: the answer is larger than {} bytes", limits.max_body_bytes));
    }
    let body = if chunked {
        dechunk(&mut reader, limits.max_body_bytes)
    } else {
        read_capped(&mut reader, length, limits.max_body_bytes)
    }
    .map_err(|e| format!("{url}: {e}"))?;
    if status != 200 {
        // The body is the peer's: never copied into a reason (it may hold anything).
        return Err(format!("{url} answered {status} ({} bytes)", body.len()));
    }
    Ok(Answer::Body(body))
}

fn read_capped(reader: &mut impl Read, length: Option<u64>, max: u64) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    reader.take(length.unwrap_or(max + 1).min(max + 1)).read_to_end(&mut body).map_err(|e| e.to_string())?;
    if body.len() as u64 > max {
        return Err(format!("the answer is larger than {max} bytes"));
    }
    if length.is_some_and(|l| (body.len() as u64) < l) {
        return Err("the answer was cut short".into());
    }
    Ok(body)
}

fn dechunk(reader: &mut impl BufRead, max: u64) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let mut line = Vec::new();
        reader.take(64).read_until(b'\n', &mut line).map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&line);
        let size = u64::from_str_radix(text.trim().split(';').next().unwrap_or(""), 16)
            .map_err(|_| format!("bad chunk size {:?}", text.trim()))?;
        if size == 0 {
            return Ok(body);
        }
        if body.len() as u64 + size > max {
            return Err(format!("the answer is larger than {max} bytes"));
        }
        let at = body.len();
        body.resize(at + size as usize, 0);
        reader.read_exact(&mut body[at..]).map_err(|e| format!("a chunk was cut short: {e}"))?;
        let mut crlf = [0u8; 2];
        reader.read_exact(&mut crlf).map_err(|e| e.to_string())?;
    }
}

/// A stream that fails once the overall deadline has passed (a trickling peer cannot hold a pull forever).
struct Deadline {
    inner: TcpStream,
    until: Instant,
}

impl Read for Deadline {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if Instant::now() >= self.until {
            return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "the overall deadline passed"));
        }
        self.inner.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_strictly() {
        let u = Url::parse("http://127.0.0.1:6060/debug/pprof/heap?gc=1").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.target.as_str()), ("127.0.0.1", 6060, "/debug/pprof/heap?gc=1"));
        assert_eq!(Url::parse("http://[::1]:80").unwrap().authority(), "[::1]:80");
        assert_eq!(Url::parse("http://Svc").unwrap().authority(), "svc:80");
        for bad in
            ["https://x/", "file:///etc/passwd", "http://u:p@x/", "http://x:99999/", "http://x/a b", "http://:1/"]
        {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }
}

//! The HTTP server against hostile clients, on the real binary: slow-loris
//! heads, idle and half-sent connections, lying Content-Lengths, clients that
//! stop reading, more connections than the open-file limit, a SIGTERM with
//! requests half sent, header values that once panicked, cross-site webhook
//! bodies, and a flood of bad requests against the log.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Exporter, fixture_root, http_get};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

fn root_args() -> Vec<String> {
    vec!["--path.rootfs".into(), fixture_root("root-v2").to_str().unwrap().to_owned()]
}

fn start(extra: &[&str]) -> Exporter {
    let mut args = root_args();
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Exporter::start(&args)
}

fn connect(port: u16) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream
}

/// Reads until the server closes the connection: what came, and how long it took.
/// Panics when the connection is still open after `limit`.
fn until_closed(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0; 64 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (got, started.elapsed()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            // A close with unread data in the server's buffer is a reset: closed all the same.
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return (got, started.elapsed()),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("still open after {limit:?}; got {:?}", String::from_utf8_lossy(&got[..got.len().min(300)]))
            }
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn a_slow_loris_head_and_idle_connections_are_closed_at_the_header_timeout() {
    let exporter = start(&["--web.header-timeout", "1s"]);
    // A head trickled a byte at a time, never finished.
    let mut loris = connect(exporter.port);
    let trickle = std::thread::spawn(move || {
        for b in b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nX-Slow: ".iter().cycle().take(200) {
            if loris.write_all(&[*b]).is_err() {
                return loris;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        loris
    });
    // A connection that sends nothing.
    let mut silent = connect(exporter.port);
    // A kept-alive connection after a complete exchange.
    let mut kept = connect(exporter.port);
    kept.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut answer = [0; 512];
    let n = kept.read(&mut answer).unwrap();
    let answered = Instant::now();
    assert!(answer[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer[..n]));

    let (_, silent_for) = until_closed(&mut silent, Duration::from_secs(5));
    until_closed(&mut kept, Duration::from_secs(5));
    let kept_for = answered.elapsed();
    let mut loris = trickle.join().unwrap();
    let (nothing, _) = until_closed(&mut loris, Duration::from_secs(5));
    assert!(nothing.is_empty(), "a slow head gets no answer: {}", String::from_utf8_lossy(&nothing));
    eprintln!("closed after: silent {silent_for:?}, kept-alive {kept_for:?}");
    assert!(
        silent_for >= Duration::from_millis(900) && kept_for >= Duration::from_millis(900),
        "not before the timeout"
    );
    assert_eq!(http_get(exporter.port, "/-/healthy", None).0, 200, "and the server still serves");
}

#[test]
fn a_body_shorter_than_its_content_length_gets_408_and_the_connection_closes() {
    let exporter = start(&["--web.body-timeout", "1s"]);
    let mut half = connect(exporter.port);
    half.write_all(
        b"POST /api/v1/alerts HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"vers",
    )
    .unwrap();
    let (answer, took) = until_closed(&mut half, Duration::from_secs(5));
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close") && answer.contains("--web.body-timeout"),
        "{answer}"
    );
    assert!(took >= Duration::from_millis(900), "{took:?}");
    assert!(exporter.metrics().contains("memleak_exporter_webhook_requests_total{code=\"408\"} 1\n"));
}

#[test]
fn a_client_that_stops_reading_is_disconnected_at_the_write_timeout() {
    let exporter = start(&["--web.write-timeout", "1s"]);
    // 400 scrapes asked at once (14 MB of answers), none read: more than the socket buffers hold.
    // The receive buffer is fixed small: autotuning may grow it up to net.ipv4.tcp_rmem's maximum
    // (32 MiB on this machine), which would take every answer without the client reading.
    let mut greedy = connect(exporter.port);
    let small: libc::c_int = 64 * 1024;
    // SAFETY: setsockopt reads an int of the given size from a local; the descriptor is open.
    let set = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&greedy),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&raw const small).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(set, 0, "SO_RCVBUF: {}", std::io::Error::last_os_error());
    let requests = "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n".repeat(400);
    greedy.write_all(requests.as_bytes()).unwrap();
    // Long enough for the buffers to fill and the write timeout to pass even when scrapes are slow
    // on a loaded machine (a client reading before the server stalls would get every answer).
    std::thread::sleep(Duration::from_secs(6));
    let (answers, _) = until_closed(&mut greedy, Duration::from_secs(10));
    let served = String::from_utf8_lossy(&answers).matches("HTTP/1.1 200 OK").count();
    assert!(served < 400, "the server stopped writing to a client that did not read ({served} answers)");
    assert_eq!(http_get(exporter.port, "/-/healthy", None).0, 200);
}

#[test]
fn sigterm_with_requests_half_sent_exits_within_the_shutdown_timeout() {
    let exporter = start(&["--web.shutdown-timeout", "1s", "--web.header-timeout", "60s", "--web.body-timeout", "60s"]);
    let mut head = connect(exporter.port);
    head.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n").unwrap();
    let mut body = connect(exporter.port);
    body.write_all(
        b"POST /api/v1/alerts HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
    )
    .unwrap();
    let idle = connect(exporter.port);
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let (status, log) = exporter.terminate();
    let took = started.elapsed();
    assert!(status.success(), "{status}: {log}");
    assert!(took < Duration::from_secs(4), "exited {took:?} after SIGTERM with a 1s deadline: {log}");
    assert!(log.contains("connections still open after --web.shutdown-timeout"), "{log}");
    assert!(log.contains("memleak-exporter stopped"), "{log}");
    drop((head, body, idle));
}

/// Raises this process's open-file limit to hold the attack's connections.
fn raise_open_files(to: u64) {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: get/setrlimit read and write the struct we own.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max.min(to);
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
    assert!(limit.rlim_cur >= to, "the hard open-file limit ({}) is below {to}", limit.rlim_max);
}

/// `count` connections to `port` from the loopback address `from`, each sending `first` (maybe nothing).
fn hold_connections(from: &str, port: u16, count: usize, first: &[u8]) -> Vec<TcpStream> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_io().build().unwrap();
    let source: SocketAddr = format!("{from}:0").parse().unwrap();
    let target: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    (0..count)
        .filter_map(|_| {
            let stream = runtime.block_on(async {
                let socket = tokio::net::TcpSocket::new_v4().ok()?;
                socket.bind(source).ok()?;
                socket.connect(target).await.ok()?.into_std().ok()
            })?;
            stream.set_nonblocking(false).ok()?;
            let mut stream = stream;
            let _ = stream.write_all(first);
            Some(stream)
        })
        .collect()
}

/// Scrapes `/metrics` on a fresh connection: the time it took, or a panic when it fails.
fn timed_scrape(port: u16) -> Duration {
    let started = Instant::now();
    let mut stream = connect(port);
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap_or_else(|e| panic!("scrape failed after {:?}: {e}", started.elapsed()));
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 200") && text.contains("memleak_psi_"), "{}", &text[..text.len().min(200)]);
    started.elapsed()
}

#[test]
fn metrics_answer_while_an_attacker_holds_more_connections_than_the_open_file_limit() {
    raise_open_files(4096);
    // Started like the systemd unit (LimitNOFILE=1024); slow-loris heads are not cut during the test.
    let limited = "ulimit -n 1024 && exec \"$0\" \"$@\"";
    let mut args = root_args();
    args.extend(["--web.header-timeout".to_owned(), "60s".to_owned()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let exporter = Exporter::start_with(Some(std::path::Path::new("/bin/sh")), &["-c", limited], &args);
    let port = exporter.port;
    let calm: Vec<Duration> = (0..5).map(|_| timed_scrape(port)).collect();

    // From another address (127.0.0.2), then from the scraper's own: idle and half-sent heads.
    for attacker in ["127.0.0.2", "127.0.0.1"] {
        let mut held = hold_connections(attacker, port, 600, b"");
        held.extend(hold_connections(attacker, port, 600, b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n"));
        assert!(held.len() >= 1100, "the attack opened {} connections", held.len());
        let attacked: Vec<Duration> = (0..5).map(|_| timed_scrape(port)).collect();
        eprintln!("scrape times: calm {calm:?}; attacked from {attacker}: {attacked:?}");
        drop(held);
    }
    let log = exporter.stderr();
    let evictions = log.matches("connection limit reached").count();
    assert!(evictions >= 1, "the cap was reached and said so: {log}");
    assert!(evictions <= 60, "rate-limited: {evictions} lines for 2,400 connections");
    assert!(!log.contains("lowered to fit"), "the unit's limit holds the default cap: {log}");
}

#[test]
fn at_the_cap_busy_connections_are_kept_and_a_newcomer_from_their_address_is_refused_with_a_reason() {
    let exporter = start(&["--web.max-connections", "2", "--web.body-timeout", "60s"]);
    let port = exporter.port;
    // Two requests in progress (bodies half sent) from 127.0.0.2.
    let busy_head =
        b"POST /api/v1/alerts HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{";
    let busy = hold_connections("127.0.0.2", port, 2, busy_head);
    std::thread::sleep(Duration::from_millis(300));
    let mut refused = hold_connections("127.0.0.2", port, 1, b"").pop().unwrap();
    let (answer, _) = until_closed(&mut refused, Duration::from_secs(5));
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 503") && answer.contains("too many connections"), "{answer}");
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(
        head.contains(&format!("Content-Length: {}\r\n", body.len()))
            || head.ends_with(&format!("Content-Length: {}", body.len())),
        "{answer:?}"
    );
    // Another address still gets through.
    assert_eq!(http_get(port, "/-/healthy", None).0, 200);
    let log = exporter.stderr_once_logged("closed a mid-request connection of 127.0.0.2:", Duration::from_secs(5));
    assert!(log.contains("connection refused with 503") && log.contains("peer=127.0.0.2:"), "{log}");
    // Both counted, by reason.
    let metrics = String::from_utf8_lossy(&http_get(port, "/metrics", None).2).into_owned();
    for reason in ["connection_limit", "evicted"] {
        let series = format!("memleak_exporter_http_refused_total{{reason=\"{reason}\"}} 1");
        assert!(metrics.lines().any(|l| l == series), "{series} in {metrics}");
    }
    drop(busy);
}

#[test]
fn scrape_timeout_announcements_that_once_panicked_are_ignored() {
    let exporter = start(&[]);
    for value in ["1e20", "1e308", "18446744073709551616", "inf", "NaN", "-1", "0", "garbage", "1e-300", "10"] {
        let mut stream = connect(exporter.port);
        write!(
            stream,
            "GET /metrics HTTP/1.1\r\nHost: localhost\r\nX-Prometheus-Scrape-Timeout-Seconds: {value}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let (answer, _) = until_closed(&mut stream, Duration::from_secs(20));
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.starts_with("HTTP/1.1 200") && answer.contains("memleak_exporter_build_info"),
            "{value}: {answer}"
        );
    }
    assert!(!exporter.stderr().contains("panicked"), "{}", exporter.stderr());
}

/// POST to the webhook with these headers: (status, headers and body).
fn post(port: u16, headers: &str, body: &[u8]) -> (u16, String) {
    let mut stream = connect(port);
    write!(
        stream,
        "POST /api/v1/alerts HTTP/1.1\r\nHost: localhost\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(body).unwrap();
    let (answer, _) = until_closed(&mut stream, Duration::from_secs(10));
    let answer = String::from_utf8_lossy(&answer).into_owned();
    (answer.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0), answer)
}

const ALERT: &str = r#"{"version":"4","status":"firing","receiver":"memleak","alerts":[{"status":"firing","labels":{"alertname":"ProcessMemoryLeak","capture":"allocator-profile","group":"a_cachesvc","severity":"warning"},"fingerprint":"f1"}]}"#;

#[test]
fn the_webhook_takes_only_json_and_refuses_label_names_alertmanager_never_sends() {
    let exporter = start(&[]);
    let port = exporter.port;
    // What a web page can send cross-site without the browser asking first: refused.
    for content_type in [
        "Content-Type: text/plain\r\n",
        "Content-Type: application/x-www-form-urlencoded\r\n",
        "Content-Type: multipart/form-data; boundary=x\r\n",
        "",
    ] {
        let (status, answer) = post(port, content_type, ALERT.as_bytes());
        assert_eq!(status, 415, "{content_type:?}: {answer}");
        assert!(answer.to_ascii_lowercase().contains("accept-post: application/json"), "{answer}");
        assert!(answer.contains("application/json"), "{answer}");
    }
    let (status, answer) = post(port, "Content-Type: application/json; charset=utf-8\r\n", ALERT.as_bytes());
    assert_eq!(status, 200, "{answer}");
    assert!(!answer.contains(r#""outcome":"invalid""#), "{answer}");
    for (name, needle) in
        [("gr\\u0000oup", "gr\\\\0oup"), ("a\\u001b[2J", "a\\\\u{1b}[2J"), ("", "label name \\\"\\\"")]
    {
        let bad = ALERT.replace(r#""severity""#, &format!(r#""{name}":"x","severity""#));
        let (status, answer) = post(port, "Content-Type: application/json\r\n", bad.as_bytes());
        // Refused alone, in its own outcome (Alertmanager never retries a 4xx: good alerts beside it stay good).
        assert_eq!(status, 200, "{name}: {answer}");
        assert!(answer.contains(r#""outcome":"invalid""#), "{name}: {answer}");
        assert!(answer.contains("alerts[0]: label name") && answer.contains(needle), "{name}: {answer}");
    }
    let text = exporter.metrics();
    assert!(text.contains("memleak_exporter_webhook_requests_total{code=\"415\"} 4\n"), "{text}");
}

#[test]
fn a_flood_of_bad_requests_makes_few_short_lines_with_escapes_escaped() {
    std::thread::scope(|scope| {
        for format in ["logfmt", "json"] {
            scope.spawn(move || flood(format));
        }
    });
}

/// One exporter flooded, its log checked.
fn flood(format: &str) {
    let exporter = start(&["--log.format", format, "--webhook.max-body-bytes", "2000000"]);
    let port = exporter.port;
    // One request of 1 MB whose label name is most of it: a short line.
    let huge = ALERT.replace(r#""severity""#, &format!(r#""{}":"x","severity""#, "n".repeat(1 << 20)));
    let (status, answer) = post(port, "Content-Type: application/json\r\n", huge.as_bytes());
    assert!(status == 200 && answer.contains(r#""outcome":"invalid""#) && answer.len() < 2000, "{status}");
    // Accepted alerts whose labels carry terminal escapes (they are logged at info), and refusals.
    let escaping = ALERT.replace("a_cachesvc", "\\u001b]0;owned\\u0007\\u001b[2J\\u009b31m");
    // Per place in the code that logs: a burst of 50, then one a second; two places log here.
    let bound = |lasted: Duration| 2 * (50 + lasted.as_secs() as usize + 2);
    let started = Instant::now();
    let mut stream = connect(port);
    stream.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
    let mut sent = 0;
    // Until the requests are several times what may be logged, however fast this machine answers
    // (each alert is planned): a flood, not a trickle the limiter lets through whole.
    while sent <= 4 * bound(started.elapsed()) && started.elapsed() < Duration::from_secs(20) {
        // (The refused one has no body: hyper closes a connection whose unread body is not yet in.)
        let mut batch = Vec::new();
        for _ in 0..20 {
            for (content_type, body) in [("application/json", escaping.as_str()), ("text/plain", "")] {
                write!(batch, "POST /api/v1/alerts HTTP/1.1\r\nHost: localhost\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
                sent += 1;
            }
        }
        stream.write_all(&batch).unwrap();
        // Read the answers as they come so the connection never stalls.
        let mut buf = [0; 64 * 1024];
        while stream.read(&mut buf).is_ok_and(|n| n > 0) {}
    }
    // The last request closes the connection once every answer before it is out: the flood is over.
    stream.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    until_closed(&mut stream, Duration::from_secs(60));
    let flood_lasted = started.elapsed();
    // The suppressed counts come once the flood is over.
    std::thread::sleep(Duration::from_secs(4));
    let log = exporter.stderr();
    let lines: Vec<&str> = log.lines().collect();
    let flood_lines =
        lines.iter().filter(|l| l.contains("capture requested") || l.contains("webhook request rejected")).count();
    eprintln!("{format}: {sent} requests in {flood_lasted:?}, {flood_lines} lines");
    let bound = bound(flood_lasted);
    assert!(sent > 3 * bound, "the flood was a flood: {sent} requests for a bound of {bound} lines");
    assert!(flood_lines <= bound, "{flood_lines} lines for {sent} requests (bound {bound})");
    assert!(log.contains("suppressed"), "the dropped lines are counted: {log}");
    assert!(!log.contains('\u{1b}') && !log.contains('\u{7}') && !log.contains('\u{9b}'), "raw escapes in the log");
    let huge_line = lines.iter().find(|l| l.contains("longer than 128 bytes")).expect("the 1 MB request is logged");
    assert!(huge_line.len() < 1024, "a 1 MB request made a {}-byte line", huge_line.len());
    let longest = lines.iter().map(|l| l.len()).max().unwrap();
    assert!(longest < 4096, "a {longest}-byte line");
    if format == "json" {
        for line in &lines {
            serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        }
        assert!(log.contains(r#"\u001b]0;owned\u0007\u001b[2J\u009b31m"#), "escaped, still readable: {log}");
    } else {
        assert!(log.contains(r#"group="\x1b]0;owned\x07\x1b[2J\u009b31m""#), "escaped, still readable: {log}");
    }
}

#[test]
fn webhook_bodies_arriving_together_stay_within_their_memory_budget() {
    let exporter = start(&["--web.body-timeout", "60s"]);
    let port = exporter.port;
    // Sixteen bodies of 1 MiB announced and slowly coming fill the 16 MiB budget.
    let announced = b"POST /api/v1/alerts HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1048576\r\n\r\n{";
    let slow = hold_connections("127.0.0.1", port, 16, announced);
    std::thread::sleep(Duration::from_millis(300));
    let (status, answer) = post(port, "Content-Type: application/json\r\n", ALERT.as_bytes());
    assert_eq!(status, 503, "{answer}");
    assert!(answer.to_ascii_lowercase().contains("retry-after: 1") && answer.contains("retry"), "{answer}");
    drop(slow);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        post(port, "Content-Type: application/json\r\n", ALERT.as_bytes()).0,
        200,
        "room again once they are gone"
    );
}

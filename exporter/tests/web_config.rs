//! `--web.config.file` (the Prometheus exporter-toolkit web configuration) on
//! the real binary, against real peers: a certificate authority made by
//! openssl, bcrypt hashes made by libxcrypt (Python's `crypt`), a real
//! Prometheus scraping over TLS with basic auth and with client certificates,
//! curl as the client that has no certificate, and clients that open TLS
//! connections and send nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::prometheus::Prometheus;
use common::{BIN, Guard, fixture_root, require_tool};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A certificate authority with a server certificate (localhost, 127.0.0.1) and a client one.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Option<Pki> {
        require_tool("openssl", "openssl")?;
        let pki = Pki { dir: tempfile::tempdir().unwrap() };
        pki.authority("ca");
        pki.leaf(
            "ca",
            "server",
            "/CN=localhost",
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        );
        pki.leaf("ca", "client", "/CN=prometheus", "extendedKeyUsage=clientAuth\n");
        Some(pki)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl").args(args).current_dir(self.dir.path()).output().unwrap();
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn authority(&self, name: &str) {
        let (key, crt, subject) = (format!("{name}.key"), format!("{name}.crt"), format!("/CN=test {name}"));
        self.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &crt,
            "-days",
            "2",
            "-subj",
            &subject,
        ]);
    }

    /// `NAME.key`, `NAME.crt`, signed by the authority `ca` with the extensions `ext`.
    fn leaf(&self, ca: &str, name: &str, subject: &str, ext: &str) {
        let (key, csr, crt, extfile) =
            (format!("{name}.key"), format!("{name}.csr"), format!("{name}.crt"), format!("{name}.ext"));
        std::fs::write(self.path(&extfile), ext).unwrap();
        self.openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            subject,
        ]);
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &format!("{ca}.crt"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            &crt,
            "-days",
            "2",
            "-extfile",
            &extfile,
        ]);
    }
}

/// A bcrypt hash of `password` at `cost` by libxcrypt, an implementation independent of the exporter's.
fn bcrypt(password: &str, cost: u32) -> Option<String> {
    let python = require_tool("python3", "python3")?;
    let out = Command::new(python)
        .args(["-W", "ignore", "-c", "import crypt,sys; print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1<<int(sys.argv[2]))))", password, &cost.to_string()])
        .output()
        .unwrap();
    let hash = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(
        hash.starts_with(&format!("$2b${cost:02}$")) && hash.len() == 60,
        "not a bcrypt hash: {hash:?} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(hash)
}

/// The exporter, started with a web config; killed on drop.
struct Served {
    _child: Guard,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Served {
    /// Listening on `listen` (port 0: the one the kernel picks, read from the log).
    fn start(web_config: &Path, listen: &str, extra: &[&str]) -> Served {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("stderr.log");
        let root = fixture_root("root-v2");
        let child = Command::new(BIN)
            .args(["--path.rootfs", root.to_str().unwrap(), "--web.config.file", web_config.to_str().unwrap()])
            .args(["--web.listen-address", listen])
            .arg("--capture.dir")
            .arg(dir.path().join("captures"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut served = Served { _child: Guard(child), port: 0, log, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while served.port == 0 {
            assert!(Instant::now() < deadline, "not listening in 20 s: {}", served.stderr());
            std::thread::sleep(Duration::from_millis(50));
            let log = served.stderr();
            let line = log.lines().find(|l| l.contains("memleak-exporter listening")).unwrap_or_default();
            let address = line.split_whitespace().find_map(|w| w.strip_prefix("address=")).unwrap_or_default();
            served.port = address.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or(0);
        }
        served
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.port)
    }
}

/// curl with `args` (which name the URL): (HTTP status, 0 when none; curl's exit code; stderr).
fn curl(args: &[&str]) -> (u16, i32, String) {
    let curl = require_tool("curl", "curl").expect("curl");
    let out: Output = Command::new(curl)
        .args(["-sS", "--max-time", "20", "-o", "/dev/null", "-w", "%{http_code}"])
        .args(args)
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0);
    (status, out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The exporter's count of refusals for `reason` (`memleak_exporter_http_refused_total`), read with
/// curl and the extra arguments `auth` (CA, credentials); 0 when the series is not there yet.
fn refused(exporter: &Served, auth: &[&str], reason: &str) -> f64 {
    let curl = require_tool("curl", "curl").expect("curl");
    let out =
        Command::new(curl).args(["-sS", "--max-time", "20"]).args(auth).arg(exporter.url("/metrics")).output().unwrap();
    let series = format!("memleak_exporter_http_refused_total{{reason=\"{reason}\"}} ");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().find_map(|l| l.strip_prefix(series.as_str())).and_then(|v| v.trim().parse().ok()).unwrap_or(0.0)
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

#[test]
fn prometheus_scrapes_over_tls_with_basic_auth_and_a_wrong_password_is_a_401() {
    let Some(pki) = Pki::new() else { return };
    // The lowest cost: the wrong password is checked afresh at every scrape, and at cost 10 a debug
    // build's bcrypt (about 1 s, more on a loaded host) would outlast the 900 ms scrape timeout.
    let Some(hash) = bcrypt("scrape-pass", 4) else { return };
    let web = pki.path("web.yml");
    // Relative paths are taken from the web config's folder, as the toolkit does.
    write(
        &web,
        &format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\nbasic_auth_users:\n  prometheus: '{hash}'\n"
        ),
    );
    // Beyond loopback with no webhook token: the basic-auth users are the webhook's authentication.
    let exporter = Served::start(&web, "0.0.0.0:0", &[]);
    let ca = pki.path("ca.crt");
    let ca = ca.to_str().unwrap();
    let scrape = |job: &str, password: &str| {
        format!(
            "  - job_name: {job}\n    scheme: https\n    tls_config:\n      ca_file: {ca}\n      server_name: localhost\n    basic_auth:\n      username: prometheus\n      password: {password}\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n",
            exporter.port
        )
    };
    let Some(prometheus) = Prometheus::start(&format!("{}{}", scrape("good", "scrape-pass"), scrape("bad", "wrong")))
    else {
        return;
    };
    assert_eq!(prometheus.wait_for("up{job=\"good\"}", 1.0), Some(1.0), "{}", exporter.stderr());
    assert_eq!(prometheus.wait_for("memleak_process_processes{job=\"good\",group=\"a_cachesvc\"}", 2.0), Some(2.0));
    assert_eq!(prometheus.wait_for("up{job=\"bad\"}", 0.0), Some(0.0));
    // The reason of the latest failed scrape (on a loaded host one may have timed out instead).
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut error = prometheus.last_error("bad");
    while !error.contains("401") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        error = prometheus.last_error("bad");
    }
    assert!(error.contains("401"), "the failed scrape says why: {error:?}");

    // curl: no credentials, a wrong password, the right one; the configured header on each answer.
    let url = exporter.url("/metrics");
    let (status, _, _) = curl(&["--cacert", ca, &url]);
    assert_eq!(status, 401);
    let head = Command::new("curl").args(["-sS", "-o", "/dev/null", "-D", "-", "--cacert", ca, &url]).output().unwrap();
    let head = String::from_utf8_lossy(&head.stdout).to_ascii_lowercase();
    assert!(head.contains("www-authenticate: basic") && head.contains("x-frame-options: deny"), "{head}");
    assert_eq!(curl(&["--cacert", ca, "-u", "prometheus:nope", &url]).0, 401);
    assert_eq!(curl(&["--cacert", ca, "-u", "nobody:scrape-pass", &url]).0, 401);
    assert_eq!(curl(&["--cacert", ca, "-u", "prometheus:scrape-pass", &url]).0, 200);
    // The webhook and the captures API sit behind the same check, then take the basic-auth user.
    let captures = exporter.url("/api/v1/captures");
    assert_eq!(curl(&["--cacert", ca, &captures]).0, 401);
    assert_eq!(curl(&["--cacert", ca, "-u", "prometheus:scrape-pass", &captures]).0, 200);
    let alerts = exporter.url("/api/v1/alerts");
    let post = ["-X", "POST", "-H", "Content-Type: application/json", "--data", "{}"];
    assert_eq!(curl(&[&["--cacert", ca][..], &post, &[alerts.as_str()]].concat()).0, 401);
    let (status, _, _) =
        curl(&[&["--cacert", ca, "-u", "prometheus:scrape-pass"][..], &post, &[alerts.as_str()]].concat());
    assert_eq!(status, 400, "past authentication, the webhook reads the (invalid) body");
    assert!(!exporter.stderr().contains("refuses every request"), "{}", exporter.stderr());
    // Seven 401s at least: the six curls above and Prometheus' bad job. Counted each, logged at
    // most once a minute (the test may outlast a minute on a loaded host: one line a minute more).
    let auth = ["--cacert", ca, "-u", "prometheus:scrape-pass"];
    let count = refused(&exporter, &auth, "unauthorized");
    assert!(count >= 7.0, "{count} refusals counted");
    let lines = exporter.stderr().lines().filter(|l| l.contains("request refused with 401")).count();
    assert!(lines >= 1 && (lines as f64) < count, "{lines} log lines for {count} refusals: {}", exporter.stderr());
}

#[test]
fn with_client_certificates_required_prometheus_scrapes_and_curl_without_one_fails_the_handshake() {
    let Some(pki) = Pki::new() else { return };
    let web = pki.path("web.yml");
    write(
        &web,
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n  min_version: TLS12\n",
    );
    let exporter = Served::start(&web, "127.0.0.1:0", &[]);
    let (ca, cert, key) = (pki.path("ca.crt"), pki.path("client.crt"), pki.path("client.key"));
    let (ca, cert, key) = (ca.to_str().unwrap(), cert.to_str().unwrap(), key.to_str().unwrap());
    let Some(prometheus) = Prometheus::start(&format!(
        "  - job_name: mtls\n    scheme: https\n    tls_config:\n      ca_file: {ca}\n      cert_file: {cert}\n      key_file: {key}\n      server_name: localhost\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n",
        exporter.port
    )) else {
        return;
    };
    assert_eq!(prometheus.wait_for("up{job=\"mtls\"}", 1.0), Some(1.0), "{}", exporter.stderr());
    let url = exporter.url("/metrics");
    let (status, code, stderr) = curl(&["--cacert", ca, &url]);
    assert_eq!(status, 0, "no HTTP answer without a client certificate: {stderr}");
    assert_ne!(code, 0, "{stderr}");
    // A certificate the client CA did not issue fails too: the server's own, used as a client's.
    let (server_cert, server_key) = (pki.path("server.crt"), pki.path("server.key"));
    let (status, _, stderr) =
        curl(&["--cacert", ca, "--cert", server_cert.to_str().unwrap(), "--key", server_key.to_str().unwrap(), &url]);
    assert_eq!(status, 0, "{stderr}");
    assert_eq!(curl(&["--cacert", ca, "--cert", cert, "--key", key, &url]).0, 200);
    // TLS 1.2 and 1.3 are both served (min_version TLS12).
    assert_eq!(curl(&["--tls-max", "1.2", "--cacert", ca, "--cert", cert, "--key", key, &url]).0, 200);
    // The two refused handshakes are counted, and said at warn with the TLS library's reason.
    assert!(refused(&exporter, &["--cacert", ca, "--cert", cert, "--key", key], "tls_handshake") >= 2.0);
    assert!(exporter.stderr().contains("TLS handshake failed"), "{}", exporter.stderr());
}

#[test]
fn a_rotated_certificate_and_changed_users_take_effect_without_a_restart() {
    let Some(pki) = Pki::new() else { return };
    let (Some(first), Some(second)) = (bcrypt("first", 10), bcrypt("second", 10)) else { return };
    pki.authority("ca2");
    pki.leaf(
        "ca2",
        "server2",
        "/CN=localhost",
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    );
    let web = pki.path("web.yml");
    let config = |hash: &str| {
        format!(
            "tls_server_config:\n  cert_file: live.crt\n  key_file: live.key\nbasic_auth_users:\n  alice: '{hash}'\n"
        )
    };
    // Rotation as tools do it: new files renamed over the old.
    let install = |from: &str| {
        for ext in ["crt", "key"] {
            std::fs::copy(pki.path(&format!("{from}.{ext}")), pki.path(&format!("new.{ext}"))).unwrap();
            std::fs::rename(pki.path(&format!("new.{ext}")), pki.path(&format!("live.{ext}"))).unwrap();
        }
    };
    install("server");
    write(&web, &config(&first));
    let exporter = Served::start(&web, "127.0.0.1:0", &[]);
    let url = exporter.url("/metrics");
    let (ca, ca2) = (pki.path("ca.crt"), pki.path("ca2.crt"));
    let (ca, ca2) = (ca.to_str().unwrap(), ca2.to_str().unwrap());
    assert_eq!(curl(&["--cacert", ca, "-u", "alice:first", &url]).0, 200);
    install("server2");
    assert_eq!(curl(&["--cacert", ca2, "-u", "alice:first", &url]).0, 200, "{}", exporter.stderr());
    assert_eq!(curl(&["--cacert", ca, "-u", "alice:first", &url]).0, 0, "the old CA no longer verifies it");
    std::fs::write(pki.path("web.tmp"), config(&second)).unwrap();
    std::fs::rename(pki.path("web.tmp"), &web).unwrap();
    assert_eq!(curl(&["--cacert", ca2, "-u", "alice:first", &url]).0, 401, "the old password, cached, is gone");
    assert_eq!(curl(&["--cacert", ca2, "-u", "alice:second", &url]).0, 200);
    // A change that cannot be used keeps the previous configuration, and says why.
    write(&web, "tls_server_config:\n  cert_file: live.crt\n");
    assert_eq!(curl(&["--cacert", ca2, "-u", "alice:second", &url]).0, 200);
    let log = exporter.stderr();
    assert!(log.contains("cannot be used") && log.contains("key_file is missing"), "{log}");
}

/// Opens TLS connections that send nothing, or a ClientHello's first bytes and then nothing.
fn silent_connections(port: u16, count: usize) -> Vec<TcpStream> {
    (0..count)
        .map(|i| {
            let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
            if i % 2 == 1 {
                stream.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).unwrap();
            }
            stream
        })
        .collect()
}

#[test]
fn clients_that_open_tls_and_send_nothing_do_not_stop_scrapes_and_are_closed() {
    let Some(pki) = Pki::new() else { return };
    let web = pki.path("web.yml");
    write(&web, "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n");
    let exporter = Served::start(&web, "127.0.0.1:0", &["--web.max-connections", "8", "--web.header-timeout", "1s"]);
    let ca = pki.path("ca.crt");
    let ca = ca.to_str().unwrap();
    // Four times the connection cap, all from the scraper's own address.
    let mut held = silent_connections(exporter.port, 32);
    for _ in 0..3 {
        assert_eq!(curl(&["--cacert", ca, &exporter.url("/metrics")]).0, 200, "{}", exporter.stderr());
    }
    // Plain HTTP on the TLS port is told what is wrong.
    let plain = format!("http://127.0.0.1:{}/metrics", exporter.port);
    assert_eq!(curl(&[&plain]).0, 400);
    // Each one is closed by the server: evicted for a newcomer, or at the handshake deadline.
    for stream in &mut held {
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut buf = [0; 4096];
        loop {
            match stream.read(&mut buf) {
                Ok(0) => break,
                // A TLS alert may come before the close.
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
                Err(e) => panic!("a silent connection was still open after 30 s ({e}); the header timeout is 1 s"),
            }
        }
    }
    // Each silent connection was counted once, as evicted or as past the handshake deadline.
    let count = |reason| refused(&exporter, &["--cacert", ca], reason);
    assert_eq!(count("plain_http"), 1.0);
    let closed = count("evicted") + count("tls_timeout") + count("tls_handshake");
    assert!(closed >= 32.0, "{closed} closes counted for 32 silent connections: {}", exporter.stderr());
}

/// Runs the binary with `web.yml` holding `yaml` in a folder with the test PKI: (exit code, stderr).
fn run_with(pki: &Pki, yaml: &str, extra: &[&str]) -> (i32, String, PathBuf) {
    let web = pki.path("web.yml");
    write(&web, yaml);
    let mut child = Command::new(BIN)
        .args(["--web.config.file", web.to_str().unwrap(), "--web.listen-address", "127.0.0.1:0"])
        .args(["--path.rootfs", fixture_root("root-v2").to_str().unwrap()])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("still running after 20 s with {yaml:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned(), web)
}

#[test]
fn a_web_config_that_cannot_serve_stops_the_start_naming_the_file_and_the_key() {
    let Some(pki) = Pki::new() else { return };
    std::fs::create_dir(pki.path("a-directory.crt")).unwrap();
    let tls = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";
    let cases: Vec<(String, &str)> = vec![
        ("tls_server_config:\n  cert_fil: server.crt\n".into(), "unknown field `cert_fil`"),
        ("basic_auth_user:\n  a: b\n".into(), "unknown field `basic_auth_user`"),
        ("basic_auth_users:\n  alice: plaintext-password\n".into(), "basic_auth_users.alice: not a bcrypt hash"),
        ("tls_server_config:\n  key_file: server.key\n".into(), "cert_file is missing"),
        ("tls_server_config:\n  cert_file: a-directory.crt\n  key_file: server.key\n".into(), "is a directory"),
        ("tls_server_config:\n  cert_file: missing.crt\n  key_file: server.key\n".into(), "missing.crt"),
        ("tls_server_config:\n  cert_file: server.key\n  key_file: server.key\n".into(), "no CERTIFICATE block"),
        (
            "tls_server_config:\n  cert_file: server.crt\n  key_file: client.key\n".into(),
            "is the key the certificate's?",
        ),
        (format!("{tls}  min_version: TLS11\n"), "TLS 1.2 and 1.3 only"),
        (format!("{tls}  cipher_suites: [TLS_RSA_WITH_AES_128_CBC_SHA]\n"), "not implemented by rustls"),
        (format!("{tls}  curve_preferences: [CurveP521]\n"), "CurveP521"),
        (format!("{tls}  client_auth_type: RequireAndVerifyClientCert\n"), "set client_ca_file"),
        (format!("{tls}  client_auth_type: Sometimes\n"), "client_auth_type: unknown value"),
        ("basic_auth_users:\n  a: x\n  a: y\n".into(), "user `a` is listed twice"),
        (format!("{tls}  client_allowed_sans: [a]\n"), "client_allowed_sans is not supported"),
        ("http_server_config:\n  headers:\n    Server: x\n".into(), "cannot be set; the headers that can are"),
        ("http_server_config:\n  http2: true\n".into(), "HTTP/1.1 only"),
        ("rate_limit:\n  interval: 1s\n  burst: 2\n".into(), "rate_limit is not supported"),
    ];
    for (yaml, needle) in &cases {
        let (code, stderr, web) = run_with(&pki, yaml, &[]);
        assert_eq!(code, 1, "{yaml:?}: {stderr}");
        assert!(stderr.contains(needle) && stderr.contains(web.to_str().unwrap()), "{yaml:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        // --config.check reads the web config too, and says the same.
        let (code, stderr, _) = run_with(&pki, yaml, &["--config.check"]);
        assert_eq!(code, 2, "{yaml:?}: {stderr}");
        assert!(stderr.contains(needle), "--config.check {yaml:?}: {stderr}");
    }
    // Secrets put where they do not belong are named by their key, never echoed.
    let Some(hash) = bcrypt("pw", 4) else { return };
    let key = std::fs::read_to_string(pki.path("server.key")).unwrap();
    let key_line = key.lines().nth(1).unwrap();
    let pem = key.lines().collect::<Vec<_>>().join("\n    ");
    for (yaml, needle) in [
        (format!("basic_auth_users:\n  prom:{hash}\n"), "basic_auth_users"),
        (format!("{tls}  client_auth_type: |\n    {pem}\n"), "client_auth_type: unknown value"),
        (
            format!("{tls}  prefer_server_cipher_suites: \"{}\"\n", key.replace('\n', "\\n")),
            "prefer_server_cipher_suites",
        ),
    ] {
        let (code, stderr, _) = run_with(&pki, &yaml, &["--config.check"]);
        assert_eq!(code, 2, "{yaml:?}: {stderr}");
        assert!(stderr.contains(needle), "{yaml:?}: {stderr}");
        assert!(!stderr.contains(&hash[7..]) && !stderr.contains(key_line), "a secret was echoed: {stderr}");
    }
    let (code, stderr, _) = run_with(&pki, tls, &["--config.check"]);
    assert_eq!(code, 0, "{stderr}");
    // Cost 3: libxcrypt's hash with the cost bcrypt refuses to check (so no password would match).
    let low = hash.replacen("$04$", "$03$", 1);
    let (code, stderr, _) = run_with(&pki, &format!("basic_auth_users:\n  a: '{low}'\n"), &["--config.check"]);
    assert!(code == 2 && stderr.contains("basic_auth_users.a: bcrypt cost 3 is outside 4..=31"), "{stderr}");
    // The toolkit's older name of RequireAnyClientCert.
    let (code, stderr, _) =
        run_with(&pki, &format!("{tls}  client_auth_type: RequireClientCert\n"), &["--config.check"]);
    assert_eq!(code, 0, "{stderr}");
    // The shipped example, with the files it names.
    std::fs::copy(pki.path("ca.crt"), pki.path("clients-ca.crt")).unwrap();
    let example = std::fs::read_to_string(common::repo("deploy/web-config.yml")).unwrap();
    let (code, stderr, _) = run_with(&pki, &example, &["--config.check"]);
    assert_eq!(code, 0, "deploy/web-config.yml: {stderr}");
    let missing = pki.path("nowhere.yml");
    let out =
        Command::new(BIN).args(["--web.config.file", missing.to_str().unwrap(), "--config.check"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--web.config.file") && stderr.contains(missing.to_str().unwrap()), "{stderr}");
    // A webhook token beside basic-auth users: both need the Authorization header.
    let Some(hash) = bcrypt("x", 4) else { return };
    write(&pki.path("token"), "t0ken\n");
    let token = pki.path("token");
    let (code, stderr, _) = run_with(
        &pki,
        &format!("basic_auth_users:\n  a: '{hash}'\n"),
        &["--webhook.token-file", token.to_str().unwrap()],
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("Authorization header"), "{stderr}");
}

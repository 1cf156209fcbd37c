//! OTLP over TLS with `--otlp.ca-file`: the Python receiver serves a certificate signed by a CA
//! that the test makes with openssl; the exporter trusts that CA and delivers, or is given another
//! CA and refuses the receiver with a log line naming the certificate, counting its drops.

use super::{check_heaptrack_profiles, wait_for_counter};
use crate::common::{self, Exporter, fixture_root, free_port, require_tool};
use crate::receivers::{Receiver, venv};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A CA, a server certificate it signed for 127.0.0.1, and an unrelated CA.
struct Certificates {
    dir: tempfile::TempDir,
}

impl Certificates {
    fn make() -> Option<Certificates> {
        let openssl = require_tool("openssl", "openssl")?;
        let dir = tempfile::tempdir().unwrap();
        let run = |args: &[&str]| {
            let out = Command::new(&openssl).args(args).current_dir(dir.path()).output().unwrap();
            assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        for ca in ["ca", "other-ca"] {
            let (key, pem, subject) = (format!("{ca}.key"), format!("{ca}.pem"), format!("/CN=memleak test {ca}"));
            let mut args = vec!["req", "-x509"];
            args.extend_from_slice(&ec);
            args.extend_from_slice(&[
                "-keyout",
                key.as_str(),
                "-out",
                pem.as_str(),
                "-days",
                "2",
                "-subj",
                subject.as_str(),
            ]);
            args.extend_from_slice(&[
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=keyCertSign",
            ]);
            run(&args);
        }
        let mut args = vec!["req"];
        args.extend_from_slice(&ec);
        args.extend_from_slice(&["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"]);
        run(&args);
        std::fs::write(
            dir.path().join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            "server.pem",
            "-extfile",
            "server.ext",
        ]);
        Some(Certificates { dir })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn exporter_over_tls(port: u16, protocol: &str, ca: &Path, watched: &Path, extra: &[&str]) -> Exporter {
    let root = fixture_root("root-v2");
    let endpoint = format!("https://127.0.0.1:{port}");
    let mut args = vec!["--path.rootfs", root.to_str().unwrap(), "--otlp.endpoint", &endpoint];
    args.extend_from_slice(&["--otlp.protocol", protocol, "--otlp.ca-file", ca.to_str().unwrap()]);
    args.extend_from_slice(&["--ingest.dir", watched.to_str().unwrap(), "--ingest.interval", "500ms"]);
    args.extend_from_slice(extra);
    Exporter::start(&args)
}

fn check_trusted_ca(protocol: &str) {
    let Some(venv) = venv() else { return };
    let Some(certs) = Certificates::make() else { return };
    let receiver =
        Receiver::python_tls(&venv, free_port(), free_port(), &certs.path("server.pem"), &certs.path("server.key"));
    let port = if protocol == "grpc" { receiver.grpc_port } else { receiver.http_port };
    let watched = tempfile::tempdir().unwrap();
    std::fs::copy(common::repo("artifacts/tests/fixtures/heaptrack/a.zst"), watched.path().join("heaptrack.a.zst"))
        .unwrap();
    let exporter = exporter_over_tls(port, protocol, &certs.path("ca.pem"), watched.path(), &[]);
    let text =
        receiver.wait_for(Duration::from_secs(30), "a profiles export over TLS", |t| t.contains("resourceProfiles"));
    check_heaptrack_profiles(&text);
    wait_for_counter(&exporter, "memleak_exporter_otlp_sent_total{signal=\"profiles\"}", |v| v > 0.0);
}

#[test]
fn a_receiver_signed_by_the_ca_file_gets_the_profiles_over_grpc_with_tls() {
    check_trusted_ca("grpc");
}

#[test]
fn a_receiver_signed_by_the_ca_file_gets_the_profiles_over_http_with_tls() {
    check_trusted_ca("http/protobuf");
}

/// Another CA than the receiver's: nothing is delivered, one warning names the certificate
/// problem, and the exports that could not go are counted.
#[test]
fn a_receiver_signed_by_another_ca_is_refused_with_a_clear_line_and_counted_drops() {
    let Some(venv) = venv() else { return };
    let Some(certs) = Certificates::make() else { return };
    let receiver =
        Receiver::python_tls(&venv, free_port(), free_port(), &certs.path("server.pem"), &certs.path("server.key"));
    let watched = tempfile::tempdir().unwrap();
    for (protocol, port) in [("grpc", receiver.grpc_port), ("http/protobuf", receiver.http_port)] {
        let extra = ["--otlp.interval", "200ms", "--otlp.queue-size", "1", "--otlp.timeout", "2s"];
        let exporter = exporter_over_tls(port, protocol, &certs.path("other-ca.pem"), watched.path(), &extra);
        let full = "memleak_exporter_otlp_dropped_total{signal=\"metrics\",reason=\"queue_full\"}";
        wait_for_counter(&exporter, full, |v| v > 0.0);
        let text = exporter.metrics();
        assert!(!text.contains("memleak_exporter_otlp_sent_total"), "{protocol}: nothing was accepted:\n{text}");
        let log = exporter.stderr();
        let warnings: Vec<&str> = log.lines().filter(|l| l.contains("cannot reach the OTLP receiver")).collect();
        assert_eq!(warnings.len(), 1, "{protocol}: one line while it fails:\n{log}");
        assert!(
            warnings[0].to_lowercase().contains("certificate"),
            "{protocol}: the line names the certificate problem:\n{log}"
        );
    }
    assert!(!receiver.output().contains("resourceProfiles"), "nothing got through:\n{}", receiver.output());
}

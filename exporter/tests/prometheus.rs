//! The exporter scraped by a real Prometheus (Debian `prometheus`): the scrape
//! succeeds (Prometheus negotiates OpenMetrics first) and the values arrive.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Exporter, fixture_root, free_port, query, require_tool};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Prometheus(std::process::Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn real_prometheus_scrapes_the_exporter() {
    let Some(prometheus) = require_tool("prometheus", "prometheus") else { return };
    let root = fixture_root("root-v2");
    let exporter = Exporter::start(&["--path.rootfs", root.to_str().unwrap()]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n  - job_name: memleak\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n",
            exporter.port
        ),
    )
    .unwrap();
    let port = free_port();
    let _prometheus = Prometheus(
        Command::new(prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut up = None;
    while Instant::now() < deadline {
        up = std::net::TcpStream::connect(("127.0.0.1", port)).ok().and_then(|_| query(port, "up{job=\"memleak\"}"));
        if up == Some(1.0) {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(up, Some(1.0), "Prometheus did not scrape the exporter successfully within 60 s");
    // Values as the fixture root holds them (see signals/tests/collectors.rs for their ground truth).
    assert_eq!(query(port, "memleak_process_processes{group=\"a_cachesvc\"}"), Some(2.0));
    assert_eq!(query(port, "memleak_cgroup_limit_bytes{unit=\"a_cachesvc.service\"}"), Some(512.0 * 1048576.0));
    assert_eq!(query(port, "memleak_psi_stall_seconds_total{kind=\"some\"}"), Some(4.2));
    assert_eq!(query(port, "memleak_exporter_build_info{allocator=\"jemalloc\"}"), Some(1.0));
    assert_eq!(query(port, "min(memleak_exporter_collector_success)"), Some(1.0));
}

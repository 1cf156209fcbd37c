//! The exporter scraped by a real Prometheus (Debian `prometheus`): the scrape
//! succeeds (Prometheus negotiates OpenMetrics first) and the values arrive.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::prometheus::Prometheus;
use common::{Exporter, fixture_root, query};

#[test]
fn real_prometheus_scrapes_the_exporter() {
    let root = fixture_root("root-v2");
    let exporter = Exporter::start(&["--path.rootfs", root.to_str().unwrap()]);
    let scrape =
        format!("  - job_name: memleak\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n", exporter.port);
    let Some(prometheus) = Prometheus::start(&scrape) else { return };
    let up = prometheus.wait_for("up{job=\"memleak\"}", 1.0);
    assert_eq!(up, Some(1.0), "Prometheus did not scrape the exporter successfully within 60 s");
    let port = prometheus.port;
    // Values as the fixture root holds them (see signals/tests/collectors.rs for their ground truth).
    assert_eq!(query(port, "memleak_process_processes{group=\"a_cachesvc\"}"), Some(2.0));
    assert_eq!(query(port, "memleak_cgroup_limit_bytes{unit=\"a_cachesvc.service\"}"), Some(512.0 * 1048576.0));
    assert_eq!(query(port, "memleak_psi_stall_seconds_total{kind=\"some\"}"), Some(4.2));
    assert_eq!(query(port, "memleak_exporter_build_info{allocator=\"jemalloc\"}"), Some(1.0));
    assert_eq!(query(port, "min(memleak_exporter_collector_success)"), Some(1.0));
}

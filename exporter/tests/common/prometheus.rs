//! A real Prometheus (Debian `prometheus`) for the end-to-end tests.

use super::{Guard, free_port, query, require_tool};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A real Prometheus with `scrape_configs` (YAML list items, indented by two), killed on drop.
pub struct Prometheus {
    _child: Guard,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    pub fn start(scrape_configs: &str) -> Option<Prometheus> {
        let prometheus = require_tool("prometheus", "prometheus")?;
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        let text =
            format!("global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n{scrape_configs}");
        std::fs::write(&config, text).unwrap();
        let port = free_port();
        let child = Command::new(prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Some(Prometheus { _child: Guard(child), port, _dir: dir })
    }

    /// The value of `promql` once it equals `want`, or the last one seen after 60 s.
    pub fn wait_for(&self, promql: &str, want: f64) -> Option<f64> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = None;
        while Instant::now() < deadline {
            seen = TcpStream::connect(("127.0.0.1", self.port)).ok().and_then(|_| query(self.port, promql));
            if seen == Some(want) {
                break;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        seen
    }

    /// The `lastError` of the job's target.
    pub fn last_error(&self, job: &str) -> String {
        let (_, _, body) = super::http_get(self.port, "/api/v1/targets", None);
        let targets: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let active = targets["data"]["activeTargets"].as_array().unwrap();
        let target = active.iter().find(|t| t["labels"]["job"] == job).unwrap_or_else(|| panic!("no job {job}"));
        target["lastError"].as_str().unwrap_or_default().to_owned()
    }
}

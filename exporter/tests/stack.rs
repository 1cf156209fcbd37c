//! The whole loop on real components, on loopback: a leaky and a steady
//! workload, the exporter, Prometheus evaluating our rules (a copy with every
//! window scaled down 180×), and Alertmanager delivering the leak alert to the
//! exporter's webhook with a bearer token. Bounded to a few minutes; every
//! process it starts is killed when it ends.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Exporter, free_port, http_get, query, require_tool};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the process when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(program: &Path, args: &[String], log: &Path) -> Guard {
    Guard(
        Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display())),
    )
}

/// Scales every duration of the rules by 1/180 (15m → 5s, 1h → 20s, 2h → 40s),
/// rounding up to whole seconds, so the alerts run in seconds instead of hours.
fn scaled_rules() -> String {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../alerts/rules/memleak.rules.yml"))
        .unwrap();
    let duration = regex::Regex::new(r"(\[|offset |for: )(\d+)([smhd])\b").unwrap();
    duration
        .replace_all(&text, |c: &regex::Captures| {
            let n: u64 = c[2].parse().unwrap();
            let seconds = n * match &c[3] {
                "s" => 1,
                "m" => 60,
                "h" => 3600,
                _ => 86400,
            };
            format!("{}{}s", &c[1], seconds.div_ceil(180))
        })
        .into_owned()
}

/// A workload process whose command name (comm) is `name`: awk run through a
/// symlink of that name, holding `program`'s memory.
fn workload(dir: &Path, awk: &Path, name: &str, program: &str) -> Guard {
    let link = dir.join(name);
    std::os::unix::fs::symlink(awk, &link).unwrap();
    spawn(&link, &[program.to_owned()], &dir.join(format!("{name}.log")))
}

fn firing_alerts(port: u16) -> Vec<serde_json::Value> {
    let (status, _, body) = http_get(port, "/api/v1/alerts", None);
    if status != 200 {
        return Vec::new();
    }
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    json["data"]["alerts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|a| a["state"] == "firing")
        .collect()
}

#[test]
fn a_leak_fires_in_prometheus_and_alertmanager_calls_the_webhook() {
    let (Some(prometheus), Some(alertmanager), Some(awk)) = (
        require_tool("prometheus", "prometheus"),
        require_tool("prometheus-alertmanager", "prometheus-alertmanager"),
        require_tool("awk", "mawk"),
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    // Leaks 1 MiB every 100 ms for 90 s; the control holds 20 MiB. (mawk's sprintf
    // is limited to 8 KiB, so the 1 MiB string is built by doubling.)
    let _leaky = workload(
        d,
        &awk,
        "leakyworker",
        r#"BEGIN { s = "x"; while (length(s) < 1000000) s = s s; for (i = 0; i < 900; i++) { a[i] = s i; system("sleep 0.1") } while (1) system("sleep 1") }"#,
    );
    let _steady = workload(
        d,
        &awk,
        "steadyworker",
        r#"BEGIN { s = "x"; while (length(s) < 1000000) s = s s; for (i = 0; i < 20; i++) a[i] = s i; while (1) system("sleep 1") }"#,
    );

    let token = d.join("token");
    std::fs::write(&token, "stack-test-token\n").unwrap();
    let exporter = Exporter::start(&[
        "--collector.process.include-comm",
        "leakyworker|steadyworker",
        "--collector.process.detail-interval",
        "1s",
        "--webhook.token-file",
        token.to_str().unwrap(),
    ]);

    let am_port = free_port();
    std::fs::write(
        d.join("alertmanager.yml"),
        format!(
            "route:\n  receiver: default\n  routes:\n    - receiver: memleak\n      matchers: ['capture=~\"allocator-profile|ebpf-malloc|staleness\"']\n      group_by: [alertname, instance, group, cgroup]\n      group_wait: 1s\n      group_interval: 2s\n      repeat_interval: 1h\nreceivers:\n  - name: default\n  - name: memleak\n    webhook_configs:\n      - url: http://127.0.0.1:{}/api/v1/alerts\n        send_resolved: true\n        http_config:\n          authorization:\n            type: Bearer\n            credentials_file: {}\n",
            exporter.port,
            token.display()
        ),
    )
    .unwrap();
    let _am = spawn(
        &alertmanager,
        &[
            format!("--config.file={}", d.join("alertmanager.yml").display()),
            format!("--storage.path={}", d.join("am-data").display()),
            format!("--web.listen-address=127.0.0.1:{am_port}"),
            "--cluster.listen-address=".into(),
        ],
        &d.join("alertmanager.log"),
    );

    std::fs::write(d.join("rules.yml"), scaled_rules()).unwrap();
    let prom_port = free_port();
    std::fs::write(
        d.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n  scrape_timeout: 900ms\nrule_files: [{}]\nalerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{am_port}']\nscrape_configs:\n  - job_name: memleak\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n",
            d.join("rules.yml").display(),
            exporter.port
        ),
    )
    .unwrap();
    let _prom = spawn(
        &prometheus,
        &[
            format!("--config.file={}", d.join("prometheus.yml").display()),
            format!("--storage.tsdb.path={}", d.join("prom-data").display()),
            format!("--web.listen-address=127.0.0.1:{prom_port}"),
        ],
        &d.join("prometheus.log"),
    );

    // The leak alert fires for the leaky group (scaled: 3 × 5 s windows + 20 s `for`).
    let deadline = Instant::now() + Duration::from_secs(150);
    let mut leak_alert = None;
    while Instant::now() < deadline && leak_alert.is_none() {
        std::thread::sleep(Duration::from_secs(1));
        leak_alert = firing_alerts(prom_port)
            .into_iter()
            .find(|a| a["labels"]["alertname"] == "ProcessMemoryLeakFast" && a["labels"]["group"] == "leakyworker");
    }
    let logs = |name: &str| std::fs::read_to_string(d.join(name)).unwrap_or_default();
    let leak_alert = leak_alert.unwrap_or_else(|| {
        panic!("ProcessMemoryLeakFast never fired for leakyworker\nprometheus:\n{}", logs("prometheus.log"))
    });
    assert_eq!(leak_alert["labels"]["capture"], "allocator-profile");

    // Alertmanager delivers it to the webhook, which accepts it (metrics and log).
    let mut accepted = false;
    while Instant::now() < deadline && !accepted {
        std::thread::sleep(Duration::from_secs(1));
        accepted = exporter
            .metrics()
            .contains("memleak_exporter_capture_requests_total{kind=\"allocator-profile\",status=\"firing\"}");
    }
    assert!(accepted, "the exporter never accepted a capture request\nalertmanager:\n{}", logs("alertmanager.log"));
    let log = exporter.stderr();
    assert!(log.contains("capture requested") && log.contains("group=leakyworker"), "{log}");
    assert!(!log.contains("group=steadyworker"), "{log}");
    assert!(exporter.metrics().contains("memleak_exporter_webhook_requests_total{code=\"200\"}"));

    // The steady control never fired anything.
    assert_eq!(query(prom_port, "count(ALERTS{group=\"steadyworker\"})"), None);
    assert!(query(prom_port, "memleak_process_anon_bytes{group=\"steadyworker\"}").unwrap() > 15e6);
}

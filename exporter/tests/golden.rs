//! The collector goldens: what the collector table's default set emits over the fixture roots, built as the exporter builds it (no second list to keep in step).
//!
//! The goldens live beside the fixture roots (`signals/tests/golden/<root>.prom`); `e2e.rs` checks
//! that a real scrape serves them unchanged after the exporter's own metrics.
//! `UPDATE_GOLDEN=1 cargo test -p memleak-exporter --test golden` rewrites them: review the diff.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::fixture_root;
use memleak_exporter::{cli, collectors};
use memleak_signals::encode::{Format, encode};
use memleak_signals::{Collection, MetricSet, ScrapeContext};
use std::path::Path;
use std::time::Duration;

/// The default collectors of the table, configured from a command line naming `root`, run once.
fn default_exposition(root: &Path) -> String {
    let matches = cli::command().get_matches_from(["memleak-exporter", "--path.rootfs", root.to_str().unwrap()]);
    let settings = cli::invocation_from(&matches).unwrap().settings;
    let built = collectors::build(settings.collectors, &settings.roots).unwrap();
    let mut set = MetricSet::new();
    for mut collector in built.collectors {
        let mut out = Collection::default();
        collector.collect(&ScrapeContext::with_budget(Duration::from_secs(10)), &mut out);
        assert!(out.problems.is_empty(), "{} on {}: {:?}", collector.id(), root.display(), out.problems);
        set.append(out.metrics);
    }
    // The detail age depends on the clock.
    encode(&set, Format::PrometheusText)
        .lines()
        .filter(|l| !l.starts_with("memleak_process_detail_age_seconds "))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn golden_exposition_of_the_default_collectors() {
    for name in ["root-v2", "root-v1"] {
        let text = default_exposition(&fixture_root(name));
        let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../signals/tests/golden/{name}.prom"));
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&golden, &text).unwrap();
        }
        let expected = std::fs::read_to_string(&golden).unwrap_or_default();
        assert!(
            text == expected,
            "{name}: the default collectors' output differs from {}; rerun with UPDATE_GOLDEN=1 \
             cargo test -p memleak-exporter --test golden and review the diff",
            golden.display()
        );
    }
}

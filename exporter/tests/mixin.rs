//! The monitoring mixin (mixin/) against its rendered files: the checked-in rules and dashboards
//! are jsonnet's rendering of it with the default `_config`, another `_config` renders rules that
//! promtool accepts and that read only the selected exporter series, and the dashboards link to
//! each other and describe every panel.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{repo, require_tool, run_tool};
use promql_parser::parser::{self, Expr, VectorSelector};
use promql_parser::util::{ExprVisitor, walk_expr};
use serde_json::Value as Json;
use std::path::Path;
use std::process::Command;

const DASHBOARDS: [&str; 3] = ["memleak-fleet", "memleak-drilldown", "memleak-captures"];

/// Runs `jsonnet ARGS` from the repository root; its standard output.
fn jsonnet(jsonnet: &Path, args: &[&str]) -> String {
    let out = Command::new(jsonnet).args(args).current_dir(repo("")).output().unwrap();
    assert!(out.status.success(), "jsonnet {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_checked_in_rules_and_dashboards_are_the_mixin_rendered_with_its_defaults() {
    let Some(bin) = require_tool("jsonnet", "jsonnet") else { return };
    // The YAML is jsonnet's JSON written as YAML (consistency.rs checks its bytes against make_rules.py).
    let rendered: Json = serde_json::from_str(&jsonnet(&bin, &["mixin/rules.jsonnet"])).unwrap();
    let committed: Json =
        serde_norway::from_str(&std::fs::read_to_string(repo("alerts/rules/memleak.rules.yml")).unwrap()).unwrap();
    assert!(
        rendered == committed,
        "alerts/rules/memleak.rules.yml is not the mixin's rendering: run alerts/make_rules.py"
    );
    let dir = tempfile::tempdir().unwrap();
    jsonnet(&bin, &["-m", dir.path().to_str().unwrap(), "mixin/dashboards.jsonnet"]);
    for uid in DASHBOARDS {
        let rendered = std::fs::read_to_string(dir.path().join(format!("{uid}.json"))).unwrap();
        let committed = std::fs::read_to_string(repo(&format!("dashboards/{uid}.json"))).unwrap();
        assert!(
            rendered == committed,
            "dashboards/{uid}.json is not the mixin's rendering: run dashboards/make_dashboards.py"
        );
    }
}

/// Every selector of exporter series (`memleak_*`; recorded series are `memleak:*`) in an expression.
#[derive(Default)]
struct ExporterSelectors(Vec<VectorSelector>);

impl ExprVisitor for ExporterSelectors {
    type Error = ();

    fn pre_visit(&mut self, expr: &Expr) -> Result<bool, ()> {
        let vs = match expr {
            Expr::VectorSelector(vs) => vs,
            Expr::MatrixSelector(ms) => &ms.vs,
            _ => return Ok(true),
        };
        if vs.name.as_deref().is_some_and(|n| n.starts_with("memleak_")) {
            self.0.push(vs.clone());
        }
        Ok(true)
    }
}

#[test]
fn another_job_selector_reaches_every_exporter_series_and_promtool_accepts_the_rules() {
    let Some(bin) = require_tool("jsonnet", "jsonnet") else { return };
    let config =
        r#"mixin=(import "mixin.libsonnet") + { _config+:: { memleakSelector: 'job="node-memleak", env!="dev"' } }"#;
    let rendered = jsonnet(&bin, &["-J", "mixin", "--tla-code", config, "mixin/rules.jsonnet"]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rules.json");
    std::fs::write(&file, &rendered).unwrap();
    run_tool("promtool", "prometheus", &["check", "rules", file.to_str().unwrap()]);

    let parsed: Json = serde_json::from_str(&rendered).unwrap();
    let (mut exprs, mut selectors) = (0, 0);
    for group in parsed["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            let name = rule["record"].as_str().or(rule["alert"].as_str()).unwrap();
            let expr = parser::parse(rule["expr"].as_str().unwrap()).unwrap_or_else(|e| panic!("{name}: {e}"));
            let mut found = ExporterSelectors::default();
            walk_expr(&mut found, &expr).unwrap();
            exprs += usize::from(!found.0.is_empty());
            for vs in found.0 {
                selectors += 1;
                let has = |n: &str, v: &str| vs.matchers.matchers.iter().any(|m| m.name == n && m.value == v);
                assert!(has("job", "node-memleak") && has("env", "dev"), "{name}: {vs} lacks the configured selector");
            }
        }
    }
    // Floors, restarts, page faults, cgroup resets and limits, host predictions and OOM kills read them.
    assert!(exprs >= 15 && selectors >= exprs, "only {selectors} exporter selectors in {exprs} rules");
}

/// The uids a dashboard's panels link to (`/d/UID?...` in panel links and data links).
fn linked_uids(dash: &Json) -> Vec<String> {
    let mut urls = Vec::new();
    for panel in dash["panels"].as_array().unwrap() {
        let links = panel["links"].as_array().into_iter().flatten();
        let data_links = panel["fieldConfig"]["defaults"]["links"].as_array().into_iter().flatten();
        urls.extend(links.chain(data_links).filter_map(|l| l["url"].as_str()));
    }
    urls.iter().filter_map(|u| u.strip_prefix("/d/")).map(|u| u.split('?').next().unwrap().to_owned()).collect()
}

#[test]
fn every_panel_is_described_and_every_dashboard_links_to_the_others() {
    let dashes: Vec<Json> = DASHBOARDS
        .iter()
        .map(|uid| {
            serde_json::from_str(&std::fs::read_to_string(repo(&format!("dashboards/{uid}.json"))).unwrap()).unwrap()
        })
        .collect();
    for (uid, dash) in DASHBOARDS.iter().zip(&dashes) {
        for panel in dash["panels"].as_array().unwrap() {
            let title = panel["title"].as_str().unwrap();
            assert!(panel["description"].as_str().is_some_and(|d| d.len() > 20), "{uid} / {title}: no description");
        }
        let linked = linked_uids(dash);
        for other in DASHBOARDS.iter().filter(|o| *o != uid) {
            let reached = linked.iter().any(|l| l == other)
                || linked.iter().any(|via| {
                    dashes[DASHBOARDS.iter().position(|d| d == via).unwrap()]
                        .to_string()
                        .contains(&format!("/d/{other}?"))
                });
            assert!(reached, "{uid}: no panel leads to {other}, directly or through one dashboard");
        }
    }
    // The fleet's growing groups open the drill-down on the group clicked.
    assert!(dashes[0].to_string().contains("var-group=${__field.labels.group}"));
    // The drill-down opens on every group and cgroup, not on whichever sorts first.
    for var in dashes[1]["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["name"] == "group" || v["name"] == "cgroup")
    {
        assert_eq!(var["current"]["value"][0], "$__all", "drill-down variable {}", var["name"]);
    }
    // Ingestion results are on a dashboard.
    let ingest =
        dashes.iter().flat_map(|d| d["panels"].as_array().unwrap()).flat_map(|p| p["targets"].as_array().unwrap());
    assert!(ingest.filter(|t| t["expr"].as_str().unwrap().contains("memleak_ingest_")).count() >= 2);
}

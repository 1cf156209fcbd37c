//! The rule set, the dashboards and the Alertmanager example against the code:
//! every series they name is exported by a signal or recorded by a rule, with
//! labels it has; every alert is tested, documented and routable; and the real
//! tools (promtool, amtool) accept the files.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{repo, require_tool, run_tool, yaml};
use memleak_exporter::capture::kinds::KINDS;
use memleak_exporter::collectors;
use memleak_signals::MetricType;
use promql_parser::parser::{self, Expr, LabelModifier};
use serde_json::Value as Json;
use serde_norway::Value as Yaml;
use std::collections::{BTreeMap, BTreeSet};

/// Every capture kind an alert may name: the capture-kind table's.
fn capture_kinds() -> Vec<&'static str> {
    KINDS.iter().map(|k| k.id).collect()
}

/// Labels Prometheus adds to every scraped series.
const TARGET_LABELS: &[&str] = &["instance", "job"];

/// Series name → labels it can carry: exported metrics, then recorded ones.
struct Catalog {
    series: BTreeMap<String, BTreeSet<String>>,
}

impl Catalog {
    fn exported() -> Catalog {
        let mut series = BTreeMap::new();
        for (_, spec) in collectors::metric_families() {
            let labels: BTreeSet<String> = spec.labels.iter().chain(TARGET_LABELS).map(|l| (*l).to_owned()).collect();
            if spec.kind == MetricType::Histogram {
                // A histogram is three series; only its buckets carry `le`.
                let mut bucket = labels.clone();
                bucket.insert("le".to_owned());
                series.insert(format!("{}_bucket", spec.name), bucket);
                series.insert(format!("{}_sum", spec.name), labels.clone());
                series.insert(format!("{}_count", spec.name), labels);
            } else {
                series.insert(spec.name.to_owned(), labels);
            }
        }
        Catalog { series }
    }

    /// Checks an expression; returns the labels its result can carry.
    fn check(&self, expr: &Expr, context: &str) -> BTreeSet<String> {
        match expr {
            Expr::VectorSelector(vs) => self.selector(vs, context),
            Expr::MatrixSelector(ms) => self.selector(&ms.vs, context),
            Expr::Aggregate(a) => {
                let inner = self.check(&a.expr, context);
                if let Some(p) = &a.param {
                    self.check(p, context);
                }
                match &a.modifier {
                    Some(LabelModifier::Include(by)) => {
                        for l in &by.labels {
                            assert!(inner.contains(l), "{context}: `by ({l})` but the series have no label {l}");
                        }
                        by.labels.iter().cloned().collect()
                    }
                    _ => inner,
                }
            }
            Expr::Binary(b) => {
                let mut labels = self.check(&b.lhs, context);
                labels.extend(self.check(&b.rhs, context));
                if let Some(LabelModifier::Include(on)) = b.modifier.as_ref().and_then(|m| m.matching.as_ref()) {
                    for l in &on.labels {
                        assert!(labels.contains(l), "{context}: `on ({l})` but neither side has label {l}");
                    }
                }
                labels
            }
            Expr::Paren(p) => self.check(&p.expr, context),
            Expr::Unary(u) => self.check(&u.expr, context),
            Expr::Subquery(s) => self.check(&s.expr, context),
            Expr::Call(c) => c.args.args.iter().flat_map(|a| self.check(a, context)).collect(),
            Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => BTreeSet::new(),
        }
    }

    fn selector(&self, vs: &promql_parser::parser::VectorSelector, context: &str) -> BTreeSet<String> {
        let name = vs.name.as_deref().unwrap_or_else(|| panic!("{context}: a selector without a metric name"));
        if name == "ALERTS" {
            // Alert labels vary by alert; any is fine.
            return ["alertname", "alertstate", "instance", "job", "group", "cgroup", "capture", "severity"]
                .map(String::from)
                .into();
        }
        let labels = self.series.get(name).unwrap_or_else(|| {
            panic!("{context}: series {name} is neither exported by a signal nor recorded by a rule")
        });
        for m in &vs.matchers.matchers {
            assert!(labels.contains(&m.name), "{context}: {name} has no label {:?} (it has {labels:?})", m.name);
        }
        labels.clone()
    }
}

fn parse(expr: &str, context: &str) -> Expr {
    parser::parse(expr).unwrap_or_else(|e| panic!("{context}: does not parse as PromQL: {e}\n{expr}"))
}

fn rules() -> Vec<Yaml> {
    let file = yaml("alerts/rules/memleak.rules.yml");
    file["groups"].as_sequence().unwrap().iter().flat_map(|g| g["rules"].as_sequence().unwrap().clone()).collect()
}

/// The catalog after walking the rules in order (recorded series join it).
fn catalog_with_rules() -> Catalog {
    let mut catalog = Catalog::exported();
    for rule in rules() {
        let expr = rule["expr"].as_str().unwrap();
        let name = rule["record"].as_str().or(rule["alert"].as_str()).unwrap().to_owned();
        let labels = catalog.check(&parse(expr, &name), &name);
        if rule["record"].is_string() {
            assert_eq!(name.matches(':').count(), 2, "recorded name {name} must be level:metric:operations");
            catalog.series.insert(name, labels);
        }
    }
    catalog
}

#[test]
fn every_series_in_the_rules_exists_with_its_labels() {
    let catalog = catalog_with_rules();
    assert!(catalog.series.contains_key("memleak:process_anon_bytes:leak_evidence1h30m"));
    assert!(catalog.series.contains_key("memleak:cgroup_anon_bytes:leak_evidence15h"));
}

/// Runs a generator of the repository (`python3 SCRIPT ARGS OUT`) into a temporary file and checks
/// that `committed` is what it writes; UPDATE_GENERATED=1 rewrites the committed file instead.
fn generated_file_is_current(script: &str, args: &[&str], committed: &str) {
    let Some(python) = require_tool("python3", "python3") else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("generated");
    let status = std::process::Command::new(python)
        .arg(repo(script))
        .args(args)
        .arg(&out)
        .current_dir(repo(""))
        .status()
        .unwrap();
    assert!(status.success(), "{script} failed");
    let generated = std::fs::read_to_string(&out).unwrap();
    if std::env::var_os("UPDATE_GENERATED").is_some() {
        std::fs::write(repo(committed), &generated).unwrap();
    }
    let current = std::fs::read_to_string(repo(committed)).unwrap_or_default();
    assert!(current == generated, "{committed} is not what {script} generates: run it (or UPDATE_GENERATED=1)");
}

#[test]
fn the_mixin_and_the_scenario_corpus_are_generated_from_their_scripts() {
    // The rule file is the mixin's rendering; tests/mixin.rs checks the dashboards' rendering.
    generated_file_is_current("alerts/make_rules.py", &[], "alerts/rules/memleak.rules.yml");
    generated_file_is_current("alerts/make_rules.py", &["--libsonnet"], "mixin/alerts.libsonnet");
    generated_file_is_current("dashboards/make_dashboards.py", &["--libsonnet"], "mixin/dashboards.libsonnet");
    generated_file_is_current("alerts/tests/make_scenarios.py", &[], "alerts/tests/scenarios.test.yml");
}

#[test]
fn every_alert_is_labelled_documented_tested_and_targeted() {
    let runbook = std::fs::read_to_string(repo("alerts/runbook.md")).unwrap();
    let scenarios = yaml("alerts/tests/scenarios.test.yml");
    let mut tested = BTreeSet::new();
    for test in scenarios["tests"].as_sequence().unwrap() {
        for case in test["alert_rule_test"].as_sequence().into_iter().flatten() {
            if case["exp_alerts"].as_sequence().is_some_and(|a| !a.is_empty()) {
                tested.insert(case["alertname"].as_str().unwrap().to_owned());
            }
        }
    }
    let catalog = catalog_with_rules();
    let mut alerts = 0;
    for rule in rules() {
        let Some(name) = rule["alert"].as_str() else { continue };
        alerts += 1;
        let severity = rule["labels"]["severity"].as_str().unwrap_or_default();
        assert!(["warning", "critical"].contains(&severity), "{name}: severity {severity:?}");
        for key in ["summary", "description", "runbook_url"] {
            assert!(rule["annotations"][key].as_str().is_some_and(|s| !s.is_empty()), "{name}: no {key}");
        }
        let anchor = name.to_lowercase();
        let url = rule["annotations"]["runbook_url"].as_str().unwrap();
        assert!(
            url.contains("alerts/runbook.md#") && url.ends_with(&format!("#{anchor}")),
            "{name}: runbook_url {url}"
        );
        assert!(runbook.contains(&format!("\n## {name}\n")), "{name}: no `## {name}` section in alerts/runbook.md");
        assert!(tested.contains(name), "{name}: no promtool test expects it to fire (alerts/tests/make_scenarios.py)");
        if let Some(capture) = rule["labels"]["capture"].as_str() {
            let kinds = capture_kinds();
            assert!(kinds.contains(&capture), "{name}: capture {capture:?} is not one of {kinds:?}");
            // The webhook acts on every firing and every resolution: evidence that blinks (a restart
            // blinds the rules for a span) must not start and cancel captures.
            assert!(rule["keep_firing_for"].is_string(), "{name}: asks for a capture but has no keep_firing_for");
            let labels = catalog.check(&parse(rule["expr"].as_str().unwrap(), name), name);
            assert!(
                labels.contains("group") || labels.contains("cgroup"),
                "{name}: asks for a capture but its series carry no target label (group or cgroup)"
            );
            let expected = if severity == "critical" { "ebpf-malloc" } else { "allocator-profile" };
            assert_eq!(capture, expected, "{name}: severity {severity} maps to capture {expected}");
        }
    }
    assert!(alerts >= 10);
}

#[test]
fn every_dashboard_query_names_real_series() {
    let catalog = catalog_with_rules();
    let mut uids = BTreeSet::new();
    let mut queries = 0;
    for entry in std::fs::read_dir(repo("dashboards")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let dash: Json = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let uid = dash["uid"].as_str().unwrap_or_else(|| panic!("{name}: no uid"));
        assert!(uids.insert(uid.to_owned()), "{name}: uid {uid} used twice");
        let vars = dash["templating"]["list"].as_array().unwrap();
        assert!(vars.iter().any(|v| v["type"] == "datasource"), "{name}: no datasource variable");
        for var in vars.iter().filter(|v| v["type"] == "query") {
            let q = var["query"]["query"].as_str().unwrap();
            let inner = q.strip_prefix("label_values(").and_then(|s| s.strip_suffix(')')).unwrap();
            let (selector, label) = inner.rsplit_once(',').unwrap();
            let labels = catalog.check(&parse(selector, &name), &format!("{name} variable"));
            assert!(labels.contains(label.trim()), "{name}: variable asks for label {label} that {selector} lacks");
        }
        for panel in dash["panels"].as_array().unwrap() {
            let title = panel["title"].as_str().unwrap_or_default();
            let context = format!("{name} / {title}");
            let unit = panel["fieldConfig"]["defaults"]["unit"].as_str().unwrap_or_default();
            assert!(!unit.is_empty(), "{context}: panel without a unit");
            assert_eq!(panel["datasource"]["uid"], "${datasource}", "{context}: not on the datasource variable");
            for target in panel["targets"].as_array().unwrap() {
                catalog.check(&parse(target["expr"].as_str().unwrap(), &context), &context);
                queries += 1;
            }
        }
    }
    assert_eq!(uids.len(), 3, "fleet, drill-down and captures dashboards");
    // The captures dashboard leads to the exporters' captures API, which the landing page lists too.
    let captures = std::fs::read_to_string(repo("dashboards/memleak-captures.json")).unwrap();
    assert!(captures.contains("/api/v1/captures\""), "the captures dashboard links to the captures API");
    assert!(queries > 20);
}

#[test]
fn promtool_accepts_the_rules_and_runs_the_scenario_corpus() {
    run_tool("promtool", "prometheus", &["check", "rules", "alerts/rules/memleak.rules.yml"]);
    run_tool("promtool", "prometheus", &["test", "rules", "alerts/tests/scenarios.test.yml"]);
}

/// The seed of the randomized detection test: not one the rules were developed on (`dev*`).
/// MEMLEAK_DETECTION_SEED draws others.
const DETECTION_SEED: &str = "ci-heldout-1";

/// The randomized detection test (alerts/tests/detection.py): fifteen random draws of every leak
/// and non-leak family run through promtool with the real rules, scored against each draw's truth.
/// The rules do not meet issue 11's targets yet (docs/detection.md: which families and why), so the
/// gate is what the previous rules measured on this seed: no fewer leaks detected by their deadlines
/// and no more non-leaks alerting. `--check` asserts the targets themselves.
#[test]
fn the_rules_do_no_worse_than_the_previous_ones_on_random_draws() {
    let (Some(python), Some(_)) = (require_tool("python3", "python3"), require_tool("promtool", "prometheus")) else {
        return;
    };
    let seed = std::env::var("MEMLEAK_DETECTION_SEED").unwrap_or_else(|_| DETECTION_SEED.to_owned());
    let out = std::process::Command::new(python)
        .arg(repo("alerts/tests/detection.py"))
        .args(["--seed", &seed, "--draws", "15", "--no-worse"])
        .current_dir(repo(""))
        .output()
        .unwrap();
    let printed = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "randomized detection with seed {seed}:\n{printed}");
}

#[test]
fn amtool_accepts_the_alertmanager_example() {
    run_tool("amtool", "prometheus-alertmanager", &["check-config", "alerts/alertmanager.example.yml"]);
}

#[test]
fn the_alertmanager_example_routes_capture_alerts_to_the_webhook() {
    let am = yaml("alerts/alertmanager.example.yml");
    let route =
        am["route"]["routes"].as_sequence().unwrap().iter().find(|r| {
            r["matchers"].as_sequence().unwrap().iter().any(|m| m.as_str().unwrap().starts_with("capture=~"))
        });
    let route = route.expect("a route matching the capture label");
    let group_by: Vec<&str> = route["group_by"].as_sequence().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    for label in ["group", "cgroup", "instance"] {
        assert!(group_by.contains(&label), "capture route must group by {label}");
    }
    let receiver = route["receiver"].as_str().unwrap();
    let receivers = am["receivers"].as_sequence().unwrap();
    let hook = &receivers.iter().find(|r| r["name"] == receiver).unwrap()["webhook_configs"][0];
    assert!(hook["url"].as_str().unwrap().ends_with("/api/v1/alerts"));
    assert_eq!(hook["send_resolved"], Yaml::Bool(true));
    assert_eq!(hook["http_config"]["authorization"]["type"], "Bearer");
    for kind in capture_kinds() {
        let matcher = route["matchers"][0].as_str().unwrap();
        assert!(matcher.contains(kind), "the capture route misses kind {kind}");
    }
}

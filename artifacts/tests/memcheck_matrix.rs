//! memcheck's leak totals and sites against Valgrind's own LEAK SUMMARY, for
//! every `--show-leak-kinds` and `--errors-for-leak-kinds`, XML and text:
//! real runs of a program that leaks a list, a tree and plain buffers, and
//! the fixtures of programs A and R.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use memleak_artifacts::{Ingested, detect, invariant, sites};
use std::path::Path;
use std::process::Command;

/// A list of 100 × 48 B (one definitely-lost head, 99 indirect nodes), a tree
/// of depth 6 (63 × 32 B: one definite root, 62 indirect), ten plain 1,000 B
/// buffers, one interior pointer (possibly lost, 500 B) and one kept block
/// (still reachable, 77 B).
const PROGRAM: &str = r#"
#include <stdlib.h>
#include <string.h>
struct node { struct node *next; char pad[40]; };
struct tree { struct tree *l, *r; char pad[16]; };
__attribute__((noinline)) struct node *make_list(int n) {
    struct node *head = 0;
    for (int i = 0; i < n; i++) { struct node *x = malloc(sizeof *x); memset(x, 0, sizeof *x); x->next = head; head = x; }
    return head;
}
__attribute__((noinline)) struct tree *make_tree(int depth) {
    if (!depth) return 0;
    struct tree *t = malloc(sizeof *t); memset(t, 0, sizeof *t);
    t->l = make_tree(depth - 1); t->r = make_tree(depth - 1);
    return t;
}
__attribute__((noinline)) void *plain_buffer(size_t n) { void *p = malloc(n); memset(p, 1, n); return p; }
void *kept; char *interior;
int main(void) {
    make_list(100);
    make_tree(6);
    for (int i = 0; i < 10; i++) plain_buffer(1000);
    kept = plain_buffer(77);
    interior = (char *)plain_buffer(500) + 8;
    return 0;
}
"#;

/// What the program leaks at each site, from its source.
const SITES: [(&str, i64); 3] = [("plain_buffer", 10 * 1000), ("make_list", 100 * 48), ("make_tree", 63 * 32)];

/// `--show-leak-kinds` values, Valgrind's default first.
const SHOWN: [Option<&str>; 7] = [
    None,
    Some("all"),
    Some("definite"),
    Some("indirect"),
    Some("definite,indirect"),
    Some("possible,reachable"),
    Some("none"),
];
const ERRORS_FOR: [Option<&str>; 3] = [None, Some("all"), Some("indirect")];

/// The LEAK SUMMARY's (bytes, blocks) of definitely and indirectly lost, read here, not by the parser.
fn leak_summary(log: &str) -> [(u64, u64); 2] {
    if log.contains("All heap blocks were freed -- no leaks are possible") {
        return [(0, 0); 2];
    }
    let read = |label: &str| -> (u64, u64) {
        let line = log.lines().find(|l| l.contains(label)).unwrap_or_else(|| panic!("no {label:?} in:\n{log}"));
        let rest = line.split(label).nth(1).unwrap().trim();
        let num = |s: &str| s.replace(',', "").parse::<u64>().unwrap();
        let (bytes, rest) = rest.split_once(" bytes in ").unwrap();
        (num(bytes), num(rest.trim_end_matches(" blocks")))
    };
    [read("definitely lost:"), read("indirectly lost:")]
}

fn tool(name: &str) -> bool {
    let found = Command::new(name).arg("--version").output().is_ok_and(|o| o.status.success());
    if !found {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{name} is missing (scripts/install-test-deps.sh)");
        eprintln!("skipped: {name} is not installed (Debian package {name})");
    }
    found
}

fn valgrind(dir: &Path, program: &Path, args: &[String], xml: bool) -> String {
    let out = dir.join(if xml { "out.xml" } else { "out.txt" });
    let mut cmd = Command::new("valgrind");
    cmd.args(args);
    if xml {
        cmd.arg("--xml=yes").arg(format!("--xml-file={}", out.display()));
        cmd.arg(format!("--log-file={}", dir.join("xml.log").display()));
    } else {
        cmd.arg(format!("--log-file={}", out.display()));
    }
    let status = cmd.arg(program).status().unwrap();
    assert!(status.success(), "valgrind {args:?}: {status}");
    std::fs::read_to_string(out).unwrap()
}

fn site_bytes(out: &Ingested) -> Vec<(String, i64)> {
    sites::top(&out.profiles[0], 0, 10).into_iter().map(|s| (s.frame.function, s.values[0])).collect()
}

#[test]
fn real_runs_agree_with_the_leak_summary_for_every_kind_shown() {
    if !tool("valgrind") || !tool("cc") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("leaky.c"), PROGRAM).unwrap();
    let program = dir.path().join("leaky");
    let cc = Command::new("cc")
        .args(["-O0", "-g", "-fno-inline", "-o"])
        .arg(&program)
        .arg(dir.path().join("leaky.c"))
        .status()
        .unwrap();
    assert!(cc.success());
    // The truth: Valgrind's own summary of the same deterministic program.
    let truth = leak_summary(&valgrind(dir.path(), &program, &["--leak-check=full".into()], false));
    let lost = truth[0].0 + truth[1].0;
    assert_eq!(lost, SITES.iter().map(|(_, b)| *b as u64).sum::<u64>(), "the program leaks what its source says");
    for shown in SHOWN {
        for errors_for in ERRORS_FOR {
            let mut args = vec!["--leak-check=full".to_owned()];
            args.extend(shown.map(|k| format!("--show-leak-kinds={k}")));
            args.extend(errors_for.map(|k| format!("--errors-for-leak-kinds={k}")));
            let kinds = shown.unwrap_or("definite,possible");
            let shows = |k: &str| kinds == "all" || kinds.split(',').any(|x| x == k);
            for xml in [false, true] {
                let report = valgrind(dir.path(), &program, &args, xml);
                let out = detect::ingest(&report).unwrap();
                let what = format!("{args:?} xml={xml}");
                invariant::check(&out).unwrap_or_else(|e| panic!("{what}: {e}"));
                let sites = site_bytes(&out);
                let on_sites: i64 = sites.iter().map(|(_, b)| b).sum();
                let leaked = out.total("leaked_bytes").unwrap();
                assert!(on_sites as f64 <= leaked, "{what}: sites {sites:?} exceed the total {leaked}");
                if shows("definite") {
                    // Every lost byte has a site, whether indirect records are shown or not.
                    let mut expected: Vec<(String, i64)> = SITES.iter().map(|(f, b)| (f.to_string(), *b)).collect();
                    expected.sort_by_key(|(_, b)| -b);
                    assert_eq!(sites, expected, "{what}");
                    assert_eq!(leaked, lost as f64, "{what}: definitely + indirectly lost");
                    assert_eq!(out.total("definite_bytes"), Some(truth[0].0 as f64), "{what}");
                    assert_eq!(out.total("indirect_bytes"), Some(truth[1].0 as f64), "{what}");
                } else if shows("indirect") {
                    // Only the indirect nodes of the list and the tree have records to sit at.
                    assert_eq!(on_sites as u64, truth[1].0, "{what}: {sites:?}");
                } else {
                    assert!(sites.is_empty(), "{what}: {sites:?}");
                }
                if xml && !shows("definite") {
                    assert!(
                        out.hints.iter().any(|n| n.contains("--show-leak-kinds=") && n.contains("definite")),
                        "{what}: the hidden kind is said: {:?}",
                        out.hints
                    );
                } else {
                    assert_eq!(leaked, lost as f64, "{what}: the text log's LEAK SUMMARY");
                }
                if !xml || (shows("indirect") && shows("definite")) {
                    assert_eq!(out.total("leaked_blocks"), Some((truth[0].1 + truth[1].1) as f64), "{what}");
                }
                if !xml && on_sites < lost as i64 {
                    assert!(out.hints.iter().any(|n| n.contains("leak sites hold")), "{what}: {:?}", out.hints);
                }
            }
        }
    }
}

/// Leaked bytes per site, largest first.
type Sites = &'static [(&'static str, i64)];

/// Each memcheck fixture: (file, LEAK SUMMARY definitely + indirectly lost bytes, leaked bytes per site).
const FIXTURES: &[(&str, u64, Sites)] = &[
    ("a.xml", 409_600, &[("leak_request_buffer", 307_200), ("leaky_cache_insert", 102_400)]),
    ("a.txt", 409_600, &[("leak_request_buffer", 307_200), ("leaky_cache_insert", 102_400)]),
    ("a-default-kinds.txt", 409_600, &[("leak_request_buffer", 307_200), ("leaky_cache_insert", 102_400)]),
    ("r.xml", 528_000, &[("leaky_r::leak_token_buffer", 512_000), ("leaky_r::leak_boxed_record", 16_000)]),
    ("r.txt", 528_000, &[("leaky_r::leak_token_buffer", 512_000), ("leaky_r::leak_boxed_record", 16_000)]),
    (
        "r-default-kinds.txt",
        528_000,
        &[("leaky_r::leak_token_buffer", 512_000), ("leaky_r::leak_boxed_record", 16_000)],
    ),
    ("a-uaf.xml", 0, &[]),
    ("a-uaf.txt", 0, &[]),
];

#[test]
fn every_fixture_agrees_with_its_leak_summary() {
    for (name, lost, expected) in FIXTURES {
        let path = format!("{}/tests/fixtures/memcheck/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(path).unwrap();
        if !name.ends_with(".xml") {
            let [definite, indirect] = leak_summary(&text);
            assert_eq!(definite.0 + indirect.0, *lost, "{name}: the fixture README's LEAK SUMMARY");
        }
        let out = detect::ingest(&text).unwrap();
        assert_eq!(out.total("leaked_bytes"), Some(*lost as f64), "{name}");
        let expected: Vec<(String, i64)> = expected.iter().map(|(f, b)| (f.to_string(), *b)).collect();
        assert_eq!(site_bytes(&out), expected, "{name}");
    }
}

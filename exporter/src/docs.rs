//! The generated sections of the README (collector and format summary, flag list, metric table,
//! format list) and of CONTRIBUTING.md (collector and format lists), and the tests that keep them
//! and the hand-written parts that name collectors or quote code in step with the tables and sources:
//! `UPDATE_README=1 cargo test -p memleak-exporter --lib readme` rewrites the generated ones.

use crate::cli;
use crate::collectors::{self, COLLECTORS};
use memleak_signals::MetricSpec;

fn metric_row(spec: &MetricSpec) -> String {
    let labels = if spec.labels.is_empty() { String::new() } else { format!("`{}`", spec.labels.join("`, `")) };
    format!("| `{}` | {} | {} | {} |\n", spec.name, spec.kind.as_str(), labels, spec.help.replace('|', "\\|"))
}

/// The metric table: the exporter's own, the watched folders', then the collector table's.
pub fn metric_table() -> String {
    let mut out = String::from("| metric | type | labels | meaning |\n|---|---|---|---|\n");
    for (_, spec) in collectors::metric_families() {
        out.push_str(&metric_row(spec));
    }
    out
}

/// The collector table as a Markdown list.
pub fn collector_list() -> String {
    COLLECTORS
        .iter()
        .map(|e| {
            let s = e.spec();
            let state = if s.enabled_by_default { "enabled by default" } else { "opt-in" };
            format!("- `{}` ({state}): {}\n", s.id, s.about)
        })
        .collect()
}

/// The README's opening summary: the collectors, default and opt-in, and the formats `ingest` reads.
pub fn summary() -> String {
    let ids = |enabled: bool| {
        COLLECTORS
            .iter()
            .map(|e| e.spec())
            .filter(|s| s.enabled_by_default == enabled)
            .map(|s| format!("`{}`", s.id))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let formats: Vec<String> = memleak_artifacts::FORMATS.iter().map(|f| format!("`{}`", f.id)).collect();
    format!(
        "Collectors: {} (enabled by default); {} (opt-in). Formats `ingest` reads: {}.\n",
        ids(true),
        ids(false),
        formats.join(", ")
    )
}

/// The format table as a Markdown list.
pub fn format_list() -> String {
    memleak_artifacts::FORMATS.iter().map(|f| format!("- `{}`: {}\n", f.id, f.about)).collect()
}

/// `--help` as printed on a 100-column terminal.
pub fn flag_list() -> String {
    let help = cli::command().term_width(100).render_help().to_string();
    let trimmed: String = help.lines().map(|l| format!("{}\n", l.trim_end())).collect();
    format!("```text\n{trimmed}```\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Replaces the text between `<!-- NAME:begin -->` and `<!-- NAME:end -->`.
    fn splice(text: &str, name: &str, body: &str) -> Option<String> {
        let begin = format!("<!-- {name}:begin -->\n");
        let end = format!("<!-- {name}:end -->");
        let start = text.find(&begin)? + begin.len();
        let stop = text[start..].find(&end)? + start;
        Some(format!("{}{body}{}", &text[..start], &text[stop..]))
    }

    /// Rewrites the generated sections of `file` (relative to the workspace) under UPDATE_README, or checks them.
    fn check(file: &str, sections: &[(&str, String)]) {
        let path = format!("{}/../{file}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap();
        let updated = sections.iter().fold(text.clone(), |t, (name, body)| {
            splice(&t, name, body).unwrap_or_else(|| panic!("{file} lacks the <!-- {name}:begin/end --> markers"))
        });
        if std::env::var_os("UPDATE_README").is_some() {
            std::fs::write(&path, &updated).unwrap();
            return;
        }
        assert!(
            text == updated,
            "{file} is out of date: run UPDATE_README=1 cargo test -p memleak-exporter --lib readme"
        );
    }

    #[test]
    fn readme_generated_sections_are_current() {
        check(
            "README.md",
            &[("summary", summary()), ("metrics", metric_table()), ("flags", flag_list()), ("formats", format_list())],
        );
        check("CONTRIBUTING.md", &[("collectors", collector_list()), ("formats", format_list())]);
    }

    fn workspace_file(file: &str) -> String {
        std::fs::read_to_string(format!("{}/../{file}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    /// The README's "Signals" table is written by hand (what each collector reads, and when): its
    /// rows must name the table's collectors, in table order, opt-in ones marked so.
    #[test]
    fn readme_signals_table_names_the_collector_table() {
        let readme = workspace_file("README.md");
        let section = &readme[readme.find("\n## Signals\n").expect("a Signals section")..];
        let rows: Vec<String> = section
            .lines()
            .skip_while(|l| !l.starts_with('|'))
            .take_while(|l| l.starts_with('|'))
            .filter_map(|l| l.split('|').nth(1).map(str::trim).filter(|c| c.starts_with('`')).map(str::to_owned))
            .collect();
        let expected: Vec<String> = COLLECTORS
            .iter()
            .map(|e| e.spec())
            .map(|s| if s.enabled_by_default { format!("`{}`", s.id) } else { format!("`{}` (opt-in)", s.id) })
            .collect();
        assert_eq!(rows, expected, "README.md's Signals table against COLLECTORS (exporter/src/collectors/mod.rs)");
    }

    /// CONTRIBUTING.md's code blocks are quotes of real, compiled sources: each ```rust block
    /// follows a `<!-- snippet: PATH -->` line and appears in PATH verbatim (after the block's
    /// own indentation is removed).
    #[test]
    fn contributing_snippets_are_real_code() {
        let text = workspace_file("CONTRIBUTING.md");
        let lines: Vec<&str> = text.lines().collect();
        let mut checked = 0;
        for (at, line) in lines.iter().enumerate() {
            let indent = line.len() - line.trim_start().len();
            if line.trim_start() != "```rust" {
                continue;
            }
            let marker = lines[..at].iter().rev().find(|l| !l.trim().is_empty()).copied().unwrap_or_default();
            let path =
                marker.trim().strip_prefix("<!-- snippet: ").and_then(|rest| rest.strip_suffix(" -->")).unwrap_or_else(
                    || panic!("CONTRIBUTING.md line {}: a rust block without a snippet marker", at + 1),
                );
            let body: String = lines[at + 1..]
                .iter()
                .take_while(|l| l.trim_start() != "```")
                .map(|l| format!("{}\n", l.get(indent..).unwrap_or_else(|| l.trim_start())))
                .collect();
            assert!(
                workspace_file(path).contains(&body),
                "CONTRIBUTING.md line {}: the snippet is not in {path} (any more); copy it again from there",
                at + 1
            );
            checked += 1;
        }
        assert!(checked >= 4, "{checked} snippets found");
    }
}

#[cfg(test)]
mod config_example {
    /// The README's example configuration is a file the exporter accepts.
    #[test]
    fn the_readme_configuration_example_parses() {
        let readme = include_str!("../../README.md");
        let section = &readme[readme.find("## Configuration").expect("a Configuration section")..];
        let start = section.find("```yaml\n").expect("a yaml block") + "```yaml\n".len();
        let yaml = &section[start..start + section[start..].find("```").expect("the block's end")];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("memleak.yml");
        std::fs::write(&path, yaml).unwrap();
        let matches =
            crate::cli::command().get_matches_from(["memleak-exporter", "--config.file", path.to_str().unwrap()]);
        let parsed = crate::cli::invocation_from(&matches);
        assert!(parsed.is_ok(), "the README's example configuration is rejected: {:#}", parsed.err().unwrap());
    }
}

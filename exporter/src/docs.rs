//! The generated sections of the README (flag list, metric table, format list) and of
//! CONTRIBUTING.md (collector and format lists), and the test that keeps them in sync:
//! `UPDATE_README=1 cargo test -p memleak-exporter --lib readme` rewrites them.

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
        check("README.md", &[("metrics", metric_table()), ("flags", flag_list()), ("formats", format_list())]);
        check("CONTRIBUTING.md", &[("collectors", collector_list()), ("formats", format_list())]);
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

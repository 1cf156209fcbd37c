//! The README's generated sections (flag list, metric table, format list) and the test that
//! keeps them in sync: `UPDATE_README=1 cargo test -p memleak-exporter readme` rewrites them.

use crate::cli;
use crate::collectors;
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

    #[test]
    fn readme_generated_sections_are_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
        let readme = std::fs::read_to_string(path).unwrap();
        let updated = splice(&readme, "metrics", &metric_table())
            .and_then(|t| splice(&t, "flags", &flag_list()))
            .and_then(|t| splice(&t, "formats", &format_list()))
            .expect("README.md lacks a <!-- NAME:begin/end --> pair of markers (metrics, flags, formats)");
        if std::env::var_os("UPDATE_README").is_some() {
            std::fs::write(path, &updated).unwrap();
            return;
        }
        assert!(
            readme == updated,
            "README.md is out of date: run UPDATE_README=1 cargo test -p memleak-exporter readme"
        );
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

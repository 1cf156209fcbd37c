//! Which group a process is summed into: naming rules first (process-exporter's
//! `process_names`), then `group_by` (comm, cgroup, systemd unit, container).
//!
//! The collector and the capture resolver both ask `group_of`, so an alert's
//! `group` label finds the very processes its series summed.

use super::GroupBy;
use crate::options::{OptionError, whole_match};
use regex::Regex;
use serde::{Deserialize, Serialize};

/// Longest group name a rule may render (a command line is the user's to craft).
pub const MAX_NAME_BYTES: usize = 128;
/// Most naming rules (each is tried on every new process).
pub const MAX_RULES: usize = 256;

/// One naming rule as written in the config file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NameRule {
    /// The group's name: text with `{{.Comm}}`, `{{.ExeBase}}`, `{{.ExeFull}}`,
    /// `{{.Matches.NAME}}`, `${NAME}` or `$N` (captures of the rule's regexes).
    pub name: String,
    /// Regex the whole command name (`comm`) must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comm: Option<String>,
    /// Regex the whole executable path (`/proc/PID/exe`) must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exe: Option<String>,
    /// Regex found anywhere in the command line (arguments joined by spaces), as in process-exporter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmdline: Option<String>,
}

/// What a process offers to be named by.
#[derive(Debug, Clone, Copy, Default)]
pub struct Facts<'a> {
    pub comm: &'a str,
    pub exe: &'a str,
    pub cmdline: &'a str,
    /// The whole `/proc/PID/cgroup`.
    pub cgroup_text: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Comm,
    ExeBase,
    ExeFull,
    Named(String),
    Numbered(usize),
}

/// A compiled rule. Captures are looked up in its cmdline, exe then comm regex.
#[derive(Debug, Clone)]
struct Rule {
    name: Vec<Piece>,
    cmdline: Option<Regex>,
    exe: Option<Regex>,
    comm: Option<Regex>,
}

/// The compiled naming rules, tried in order (first match wins).
#[derive(Debug, Clone, Default)]
pub struct Naming {
    rules: Vec<Rule>,
}

impl Naming {
    pub fn compile(rules: &[NameRule]) -> Result<Naming, OptionError> {
        if rules.len() > MAX_RULES {
            return Err(OptionError::new("names", format!("{} rules, at most {MAX_RULES}", rules.len())));
        }
        let rules = rules.iter().enumerate().map(|(i, r)| compile_rule(i, r)).collect::<Result<_, _>>()?;
        Ok(Naming { rules })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether some rule reads the executable or the command line.
    pub fn needs_identity(&self) -> bool {
        self.rules.iter().any(|r| r.cmdline.is_some() || r.exe.is_some())
            || self.rules.iter().any(|r| r.name.iter().any(|p| matches!(p, Piece::ExeBase | Piece::ExeFull)))
    }

    /// The name the first matching rule gives; `None` when none matches (or it renders empty).
    pub fn name(&self, facts: &Facts) -> Option<String> {
        self.rules.iter().find_map(|rule| rule.apply(facts))
    }
}

impl Rule {
    fn apply(&self, facts: &Facts) -> Option<String> {
        let [cmdline, exe, comm] = [(&self.cmdline, facts.cmdline), (&self.exe, facts.exe), (&self.comm, facts.comm)]
            .map(|(regex, value)| regex.as_ref().map(|r| r.captures(value)));
        // A regex given but not matching rules the process out; absent ones say nothing.
        if [&cmdline, &exe, &comm].iter().any(|c| matches!(c, Some(None))) {
            return None;
        }
        let found = [cmdline.flatten(), exe.flatten(), comm.flatten()];
        let mut out = String::new();
        for piece in &self.name {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Comm => out.push_str(facts.comm),
                Piece::ExeFull => out.push_str(facts.exe),
                Piece::ExeBase => out.push_str(facts.exe.rsplit('/').next().unwrap_or_default()),
                Piece::Named(n) => {
                    out.push_str(found.iter().flatten().find_map(|c| c.name(n)).map_or("", |m| m.as_str()))
                }
                Piece::Numbered(i) => {
                    out.push_str(found.iter().flatten().next().and_then(|c| c.get(*i)).map_or("", |m| m.as_str()))
                }
            }
        }
        let out = truncate(out.trim(), MAX_NAME_BYTES);
        (!out.is_empty()).then(|| out.to_owned())
    }
}

fn truncate(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn compile_rule(index: usize, rule: &NameRule) -> Result<Rule, OptionError> {
    let at =
        |message: String| OptionError::new("names", format!("rule {} (name {:?}): {message}", index + 1, rule.name));
    if rule.comm.is_none() && rule.exe.is_none() && rule.cmdline.is_none() {
        return Err(at("give at least one of comm, exe or cmdline to match".into()));
    }
    let whole = |p: &Option<String>| p.as_deref().map(|p| whole_match("names", p)).transpose();
    let comm = whole(&rule.comm).map_err(|e| at(format!("comm: {}", e.message)))?;
    let exe = whole(&rule.exe).map_err(|e| at(format!("exe: {}", e.message)))?;
    let cmdline = rule
        .cmdline
        .as_deref()
        .map(|p| Regex::new(p).map_err(|e| at(format!("cmdline: invalid regex {p:?}: {e}"))))
        .transpose()?;
    let name = parse_template(&rule.name).map_err(at)?;
    let regexes: Vec<&Regex> = [&cmdline, &exe, &comm].into_iter().flatten().collect();
    for piece in &name {
        match piece {
            Piece::Named(n) if !regexes.iter().any(|r| r.capture_names().flatten().any(|c| c == n)) => {
                return Err(at(format!("no regex of the rule has a capture named {n:?}: write (?P<{n}>...)")));
            }
            Piece::Numbered(i) if regexes.first().is_none_or(|r| *i >= r.captures_len()) => {
                return Err(at(format!(
                    "${i}: the rule's first regex (cmdline, else exe, else comm) has fewer captures"
                )));
            }
            _ => {}
        }
    }
    Ok(Rule { name, cmdline, exe, comm })
}

fn parse_template(template: &str) -> Result<Vec<Piece>, String> {
    if template.trim().is_empty() {
        return Err("the name is empty".into());
    }
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut rest = template;
    while let Some(c) = rest.chars().next() {
        let (piece, len) = if let Some(after) = rest.strip_prefix("{{") {
            let end = after.find("}}").ok_or("a `{{` without its `}}`")?;
            (Some(field(after[..end].trim())?), end + 4)
        } else if let Some(after) = rest.strip_prefix('$') {
            dollar(after)?
        } else {
            (None, c.len_utf8())
        };
        match piece {
            Some(Piece::Text(t)) => text.push_str(&t),
            Some(p) => {
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                pieces.push(p);
            }
            None => text.push(c),
        }
        rest = &rest[len..];
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

/// `{{.Comm}}` and friends (process-exporter's template fields that name a group).
fn field(inner: &str) -> Result<Piece, String> {
    match inner {
        ".Comm" => Ok(Piece::Comm),
        ".ExeBase" => Ok(Piece::ExeBase),
        ".ExeFull" => Ok(Piece::ExeFull),
        _ => match inner.strip_prefix(".Matches.") {
            Some(name) if is_identifier(name) => Ok(Piece::Named(name.to_owned())),
            _ => Err(format!(
                "unknown template field {{{{{inner}}}}}: use {{{{.Comm}}}}, {{{{.ExeBase}}}}, {{{{.ExeFull}}}} or {{{{.Matches.NAME}}}}"
            )),
        },
    }
}

/// `$$`, `$N`, `${NAME}` or `$NAME` after the `$`: (piece, bytes used including the `$`).
fn dollar(after: &str) -> Result<(Option<Piece>, usize), String> {
    if after.starts_with('$') {
        return Ok((Some(Piece::Text("$".into())), 2));
    }
    if let Some(inner) = after.strip_prefix('{') {
        let end = inner.find('}').ok_or("a `${` without its `}`")?;
        let name = &inner[..end];
        let piece = match name.parse::<usize>() {
            Ok(i) => Piece::Numbered(i),
            Err(_) if is_identifier(name) => Piece::Named(name.to_owned()),
            Err(_) => return Err(format!("${{{name}}} is neither a capture number nor a name")),
        };
        return Ok((Some(piece), end + 3));
    }
    let digits = after.bytes().take_while(u8::is_ascii_digit).count();
    if digits > 0 {
        let i = after[..digits].parse::<usize>().map_err(|e| e.to_string())?;
        return Ok((Some(Piece::Numbered(i)), digits + 1));
    }
    let word = after.bytes().take_while(|b| b.is_ascii_alphanumeric() || *b == b'_').count();
    if word > 0 {
        return Ok((Some(Piece::Named(after[..word].to_owned())), word + 1));
    }
    Err("a `$` that names no capture: write $$ for a dollar sign".into())
}

fn is_identifier(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The group a process is summed into: the first matching rule's name, else by `group_by`.
/// `cgroup` is the memory hierarchy's path (what `group_by: cgroup` names).
pub fn group_of(naming: &Naming, group_by: GroupBy, facts: &Facts, cgroup: &str) -> String {
    if let Some(name) = naming.name(facts) {
        return name;
    }
    let by_comm = || facts.comm.to_owned();
    match group_by {
        GroupBy::Comm | GroupBy::Pid => by_comm(),
        GroupBy::Cgroup => cgroup.to_owned(),
        GroupBy::Unit => unit_of(facts.cgroup_text).map_or_else(by_comm, str::to_owned),
        GroupBy::Container => container_of(facts.cgroup_text).map_or_else(by_comm, str::to_owned),
    }
}

/// The systemd unit of a process: the deepest `.service` or `.scope` of its systemd
/// hierarchy (cgroup v2, or v1's `name=systemd`).
pub fn unit_of(cgroup_text: &str) -> Option<&str> {
    cgroup_text
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (id, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            let systemd = (id == "0" && controllers.is_empty()) || controllers == "name=systemd";
            systemd.then_some(path)
        })
        .flat_map(|path| path.rsplit('/').find(|c| c.ends_with(".service") || c.ends_with(".scope")))
        .next()
}

/// The short (12-digit) id of the container a process runs in, from the 64-hex-digit
/// id that Docker, containerd, CRI-O and Podman put in its cgroup path
/// (`/docker/ID`, `docker-ID.scope`, `cri-containerd-ID.scope`, `crio-ID.scope`, `libpod-ID.scope`).
pub fn container_of(cgroup_text: &str) -> Option<&str> {
    cgroup_text.lines().filter_map(|line| line.splitn(3, ':').nth(2)).flat_map(|path| path.rsplit('/')).find_map(
        |component| {
            let stem = component.strip_suffix(".scope").unwrap_or(component);
            let id = stem.rsplit('-').next().unwrap_or(stem);
            (id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| &id[..12])
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(name: &str, comm: Option<&str>, exe: Option<&str>, cmdline: Option<&str>) -> NameRule {
        NameRule {
            name: name.into(),
            comm: comm.map(Into::into),
            exe: exe.map(Into::into),
            cmdline: cmdline.map(Into::into),
        }
    }

    fn facts<'a>(comm: &'a str, exe: &'a str, cmdline: &'a str) -> Facts<'a> {
        Facts { comm, exe, cmdline, cgroup_text: "" }
    }

    #[test]
    fn the_first_matching_rule_names_the_group_from_its_captures() {
        let naming = Naming::compile(&[
            rule("svc-{{.Matches.svc}}", Some("python3?"), None, Some(r"-m (?P<svc>[a-z_]+)")),
            rule("exe:$1", None, Some("/usr/bin/(python)3.*"), None),
            rule("py:${1}", Some("(python)3"), None, None),
            rule("{{.ExeBase}}-{{ .Comm }}$$", Some("java"), None, None),
        ])
        .unwrap();
        let python = "/usr/bin/python3.11";
        assert_eq!(
            naming.name(&facts("python3", python, "python3 -m billing --port 1")).as_deref(),
            Some("svc-billing")
        );
        assert_eq!(naming.name(&facts("python3", python, "python3 app.py")).as_deref(), Some("exe:python"));
        assert_eq!(naming.name(&facts("python3", "/opt/py", "python3 app.py")).as_deref(), Some("py:python"));
        assert_eq!(naming.name(&facts("java", "/usr/lib/jvm/bin/java", "java -jar x")).as_deref(), Some("java-java$"));
        assert_eq!(naming.name(&facts("nginx", "/usr/sbin/nginx", "nginx")), None, "unmatched: today's grouping");
        assert_eq!(naming.name(&facts("python3x", "/opt/python3x", "")), None, "comm matches whole names only");
    }

    #[test]
    fn bad_rules_are_refused_in_the_users_words() {
        let err = |r: NameRule| Naming::compile(&[r]).unwrap_err().to_string();
        assert!(err(rule("x", None, None, None)).contains("at least one of comm, exe or cmdline"));
        assert!(err(rule("{{.Matches.nope}}", Some("a(?P<yes>b)"), None, None)).contains("capture named \"nope\""));
        assert!(err(rule("$2", None, None, Some("(a)"))).contains("$2"));
        assert!(err(rule("{{.Pid}}", Some("a"), None, None)).contains("unknown template field {{.Pid}}"));
        assert!(err(rule("x", Some("(a"), None, None)).contains("\"(a\""), "the user's pattern, not the anchored one");
        assert!(err(rule("{{.Comm", Some("a"), None, None)).contains("`{{` without"));
        assert!(err(rule(" ", Some("a"), None, None)).contains("empty"));
        assert!(err(rule("a$", Some("a"), None, None)).contains("$$"));
    }

    #[test]
    fn a_crafted_command_line_makes_a_bounded_name_or_none() {
        let naming = Naming::compile(&[rule("$1", None, None, Some("x=(\\S*)"))]).unwrap();
        let long = format!("x={}", "é".repeat(200));
        let name = naming.name(&facts("a", "", &long)).unwrap();
        assert!(name.len() <= MAX_NAME_BYTES && name.chars().all(|c| c == 'é'));
        assert_eq!(naming.name(&facts("a", "", "x= ")), None, "an empty name falls through");
    }

    #[test]
    fn units_and_containers_come_from_the_cgroup_file() {
        // cgroup v2 (systemd), v1 hybrid with name=systemd, and a user session.
        assert_eq!(unit_of("0::/system.slice/nginx.service\n"), Some("nginx.service"));
        let hybrid = "12:memory:/system.slice/cron.service\n1:name=systemd:/system.slice/cron.service\n0::/system.slice/cron.service\n";
        assert_eq!(unit_of(hybrid), Some("cron.service"));
        let user = "0::/user.slice/user-1000.slice/user@1000.service/app.slice/app-foo.scope\n";
        assert_eq!(unit_of(user), Some("app-foo.scope"), "the deepest unit");
        assert_eq!(unit_of("4:memory:/process_api/2e5a\n0::/\n"), None);
        let id = "3f2a9c1b7d8e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f90";
        for path in [
            format!("/docker/{id}"),
            format!("/system.slice/docker-{id}.scope"),
            format!("/kubepods.slice/kubepods-burstable.slice/kubepods-pod1.slice/cri-containerd-{id}.scope"),
            format!("/machine.slice/libpod-{id}.scope/container"),
            format!("/kubepods/burstable/pod0c1/{id}"),
        ] {
            assert_eq!(container_of(&format!("0::{path}\n")), Some("3f2a9c1b7d8e"), "{path}");
        }
        assert_eq!(container_of("0::/system.slice/docker.service\n"), None);
        let by_unit = group_of(&Naming::default(), GroupBy::Unit, &Facts { comm: "sh", ..Facts::default() }, "/");
        assert_eq!(by_unit, "sh", "outside any unit: by comm, as today");
    }
}

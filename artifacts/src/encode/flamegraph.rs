//! SVG flame graphs of a profile, drawn by inferno from its collapsed stacks.

use crate::model::Profile;

/// Why a flame graph could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("drawing the flame graph of {profile}: {message}")]
pub struct FlameGraphError {
    profile: String,
    message: String,
}

/// The flame graph of `profile` from its collapsed stacks (`folded::encode`),
/// titled `title: <profile name>`; empty when there is no stack to draw.
pub fn encode(profile: &Profile, title: &str, collapsed: &str) -> Result<Vec<u8>, FlameGraphError> {
    let mut svg = Vec::new();
    write(profile, title, collapsed, &mut svg)?;
    Ok(svg)
}

/// `encode`, written to `out` as it is drawn.
pub fn write(profile: &Profile, title: &str, collapsed: &str, out: impl std::io::Write) -> Result<(), FlameGraphError> {
    if collapsed.is_empty() {
        return Ok(());
    }
    let mut options = inferno::flamegraph::Options::default();
    options.title = format!("{title}: {}", profile.name);
    options.count_name = profile.sample_types.first().map_or("bytes", |t| t.unit).to_owned();
    inferno::flamegraph::from_lines(&mut options, collapsed.lines(), out)
        .map_err(|e| FlameGraphError { profile: profile.name.clone(), message: e.to_string() })
}

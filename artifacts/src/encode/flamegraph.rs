//! SVG flame graphs of a profile, drawn by inferno from its collapsed stacks.

use crate::model::Profile;

/// Why a flame graph could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("drawing the flame graph of {profile}: {message}")]
pub struct FlameGraphError {
    profile: String,
    message: String,
}

/// The flame graph of `profile` from its collapsed stacks (`folded::encode`
/// of its `main_index`), titled `title: <profile name> (<sample type>, <unit>)`;
/// empty when there is no stack to draw.
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
    let shown = profile.sample_types.get(profile.main_index());
    options.title = match shown {
        Some(t) => format!("{title}: {} ({}, {})", profile.name, t.kind, t.unit),
        None => format!("{title}: {}", profile.name),
    };
    options.count_name = shown.map_or("bytes", |t| t.unit).to_owned();
    inferno::flamegraph::from_lines(&mut options, collapsed.lines(), out)
        .map_err(|e| FlameGraphError { profile: profile.name.clone(), message: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::folded;
    use crate::model::{ALLOC_OBJECTS, Frame, INUSE_SPACE, Sample};

    #[test]
    fn the_title_names_the_sample_type_and_its_unit() {
        let mut p = Profile::new("heap", vec![ALLOC_OBJECTS, INUSE_SPACE]);
        p.samples.push(Sample { stack: vec![Frame::function("leak")], values: vec![3, 4096], labels: vec![] });
        let collapsed = folded::encode(&p, p.main_index());
        assert_eq!(collapsed, "leak 4096\n", "the bytes, not the count");
        let svg = String::from_utf8(encode(&p, "x.heap", &collapsed).unwrap()).unwrap();
        assert!(svg.contains("x.heap: heap (inuse_space, bytes)"), "{svg}");
        assert!(svg.contains("leak (4,096 bytes, 100.00%)"), "{svg}");
    }
}

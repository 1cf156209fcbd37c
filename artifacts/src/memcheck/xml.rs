//! A streaming reader of memcheck's XML: only the elements we use are kept,
//! and each error is handed over as soon as it ends.

use super::report::Report;
use super::{Error, ID};
use crate::meter::Meter;
use crate::model::{ArtifactError, Frame};
use quick_xml::Reader;
use quick_xml::errors::SyntaxError;
use quick_xml::events::Event;

/// Reads a whole report into `report`; malformed XML and a missing
/// `</valgrindoutput>` are errors with a line.
pub fn read(text: &str, report: &mut Report, meter: &mut Meter) -> Result<(), ArtifactError> {
    let mut reader = Reader::from_str(text);
    reader.config_mut().trim_text(true);
    let mut path: Vec<String> = Vec::new();
    let mut content = String::new();
    let mut error: Option<Error> = None;
    let mut frame: Option<Frame> = None;
    let mut finished = false;
    report.xml();
    let line_at =
        |pos: u64| text.as_bytes()[..(pos as usize).min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1;
    loop {
        let event = reader.read_event().map_err(|e| {
            let line = line_at(reader.error_position());
            // A tag, comment or section left open by the end of the input: the file was cut, not garbled.
            if matches!(e, quick_xml::Error::Syntax(ref s) if !matches!(s, SyntaxError::InvalidBangMarkup)) {
                ArtifactError::Truncated { format: ID, line, message: format!("the XML ends inside a tag: {e}") }
            } else {
                ArtifactError::Malformed { format: ID, line, message: format!("not well-formed XML: {e}") }
            }
        })?;
        match event {
            Event::Start(e) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                match name.as_str() {
                    "error" => error = Some(Error::default()),
                    "stack" => {
                        if let Some(err) = error.as_mut() {
                            err.new_stack();
                        }
                    }
                    "frame" => frame = Some(Frame::function("???")),
                    _ => {}
                }
                if path.len() > 64 {
                    return Err(malformed(line_at(reader.buffer_position()), "elements nested deeper than 64"));
                }
                path.push(name);
                content.clear();
            }
            Event::Text(t) => content.push_str(&t.xml_content().unwrap_or_default()),
            Event::CData(t) => content.push_str(&String::from_utf8_lossy(&t)),
            Event::GeneralRef(r) => content.push_str(match r.as_ref() {
                b"lt" => "<",
                b"gt" => ">",
                b"amp" => "&",
                b"apos" => "'",
                b"quot" => "\"",
                _ => "?",
            }),
            Event::End(_) => {
                let Some(name) = path.pop() else {
                    return Err(malformed(line_at(reader.buffer_position()), "unbalanced end tag"));
                };
                let parent = path.last().map(String::as_str).unwrap_or_default();
                let value = std::mem::take(&mut content);
                end_element(&name, parent, value, &mut error, &mut frame, report, meter);
                if name == "valgrindoutput" {
                    finished = true;
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !finished {
        return Err(ArtifactError::Truncated {
            format: ID,
            line: text.lines().count(),
            message: "no </valgrindoutput>: valgrind was killed or the file is incomplete".into(),
        });
    }
    Ok(())
}

fn end_element(
    name: &str,
    parent: &str,
    value: String,
    error: &mut Option<Error>,
    frame: &mut Option<Frame>,
    report: &mut Report,
    meter: &mut Meter,
) {
    if let Some(f) = frame.as_mut() {
        match name {
            "fn" => f.function = value,
            "ip" => f.address = value.strip_prefix("0x").and_then(|h| u64::from_str_radix(h, 16).ok()),
            "file" => f.file = Some(value),
            "line" => f.line = value.parse().ok(),
            "obj" if f.file.is_none() => f.file = Some(value),
            "frame" => {
                let done = frame.take().unwrap_or_else(|| Frame::function("???"));
                if let Some(Error { stacks, .. }) = error.as_mut()
                    && let Some((_, s)) = stacks.last_mut()
                {
                    meter.push_frame(s, done);
                }
            }
            _ => {}
        }
        return;
    }
    match (name, parent) {
        ("kind", "error") => set(error, |e| e.kind = meter.name(&value)),
        ("what", "error") => set(error, |e| e.what = meter.name(&value)),
        ("text", "xwhat") => set(error, |e| e.what = meter.name(&value)),
        ("leakedbytes", "xwhat") => set(error, |e| e.leaked_bytes = value.parse().ok()),
        ("leakedblocks", "xwhat") => set(error, |e| e.leaked_blocks = value.parse().ok()),
        ("auxwhat", "error") => set(error, |e| e.add_auxwhat(meter.name(&value))),
        ("error", _) => {
            if let Some(e) = error.take() {
                report.error(e, meter);
            }
        }
        ("arg", "vargv") => report.valgrind_arg(&value, meter),
        ("pid", "valgrindoutput") => report.attribute("pid", meter.name(&value)),
        ("line", "preamble") => {
            if let Some(cmd) = value.strip_prefix("Command: ") {
                report.attribute("command", meter.name(cmd));
            }
        }
        _ => {}
    }
}

fn set(error: &mut Option<Error>, f: impl FnOnce(&mut Error)) {
    if let Some(e) = error.as_mut() {
        f(e);
    }
}

fn malformed(line: usize, message: &str) -> ArtifactError {
    ArtifactError::Malformed { format: ID, line, message: message.into() }
}

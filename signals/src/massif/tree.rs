//! Massif's allocation trees: `n<children>: <bytes> <description>` lines,
//! one space of indent per level.

use super::{ID, malformed};
use crate::artifact::{ArtifactError, Frame, Sample};

/// A tree deeper than this is refused (real stacks are far shallower).
const MAX_DEPTH: usize = 1024;

#[derive(Debug, Clone)]
pub struct Node {
    pub bytes: u64,
    pub frame: Option<Frame>,
    pub children: Vec<Node>,
}

/// Reads one tree whose root line follows `heap_tree=` (line `at`).
pub fn read<'a>(lines: &mut impl Iterator<Item = (usize, &'a str)>, at: usize) -> Result<Node, ArtifactError> {
    read_node(lines, 0, at)
}

fn read_node<'a>(
    lines: &mut impl Iterator<Item = (usize, &'a str)>,
    depth: usize,
    at: usize,
) -> Result<Node, ArtifactError> {
    if depth > MAX_DEPTH {
        return Err(malformed(at, format!("tree deeper than {MAX_DEPTH} levels")));
    }
    let Some((n, line)) = lines.next() else {
        return Err(ArtifactError::Truncated { format: ID, line: at, message: "a tree node is missing".into() });
    };
    let body = line.trim_start_matches(' ');
    if line.len() - body.len() != depth {
        return Err(malformed(n, format!("expected a node at depth {depth}")));
    }
    let rest = body.strip_prefix('n').ok_or_else(|| malformed(n, "expected `n<children>:`".into()))?;
    let (count, rest) = rest.split_once(": ").ok_or_else(|| malformed(n, "expected `n<children>: <bytes>`".into()))?;
    let count: usize = count.parse().map_err(|_| malformed(n, format!("bad child count {count:?}")))?;
    let (bytes, desc) = rest.split_once(' ').unwrap_or((rest, ""));
    let bytes: u64 = bytes.parse().map_err(|_| malformed(n, format!("bad byte count {bytes:?}")))?;
    let mut children = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        children.push(read_node(lines, depth + 1, n)?);
    }
    Ok(Node { bytes, frame: frame(desc, depth), children })
}

/// `0x1092A5: leak_request_buffer (leaky_a.c:69)`, `0x4C2D: malloc (in /lib/x.so)`,
/// `in 2 places, all below massif's threshold (1.00%)`; the root has no frame.
fn frame(desc: &str, depth: usize) -> Option<Frame> {
    if depth == 0 {
        return None;
    }
    if desc.starts_with("in ") && desc.contains("below massif's threshold") {
        return Some(Frame::function("[below threshold]"));
    }
    let (address, rest) = match desc.split_once(": ") {
        Some((a, r)) if a.starts_with("0x") => (u64::from_str_radix(&a[2..], 16).ok(), r),
        _ => (None, desc),
    };
    let (function, location) = match rest.rfind(" (") {
        Some(i) if rest.ends_with(')') => (&rest[..i], Some(&rest[i + 2..rest.len() - 1])),
        _ => (rest, None),
    };
    let (file, line) = match location {
        Some(loc) if loc.starts_with("in ") => (Some(loc[3..].to_owned()), None),
        Some(loc) => match loc.rsplit_once(':') {
            Some((f, l)) if l.chars().all(|c| c.is_ascii_digit()) => (Some(f.to_owned()), l.parse().ok()),
            _ => (Some(loc.to_owned()), None),
        },
        None => (None, None),
    };
    Some(Frame { function: function.to_owned(), file, line, address })
}

/// One sample per leaf, with the path from the root (innermost first).
pub fn leaves(node: &Node, path: &mut Vec<Frame>, out: &mut Vec<Sample>) {
    if let Some(f) = &node.frame {
        path.push(f.clone());
    }
    if node.children.is_empty() {
        if node.bytes > 0 && !path.is_empty() {
            out.push(Sample { stack: path.clone(), values: vec![node.bytes as i64], labels: Vec::new() });
        }
    } else {
        for child in &node.children {
            leaves(child, path, out);
        }
        // Bytes a node holds beyond its children's (absent in well-formed files).
        let children: u64 = node.children.iter().map(|c| c.bytes).sum();
        if node.bytes > children && !path.is_empty() {
            out.push(Sample { stack: path.clone(), values: vec![(node.bytes - children) as i64], labels: Vec::new() });
        }
    }
    if node.frame.is_some() {
        path.pop();
    }
}

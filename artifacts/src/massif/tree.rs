//! Massif's allocation trees: `n<children>: <bytes> <description>` lines,
//! one space of indent per level.

use super::{ID, malformed};
use crate::meter::{FRAMES_PER_STACK, Meter, frame_cost, sample_cost};
use crate::model::{ArtifactError, Frame, Sample};

/// A tree deeper than this is refused: massif's `--depth` stops at 200.
const MAX_DEPTH: usize = 1000;

#[derive(Debug, Clone)]
pub struct Node {
    pub bytes: u64,
    pub frame: Option<Frame>,
    pub children: Vec<Node>,
}

/// What one node costs the meter.
fn node_cost(node: &Node) -> u64 {
    std::mem::size_of::<Node>() as u64 + node.frame.as_ref().map_or(0, frame_cost)
}

/// Reads one tree whose root line follows `heap_tree=` (line `at`); returns
/// it with what it was charged. Iterative, so a hostile depth cannot overflow
/// the stack. A node the budget has no room for is read but not kept: its
/// bytes stay in its parent's, which then shows them as its own.
pub fn read<'a>(
    lines: &mut impl Iterator<Item = (usize, &'a str)>,
    at: usize,
    meter: &mut Meter,
) -> Result<(Node, u64), ArtifactError> {
    // (node, children still to read)
    let mut open: Vec<(Node, usize)> = Vec::new();
    let mut last_line = at;
    let mut charged = 0u64;
    loop {
        let depth = open.len();
        if depth > MAX_DEPTH {
            return Err(malformed(last_line, format!("tree deeper than {MAX_DEPTH} levels")));
        }
        let Some((n, line)) = lines.next() else {
            meter.release(charged);
            return Err(ArtifactError::Truncated {
                format: ID,
                line: last_line,
                message: "a tree node is missing".into(),
            });
        };
        last_line = n;
        let (count, node) = node_line(n, line, depth, meter)?;
        if let Some(parent) = open.last_mut() {
            parent.1 -= 1;
        }
        open.push((node, count));
        // Close every node whose children are all read.
        while let Some((_, 0)) = open.last() {
            let Some((done, _)) = open.pop() else { break };
            match open.last_mut() {
                Some(parent) => {
                    let cost = node_cost(&done);
                    if meter.admit("allocation tree nodes", cost) {
                        charged += cost;
                        parent.0.children.push(done);
                    } else {
                        meter.release(subtree_cost(&done).saturating_sub(cost));
                        charged = charged.saturating_sub(subtree_cost(&done).saturating_sub(cost));
                    }
                }
                None => return Ok((done, charged)),
            }
        }
    }
}

/// What the kept descendants of `node` were charged, and `node` itself.
fn subtree_cost(node: &Node) -> u64 {
    let mut total = 0;
    let mut todo = vec![node];
    while let Some(n) = todo.pop() {
        total += node_cost(n);
        todo.extend(n.children.iter());
    }
    total
}

/// `  n2: 1234 description` at the expected depth → (children, node).
fn node_line(n: usize, line: &str, depth: usize, meter: &mut Meter) -> Result<(usize, Node), ArtifactError> {
    let body = line.trim_start_matches(' ');
    if line.len() - body.len() != depth {
        return Err(malformed(n, format!("expected a node at depth {depth}")));
    }
    let rest = body.strip_prefix('n').ok_or_else(|| malformed(n, "expected `n<children>:`".into()))?;
    let (count, rest) = rest.split_once(": ").ok_or_else(|| malformed(n, "expected `n<children>: <bytes>`".into()))?;
    let count: usize = count.parse().map_err(|_| malformed(n, format!("bad child count {count:?}")))?;
    let (bytes, desc) = rest.split_once(' ').unwrap_or((rest, ""));
    let bytes: u64 = bytes.parse().map_err(|_| malformed(n, format!("bad byte count {bytes:?}")))?;
    // No capacity from the count: it is the input's word, not a promise.
    Ok((count, Node { bytes, frame: frame(desc, depth, meter), children: Vec::new() }))
}

/// The frame of a tree node; the root (the allocation functions) has none.
fn frame(desc: &str, depth: usize, meter: &mut Meter) -> Option<Frame> {
    if depth == 0 {
        return None;
    }
    if desc.starts_with("in ") && desc.contains("below massif's threshold") {
        return Some(Frame::function("[below threshold]"));
    }
    let mut one = Vec::with_capacity(1);
    meter.push_frame(&mut one, crate::valgrind::frame(desc));
    one.pop()
}

/// One sample per leaf, with the path from the root (innermost first, cut to
/// `FRAMES_PER_STACK`), as far as the meter admits them. Iterative.
pub fn leaves(root: &Node, out: &mut Vec<Sample>, meter: &mut Meter) {
    // (node, index of the next child to visit)
    let mut walk: Vec<(&Node, usize)> = vec![(root, 0)];
    let mut path: Vec<&Frame> = Vec::new();
    if let Some(f) = &root.frame {
        path.push(f);
    }
    while let Some((node, next)) = walk.last_mut() {
        let node: &Node = node;
        if *next == 0 {
            // First visit: a leaf yields its bytes; a node yields what its children lack.
            let children: u64 = node.children.iter().map(|c| c.bytes).sum();
            let own = if node.children.is_empty() { node.bytes } else { node.bytes.saturating_sub(children) };
            if own > 0 && !path.is_empty() {
                let kept = &path[..path.len().min(FRAMES_PER_STACK)];
                let sample = Sample {
                    stack: kept.iter().map(|f| (*f).clone()).collect(),
                    values: vec![own as i64],
                    labels: Vec::new(),
                };
                if meter.admit("peak profile samples", sample_cost(&sample)) {
                    out.push(sample);
                }
            }
        }
        if let Some(child) = node.children.get(*next) {
            *next += 1;
            if let Some(f) = &child.frame {
                path.push(f);
            }
            walk.push((child, 0));
        } else {
            if node.frame.is_some() {
                path.pop();
            }
            walk.pop();
        }
    }
}

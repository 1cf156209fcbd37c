//! Collapsed stacks (`root;caller;leaf value`), the input of flame graph tools.

use crate::model::Profile;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// One line per distinct stack, outermost frame first, with the value of
/// sample type `index`; stacks are merged and sorted (frame by frame) for
/// stable output. The merge borrows the frames' names: each is copied once, into the text.
pub fn encode(profile: &Profile, index: usize) -> String {
    let mut merged: BTreeMap<Vec<Cow<'_, str>>, i64> = BTreeMap::new();
    for sample in &profile.samples {
        let value = sample.values.get(index).copied().unwrap_or(0);
        if value == 0 {
            continue;
        }
        let stack = sample.stack.iter().rev().map(|f| name(&f.function)).collect();
        *merged.entry(stack).or_default() += value;
    }
    let mut out = String::new();
    for (stack, value) in merged {
        if stack.is_empty() {
            out.push_str("[unknown]");
        }
        for (i, frame) in stack.iter().enumerate() {
            if i > 0 {
                out.push(';');
            }
            out.push_str(frame);
        }
        let _ = writeln!(out, " {value}");
    }
    out
}

/// A frame's name as a collapsed stack can hold it (no `;`, no line break).
fn name(function: &str) -> Cow<'_, str> {
    if function.contains([';', '\n']) {
        Cow::Owned(function.replace([';', '\n'], "_"))
    } else {
        Cow::Borrowed(function)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Frame, INUSE_SPACE, Sample};

    #[test]
    fn merges_and_orders_stacks() {
        let mut p = Profile::new("t", vec![INUSE_SPACE]);
        let stack = vec![Frame::function("leaf"), Frame::function("main")];
        for v in [10, 5] {
            p.samples.push(Sample { stack: stack.clone(), values: vec![v], labels: vec![] });
        }
        p.samples.push(Sample { stack: vec![Frame::function("a;b")], values: vec![1], labels: vec![] });
        assert_eq!(encode(&p, 0), "a_b 1\nmain;leaf 15\n");
    }
}

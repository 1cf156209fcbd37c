//! Collapsed stacks (`root;caller;leaf value`), the input of flame graph tools.

use crate::model::Profile;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// One line per distinct stack, outermost frame first, with the value of
/// sample type `index`; stacks are merged and sorted for stable output.
pub fn encode(profile: &Profile, index: usize) -> String {
    let mut merged: BTreeMap<String, i64> = BTreeMap::new();
    for sample in &profile.samples {
        let value = sample.values.get(index).copied().unwrap_or(0);
        if value == 0 {
            continue;
        }
        let stack: Vec<String> = sample.stack.iter().rev().map(|f| f.function.replace([';', '\n'], "_")).collect();
        let key = if stack.is_empty() { "[unknown]".to_owned() } else { stack.join(";") };
        *merged.entry(key).or_default() += value;
    }
    let mut out = String::new();
    for (stack, value) in merged {
        let _ = writeln!(out, "{stack} {value}");
    }
    out
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

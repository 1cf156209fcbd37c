//! A checker of counters over many scrapes, as Prometheus sees them: every
//! series of a counter family must never decrease while it exists, and the
//! increases of all its series (each series counting from zero when it
//! appears, and ending when it is absent from a scrape) add up to a total the
//! test compares with its ground truth.

use memleak_signals::MetricSet;
use std::collections::HashMap;

#[derive(Debug)]
pub struct CounterAudit {
    family: &'static str,
    last: HashMap<String, f64>,
    /// Last values of series that ended.
    ended: f64,
    pub falls: Vec<String>,
    pub scrapes: usize,
}

impl CounterAudit {
    pub fn new(family: &'static str) -> Self {
        CounterAudit { family, last: HashMap::new(), ended: 0.0, falls: Vec::new(), scrapes: 0 }
    }

    /// Takes one scrape's output.
    pub fn scrape(&mut self, metrics: &MetricSet) {
        self.scrapes += 1;
        let mut now = HashMap::new();
        if let Some(family) = metrics.families().iter().find(|f| f.spec.name == self.family) {
            for sample in &family.samples {
                let key = format!("{:?}{:?}", sample.label_values, sample.series);
                if let Some(before) = self.last.get(&key)
                    && sample.value < *before
                {
                    self.falls.push(format!("scrape {}: {key} fell {before} -> {}", self.scrapes, sample.value));
                }
                now.insert(key, sample.value);
            }
        }
        self.ended += self.last.iter().filter(|(k, _)| !now.contains_key(*k)).map(|(_, v)| v).sum::<f64>();
        self.last = now;
    }

    /// The sum of every series' increase so far (series ended included).
    pub fn total(&self) -> f64 {
        self.ended + self.last.values().sum::<f64>()
    }

    /// Series of this scrape.
    pub fn series(&self) -> usize {
        self.last.len()
    }
}

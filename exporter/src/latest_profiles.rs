//! The latest ingested profile of each format, kept as pprof for the pull
//! endpoints that Parca and Grafana Alloy's `pyroscope.scrape` scrape:
//! `/ingested/debug/pprof/allocs` (the latest of any format) and
//! `/ingested/FORMAT/debug/pprof/allocs`; `allocs` is the path both scrapers
//! use for memory profiles, and `/ingested` (or `/ingested/FORMAT`) is their
//! `path_prefix`. One profile per format (a fixed set): bounded.

use memleak_artifacts::Ingested;
use memleak_artifacts::encode::pprof;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

#[derive(Debug, Default)]
pub struct LatestProfiles {
    by_format: Mutex<BTreeMap<&'static str, Arc<Vec<u8>>>>,
    latest: Mutex<Option<Arc<Vec<u8>>>>,
}

impl LatestProfiles {
    /// Keeps the main profile of `ingested` (named `name`), if it has one.
    pub fn keep(&self, name: &str, ingested: &Ingested) {
        let Some(profile) = ingested.profiles.first() else { return };
        let bytes = Arc::new(pprof::encode(profile, name));
        self.by_format.lock().unwrap_or_else(PoisonError::into_inner).insert(ingested.format, Arc::clone(&bytes));
        *self.latest.lock().unwrap_or_else(PoisonError::into_inner) = Some(bytes);
    }

    /// The latest profile of `format`, or of any format.
    pub fn get(&self, format: Option<&str>) -> Option<Arc<Vec<u8>>> {
        match format {
            Some(f) => self.by_format.lock().unwrap_or_else(PoisonError::into_inner).get(f).cloned(),
            None => self.latest.lock().unwrap_or_else(PoisonError::into_inner).clone(),
        }
    }
}

//! The memleak-exporter binary's pieces, as a library so that integration
//! tests can check them (metric specs, flags, the webhook payload).

pub mod cli;
pub mod collectors;
pub mod config;
#[cfg(test)]
mod docs;
pub mod heap_profile;
pub mod ingest;
pub mod logging;
pub mod scrape;
pub mod self_metrics;
pub mod server;
pub mod watch;
pub mod webhook;

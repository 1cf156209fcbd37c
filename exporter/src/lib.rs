//! The memleak-exporter binary's pieces, as a library so that integration
//! tests can check them: the command line and its option groups, the
//! collector table, the HTTP server, scrapes, the webhook, the capture loop
//! and ingestion.

pub mod bounded_file;
pub mod capture;
pub mod cli;
pub mod collectors;
pub mod config_file;
#[cfg(test)]
mod docs;
pub mod headers;
pub mod heap_profile;
pub mod http;
pub mod ingest;
pub mod latest_profiles;
pub mod logging;
pub mod options;
pub mod otlp;
pub mod preflight;
pub mod process_self;
pub mod scrape;
pub mod self_metrics;
pub mod server;
pub mod unix_signals;
pub mod watch;
pub mod web_config;
pub mod webhook;

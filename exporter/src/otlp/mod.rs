//! OTLP push of metrics, logs and profiles (`--otlp.endpoint`): a bounded
//! queue and an export worker per signal, the periodic metrics push, and
//! `OtlpSink`, the handle that ingestion and captures ship through.
//!
//! Nothing here blocks its caller: `OtlpSink`'s methods convert and enqueue
//! (or drop and count when the queue is full) and return.

pub mod attributes;
pub mod captures;
pub mod collector_profiles;
pub mod events;
pub mod logs;
pub mod metrics;
pub mod profiles;
pub mod queue;
pub mod semconv;
pub mod transport;

use crate::options::otlp::Config;
pub use crate::options::otlp::Signal;
use crate::scrape::Scraper;
use crate::self_metrics::Counters;
use memleak_artifacts::{Ingested, Profile, Record};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::profiles::v1development::ExportProfilesServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::resource::v1::Resource;
use queue::{Health, Queue};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One export request of any signal.
#[derive(Debug, Clone)]
pub enum Batch {
    Metrics(ExportMetricsServiceRequest),
    Logs(ExportLogsServiceRequest),
    Profiles(ExportProfilesServiceRequest),
}

impl Batch {
    /// What `memleak_exporter_otlp_{sent,dropped}_total` count: data points, log records, profiles.
    pub fn items(&self) -> u64 {
        let n: usize = match self {
            Batch::Metrics(m) => m
                .resource_metrics
                .iter()
                .flat_map(|r| &r.scope_metrics)
                .flat_map(|s| &s.metrics)
                .map(|m| match &m.data {
                    Some(Data::Gauge(g)) => g.data_points.len(),
                    Some(Data::Sum(s)) => s.data_points.len(),
                    Some(Data::Histogram(h)) => h.data_points.len(),
                    _ => 0,
                })
                .sum(),
            Batch::Logs(l) => l.resource_logs.iter().flat_map(|r| &r.scope_logs).map(|s| s.log_records.len()).sum(),
            Batch::Profiles(p) => {
                p.resource_profiles.iter().flat_map(|r| &r.scope_profiles).map(|s| s.profiles.len()).sum()
            }
        };
        n as u64
    }
}

/// The handle through which everything is shipped over OTLP; cheap to clone.
#[derive(Debug, Clone)]
pub struct OtlpSink {
    resource: Arc<Resource>,
    metrics: Queue,
    logs: Queue,
    profiles: Queue,
}

impl OtlpSink {
    /// Starts the export workers on the current tokio runtime.
    pub fn start(config: &Config, port: u16, counters: &Arc<Counters>) -> anyhow::Result<OtlpSink> {
        // One health per receiver, so that one being down is logged once and another's success does not hide it.
        let mut healths: Vec<(String, Arc<Health>)> = Vec::new();
        let mut queue = |signal: Signal| -> anyhow::Result<Queue> {
            let export = config.export(signal);
            let health = match healths.iter().find(|(url, _)| *url == export.url) {
                Some((_, health)) => Arc::clone(health),
                None => {
                    let health = Arc::new(Health::default());
                    healths.push((export.url.clone(), Arc::clone(&health)));
                    health
                }
            };
            let transport = transport::Transport::new(export)?;
            Ok(queue::spawn(signal, config.queue_size, transport, Arc::clone(counters), health))
        };
        Ok(OtlpSink {
            resource: Arc::new(attributes::resource(config, &attributes::host_name(), port)),
            metrics: queue(Signal::Metrics)?,
            logs: queue(Signal::Logs)?,
            profiles: queue(Signal::Profiles)?,
        })
    }

    pub fn resource(&self) -> &Resource {
        &self.resource
    }

    /// Ships one log record (a capture's outcome, an OOM kill, a degradation) with
    /// `context` as attributes (e.g. the alert's fingerprint and labels).
    pub fn ship_log(&self, record: &Record, context: &[(String, String)]) {
        let log = logs::log_record(record, context, unix_nanos(SystemTime::now()));
        self.logs.push(Batch::Logs(logs::request(vec![log], &self.resource)));
    }

    /// Ships one profile (a capture's result, an ingested profile) with `context`
    /// as the profile's attributes.
    pub fn ship_profile(&self, profile: &Profile, context: &[(String, String)]) {
        let request = profiles::request(profile, context, unix_nanos(SystemTime::now()), &self.resource);
        self.profiles.push(Batch::Profiles(request));
    }

    /// Pushes every series of a collection every `interval`, reusing the
    /// latest scrape's collection when it is at most half an interval old.
    pub fn push_metrics_every(&self, interval: Duration, scraper: Arc<Scraper>, budget: Duration) {
        let sink = self.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut encoder = metrics::MetricsEncoder::default();
            loop {
                ticker.tick().await;
                let scraper = Arc::clone(&scraper);
                let Ok(shared) =
                    tokio::task::spawn_blocking(move || scraper.recent_or_scrape(interval / 2, budget)).await
                else {
                    continue;
                };
                let request = encoder.encode(&shared.set, unix_nanos(shared.at), &sink.resource);
                sink.metrics.push(Batch::Metrics(request));
            }
        });
    }
}

impl OtlpSink {
    /// Pushes, every `interval`, what each collector's profile (the page-fault one) gained since
    /// the last push, as an OTLP profile spanning the interval.
    pub fn push_collector_profiles_every(&self, interval: Duration, served: Vec<collector_profiles::Deltas>) {
        if served.is_empty() {
            return;
        }
        let sink = self.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut served = served;
            let mut since = unix_nanos(SystemTime::now());
            loop {
                ticker.tick().await;
                // Rendering reads the modules' symbols: off the async threads.
                let Ok((back, gained)) = tokio::task::spawn_blocking(move || {
                    let gained: Vec<_> =
                        served.iter_mut().filter_map(|d| Some((d.id(), d.since_last_push()?))).collect();
                    (served, gained)
                })
                .await
                else {
                    return;
                };
                served = back;
                let now = unix_nanos(SystemTime::now());
                for (id, profile) in gained {
                    let context = [("memleak.profile.source".to_owned(), id.to_owned())];
                    let mut request = profiles::request(&profile, &context, since, &sink.resource);
                    for p in request
                        .resource_profiles
                        .iter_mut()
                        .flat_map(|r| &mut r.scope_profiles)
                        .flat_map(|s| &mut s.profiles)
                    {
                        p.duration_nano = now.saturating_sub(since);
                    }
                    sink.profiles.push(Batch::Profiles(request));
                }
                since = now;
            }
        });
    }

    /// An ingested artifact named `file`: every record as a log record, every profile as a profile.
    pub fn ship_ingested(&self, file: &str, ingested: &Ingested) {
        let mut context = vec![
            ("memleak.artifact.format".to_owned(), ingested.format.to_owned()),
            ("memleak.artifact.file".to_owned(), file.to_owned()),
        ];
        context.extend(ingested.attributes.iter().map(|(k, v)| (format!("memleak.artifact.{k}"), v.clone())));
        let at = unix_nanos(SystemTime::now());
        let records: Vec<_> =
            ingested.records.iter().take(logs::MAX_RECORDS).map(|r| logs::log_record(r, &context, at)).collect();
        self.logs.drop_counted("limit", ingested.records.len().saturating_sub(logs::MAX_RECORDS) as u64);
        self.logs.push(Batch::Logs(logs::request(records, &self.resource)));
        for profile in &ingested.profiles {
            self.ship_profile(profile, &context);
        }
    }
}

/// Nanoseconds since the Unix epoch (0 for a clock before it).
pub fn unix_nanos(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

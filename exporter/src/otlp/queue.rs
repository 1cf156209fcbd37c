//! The bounded queue and the export worker of one signal: retries with
//! exponential backoff on retryable failures only, honest accounting in
//! `memleak_exporter_otlp_{sent,dropped}_total`, and the log lines that say
//! when the receiver cannot be reached (once, then rarely) and when delivery resumes.

use super::transport::{Failure, Transport};
use super::{Batch, Signal};
use crate::self_metrics::{Counters, OTLP_DROPPED, OTLP_SENT};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// First wait before a retry; it doubles up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long one batch is retried before it is dropped (newer data is waiting behind it).
const MAX_RETRY_TIME: Duration = Duration::from_secs(60);
/// While the receiver keeps failing, at most one log line per this period.
const FAILURE_LOG_PERIOD: Duration = Duration::from_secs(300);

/// The sending half of one signal's queue: never blocks.
#[derive(Debug, Clone)]
pub struct Queue {
    signal: Signal,
    sender: mpsc::Sender<Batch>,
    counters: Arc<Counters>,
}

impl Queue {
    /// Enqueues the batch, or drops and counts it when the queue is full.
    pub fn push(&self, batch: Batch) {
        let items = batch.items();
        if items == 0 {
            return;
        }
        if self.sender.try_send(batch).is_err() {
            self.counters.add(&OTLP_DROPPED, &[self.signal.as_str(), "queue_full"], items);
        }
    }

    pub fn drop_counted(&self, reason: &str, items: u64) {
        if items > 0 {
            self.counters.add(&OTLP_DROPPED, &[self.signal.as_str(), reason], items);
        }
    }
}

/// Whether the receiver answers, shared by the signals' workers so it is logged once.
#[derive(Debug, Default)]
pub struct Health {
    state: Mutex<HealthState>,
}

#[derive(Debug, Default)]
struct HealthState {
    failing_since: Option<Instant>,
    /// Kept across recoveries, so that a flapping receiver is not warned about more
    /// often than once a period either.
    last_logged: Option<Instant>,
    /// Whether this outage was warned about (then its end is logged too).
    warned: bool,
    failures: u64,
}

impl Health {
    fn failed(&self, failure: &Failure) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.failures += 1;
        let now = Instant::now();
        let since = *state.failing_since.get_or_insert(now);
        if state.last_logged.is_none_or(|at| now.duration_since(at) >= FAILURE_LOG_PERIOD) {
            let (what, then) = match (failure.unreachable, failure.retryable) {
                (true, _) => (
                    "cannot reach the OTLP receiver",
                    "retried with backoff, then dropped and counted in memleak_exporter_otlp_dropped_total \
                     (check --otlp.endpoint and that the receiver runs)",
                ),
                (false, true) => (
                    "the OTLP receiver refuses exports",
                    "retried with backoff, then dropped and counted in memleak_exporter_otlp_dropped_total \
                     (check the receiver's log and limits)",
                ),
                (false, false) => (
                    "the OTLP receiver refuses exports",
                    "not retryable: dropped at once and counted in memleak_exporter_otlp_dropped_total \
                     (check --otlp.protocol: gRPC sent to an HTTP port answers 404 or Unimplemented; \
                     a generic HTTP --otlp.endpoint is a base URL without /v1/<signal>)",
                ),
            };
            tracing::warn!(
                error = %failure.message,
                failures = state.failures,
                failing_for = ?now.duration_since(since),
                "{what}; {then}"
            );
            state.last_logged = Some(now);
            state.warned = true;
        }
    }

    fn succeeded(&self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(since) = state.failing_since.take() {
            if state.warned {
                tracing::info!(failures = state.failures, after = ?since.elapsed(), "OTLP delivery resumed");
            }
            state.failures = 0;
            state.warned = false;
        }
    }
}

/// Creates the queue of `signal` and spawns its worker on the current runtime.
pub fn spawn(signal: Signal, size: usize, transport: Transport, counters: Arc<Counters>, health: Arc<Health>) -> Queue {
    let (sender, receiver) = mpsc::channel(size);
    tokio::spawn(work(signal, receiver, transport, Arc::clone(&counters), health));
    Queue { signal, sender, counters }
}

async fn work(
    signal: Signal,
    mut receiver: mpsc::Receiver<Batch>,
    transport: Transport,
    counters: Arc<Counters>,
    health: Arc<Health>,
) {
    while let Some(batch) = receiver.recv().await {
        let items = batch.items();
        let started = Instant::now();
        let mut backoff = FIRST_BACKOFF;
        loop {
            match transport.send(&batch).await {
                Ok(()) => {
                    counters.add(&OTLP_SENT, &[signal.as_str()], items);
                    health.succeeded();
                    break;
                }
                Err(failure) => {
                    health.failed(&failure);
                    let wait = failure.retry_after.unwrap_or(backoff).min(MAX_RETRY_TIME);
                    if !failure.retryable || started.elapsed() + wait > MAX_RETRY_TIME {
                        let reason = if failure.retryable { "retries_exhausted" } else { "rejected" };
                        tracing::debug!(signal = signal.as_str(), items, reason, error = %failure.message, "OTLP export dropped");
                        counters.add(&OTLP_DROPPED, &[signal.as_str(), reason], items);
                        break;
                    }
                    tokio::time::sleep(jittered(wait)).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

/// Up to 20 % less than `wait`, so that exporters restarted together do not retry in step.
fn jittered(wait: Duration) -> Duration {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    wait.mul_f64(1.0 - f64::from(nanos % 200) / 1000.0)
}

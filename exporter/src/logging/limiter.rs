//! The log's rate limit: each place in the code that logs (a callsite) may
//! write a burst of lines, then one a second; the lines over that are
//! dropped and counted, and the count is reported by the next line from that
//! place (`suppressed=N`) or, once the place has been quiet for a while, on a
//! line of its own. So a flood of bad requests makes a few lines a second,
//! whatever its rate. The map holds one entry per callsite: the code bounds it.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};
use tracing::Metadata;
use tracing::callsite::Identifier;

/// Lines a callsite may write at once.
pub const BURST: f64 = 50.0;
/// Lines a callsite may write per second after its burst.
pub const PER_SECOND: f64 = 1.0;
/// How long a callsite with suppressed lines must be quiet before its count is reported alone.
const QUIET: Duration = Duration::from_secs(2);

#[derive(Debug, Default)]
pub struct Limiter {
    buckets: Mutex<HashMap<Identifier, Bucket>>,
}

#[derive(Debug)]
struct Bucket {
    metadata: &'static Metadata<'static>,
    tokens: f64,
    refilled: Instant,
    suppressed: u64,
    last_suppressed: Instant,
}

/// Lines a quiet callsite did not write.
#[derive(Debug)]
pub struct Suppressed {
    pub metadata: &'static Metadata<'static>,
    pub count: u64,
}

impl Limiter {
    /// `Some(suppressed before it)` when a line from `metadata`'s callsite may be written now.
    pub fn admit(&self, metadata: &'static Metadata<'static>, now: Instant) -> Option<u64> {
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let bucket = buckets.entry(metadata.callsite()).or_insert(Bucket {
            metadata,
            tokens: BURST,
            refilled: now,
            suppressed: 0,
            last_suppressed: now,
        });
        let elapsed = now.saturating_duration_since(bucket.refilled).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * PER_SECOND).min(BURST);
        bucket.refilled = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Some(std::mem::take(&mut bucket.suppressed))
        } else {
            bucket.suppressed += 1;
            bucket.last_suppressed = now;
            None
        }
    }

    /// The counts of callsites quiet for a while, taken (each is reported once).
    pub fn take_quiet(&self, now: Instant) -> Vec<Suppressed> {
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        buckets
            .values_mut()
            .filter(|b| b.suppressed > 0 && now.saturating_duration_since(b.last_suppressed) >= QUIET)
            .map(|b| Suppressed { metadata: b.metadata, count: std::mem::take(&mut b.suppressed) })
            .collect()
    }

    /// Every count still pending, taken (at exit).
    pub fn take_all(&self) -> Vec<Suppressed> {
        let far = Instant::now() + QUIET + QUIET;
        self.take_quiet(far)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata() -> &'static Metadata<'static> {
        // A real callsite's metadata, as the layer sees it.
        struct Grab;
        impl tracing::Subscriber for Grab {
            fn enabled(&self, _: &Metadata<'_>) -> bool {
                true
            }
            fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
                tracing::span::Id::from_u64(1)
            }
            fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
            fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
            fn event(&self, event: &tracing::Event<'_>) {
                GRABBED.with(|g| g.set(Some(event.metadata())));
            }
            fn enter(&self, _: &tracing::span::Id) {}
            fn exit(&self, _: &tracing::span::Id) {}
        }
        thread_local! { static GRABBED: std::cell::Cell<Option<&'static Metadata<'static>>> = const { std::cell::Cell::new(None) }; }
        tracing::subscriber::with_default(Grab, || tracing::warn!("flooded"));
        GRABBED.with(|g| g.get()).unwrap()
    }

    #[test]
    fn a_flood_writes_its_burst_then_one_a_second_and_counts_the_rest() {
        let limiter = Limiter::default();
        let meta = metadata();
        let start = Instant::now();
        let mut written = 0;
        // 10,000 lines over 10 seconds.
        for i in 0..10_000u32 {
            let now = start + Duration::from_millis(u64::from(i));
            if limiter.admit(meta, now).is_some() {
                written += 1;
            }
        }
        assert_eq!(written, BURST as u32 + 9, "the burst, then one per second for 9 more seconds");
        let at_end = start + Duration::from_secs(10);
        assert!(limiter.take_quiet(at_end).is_empty(), "not quiet yet");
        let later = at_end + QUIET;
        let quiet = limiter.take_quiet(later);
        let reported: u64 = quiet.iter().map(|s| s.count).sum();
        // What the lines that passed carried, plus what is reported now, is everything dropped.
        assert!(reported > 0 && reported <= 10_000 - u64::from(written), "{reported}");
        assert!(limiter.take_all().is_empty(), "each count is reported once");
    }

    #[test]
    fn the_next_line_after_a_flood_carries_the_count() {
        let limiter = Limiter::default();
        let meta = metadata();
        let now = Instant::now();
        for _ in 0..(BURST as usize + 25) {
            limiter.admit(meta, now);
        }
        assert_eq!(limiter.admit(meta, now + Duration::from_secs(1)), Some(25));
        assert_eq!(limiter.admit(meta, now + Duration::from_secs(2)), Some(0));
    }
}

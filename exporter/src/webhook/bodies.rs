//! The memory webhook bodies may hold at once, across requests: each request
//! reserves its `Content-Length` (or the largest body allowed, when it sends
//! none) before its body is read, so that many large bodies arriving together
//! cannot add up past the systemd unit's 64 MiB and get the exporter killed.
//! A request that does not fit gets 503 with `Retry-After`; Alertmanager retries.

use axum::http::{HeaderMap, StatusCode, header};
use tokio::sync::{Semaphore, SemaphorePermit};

/// KiB of bodies held at once.
const BUDGET_KIB: usize = 16 * 1024;
static BUDGET: Semaphore = Semaphore::const_new(BUDGET_KIB);

/// Reserves room for the body the request announces (at most `max_body_bytes`), until the permit is dropped.
pub fn reserve(headers: &HeaderMap, max_body_bytes: usize) -> Result<SemaphorePermit<'static>, (StatusCode, String)> {
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok())
        .map_or(max_body_bytes, |length| length.min(max_body_bytes));
    let kib = announced.div_ceil(1024).clamp(1, BUDGET_KIB);
    let kib = u32::try_from(kib).unwrap_or(u32::MAX);
    BUDGET.try_acquire_many(kib).map_err(|_| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("other webhook requests hold {BUDGET_KIB} KiB of bodies in memory; retry in a second"),
        )
    })
}

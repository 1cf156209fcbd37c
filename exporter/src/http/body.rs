//! Request bodies with a deadline: a client that sends less than it announced
//! (a lying `Content-Length`, a trickle) gets an error at the deadline instead
//! of holding the handler, and the connection answers 408 and closes.

use axum::body::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::error::Error;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Sleep;

/// The error a timed body returns at its deadline.
#[derive(Debug)]
pub struct BodyTimeout(pub Duration);

impl fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the request body did not arrive within {:?} (--web.body-timeout)", self.0)
    }
}

impl Error for BodyTimeout {}

/// Whether `err` (an extractor's rejection, say) comes from a body that missed its deadline.
pub fn timed_out(err: &(dyn Error + 'static)) -> bool {
    let mut cause = Some(err);
    while let Some(e) = cause {
        if e.is::<BodyTimeout>() {
            return true;
        }
        cause = e.source();
    }
    false
}

/// A request body that fails once `limit` has passed since it was made.
#[derive(Debug)]
pub struct TimedBody<B> {
    inner: B,
    limit: Duration,
    deadline: Pin<Box<Sleep>>,
    expired: Arc<AtomicBool>,
}

impl<B> TimedBody<B> {
    /// The body, and a flag set when it missed its deadline.
    pub fn new(inner: B, limit: Duration) -> (TimedBody<B>, Arc<AtomicBool>) {
        let expired = Arc::new(AtomicBool::new(false));
        let body =
            TimedBody { inner, limit, deadline: Box::pin(tokio::time::sleep(limit)), expired: Arc::clone(&expired) };
        (body, expired)
    }
}

impl<B> Body for TimedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            self.expired.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err(Box::new(BodyTimeout(self.limit)))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    /// A body that never sends anything (a client that announced more than it sent).
    struct Silent;

    impl Body for Silent {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Poll::Pending
        }
    }

    #[tokio::test]
    async fn a_silent_body_fails_at_its_deadline_and_says_so() {
        let (body, expired) = TimedBody::new(Silent, Duration::from_millis(20));
        let err = axum::body::Body::new(body).collect().await.err().unwrap();
        assert!(timed_out(&err), "{err}");
        assert!(expired.load(Ordering::Relaxed));
        let (body, expired) = TimedBody::new(http_body_util::Full::new(Bytes::from_static(b"ok")), Duration::ZERO);
        assert_eq!(body.collect().await.unwrap().to_bytes(), "ok", "what is there is delivered");
        assert!(!expired.load(Ordering::Relaxed));
    }
}

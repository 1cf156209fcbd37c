//! A connection's socket with a write deadline: a write that makes no progress
//! for the limit (a client that stopped reading its response) fails, which
//! closes the connection instead of keeping its slot and buffers forever.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

#[derive(Debug)]
pub struct WriteStall<S> {
    inner: S,
    limit: Duration,
    /// Armed while a write waits; reset by any progress.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<S> WriteStall<S> {
    pub fn new(inner: S, limit: Duration) -> Self {
        WriteStall { inner, limit, stalled: None }
    }

    /// Passes a write's outcome on; while it waits, fails it once the limit has passed.
    fn watch<T>(&mut self, cx: &mut Context<'_>, outcome: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if outcome.is_ready() {
            self.stalled = None;
            return outcome;
        }
        let limit = self.limit;
        let timer = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(Instant::now() + limit)));
        if timer.as_mut().poll(cx).is_ready() {
            self.stalled = None;
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the client took nothing of the response for {limit:?} (--web.write-timeout)"),
            )));
        }
        Poll::Pending
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteStall<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteStall<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let outcome = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(cx, outcome)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let outcome = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(cx, outcome)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let outcome = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, outcome)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let outcome = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.watch(cx, outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::{TcpListener, TcpStream};

    async fn pair() -> (TcpStream, std::net::TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        (listener.accept().await.unwrap().0, client)
    }

    /// Writes `total` bytes in chunks: the bytes written, or the first error.
    async fn write(stream: &mut WriteStall<TcpStream>, total: usize) -> io::Result<usize> {
        let chunk = [7u8; 64 * 1024];
        let mut written = 0;
        while written < total {
            let part = &chunk[..chunk.len().min(total - written)];
            written += std::future::poll_fn(|cx| Pin::new(&mut *stream).poll_write(cx, part)).await?;
        }
        Ok(written)
    }

    #[tokio::test]
    async fn a_client_that_stops_reading_fails_the_write_after_the_limit() {
        let (server, _client_never_reads) = pair().await;
        let mut stalled = WriteStall::new(server, Duration::from_millis(50));
        let err = write(&mut stalled, 1 << 30).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        assert!(err.to_string().contains("--web.write-timeout"));
    }

    #[tokio::test]
    async fn a_slow_client_that_keeps_reading_is_never_cut() {
        let (server, mut client) = pair().await;
        // 64 KiB every 10 ms: far slower than the writer, never long without progress.
        let reader = std::thread::spawn(move || {
            let mut buf = vec![0; 64 * 1024];
            let mut total = 0;
            loop {
                match std::io::Read::read(&mut client, &mut buf) {
                    Ok(0) => return Ok(total),
                    Ok(n) => total += n,
                    Err(e) => return Err(e),
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        // The kernel wakes a blocked writer only once a good part of its send buffer
        // (megabytes on loopback) has drained, so the limit must exceed that.
        let mut steady = WriteStall::new(server, Duration::from_secs(2));
        let total = 8 << 20;
        assert_eq!(write(&mut steady, total).await.unwrap(), total);
        drop(steady);
        assert_eq!(reader.join().unwrap().unwrap(), total);
    }
}

//! The log's way out: lines go through a bounded queue to one thread that
//! writes them to stderr. A slow or stuck reader of stderr (a full pipe, a
//! stalled journal) never blocks the exporter: lines that do not fit are
//! dropped and counted. A broken stderr (a closed pipe, `| head -1`) costs
//! nothing: write errors are ignored, and after EPIPE nothing more is tried.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

/// Lines waiting for the writer at most.
const QUEUE: usize = 1024;
/// How often the writer asks for lines of its own (suppression counts) while the queue is quiet.
const TICK: Duration = Duration::from_secs(1);

enum Message {
    Line(String),
    /// Answered once every line before it has been written.
    Flush(SyncSender<()>),
}

/// Produces lines the writer adds by itself (counts of suppressed and dropped
/// lines); `true` at a flush asks for every count still pending.
pub type Ticker = Box<dyn FnMut(bool) -> Vec<String> + Send>;

#[derive(Debug)]
pub struct Sink {
    out: Out,
    dropped: Arc<AtomicU64>,
}

#[derive(Debug)]
enum Out {
    Queue(SyncSender<Message>),
    /// No writer thread could start: each line is written where it is made.
    Direct,
    #[cfg(test)]
    Collect(Arc<std::sync::Mutex<Vec<String>>>),
}

impl Sink {
    /// Starts the writer thread, which counts in `dropped` the lines the queue had no room
    /// for; without a thread (it could not start) lines are written directly.
    pub fn start(ticker: Ticker, dropped: Arc<AtomicU64>) -> Sink {
        let (queue, lines) = sync_channel(QUEUE);
        let started = std::thread::Builder::new().name("log-writer".into()).spawn(move || write_lines(&lines, ticker));
        Sink { out: if started.is_ok() { Out::Queue(queue) } else { Out::Direct }, dropped }
    }

    /// A sink that keeps its lines in `lines` (for tests).
    #[cfg(test)]
    pub fn collecting(lines: Arc<std::sync::Mutex<Vec<String>>>, dropped: Arc<AtomicU64>) -> Sink {
        Sink { out: Out::Collect(lines), dropped }
    }

    /// Queues a line (ending in a newline); drops it when the queue is full.
    pub fn send(&self, line: String) {
        let queue = match &self.out {
            Out::Queue(queue) => queue,
            Out::Direct => return write_directly(&line),
            #[cfg(test)]
            Out::Collect(lines) => return lines.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(line),
        };
        match queue.try_send(Message::Line(line)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(Message::Line(line))) => write_directly(&line),
            Err(TrySendError::Disconnected(Message::Flush(_))) => {}
        }
    }

    /// Waits (at most `limit`) until the lines queued so far are written.
    pub fn flush(&self, limit: Duration) {
        let Out::Queue(queue) = &self.out else { return };
        let (done, wait) = sync_channel(1);
        if queue.send(Message::Flush(done)).is_ok() {
            let _ = wait.recv_timeout(limit);
        }
    }
}

fn write_lines(lines: &Receiver<Message>, mut ticker: Ticker) {
    let mut broken = false;
    let mut ticked = Instant::now();
    loop {
        let message = lines.recv_timeout(TICK);
        if matches!(message, Err(RecvTimeoutError::Disconnected)) {
            return;
        }
        if let Ok(Message::Line(line)) = &message {
            write(&mut broken, line);
        }
        // The ticker's lines come at least once a second, busy or not, and before a flush is answered.
        if ticked.elapsed() >= TICK || matches!(message, Ok(Message::Flush(_)) | Err(_)) {
            ticked = Instant::now();
            for line in ticker(matches!(message, Ok(Message::Flush(_)))) {
                write(&mut broken, &line);
            }
        }
        if let Ok(Message::Flush(done)) = message {
            let _ = done.send(());
        }
    }
}

fn write(broken: &mut bool, line: &str) {
    if *broken {
        return;
    }
    if let Err(err) = std::io::stderr().lock().write_all(line.as_bytes()) {
        // Nobody reads any more; other errors (EAGAIN, EIO) may pass, so the next line tries again.
        *broken = err.kind() == std::io::ErrorKind::BrokenPipe;
    }
}

fn write_directly(line: &str) {
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

//! The process's signals: SIGTERM and SIGINT stop the exporter (requests in
//! progress get `--web.shutdown-timeout` to finish); SIGHUP is logged and
//! ignored.
//!
//! Why SIGHUP does not reload: the exporter keeps no state, so a restart
//! (`systemctl restart`) applies a new configuration completely and loses
//! nothing, while a reload would have to rebuild collectors, eBPF programs and
//! the listener in place, with new ways to end half-applied. SIGHUP must not
//! kill it either (its default action), since tools send it to say "reload".

use tokio::signal::unix::{Signal, SignalKind, signal};

/// The handlers, registered from `install` on (a SIGHUP during start-up no longer kills).
#[derive(Debug)]
pub struct Signals {
    terminate: Signal,
    interrupt: Signal,
    hangup: Signal,
}

/// Registers the handlers; must run inside the runtime.
pub fn install() -> std::io::Result<Signals> {
    Ok(Signals {
        terminate: signal(SignalKind::terminate())?,
        interrupt: signal(SignalKind::interrupt())?,
        hangup: signal(SignalKind::hangup())?,
    })
}

impl Signals {
    /// Completes on SIGTERM or SIGINT, logging each SIGHUP meanwhile.
    pub async fn shutdown(mut self) {
        loop {
            tokio::select! {
                Some(()) = self.terminate.recv() => return tracing::info!(signal = "SIGTERM", "shutting down"),
                Some(()) = self.interrupt.recv() => return tracing::info!(signal = "SIGINT", "shutting down"),
                Some(()) = self.hangup.recv() => tracing::warn!(
                    signal = "SIGHUP",
                    "configuration reload is not supported: the exporter keeps running with the configuration it started with; restart it to apply a new one (it keeps no state)"
                ),
                else => return std::future::pending().await,
            }
        }
    }
}

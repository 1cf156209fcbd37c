//! Cancelling a running capture: a reason set once, and waits that end early when it is set.

use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Set by the scheduler (alert resolved, exporter stopping); watched by the capture.
#[derive(Debug, Default)]
pub struct Cancel {
    reason: Mutex<Option<String>>,
    changed: Condvar,
}

impl Cancel {
    /// Asks the capture to stop; the first reason wins.
    pub fn cancel(&self, reason: &str) {
        let mut r = self.reason.lock().unwrap_or_else(PoisonError::into_inner);
        if r.is_none() {
            *r = Some(reason.to_owned());
        }
        self.changed.notify_all();
    }

    pub fn reason(&self) -> Option<String> {
        self.reason.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Waits `duration`, or less when cancelled: `Err(reason)` then.
    pub fn sleep(&self, duration: Duration) -> Result<(), String> {
        let until = Instant::now() + duration;
        let mut r = self.reason.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(reason) = r.as_ref() {
                return Err(reason.clone());
            }
            let now = Instant::now();
            if now >= until {
                return Ok(());
            }
            r = self.changed.wait_timeout(r, until - now).unwrap_or_else(PoisonError::into_inner).0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_cancel_ends_the_wait_with_its_reason() {
        let c = Arc::new(Cancel::default());
        let waiter = Arc::clone(&c);
        let started = Instant::now();
        let t = std::thread::spawn(move || waiter.sleep(Duration::from_secs(60)));
        std::thread::sleep(Duration::from_millis(50));
        c.cancel("alert resolved");
        c.cancel("later reason");
        assert_eq!(t.join().unwrap(), Err("alert resolved".into()));
        assert!(started.elapsed() < Duration::from_secs(30));
        assert!(Cancel::default().sleep(Duration::from_millis(1)).is_ok());
    }
}

//! The per-thread byte countdown that decides, as a Poisson process over allocated bytes, which allocations are sampled.
//!
//! Each thread counts down the bytes left until its next sample point; the distances between
//! points are drawn from an exponential distribution with the configured mean. An allocation of
//! `size` bytes is sampled when a point falls inside it, which (the distribution being memoryless)
//! happens with probability `1 - exp(-size / mean)`, independently of every other allocation.
//!
//! The state is two `Cell`s of zero-initialized thread-local storage without a destructor: no
//! allocation, no registration, usable from the first allocation of a thread to its last. A
//! signal handler that allocates in the middle of an update can at worst skew one draw.

use crate::config;
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

/// All zeros is the initial state.
#[repr(C)]
pub struct Countdown {
    /// Bytes left until the next sample point; always positive once `rng` is seeded.
    left: Cell<i64>,
    /// splitmix64 state; 0 until the thread's first allocation seeds it.
    rng: Cell<u64>,
}

/// The fast path: counts `size` bytes off this thread's countdown if it stays positive, and
/// says so (the allocation is not sampled). False: call [`take`].
#[inline(always)]
pub fn fits(size: usize) -> bool {
    let Some(countdown) = this_thread() else { return false };
    // A size above i64::MAX turns negative and adds to the countdown: such a request fails
    // anyway. Wrapping keeps the hot path branch-free; a wrap is a (harmless) early sample.
    let left = countdown.left.get().wrapping_sub(size as i64);
    if left > 0 {
        countdown.left.set(left);
        true
    } else {
        false
    }
}

/// Counts `size` bytes off this thread's countdown; true when the allocation is sampled.
#[inline(always)]
pub fn take(size: usize) -> bool {
    if fits(size) {
        return false;
    }
    this_thread().is_some_and(|countdown| countdown.reached(countdown.left.get().wrapping_sub(size as i64)))
}

// 16 bytes of zero-initialized TLS. Global (the code that uses it may sit in another codegen
// unit) but hidden: never exported from the library, never interposed by another definition.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
std::arch::global_asm!(
    ".pushsection .tbss,\"awT\",@nobits",
    ".globl memleak_sampler_countdown",
    ".hidden memleak_sampler_countdown",
    ".p2align 3",
    ".type memleak_sampler_countdown, @tls_object",
    ".size memleak_sampler_countdown, 16",
    "memleak_sampler_countdown:",
    ".zero 16",
    ".popsection",
);

/// This thread's countdown, in the initial-exec TLS model: the thread pointer plus an offset
/// fixed at load, two instructions, where a `thread_local!` in a shared library calls
/// `__tls_get_addr` on every access (a sixth of the sampler's cost per malloc/free pair). It
/// also means the library's TLS is static, so no access ever allocates. (The library is
/// preloaded or linked, so its TLS is static anyway; `dlopen` of it needs the loader's spare
/// static TLS, and fails cleanly without.)
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
#[inline(always)]
fn this_thread() -> Option<&'static Countdown> {
    let state: *const Countdown;
    // SAFETY: %fs:0 holds the thread pointer (the x86-64 TLS ABI); adding the symbol's TP
    // offset gives this thread's copy of the 16 zero-initialized bytes above, a valid Countdown.
    // Only this thread uses it, and only for the length of one call.
    unsafe {
        std::arch::asm!(
            "mov {state}, qword ptr fs:[0]",
            "add {state}, qword ptr [rip + memleak_sampler_countdown@GOTTPOFF]",
            state = out(reg) state,
            options(pure, readonly, nostack),
        );
        Some(&*state)
    }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
#[inline(always)]
fn this_thread() -> Option<&'static Countdown> {
    thread_local! {
        static COUNTDOWN: Countdown = const { Countdown { left: Cell::new(0), rng: Cell::new(0) } };
    }
    // SAFETY: the reference does not outlive the call it is used in, on this thread.
    COUNTDOWN.try_with(|countdown| unsafe { &*(countdown as *const Countdown) }).ok()
}

impl Countdown {
    /// The countdown ran out (`left <= 0`), or the thread has not been seeded yet.
    #[cold]
    #[inline(never)]
    fn reached(&self, left: i64) -> bool {
        if self.rng.get() == 0 {
            // First allocation of the thread: the countdown starts from a draw, not from zero.
            self.rng.set(seed(self as *const Countdown as u64));
            let left = self.draw().saturating_add(left);
            if left > 0 {
                self.left.set(left);
                return false;
            }
        }
        // The next point is a fresh draw from the end of this allocation: by memorylessness that
        // is distributed as the rest of the process would have been.
        let next = self.draw();
        self.left.set(next);
        true
    }

    /// One exponential distance in bytes, at least 1.
    fn draw(&self) -> i64 {
        let state = self.rng.get().wrapping_add(GOLDEN_GAMMA);
        self.rng.set(state | 1);
        exponential(config::mean_bytes(), mix(state))
    }
}

const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// `-mean * ln(u)` for `u` uniform in (0, 1] taken from the top 53 bits of `bits`.
pub fn exponential(mean: u64, bits: u64) -> i64 {
    let uniform = ((bits >> 11) as f64 + 1.0) * (1.0 / (1u64 << 53) as f64);
    let distance = -(mean as f64) * uniform.ln();
    // `as` saturates (and maps NaN to 0); `max` keeps the countdown positive.
    (distance as i64).max(1)
}

/// splitmix64's output function.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A distinct, non-zero seed per thread: its state's address, a process-wide sequence number and
/// the clock, so threads (and runs) do not share sample points.
fn seed(address: u64) -> u64 {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec; it is async-signal-safe and does not allocate.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    let clock = (now.tv_sec as u64).wrapping_mul(1_000_000_000).wrapping_add(now.tv_nsec as u64);
    mix(address ^ mix(sequence.wrapping_mul(GOLDEN_GAMMA) ^ clock)) | 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_is_positive_and_finite_at_the_extremes() {
        assert_eq!(exponential(524_288, u64::MAX), 1, "u = 1 gives distance 0, kept at 1");
        let farthest = exponential(524_288, 0);
        // u = 2^-53: -ln(u) = 53 ln 2 = 36.7 means.
        assert!((farthest as f64 - 36.74 * 524_288.0).abs() < 0.01 * 524_288.0, "{farthest}");
        assert!(exponential(crate::config::MAX_MEAN_BYTES, 0) > 0);
    }

    #[test]
    fn distances_have_the_configured_mean_and_spread() {
        // The exponential's mean and standard deviation are both `mean`; over n draws the
        // sample mean has standard error mean / sqrt(n): 0.1 % here, asserted within 0.5 %.
        let mean = 4096;
        let n = 1_000_000u64;
        let (mut sum, mut squares) = (0f64, 0f64);
        for i in 0..n {
            let d = exponential(mean, mix(i.wrapping_mul(GOLDEN_GAMMA))) as f64;
            sum += d;
            squares += d * d;
        }
        let sample_mean = sum / n as f64;
        let sd = (squares / n as f64 - sample_mean * sample_mean).sqrt();
        assert!((sample_mean / mean as f64 - 1.0).abs() < 0.005, "mean {sample_mean}");
        assert!((sd / mean as f64 - 1.0).abs() < 0.01, "sd {sd}");
    }

    #[test]
    fn allocations_are_sampled_with_probability_one_minus_exp() {
        // The mean of this process is the default (the tests do not set the variable), 512 KiB.
        // For each size, the fraction of sampled allocations over n trials must match
        // 1 - exp(-size / mean) within 5 binomial standard deviations.
        let mean = config::mean_bytes() as f64;
        for size in [64usize, 4096, 65_536, 524_288, 2_097_152] {
            let n = 200_000usize;
            let sampled = (0..n).filter(|_| take(size)).count() as f64;
            let p = 1.0 - (-(size as f64) / mean).exp();
            let sd = (n as f64 * p * (1.0 - p)).sqrt();
            assert!(
                (sampled - n as f64 * p).abs() <= 5.0 * sd + 1.0,
                "size {size}: {sampled} sampled, expected {}",
                n as f64 * p
            );
        }
    }

    #[test]
    fn zero_bytes_are_never_sampled() {
        assert!((0..100_000).all(|_| !take(0)));
    }
}

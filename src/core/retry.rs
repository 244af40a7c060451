//! Exponential backoff with jitter for failed pushes.
//!
//! The delay before attempt `n + 1` (after `n` failures) is `min(cap, base · 2^(n-1))`, of which
//! a random half is kept ("equal jitter"): never zero, so a flapping backend is not hammered, and
//! spread out, so many clients that failed together do not retry together.

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    pub base_ms: f64,
    pub cap_ms: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base_ms: 1_000.0,
            cap_ms: 300_000.0,
        }
    }
}

impl Backoff {
    /// Delay after the `attempts`-th failure (1-based); `unit` is a random number in [0, 1).
    pub fn delay(&self, attempts: u32, unit: f64) -> f64 {
        let exp = self.base_ms * 2f64.powi(attempts.saturating_sub(1).min(60) as i32);
        let ceiling = exp.min(self.cap_ms);
        ceiling / 2.0 + ceiling / 2.0 * unit.clamp(0.0, 1.0)
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_within_jitter_and_is_capped() {
        let b = Backoff {
            base_ms: 100.0,
            cap_ms: 1_000.0,
        };
        assert_eq!((b.delay(1, 0.0), b.delay(1, 1.0)), (50.0, 100.0));
        assert_eq!((b.delay(2, 0.0), b.delay(2, 1.0)), (100.0, 200.0));
        assert_eq!((b.delay(3, 0.5), b.delay(4, 0.5)), (300.0, 600.0));
        assert_eq!(
            (b.delay(5, 0.0), b.delay(5, 1.0)),
            (500.0, 1_000.0),
            "capped"
        );
        assert_eq!(b.delay(u32::MAX, 1.0), 1_000.0, "no overflow");
        assert!(b.delay(1, 0.0) > 0.0, "never zero");
    }
}

//! Emulated time and token buckets.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Wall clock plus an offset that tests move forward to expire tokens and links without
/// sleeping. Cheap to share (`Arc<Clock>`).
#[derive(Debug, Default)]
pub struct Clock {
    offset_ms: AtomicI64,
}

impl Clock {
    pub fn new() -> Clock {
        Clock::default()
    }

    /// Start with this offset (e.g. restored from a saved state).
    pub fn with_offset_ms(offset_ms: i64) -> Clock {
        Clock { offset_ms: AtomicI64::new(offset_ms) }
    }

    /// Emulated unix time in milliseconds.
    pub fn now_ms(&self) -> i64 {
        let real = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
        real + self.offset_ms.load(Ordering::SeqCst)
    }

    /// Emulated unix time in seconds.
    pub fn now(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }

    pub fn advance(&self, d: Duration) {
        self.offset_ms.fetch_add(d.as_millis() as i64, Ordering::SeqCst);
    }

    pub fn offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::SeqCst)
    }
}

/// Token buckets keyed by a string (user, app, class, …), in emulated time.
///
/// `check` takes one token and answers `Ok(())`, or `Err(wait_ms)` — how long until a token
/// is available — when the bucket is empty.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, (f64, i64)>>,
}

impl RateLimiter {
    pub fn new() -> RateLimiter {
        RateLimiter::default()
    }

    pub fn check(&self, key: &str, rate_per_sec: f64, burst: f64, now_ms: i64) -> Result<(), u64> {
        let mut m = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let b = m.entry(key.to_string()).or_insert((burst, now_ms));
        let elapsed = (now_ms - b.1).max(0) as f64 / 1000.0;
        b.0 = (b.0 + elapsed * rate_per_sec).min(burst);
        b.1 = now_ms;
        if b.0 >= 1.0 {
            b.0 -= 1.0;
            Ok(())
        } else {
            let missing = 1.0 - b.0;
            Err(((missing / rate_per_sec) * 1000.0).ceil().max(1.0) as u64)
        }
    }

    pub fn clear(&self) {
        self.buckets.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_refills_with_time() {
        let r = RateLimiter::new();
        assert!(r.check("u", 1.0, 1.0, 0).is_ok());
        assert_eq!(r.check("u", 1.0, 1.0, 0), Err(1000));
        assert_eq!(r.check("u", 1.0, 1.0, 400), Err(600));
        assert!(r.check("u", 1.0, 1.0, 1000).is_ok());
        assert!(r.check("other", 1.0, 1.0, 1000).is_ok());
    }

    #[test]
    fn clock_advances() {
        let c = Clock::new();
        let a = c.now();
        c.advance(Duration::from_secs(7200));
        assert!(c.now() >= a + 7200);
    }
}

//! Per-node protections of the gateway: a token bucket per consumer and service (the service's
//! calls-a-minute limit) and a circuit breaker per service, which turns a failing provider into
//! an immediate typed error instead of a pile of waiting calls.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Token buckets keyed by `consumer service`.
#[derive(Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, Bucket>>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

const MAX_BUCKETS: usize = 100_000;

impl RateLimiter {
    /// Takes one call from `key`'s bucket of `per_minute` (refilled continuously); false when
    /// the bucket is empty. `per_minute` 0 means unlimited.
    pub fn allow(&self, key: &str, per_minute: u32) -> bool {
        if per_minute == 0 {
            return true;
        }
        let capacity = f64::from(per_minute);
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(key) {
            // Full buckets carry no information; dropping them is safe.
            buckets.retain(|_, b| {
                b.tokens + b.at.elapsed().as_secs_f64() * capacity / 60.0 < capacity
            });
        }
        let bucket = buckets.entry(key.to_string()).or_insert(Bucket {
            tokens: capacity,
            at: now,
        });
        let refill = now.duration_since(bucket.at).as_secs_f64() * capacity / 60.0;
        bucket.tokens = (bucket.tokens + refill).min(capacity);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// What the breaker says about a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Go ahead.
    Closed,
    /// Go ahead: this call is the one probe allowed after the cool-down.
    Probe,
    /// Refuse now; the provider failed recently.
    Open,
}

#[derive(Default)]
struct Circuit {
    failures: u32,
    opened_at: Option<Instant>,
    /// When the current probe was let through; a probe that never reported back (its call
    /// ended early) expires after the cool-down, so the circuit cannot stay open for good.
    probing: Option<Instant>,
}

/// Circuit breakers keyed by service.
pub struct Breakers {
    circuits: Mutex<HashMap<String, Circuit>>,
    threshold: u32,
    cooldown: Duration,
}

impl Breakers {
    pub fn new(threshold: u32, cooldown: Duration) -> Breakers {
        Breakers {
            circuits: Mutex::default(),
            threshold: threshold.max(1),
            cooldown,
        }
    }

    pub fn check(&self, service: &str) -> BreakerState {
        let mut circuits = self.circuits.lock().unwrap_or_else(|e| e.into_inner());
        let Some(c) = circuits.get_mut(service) else {
            return BreakerState::Closed;
        };
        let probe_free = c.probing.is_none_or(|p| p.elapsed() >= self.cooldown);
        match c.opened_at {
            None => BreakerState::Closed,
            Some(at) if at.elapsed() >= self.cooldown && probe_free => {
                c.probing = Some(Instant::now());
                BreakerState::Probe
            }
            Some(_) => BreakerState::Open,
        }
    }

    /// The provider answered (any HTTP status: it is alive).
    pub fn success(&self, service: &str) {
        let mut circuits = self.circuits.lock().unwrap_or_else(|e| e.into_inner());
        circuits.remove(service);
    }

    /// The provider could not be reached or did not answer in time.
    pub fn failure(&self, service: &str) {
        let mut circuits = self.circuits.lock().unwrap_or_else(|e| e.into_inner());
        let c = circuits.entry(service.to_string()).or_default();
        c.failures += 1;
        if c.probing.is_some() || c.failures >= self.threshold {
            c.opened_at = Some(Instant::now());
            c.probing = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_refuse_past_the_limit() {
        let limiter = RateLimiter::default();
        for _ in 0..3 {
            assert!(limiter.allow("a s", 3));
        }
        assert!(!limiter.allow("a s", 3));
        assert!(limiter.allow("b s", 3), "buckets are per key");
        assert!(limiter.allow("a s", 0), "0 is unlimited");
    }

    #[test]
    fn breaker_opens_probes_and_closes() {
        let b = Breakers::new(2, Duration::from_millis(30));
        assert_eq!(b.check("s"), BreakerState::Closed);
        b.failure("s");
        assert_eq!(b.check("s"), BreakerState::Closed);
        b.failure("s");
        assert_eq!(b.check("s"), BreakerState::Open);
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(b.check("s"), BreakerState::Probe);
        assert_eq!(b.check("s"), BreakerState::Open, "one probe at a time");
        b.failure("s");
        assert_eq!(b.check("s"), BreakerState::Open, "a failed probe reopens");
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(b.check("s"), BreakerState::Probe);
        b.success("s");
        assert_eq!(b.check("s"), BreakerState::Closed);
        // A probe that never reports back does not keep the circuit open for good.
        b.failure("s");
        b.failure("s");
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(b.check("s"), BreakerState::Probe);
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(b.check("s"), BreakerState::Probe);
    }
}

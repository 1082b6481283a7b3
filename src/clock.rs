//! The clock: the one place the product reads the time of day, and the one
//! source of the little randomness it needs (jitter, claim nonces).
//!
//! Time is an input. In Lambda it is the wall clock; in the simulator
//! (`sim/`) it is virtual time — tokio's paused clock from a fixed epoch,
//! plus a per-environment skew — so that a 15-minute takeover or a copy
//! delivered six hours late costs microseconds, and a seed replays exactly.
//!
//! The clock is handed to an invocation with [`Clock::scope`] (a task-local,
//! so that no signature carries it); code outside any scope (the `claim`
//! program, unit tests) gets the wall clock. The wall clock is read with
//! `SystemTime::now()` on every call, never derived from a monotonic
//! instant: a Lambda environment may be frozen for hours between
//! invocations, and a lock's age must be measured in real seconds.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where the time of day comes from, and the state of its random numbers.
#[derive(Debug)]
pub struct Clock {
    source: Source,
    /// splitmix64 state: jitter and nonces.
    rng: AtomicU64,
}

#[derive(Debug, Clone, Copy)]
enum Source {
    Wall,
    /// `epoch` at tokio instant `base`, shifted by `skew_millis`.
    Virtual {
        epoch: SystemTime,
        base: tokio::time::Instant,
        skew_millis: i64,
    },
}

tokio::task_local! {
    static CURRENT: Arc<Clock>;
}

impl Clock {
    /// The wall clock, with random numbers seeded from it and the process.
    pub fn wall() -> Clock {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64;
        Clock {
            source: Source::Wall,
            rng: AtomicU64::new(nanos ^ (u64::from(std::process::id()) << 32)),
        }
    }

    /// Virtual time: `epoch` now (by tokio's clock, paused in the
    /// simulator), `skew_millis` off it, random numbers from `seed`.
    pub fn virtual_at(epoch: SystemTime, skew_millis: i64, seed: u64) -> Clock {
        Clock {
            source: Source::Virtual {
                epoch,
                base: tokio::time::Instant::now(),
                skew_millis,
            },
            rng: AtomicU64::new(seed),
        }
    }

    /// Runs `work` with this clock as the one [`now`] and [`jitter`] read.
    pub async fn scope<F: Future>(self: &Arc<Self>, work: F) -> F::Output {
        CURRENT.scope(self.clone(), work).await
    }

    fn now(&self) -> SystemTime {
        match self.source {
            Source::Wall => SystemTime::now(),
            Source::Virtual {
                epoch,
                base,
                skew_millis,
            } => {
                let t = epoch + base.elapsed();
                let skew = Duration::from_millis(skew_millis.unsigned_abs());
                if skew_millis >= 0 { t + skew } else { t - skew }
            }
        }
    }

    fn next_u64(&self) -> u64 {
        let x = self
            .rng
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        let x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        let x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^ (x >> 31)
    }
}

fn with<T>(read: impl FnOnce(&Clock) -> T) -> T {
    match CURRENT.try_with(|clock| clock.clone()) {
        Ok(clock) => read(&clock),
        Err(_) => {
            static WALL: std::sync::OnceLock<Clock> = std::sync::OnceLock::new();
            read(WALL.get_or_init(Clock::wall))
        }
    }
}

/// The time of day.
pub fn now() -> SystemTime {
    with(Clock::now)
}

/// A uniformly random fraction in `[0, 1)`: full jitter for backoffs.
pub fn jitter() -> f64 {
    with(|clock| (clock.next_u64() >> 11) as f64 / (1u64 << 53) as f64)
}

/// 64 random bits: what makes a claim's value this invocation's own.
pub fn nonce() -> u64 {
    with(Clock::next_u64)
}

/// Seconds since the epoch.
pub fn epoch_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn virtual_time_follows_tokio_and_the_skew() {
        let epoch = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let clock = Arc::new(Clock::virtual_at(epoch, -1500, 7));
        let (before, after) = clock
            .scope(async {
                let before = now();
                tokio::time::sleep(Duration::from_secs(900)).await;
                (before, now())
            })
            .await;
        assert_eq!(before, epoch - Duration::from_millis(1500));
        assert_eq!(
            after.duration_since(before).unwrap(),
            Duration::from_secs(900)
        );
    }

    #[tokio::test]
    async fn seeded_randomness_replays_and_stays_in_range() {
        let draw = |seed| async move {
            let clock = Arc::new(Clock::virtual_at(UNIX_EPOCH, 0, seed));
            clock
                .scope(async { (0..100).map(|_| jitter()).collect::<Vec<_>>() })
                .await
        };
        let a = draw(1).await;
        assert_eq!(a, draw(1).await);
        assert_ne!(a, draw(2).await);
        assert!(a.iter().all(|j| (0.0..1.0).contains(j)));
    }

    #[test]
    fn outside_a_scope_it_is_the_wall_clock() {
        let wall = SystemTime::now();
        let read = now();
        assert!(read.duration_since(wall).unwrap_or_default() < Duration::from_secs(5));
    }
}

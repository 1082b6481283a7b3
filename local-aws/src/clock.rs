//! The one place local-aws reads the time.
//!
//! Every model (task lifecycles, rollouts, job timeouts, quotas, the call
//! log) asks this module, never `std::time`, so that one clock drives the
//! whole world. Normally that clock is the real one. Under a deterministic
//! simulator it is tokio's: the simulator runs the world on a
//! `current_thread` runtime with paused time, and tokio advances the clock
//! only when every task is idle, so a scripted `stepMillis`, a job timeout or
//! a token bucket's refill happen at the same virtual instant on every run.
//!
//! Two readings, one source:
//!
//! - [`instant`] is `tokio::time::Instant::now()`: virtual while the
//!   runtime's time is paused (tokio's `test-util` feature must be enabled in
//!   the build for pausing to exist), real otherwise, and usable outside a
//!   runtime (then real).
//! - [`now`] is the wall-clock time the models put on the wire
//!   (`createdAt`, `stoppedAt`, deadlines). It is `SystemTime::now()` unless
//!   this thread has a virtual epoch ([`set_virtual_epoch`]); then it is that
//!   epoch plus how far [`instant`] has moved since, so wall-clock answers
//!   follow virtual time too and do not depend on when the run happened.
//!
//! The epoch is per thread because a simulator runs one world per thread
//! (several threads may simulate at once) and a `current_thread` runtime
//! polls every task of that world on the thread that set it.

use std::cell::Cell;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

thread_local! {
    /// `(epoch, instant at which the epoch was set)`, when virtual.
    static EPOCH: Cell<Option<(SystemTime, Instant)>> = const { Cell::new(None) };
}

/// The monotonic time every model measures durations with: tokio's clock,
/// virtual under paused time.
pub fn instant() -> Instant {
    Instant::now()
}

/// The wall-clock time: real, or virtual after [`set_virtual_epoch`] on
/// this thread.
pub fn now() -> SystemTime {
    match EPOCH.get() {
        Some((epoch, at)) => virtual_now(epoch, at, instant()),
        None => SystemTime::now(),
    }
}

/// Makes [`now`] on this thread read `epoch` at this instant and move with
/// tokio's clock from then on. Call it inside the runtime, after pausing
/// time, so that the instant recorded is the virtual one.
pub fn set_virtual_epoch(epoch: SystemTime) {
    EPOCH.set(Some((epoch, instant())));
}

/// Returns [`now`] on this thread to the real wall clock.
pub fn clear_virtual_epoch() {
    EPOCH.set(None);
}

/// The virtual wall-clock time at `current`, for an epoch set at `at`.
/// Never earlier than the epoch (an instant from before it counts as the
/// epoch itself).
fn virtual_now(epoch: SystemTime, at: Instant, current: Instant) -> SystemTime {
    let since: Duration = current.saturating_duration_since(at);
    epoch.checked_add(since).unwrap_or(epoch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn virtual_time_is_the_epoch_plus_the_instants_travelled() {
        let epoch = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let at = Instant::now();
        let cases = [
            ("at the epoch", at, epoch),
            (
                "41 s later",
                at + Duration::from_secs(41),
                epoch + Duration::from_secs(41),
            ),
            ("before the epoch", at - Duration::from_millis(1), epoch),
        ];
        for (name, current, want) in cases {
            assert_eq!(virtual_now(epoch, at, current), want, "{name}");
        }
    }

    #[test]
    fn a_virtual_epoch_holds_on_its_thread_only_until_cleared() {
        let epoch = UNIX_EPOCH + Duration::from_secs(1_000);
        set_virtual_epoch(epoch);
        let virtual_now = now();
        assert!(virtual_now >= epoch && virtual_now < epoch + Duration::from_secs(60));
        let other = std::thread::spawn(now).join().expect("thread ran");
        assert!(
            other > epoch + Duration::from_secs(86_400),
            "real elsewhere"
        );
        clear_virtual_epoch();
        assert!(now() > epoch + Duration::from_secs(86_400), "real again");
    }
}

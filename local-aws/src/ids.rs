//! Identifiers that look like AWS's: job ids (UUIDs), task ids (32 hex
//! digits), X-Ray trace ids.
//!
//! By default they are unique within a process (a counter mixed by
//! splitmix64, seeded from the clock and the process id), so two control
//! planes in one test binary never hand out the same job id, and a test
//! failure names ids a person can grep for.
//!
//! A simulator wants the opposite: the same ids on every run of a schedule.
//! [`reseed`] gives the calling thread its own seed and counter, which then
//! override the process-wide ones for every id made on that thread (a
//! `current_thread` runtime makes all of a world's ids there), so the ids
//! are a function of the seed and the order of the calls alone.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static COUNTER: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// `(seed, next counter)` after [`reseed`] on this thread.
    static SEEDED: Cell<Option<(u64, u64)>> = const { Cell::new(None) };
}

/// The process-wide seed, read once from the real clock (not
/// `crate::clock`: under a simulator's virtual time every process would
/// start from the same instant, and uniqueness across processes is the
/// point of this seed).
fn process_seed() -> u64 {
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *SEED.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        nanos ^ ((std::process::id() as u64) << 32)
    })
}

/// Makes every id handed out on this thread from now on a function of
/// `seed` and the number of ids made since: the same seed, the same calls
/// in the same order, the same ids. Other threads keep their own (or the
/// process-wide) sequence. Calling it again restarts the sequence.
pub fn reseed(seed: u64) {
    SEEDED.set(Some((seed, 0)));
}

/// Returns this thread to the process-wide sequence (unique across control
/// planes again).
pub fn unseed() {
    SEEDED.set(None);
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn next_u64() -> u64 {
    let (seed, n) = match SEEDED.get() {
        Some((seed, n)) => {
            SEEDED.set(Some((seed, n.wrapping_add(1))));
            (seed, n)
        }
        None => (process_seed(), COUNTER.fetch_add(1, Ordering::Relaxed)),
    };
    splitmix64(seed.wrapping_add(n.wrapping_mul(0x2545_F491_4F6C_DD1D)))
}

/// 32 lowercase hex digits, the shape of an ECS task id.
pub fn hex32() -> String {
    format!("{:016x}{:016x}", next_u64(), next_u64())
}

/// A random-looking version-4 UUID, the shape of a CodePipeline job id.
pub fn uuid() -> String {
    uuid_from(next_u64(), next_u64())
}

/// The version-4 UUID made of the bits `a` and `b` (the simulator draws
/// its pipeline execution ids from its own generator).
pub fn uuid_from(a: u64, b: u64) -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0x0fff,
        ((b >> 48) & 0x3fff) | 0x8000,
        b & 0xffff_ffff_ffff
    )
}

/// An X-Ray trace header value as Lambda hands it to the runtime
/// (`Root=1-<epoch hex>-<24 hex>;Parent=<16 hex>;Sampled=0`).
pub fn trace_id() -> String {
    let secs = crate::clock::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let a = next_u64();
    let b = next_u64();
    format!(
        "Root=1-{secs:08x}-{:08x}{:016x};Parent={:016x};Sampled=0",
        a >> 32,
        b,
        next_u64()
    )
}

/// The `Root=` part of a trace header, which is what identifies the
/// invocation even if the SDK or runtime rewrites the other parts.
pub fn trace_root(header: &str) -> Option<&str> {
    header
        .split(';')
        .find_map(|part| part.trim().strip_prefix("Root="))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_aws_shapes_and_differ() {
        let u = uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(u.chars().filter(|c| *c == '-').count(), 4);
        assert_ne!(uuid(), uuid());
        assert_eq!(hex32().len(), 32);
        let t = trace_id();
        assert!(t.starts_with("Root=1-"));
        assert!(trace_root(&t).is_some_and(|r| r.len() == 35));
    }

    #[test]
    fn a_reseeded_thread_repeats_its_ids_and_others_do_not_follow() {
        reseed(7);
        let first = (uuid(), hex32(), trace_id());
        reseed(7);
        let again = (uuid(), hex32(), trace_id());
        assert_eq!((&first.0, &first.1), (&again.0, &again.1));
        assert_eq!(
            trace_root(&first.2).map(|r| &r[11..]),
            trace_root(&again.2).map(|r| &r[11..])
        );
        let elsewhere = std::thread::spawn(uuid).join().expect("thread ran");
        reseed(8);
        let other_seed = uuid();
        unseed();
        let unseeded = uuid();
        for id in [&elsewhere, &other_seed, &unseeded] {
            assert_ne!(id, &first.0);
        }
    }
}

//! `make sim`: explores schedules and prints what breaks.
//!
//! - `SEEDS=N` schedules (default 100,000) from `START` (default: from the
//!   clock, printed), on `THREADS` threads (default: the cores);
//! - `SEED=S` replays one schedule and prints its timeline.
//!
//! - `KNOWN=kind;kind` names violation kinds that are known and open (each
//!   with its issue in the Makefile): printed and counted, but not failed.
//!
//! The last line is `sim: N schedules, M violations, S s` (known ones not
//! counted).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env(name: &str) -> Option<u64> {
    std::env::var(name)
        .ok()?
        .trim()
        .replace('_', "")
        .parse()
        .ok()
}

fn main() {
    if let Some(seed) = env("SEED") {
        let outcome = sim::simulate(seed, true);
        print!("{}", outcome.timeline.unwrap_or_default());
        for v in &outcome.violations {
            println!("VIOLATION seed {seed}: {v}");
        }
        println!(
            "sim: 1 schedules, {} violations, seed {seed}",
            outcome.violations.len()
        );
        std::process::exit(i32::from(!outcome.violations.is_empty()));
    }
    let known: Vec<String> = std::env::var("KNOWN")
        .unwrap_or_default()
        .split(';')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_owned)
        .collect();
    let count = env("SEEDS").unwrap_or(100_000);
    let start = env("START").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() * 1000)
            .unwrap_or(0)
    });
    let threads = env("THREADS")
        .map(|n| n as usize)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    println!("sim: {count} schedules from seed {start} on {threads} threads");

    let next = Arc::new(AtomicU64::new(0));
    let violations = Arc::new(AtomicUsize::new(0));
    let delivered = Arc::new(AtomicUsize::new(0));
    let found = Arc::new(Mutex::new(Vec::<(u64, String)>::new()));
    let began = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (next, violations, found) = (next.clone(), violations.clone(), found.clone());
            let delivered = delivered.clone();
            // The handler's futures are deep: debug builds need room.
            let builder = std::thread::Builder::new().stack_size(256 << 20);
            builder
                .spawn(move || {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= count {
                            return;
                        }
                        let seed = start.wrapping_add(i);
                        let outcome = sim::simulate(seed, false);
                        delivered.fetch_add(outcome.deliveries, Ordering::Relaxed);
                        if !outcome.violations.is_empty() {
                            violations.fetch_add(outcome.violations.len(), Ordering::Relaxed);
                            let mut found = found.lock().unwrap_or_else(|p| p.into_inner());
                            for v in outcome.violations {
                                if found.len() < 200 {
                                    println!("VIOLATION seed {seed}: {v}");
                                }
                                found.push((seed, v));
                            }
                        }
                        if (i + 1) % 10_000 == 0 {
                            let secs = began.elapsed().as_secs_f64();
                            eprintln!("sim: {} schedules, {:.0}/s", i + 1, (i + 1) as f64 / secs);
                        }
                    }
                })
                .expect("a simulation thread")
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    let secs = began.elapsed().as_secs_f64();
    let found = found.lock().unwrap_or_else(|p| p.into_inner());
    let mut kinds = std::collections::BTreeMap::<&str, (usize, u64)>::new();
    for (seed, v) in found.iter() {
        let kind = v.split(':').next().unwrap_or("");
        let entry = kinds.entry(kind).or_insert((0, *seed));
        entry.0 += 1;
    }
    let mut open = 0;
    for (kind, (n, seed)) in &kinds {
        let is_known = known.iter().any(|k| k == kind);
        if !is_known {
            open += n;
        }
        let tag = if is_known { " (known, open)" } else { "" };
        println!("  {kind}: {n} (first seed {seed}){tag}");
    }
    println!(
        "sim: {:.0} schedules/s, {:.1} deliveries a schedule",
        count as f64 / secs,
        delivered.load(Ordering::Relaxed) as f64 / count.max(1) as f64
    );
    let all = violations.load(Ordering::Relaxed);
    if all > open {
        println!("sim: {} violations of known, open kinds", all - open);
    }
    println!("sim: {count} schedules, {open} violations, {secs:.1} s");
    std::process::exit(i32::from(open > 0));
}

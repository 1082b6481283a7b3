//! The readable story of one schedule: who did what, at which virtual
//! second. Kept only when a seed is replayed (`SEED=`), so that exploring
//! costs no formatting.

use std::sync::Mutex;

/// Lines of `(virtual seconds, delivery or 0 for the world, text)`.
#[derive(Debug, Default)]
pub struct Timeline {
    enabled: bool,
    origin: Option<tokio::time::Instant>,
    lines: Mutex<Vec<(f64, u64, String)>>,
}

impl Timeline {
    /// A timeline that keeps lines only when `enabled`.
    pub fn new(enabled: bool) -> Timeline {
        Timeline {
            enabled,
            origin: Some(tokio::time::Instant::now()),
            lines: Mutex::new(Vec::new()),
        }
    }

    /// Whether lines are kept.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Adds a line for delivery `who` (0: the world or the pipeline).
    pub fn note(&self, who: u64, text: String) {
        if !self.enabled {
            return;
        }
        let at = self.origin.map_or(0.0, |o| o.elapsed().as_secs_f64());
        self.lines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((at, who, text));
    }

    /// The whole story, one line per event.
    pub fn render(&self) -> String {
        let lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        for (at, who, text) in lines.iter() {
            let who = if *who == 0 {
                "world".to_owned()
            } else {
                format!("d{who}")
            };
            out.push_str(&format!("{:>10} {who:>6}  {text}\n", clock(*at)));
        }
        out
    }
}

fn clock(secs: f64) -> String {
    let s = secs as u64;
    format!(
        "{}:{:02}:{:02}.{:01}",
        s / 3600,
        s / 60 % 60,
        s % 60,
        ((secs.fract()) * 10.0) as u64
    )
}

/// Writes a line when the timeline is on, formatting only then.
#[macro_export]
macro_rules! note {
    ($timeline:expr, $who:expr, $($arg:tt)*) => {
        if $timeline.enabled() {
            $timeline.note($who, format!($($arg)*));
        }
    };
}

//! Progress on stderr: a live bar on a terminal; elsewhere (a Slurm log, a
//! pipe) a plain line every few seconds with done/total, rate and ETA, no
//! colour or cursor codes. `SPECTRAIN_PROGRESS_SECONDS` sets the interval of
//! the plain lines (default 5).

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress report for `len` units of work.
pub struct Progress {
    bar: Option<ProgressBar>,
    lines: Option<Lines>,
}

struct Lines {
    what: String,
    len: u64,
    done: AtomicU64,
    start: Instant,
    last: Mutex<Instant>,
    message: Mutex<String>,
    every: Duration,
}

impl Lines {
    fn line(&self, done: u64) -> String {
        let secs = self.start.elapsed().as_secs_f64().max(1e-9);
        let rate = done as f64 / secs;
        let eta = if rate > 0.0 && self.len >= done {
            format!("{:.0} s", (self.len - done) as f64 / rate)
        } else {
            "?".into()
        };
        let pct = 100.0 * done as f64 / self.len.max(1) as f64;
        let msg = self.message.lock().map(|m| m.clone()).unwrap_or_default();
        let mut s = format!(
            "{}: {done}/{} ({pct:.1}%), {rate:.1}/s, ETA {eta}",
            self.what, self.len
        );
        if !msg.is_empty() {
            s.push_str(", ");
            s.push_str(&msg);
        }
        s
    }

    fn maybe_print(&self, done: u64) {
        let Ok(mut last) = self.last.try_lock() else {
            return;
        };
        if last.elapsed() >= self.every {
            *last = Instant::now();
            eprintln!("{}", self.line(done));
        }
    }
}

/// A progress report: a bar when `visible` and stderr is a terminal, plain
/// lines when `visible` and it is not, nothing otherwise.
pub fn bar(len: u64, what: &str, visible: bool) -> Progress {
    if !visible {
        return Progress {
            bar: None,
            lines: None,
        };
    }
    if std::io::stderr().is_terminal() {
        let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>8} [{bar:40}] {pos}/{len} {per_sec} eta {eta} {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(what.to_string());
        return Progress {
            bar: Some(bar),
            lines: None,
        };
    }
    let every = std::env::var("SPECTRAIN_PROGRESS_SECONDS")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map_or(Duration::from_secs(5), Duration::from_secs_f64);
    let now = Instant::now();
    Progress {
        bar: None,
        lines: Some(Lines {
            what: what.to_string(),
            len,
            done: AtomicU64::new(0),
            start: now,
            last: Mutex::new(now),
            message: Mutex::new(String::new()),
            every,
        }),
    }
}

impl Progress {
    pub fn inc(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
        }
        if let Some(l) = &self.lines {
            let done = l.done.fetch_add(n, Ordering::Relaxed) + n;
            l.maybe_print(done);
        }
    }

    pub fn set_message(&self, msg: String) {
        if let Some(b) = &self.bar {
            b.set_message(msg);
        } else if let Some(l) = &self.lines {
            if let Ok(mut m) = l.message.lock() {
                *m = msg;
            }
        }
    }

    /// Ends the report: the bar is cleared; plain lines end with a last one.
    pub fn finish_and_clear(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
        if let Some(l) = &self.lines {
            let done = l.done.load(Ordering::Relaxed);
            let secs = l.start.elapsed().as_secs_f64();
            eprintln!(
                "{}: {done}/{} ({:.1}%), {:.1}/s, done in {secs:.1} s",
                l.what,
                l.len,
                100.0 * done as f64 / l.len.max(1) as f64,
                done as f64 / secs.max(1e-9)
            );
        }
    }
}

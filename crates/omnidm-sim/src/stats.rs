//! Statistics: per-worker counters and a latency histogram, merged into a [`Summary`] that
//! prints as a table or serialises to JSON.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::device::SessionReport;
use crate::fleet::Inner;

/// Counters of one worker (merged at the end, so no lock is taken per session).
#[derive(Debug, Clone)]
pub struct Stats {
    /// Sessions (trivial mode: requests) finished.
    sessions: u64,
    /// Of which completed normally.
    succeeded: u64,
    /// Started by package 0.
    server_initiated: u64,
    /// Failures by [`crate::Outcome::key`], with one example message each.
    failures: BTreeMap<String, (u64, String)>,
    /// HTTP requests.
    messages: u64,
    /// Request bytes.
    bytes_sent: u64,
    /// Response bytes.
    bytes_received: u64,
    /// Commands the devices executed.
    commands_executed: u64,
    /// Session latencies in microseconds, one per session. Raw samples rather than a
    /// histogram per worker: a fleet has one worker per device, and zeroing a histogram for
    /// each was a quarter of the load generator's CPU. Percentiles are exact, from a sort.
    latency: Vec<u64>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats::new()
    }
}

impl Stats {
    /// Empty statistics.
    pub fn new() -> Stats {
        Stats {
            sessions: 0,
            succeeded: 0,
            server_initiated: 0,
            failures: BTreeMap::new(),
            messages: 0,
            bytes_sent: 0,
            bytes_received: 0,
            commands_executed: 0,
            latency: Vec::new(),
        }
    }

    /// Adds one session.
    pub fn record(&mut self, r: &SessionReport) {
        self.sessions += 1;
        if r.outcome.is_success() {
            self.succeeded += 1;
        } else {
            let e = self
                .failures
                .entry(r.outcome.key())
                .or_insert_with(|| (0, r.outcome.to_string()));
            e.0 += 1;
        }
        if r.server_initiated {
            self.server_initiated += 1;
        }
        self.messages += u64::from(r.messages);
        self.bytes_sent += r.bytes_sent;
        self.bytes_received += r.bytes_received;
        self.commands_executed += u64::from(r.commands_executed);
        self.latency
            .push(u64::try_from(r.latency.as_micros()).unwrap_or(u64::MAX));
    }

    /// Adds another worker's statistics.
    pub fn merge(&mut self, o: &Stats) {
        self.sessions += o.sessions;
        self.succeeded += o.succeeded;
        self.server_initiated += o.server_initiated;
        for (k, (n, ex)) in &o.failures {
            let e = self
                .failures
                .entry(k.clone())
                .or_insert_with(|| (0, ex.clone()));
            e.0 += n;
        }
        self.messages += o.messages;
        self.bytes_sent += o.bytes_sent;
        self.bytes_received += o.bytes_received;
        self.commands_executed += o.commands_executed;
        self.latency.extend_from_slice(&o.latency);
    }

    /// The summary of everything recorded.
    pub fn summary(
        &self,
        mode: &'static str,
        target: String,
        devices: usize,
        concurrency: usize,
        elapsed: Duration,
    ) -> Summary {
        let secs = elapsed.as_secs_f64();
        let ms = |us: u64| us as f64 / 1000.0;
        let mut sorted = self.latency.clone();
        sorted.sort_unstable();
        // Nearest-rank percentile.
        let at = |q: f64| {
            let rank = (q * sorted.len() as f64).ceil() as usize;
            sorted.get(rank.saturating_sub(1)).copied().unwrap_or(0)
        };
        let latency_ms = if sorted.is_empty() {
            Latency::default()
        } else {
            Latency {
                p50: ms(at(0.50)),
                p90: ms(at(0.90)),
                p99: ms(at(0.99)),
                max: ms(sorted.last().copied().unwrap_or(0)),
                mean: sorted.iter().map(|&v| v as f64).sum::<f64>() / sorted.len() as f64 / 1000.0,
            }
        };
        Summary {
            mode,
            target,
            devices,
            concurrency,
            sessions: self.sessions,
            succeeded: self.succeeded,
            failed: self.sessions - self.succeeded,
            failures: self
                .failures
                .iter()
                .map(|(k, (n, ex))| Failure {
                    reason: k.clone(),
                    count: *n,
                    example: ex.clone(),
                })
                .collect(),
            server_initiated: self.server_initiated,
            messages: self.messages,
            bytes_sent: self.bytes_sent,
            bytes_received: self.bytes_received,
            commands_executed: self.commands_executed,
            elapsed_secs: secs,
            per_sec: if secs > 0.0 {
                self.sessions as f64 / secs
            } else {
                0.0
            },
            latency_ms,
            push: None,
        }
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

/// Failures of one kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    /// [`crate::Outcome::key`], e.g. `http_500`, `connect`, `client_auth_failed_401`.
    pub reason: String,
    /// How many.
    pub count: u64,
    /// The first such failure, in words.
    pub example: String,
}

/// Package 0 counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PushSummary {
    /// POSTs received on the push listener.
    pub received: u64,
    /// Verified and turned into sessions.
    pub accepted: u64,
    /// Refused (unknown device, bad digest, undecodable).
    pub rejected: u64,
}

/// The result of a run: printed as a table ([`fmt::Display`]) or as JSON (`serde`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// `sessions` (OMA DM sessions) or `trivial` (one GET per "session").
    pub mode: &'static str,
    /// The server URI (or the trivial URL).
    pub target: String,
    /// Devices (trivial mode: workers).
    pub devices: usize,
    /// Sessions in flight at most.
    pub concurrency: usize,
    /// Sessions (trivial: requests) finished.
    pub sessions: u64,
    /// Completed normally (trivial: 2xx).
    pub succeeded: u64,
    /// Everything else.
    pub failed: u64,
    /// Failures by reason.
    pub failures: Vec<Failure>,
    /// Sessions started by package 0.
    pub server_initiated: u64,
    /// HTTP requests.
    pub messages: u64,
    /// Request body bytes.
    pub bytes_sent: u64,
    /// Response body bytes.
    pub bytes_received: u64,
    /// Server commands executed by the devices.
    pub commands_executed: u64,
    /// Wall time of the run.
    pub elapsed_secs: f64,
    /// Sessions (trivial: requests) per second.
    pub per_sec: f64,
    /// Session (trivial: request) latency.
    pub latency_ms: Latency,
    /// Package 0 counters, when the push listener ran.
    pub push: Option<PushSummary>,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (unit, units) = if self.mode == "trivial" {
            ("request", "requests")
        } else {
            ("session", "sessions")
        };
        let row = |f: &mut fmt::Formatter<'_>, k: &str, v: String| writeln!(f, "  {k:<18} {v}");
        writeln!(f, "omnidm sim — {} against {}", self.mode, self.target)?;
        row(
            f,
            if self.mode == "trivial" {
                "workers"
            } else {
                "devices"
            },
            format!("{} (concurrency {})", self.devices, self.concurrency),
        )?;
        row(
            f,
            units,
            format!(
                "{} in {:.2} s  ({:.1} {units}/s)",
                self.sessions, self.elapsed_secs, self.per_sec
            ),
        )?;
        row(f, "succeeded", self.succeeded.to_string())?;
        row(f, "failed", self.failed.to_string())?;
        for fl in &self.failures {
            row(
                f,
                &format!("  {}", fl.reason),
                format!("{}  (e.g. {})", fl.count, fl.example),
            )?;
        }
        if self.mode != "trivial" {
            row(f, "server-initiated", self.server_initiated.to_string())?;
            row(
                f,
                "messages",
                format!(
                    "{}  ({:.1} per {unit})",
                    self.messages,
                    if self.sessions > 0 {
                        self.messages as f64 / self.sessions as f64
                    } else {
                        0.0
                    }
                ),
            )?;
            row(f, "commands", self.commands_executed.to_string())?;
        }
        row(
            f,
            "bytes",
            format!("{} sent, {} received", self.bytes_sent, self.bytes_received),
        )?;
        let l = &self.latency_ms;
        row(
            f,
            "latency (ms)",
            format!(
                "p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}  mean {:.2}",
                l.p50, l.p90, l.p99, l.max, l.mean
            ),
        )?;
        if let Some(p) = &self.push {
            row(
                f,
                "package 0",
                format!(
                    "{} received, {} accepted, {} rejected",
                    p.received, p.accepted, p.rejected
                ),
            )?;
        }
        Ok(())
    }
}

/// A progress bar on stderr fed from the fleet's live counters every 100 ms. Hidden when
/// stderr is not a terminal.
pub(crate) fn progress_bar(
    total: Option<u64>,
    duration: Option<Duration>,
    inner: Arc<Inner>,
) -> indicatif::ProgressBar {
    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
    let bar = match total {
        Some(t) => ProgressBar::with_draw_target(Some(t), ProgressDrawTarget::stderr()),
        None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
    };
    let template = match (total, duration) {
        (Some(_), _) => "{elapsed_precise} [{bar:40}] {pos}/{len} sessions {msg}",
        (None, Some(_)) => "{spinner} {elapsed_precise} {pos} sessions {msg}",
        (None, None) => "{spinner} {elapsed_precise} {pos} sessions {msg}",
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    let b = bar.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let started = std::time::Instant::now();
        let mut last = (0u64, started);
        loop {
            tick.tick().await;
            if b.is_finished() {
                break;
            }
            let (done, failed) = inner.progress_counts();
            let now = std::time::Instant::now();
            let dt = now.duration_since(last.1).as_secs_f64();
            if dt >= 1.0 {
                let rate = (done - last.0) as f64 / dt;
                last = (done, now);
                b.set_message(format!("{failed} failed, {rate:.0}/s"));
            } else if last.0 == 0 && done > 0 {
                b.set_message(format!("{failed} failed"));
            }
            b.set_position(done);
        }
    });
    bar
}

//! Device authentication failures, aggregated per device (issue 8 item 17).
//!
//! Anyone can send a known device id with wrong credentials. Writing one `auth.failure`
//! event per attempt let an outsider fill the event log (and every subscriber's webhook) at
//! will. Here the first failure of a device writes an event at once; the failures that follow
//! within the window ([`WINDOW`] by default, `[dm] auth_failure_window_secs`) are only counted,
//! and the count goes out in one event when the window has passed (from the sweep). So a device costs at most one event per window, however many
//! attempts, and no failure goes uncounted.
//!
//! Per node, in memory: with N nodes a device can get up to N events per window (the counts
//! still add up). Memory is one small entry per device that failed within the last window;
//! unknown devices never get one (they have no events).

use omnidm_core::{DeviceId, EventKind, NewEvent, Timestamp};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Default window: at most one `auth.failure` event per device per minute (per node).
pub const WINDOW: Duration = Duration::from_secs(60);

/// What is known of one device's recent failures.
#[derive(Debug)]
struct Tally {
    /// When this device's last event was written.
    last_event: Instant,
    /// Failures since then, not yet reported.
    pending: u64,
    /// The status of the last failure (401 or 407).
    status: u16,
}

/// The per-device tallies.
#[derive(Debug)]
pub struct AuthFailures {
    window: Duration,
    tallies: Mutex<HashMap<DeviceId, Tally>>,
}

impl AuthFailures {
    /// Aggregates over `window`.
    pub fn new(window: Duration) -> Self {
        AuthFailures {
            window,
            tallies: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one failure of `device`; returns the event to write now, if the device had no
    /// event within the window (its count includes failures not yet reported).
    pub fn record(
        &self,
        device: &DeviceId,
        status: u16,
        now: Instant,
        stamp: Timestamp,
    ) -> Option<NewEvent> {
        let Ok(mut tallies) = self.tallies.lock() else {
            return None;
        };
        match tallies.get_mut(device) {
            Some(t) if now.duration_since(t.last_event) < self.window => {
                t.pending += 1;
                t.status = status;
                None
            }
            Some(t) => {
                let count = t.pending + 1;
                t.pending = 0;
                t.last_event = now;
                t.status = status;
                Some(event(device, count, status, self.window, stamp))
            }
            None => {
                tallies.insert(
                    device.clone(),
                    Tally {
                        last_event: now,
                        pending: 0,
                        status,
                    },
                );
                Some(event(device, 1, status, self.window, stamp))
            }
        }
    }

    /// Counts one failure of `device` without an event now: the next [`AuthFailures::due`]
    /// reports it (at once if the device had no event within the window). For callers that
    /// cannot write an event where they are (a session dropped from a synchronous path).
    pub fn count_later(&self, device: &DeviceId, status: u16, now: Instant) {
        let Ok(mut tallies) = self.tallies.lock() else {
            return;
        };
        let t = tallies.entry(device.clone()).or_insert_with(|| Tally {
            // No event yet: due at the next sweep.
            last_event: now.checked_sub(self.window).unwrap_or(now),
            pending: 0,
            status,
        });
        t.pending += 1;
        t.status = status;
    }

    /// Events for the devices whose window has passed with failures still unreported; devices
    /// quiet for a whole window are forgotten.
    pub fn due(&self, now: Instant, stamp: Timestamp) -> Vec<NewEvent> {
        let Ok(mut tallies) = self.tallies.lock() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        tallies.retain(|device, t| {
            if now.duration_since(t.last_event) < self.window {
                return true;
            }
            if t.pending == 0 {
                return false;
            }
            out.push(event(device, t.pending, t.status, self.window, stamp));
            t.pending = 0;
            t.last_event = now;
            true
        });
        out
    }
}

/// `auth.failure` with how many attempts failed since the device's previous event.
fn event(device: &DeviceId, count: u64, status: u16, window: Duration, at: Timestamp) -> NewEvent {
    NewEvent::device(
        EventKind::AuthFailure,
        at,
        device,
        serde_json::json!({
            "status": status,
            "count": count,
            "window_seconds": window.as_secs(),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_event_per_window_with_the_count_of_the_rest() {
        let f = AuthFailures::new(Duration::from_secs(60));
        let d = DeviceId::new("IMEI:1").unwrap();
        let t0 = Instant::now();
        let first = f.record(&d, 401, t0, Timestamp(1));
        assert_eq!(first.map(|e| e.data["count"].clone()), Some(1.into()));
        for i in 1..200 {
            assert!(
                f.record(&d, 401, t0 + Duration::from_millis(i), Timestamp(2))
                    .is_none()
            );
        }
        assert!(f.due(t0 + Duration::from_secs(30), Timestamp(3)).is_empty());
        let due = f.due(t0 + Duration::from_secs(61), Timestamp(4));
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].data["count"], 199);
        assert!(
            f.due(t0 + Duration::from_secs(200), Timestamp(5))
                .is_empty()
        );
        // Forgotten after a quiet window: the next failure is reported at once.
        assert!(
            f.record(&d, 407, t0 + Duration::from_secs(201), Timestamp(6))
                .is_some()
        );
    }
}

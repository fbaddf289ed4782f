//! Webhook subscriptions: an application asks for events to be POSTed to its URL, signed
//! with HMAC-SHA256. Delivery is per subscription, in event order, from a durable cursor,
//! with exponential backoff and automatic disabling after persistent failure.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::access::GroupId;
use crate::app::AppId;
use crate::device::DeviceId;
use crate::event::{EventId, EventKind};
use crate::time::Timestamp;

/// Subscription identifier, assigned by the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SubscriptionId(pub u64);

impl fmt::Display for SubscriptionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What the caller supplies to subscribe.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewSubscription {
    /// Owner.
    pub app_id: AppId,
    /// Where deliveries go (`http://` or `https://`).
    pub url: String,
    /// Signing secret. Kept in the store because every delivery is signed with it; it is
    /// shown to the application once, at creation, and never returned again.
    pub secret: String,
    /// Only these kinds (empty = all the application may see).
    pub event_types: Vec<EventKind>,
    /// Only these devices (empty = all).
    pub devices: Vec<DeviceId>,
    /// Only devices in this group.
    pub group: Option<GroupId>,
    /// Deliveries start after this event (the newest event at creation).
    pub cursor: EventId,
}

impl fmt::Debug for NewSubscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewSubscription")
            .field("app_id", &self.app_id)
            .field("url", &self.url)
            .field("secret", &"<redacted>")
            .field("event_types", &self.event_types)
            .field("devices", &self.devices)
            .field("group", &self.group)
            .field("cursor", &self.cursor)
            .finish()
    }
}

/// A stored subscription with its delivery state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    /// Identity.
    pub id: SubscriptionId,
    /// What was asked for.
    #[serde(flatten)]
    pub spec: NewSubscription,
    /// Deliveries are attempted (false after persistent failure or by request).
    pub enabled: bool,
    /// Why it was disabled.
    pub disabled_reason: Option<String>,
    /// Consecutive failed attempts for the event at the cursor.
    pub failures: u32,
    /// Do not attempt before this time (backoff).
    pub next_attempt_at: Timestamp,
    /// Creation time.
    pub created_at: Timestamp,
}

/// One delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// The subscription.
    pub subscription_id: SubscriptionId,
    /// The event delivered.
    pub event_id: EventId,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// When.
    pub at: Timestamp,
    /// HTTP status received, if any.
    pub status: Option<u16>,
    /// Transport error or non-2xx summary.
    pub error: Option<String>,
    /// Round trip in milliseconds.
    pub duration_ms: u64,
}

impl Delivery {
    /// A 2xx answer.
    pub fn succeeded(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// After a delivery attempt: where the subscription stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryProgress {
    /// New cursor (advanced past delivered or filtered-out events).
    pub cursor: EventId,
    /// Consecutive failures.
    pub failures: u32,
    /// Backoff.
    pub next_attempt_at: Timestamp,
    /// `Some(reason)` disables the subscription.
    pub disable: Option<String>,
}

/// Backoff after `failures` consecutive failures: `base_ms`, twice that, four times, …
/// capped at 1 h (with the default base of 1 s: 1 s, 2 s, 4 s, …).
pub fn backoff_millis(base_ms: i64, failures: u32) -> i64 {
    let exp = failures.saturating_sub(1).min(24);
    base_ms.max(1).saturating_mul(1_i64 << exp).min(3_600_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(backoff_millis(1000, 1), 1000);
        assert_eq!(backoff_millis(1000, 2), 2000);
        assert_eq!(backoff_millis(1000, 5), 16_000);
        assert_eq!(backoff_millis(1000, 40), 3_600_000);
        assert_eq!(backoff_millis(10, 3), 40);
    }
}

//! The durable event log and the charging records derived from it.
//!
//! Events are appended by the store in the same transaction as the change they describe
//! (a session outcome, a submission, a cancellation), so an event is never reported for a
//! change that was rolled back and never lost for one that was committed. Ids increase in
//! commit order: they are the cursor of `GET /events?after=` and of SSE `Last-Event-ID`.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::app::AppId;
use crate::device::DeviceId;
use crate::job::JobId;
use crate::operation::OperationId;
use crate::path::NodePath;
use crate::time::Timestamp;

/// Event identifier: increasing in commit order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(pub u64);

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

macro_rules! event_kinds {
    ($($variant:ident = $name:literal: $doc:literal,)*) => {
        /// What happened. The names are the stable `type` of the event in the API.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum EventKind {
            $(#[doc = $doc] #[serde(rename = $name)] $variant,)*
        }

        impl EventKind {
            /// Every kind.
            pub const ALL: &'static [EventKind] = &[$(EventKind::$variant,)*];

            /// Stable name (`device.registered`, …).
            pub fn as_str(self) -> &'static str {
                match self { $(EventKind::$variant => $name,)* }
            }

            /// Inverse of [`as_str`](Self::as_str).
            pub fn parse(s: &str) -> Option<EventKind> {
                match s { $($name => Some(EventKind::$variant),)* _ => None }
            }
        }
    };
}

event_kinds! {
    DeviceRegistered = "device.registered": "A device was provisioned or enrolled.",
    DeviceSeen = "device.seen": "A device called in (its info may have changed).",
    DeviceDeleted = "device.deleted": "A device was removed from the registry.",
    SessionStarted = "session.started": "A management session began (written with its end, `at` is the start).",
    SessionEnded = "session.ended": "A management session ended.",
    OperationSubmitted = "operation.submitted": "An application submitted an operation (a job).",
    OperationStateChanged = "operation.state_changed": "A device operation changed state.",
    CommandResult = "command.result": "A device answered one command (status, results, user answer).",
    GenericAlert = "generic_alert.received": "A device sent a generic alert (e.g. OMA DM 1226).",
    AuthFailure = "auth.failure": "A device failed to authenticate.",
    NotificationSent = "notification.sent": "The server asked a device to call in (package 0).",
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event to append.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewEvent {
    /// What happened.
    pub kind: EventKind,
    /// When it happened.
    pub at: Timestamp,
    /// The device concerned.
    pub device_id: Option<DeviceId>,
    /// The application that submitted the operation concerned (operation and command
    /// events), for visibility and charging.
    pub app_id: Option<AppId>,
    /// The job concerned.
    pub job_id: Option<JobId>,
    /// The device operation concerned.
    pub operation_id: Option<OperationId>,
    /// The tree node concerned (command results, generic alert source), for visibility.
    pub path: Option<NodePath>,
    /// Kind-specific details (state, status code, results, alert data, …).
    pub data: serde_json::Value,
}

impl NewEvent {
    /// An event about `device` with `data` and nothing else set.
    pub fn device(
        kind: EventKind,
        at: Timestamp,
        device: &DeviceId,
        data: serde_json::Value,
    ) -> NewEvent {
        NewEvent {
            kind,
            at,
            device_id: Some(device.clone()),
            app_id: None,
            job_id: None,
            operation_id: None,
            path: None,
            data,
        }
    }
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Cursor.
    pub id: EventId,
    /// The event.
    #[serde(flatten)]
    pub event: NewEvent,
}

/// Which events a listing returns (all set fields must match).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only these kinds (empty = all).
    pub kinds: Vec<EventKind>,
    /// Only this device.
    pub device_id: Option<DeviceId>,
    /// Only this job.
    pub job_id: Option<JobId>,
}

macro_rules! charge_kinds {
    ($($variant:ident = $name:literal ($unit:literal): $doc:literal,)*) => {
        /// The catalogue of chargeable events (docs/wsi.md lists it for integrators).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum ChargeKind {
            $(#[doc = $doc] #[serde(rename = $name)] $variant,)*
        }

        impl ChargeKind {
            /// Every kind.
            pub const ALL: &'static [ChargeKind] = &[$(ChargeKind::$variant,)*];

            /// Stable name.
            pub fn as_str(self) -> &'static str {
                match self { $(ChargeKind::$variant => $name,)* }
            }

            /// Unit of the quantity.
            pub fn unit(self) -> &'static str {
                match self { $(ChargeKind::$variant => $unit,)* }
            }

            /// What it records.
            pub fn description(self) -> &'static str {
                match self { $(ChargeKind::$variant => $doc,)* }
            }

            /// Inverse of [`as_str`](Self::as_str).
            pub fn parse(s: &str) -> Option<ChargeKind> {
                match s { $($name => Some(ChargeKind::$variant),)* _ => None }
            }
        }
    };
}

charge_kinds! {
    OperationSubmitted = "operation.submitted" ("device"): "An operation accepted for a target; quantity = devices it fanned out to.",
    CommandExecuted = "command.executed" ("command"): "A device executed (answered) one top-level command of the application's operation.",
    NotificationSent = "notification.sent" ("notification"): "A package 0 sent to a device for the application's operation.",
    BytesDelivered = "bytes.delivered" ("byte"): "Payload bytes (Replace/Add values, Exec data) delivered to a device and accepted.",
}

/// A charging record to append.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewCharge {
    /// When.
    pub at: Timestamp,
    /// Who is charged.
    pub app_id: AppId,
    /// What.
    pub kind: ChargeKind,
    /// How much, in the kind's unit.
    pub quantity: u64,
    /// The device concerned.
    pub device_id: Option<DeviceId>,
    /// The job concerned.
    pub job_id: Option<JobId>,
    /// The device operation concerned.
    pub operation_id: Option<OperationId>,
}

/// A stored charging record (a CDR).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargeRecord {
    /// Sequence number (cursor).
    pub id: u64,
    /// The record.
    #[serde(flatten)]
    pub charge: NewCharge,
}

/// Which charging records a listing returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChargeFilter {
    /// At or after.
    pub from: Option<Timestamp>,
    /// Before.
    pub to: Option<Timestamp>,
    /// Only this application.
    pub app_id: Option<AppId>,
}

/// Total quantity of one kind for one application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargeTotal {
    /// Who.
    pub app_id: AppId,
    /// What.
    pub kind: ChargeKind,
    /// Sum of quantities.
    pub quantity: u64,
    /// Number of records.
    pub records: u64,
}

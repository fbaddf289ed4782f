//! Jobs: what the Web Services Interface calls an *operation* — one command list submitted
//! by an application for a target (a device, a list of devices or a group), fanned out into
//! one [`Operation`](crate::Operation) per device when it is accepted.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::access::GroupId;
use crate::app::AppId;
use crate::device::DeviceId;
use crate::operation::{OpCommand, OpState};
use crate::time::Timestamp;

/// Job identifier, assigned by the store in submission order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(pub u64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The devices a job was submitted for, as the application said it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobTarget {
    /// One device.
    Device(DeviceId),
    /// An explicit list.
    Devices(Vec<DeviceId>),
    /// The members of a group at submission time.
    Group(GroupId),
}

/// A submitted job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// Identity.
    pub id: JobId,
    /// The submitting application.
    pub app_id: AppId,
    /// What it was submitted for.
    pub target: JobTarget,
    /// The commands each device runs.
    pub commands: Vec<OpCommand>,
    /// Submission time.
    pub created_at: Timestamp,
    /// Queued device operations expire at this time.
    pub expires_at: Option<Timestamp>,
    /// A package 0 / connection request was asked for.
    pub notify: bool,
    /// How many device operations the fan-out created.
    pub device_count: u64,
}

/// What the caller supplies to submit a job (the device list is resolved by the caller).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewJob {
    /// The submitting application.
    pub app_id: AppId,
    /// As the application said it.
    pub target: JobTarget,
    /// The commands.
    pub commands: Vec<OpCommand>,
    /// Expiry of the device operations.
    pub expires_at: Option<Timestamp>,
    /// Notify the devices now.
    pub notify: bool,
}

/// Device operations of a job per state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobCounts {
    /// Waiting for a session.
    pub queued: u64,
    /// In a session now.
    pub in_session: u64,
    /// Done, all commands succeeded.
    pub succeeded: u64,
    /// Done, some command failed.
    pub failed: u64,
    /// Expired before a session.
    pub expired: u64,
    /// Cancelled while queued (or while awaiting a report).
    pub cancelled: u64,
    /// Answered, with an accepted Exec waiting for its asynchronous report.
    #[serde(default)]
    pub awaiting_report: u64,
}

impl JobCounts {
    /// Adds `n` operations in `state`.
    pub fn add(&mut self, state: OpState, n: u64) {
        let slot = match state {
            OpState::Queued => &mut self.queued,
            OpState::InSession => &mut self.in_session,
            OpState::Succeeded => &mut self.succeeded,
            OpState::Failed => &mut self.failed,
            OpState::Expired => &mut self.expired,
            OpState::Cancelled => &mut self.cancelled,
            OpState::AwaitingReport => &mut self.awaiting_report,
        };
        *slot += n;
    }

    /// All device operations.
    pub fn total(&self) -> u64 {
        self.queued
            + self.in_session
            + self.awaiting_report
            + self.succeeded
            + self.failed
            + self.expired
            + self.cancelled
    }

    /// Every device operation reached a terminal state.
    pub fn is_done(&self) -> bool {
        self.queued == 0 && self.in_session == 0 && self.awaiting_report == 0
    }
}

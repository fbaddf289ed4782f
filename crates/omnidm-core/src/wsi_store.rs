//! The storage interface of the Web Services Interface: applications, keys, grants, groups,
//! jobs, the event log, webhooks, charging, audit and idempotency records. Implemented by
//! `omnidm-store` beside [`Store`]; every method is one transaction.

use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::access::{Grant, GrantId, Group, GroupId, NewGrant};
use crate::app::{ApiKey, AppId, Application, KeyId};
use crate::audit::{AuditEntry, AuditFilter, NewAudit};
use crate::device::DeviceId;
use crate::error::StoreError;
use crate::event::{
    ChargeFilter, ChargeRecord, ChargeTotal, Event, EventFilter, EventId, NewCharge, NewEvent,
};
use crate::job::{Job, JobCounts, JobId, NewJob};
use crate::operation::{OpState, Operation};
use crate::store::Store;
use crate::time::Timestamp;
use crate::webhook::{Delivery, DeliveryProgress, NewSubscription, Subscription, SubscriptionId};

/// A stored response to a POST carrying an `Idempotency-Key`: replayed verbatim when the
/// same application repeats the same key with the same body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotentResponse {
    /// SHA-256 (hex) of the request method, path and body: a different request under the same
    /// key is refused.
    pub request_hash: String,
    /// Response status.
    pub status: u16,
    /// Response `Location`, if any.
    pub location: Option<String>,
    /// Response body (JSON).
    pub body: String,
    /// When first answered (records expire after 24 h).
    pub created_at: Timestamp,
}

/// Persistent state of the Web Services Interface.
pub trait WsiStore: Store {
    // --- applications and keys -------------------------------------------------------------

    /// Creates an application. [`StoreError::Conflict`] if the id exists or existed (ids of
    /// deleted applications are never reused).
    fn create_app(&self, app: &Application) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The application, if it exists.
    fn get_app(
        &self,
        id: &AppId,
    ) -> impl Future<Output = Result<Option<Application>, StoreError>> + Send;
    /// Every application, by id.
    fn list_apps(&self) -> impl Future<Output = Result<Vec<Application>, StoreError>> + Send;
    /// Replaces an application's mutable fields. [`StoreError::NotFound`] if absent.
    fn update_app(&self, app: &Application) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Deletes an application with its keys, grants and subscriptions (its records in the
    /// event, charging and audit logs stay) and leaves a tombstone: its id is never given to
    /// another application ([`create_app`](Self::create_app) answers
    /// [`StoreError::Conflict`]). False if absent.
    fn delete_app(
        &self,
        id: &AppId,
        now: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// True when no application exists (first start).
    fn has_apps(&self) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Stores a new key. [`StoreError::NotFound`] if the application is absent.
    fn create_key(&self, key: &ApiKey) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The key, if it exists (revoked and expired keys included).
    fn get_key(
        &self,
        id: &KeyId,
    ) -> impl Future<Output = Result<Option<ApiKey>, StoreError>> + Send;
    /// An application's keys, newest first.
    fn list_keys(
        &self,
        app: &AppId,
    ) -> impl Future<Output = Result<Vec<ApiKey>, StoreError>> + Send;
    /// Revokes a key at `now` (idempotent). [`StoreError::NotFound`] if absent.
    fn revoke_key(
        &self,
        id: &KeyId,
        now: Timestamp,
    ) -> impl Future<Output = Result<ApiKey, StoreError>> + Send;

    // --- groups ----------------------------------------------------------------------------

    /// Creates a group. [`StoreError::Conflict`] if the id exists.
    fn create_group(&self, group: &Group) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The group, if it exists.
    fn get_group(
        &self,
        id: &GroupId,
    ) -> impl Future<Output = Result<Option<Group>, StoreError>> + Send;
    /// Every group, by id.
    fn list_groups(&self) -> impl Future<Output = Result<Vec<Group>, StoreError>> + Send;
    /// Replaces a group's description and kind. [`StoreError::NotFound`] if absent.
    fn update_group(&self, group: &Group) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Deletes a group, its members and the grants on it. False if absent.
    fn delete_group(&self, id: &GroupId) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Adds devices to a static group (already-members ignored). [`StoreError::NotFound`] if
    /// the group or a device is absent.
    fn add_group_members(
        &self,
        id: &GroupId,
        devices: &[DeviceId],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Removes devices from a static group; returns how many were members.
    fn remove_group_members(
        &self,
        id: &GroupId,
        devices: &[DeviceId],
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// Members of a static group in id order after `after`, `limit` at most (0 = 100).
    fn list_group_members(
        &self,
        id: &GroupId,
        after: Option<&DeviceId>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<DeviceId>, StoreError>> + Send;
    /// Is `device` a member of the static group `id`?
    fn is_group_member(
        &self,
        id: &GroupId,
        device: &DeviceId,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Static groups (among `groups`) that `device` belongs to.
    fn static_groups_of(
        &self,
        device: &DeviceId,
    ) -> impl Future<Output = Result<Vec<GroupId>, StoreError>> + Send;

    // --- grants ----------------------------------------------------------------------------

    /// Creates a grant. [`StoreError::NotFound`] if the application or group is absent.
    fn create_grant(
        &self,
        grant: &NewGrant,
        now: Timestamp,
    ) -> impl Future<Output = Result<Grant, StoreError>> + Send;
    /// Grants of one application, or all, by id.
    fn list_grants(
        &self,
        app: Option<&AppId>,
    ) -> impl Future<Output = Result<Vec<Grant>, StoreError>> + Send;
    /// The grant, if it exists.
    fn get_grant(
        &self,
        id: GrantId,
    ) -> impl Future<Output = Result<Option<Grant>, StoreError>> + Send;
    /// Deletes a grant. False if absent.
    fn delete_grant(&self, id: GrantId) -> impl Future<Output = Result<bool, StoreError>> + Send;

    // --- jobs (API operations) -------------------------------------------------------------

    /// Records a job and queues one operation per device in `devices` (one transaction, with
    /// the `operation.submitted` event and charge). [`StoreError::NotFound`] if a device is
    /// absent; [`StoreError::Invalid`] if `devices` or the command list is empty.
    fn submit_job(
        &self,
        job: &NewJob,
        devices: &[DeviceId],
        now: Timestamp,
    ) -> impl Future<Output = Result<Job, StoreError>> + Send;
    /// The job, if it exists.
    fn get_job(&self, id: JobId) -> impl Future<Output = Result<Option<Job>, StoreError>> + Send;
    /// Jobs (of one application, or all), newest first, before the cursor `before`.
    fn list_jobs(
        &self,
        app: Option<&AppId>,
        before: Option<JobId>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Job>, StoreError>> + Send;
    /// Device operations of a job per state.
    fn job_counts(&self, id: JobId) -> impl Future<Output = Result<JobCounts, StoreError>> + Send;
    /// Device operations of a job (optionally in one state), by device id after `after`.
    fn job_operations(
        &self,
        id: JobId,
        state: Option<OpState>,
        after: Option<&DeviceId>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Operation>, StoreError>> + Send;
    /// Cancels the job's operations that are still queued (with events); returns how many.
    fn cancel_job(
        &self,
        id: JobId,
        now: Timestamp,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    // --- events and charging ---------------------------------------------------------------

    /// Appends events and charging records in one transaction (what the store does not
    /// derive itself: auth failures, notifications, generic alerts).
    fn append_events(
        &self,
        events: &[NewEvent],
        charges: &[NewCharge],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Events after `after` (exclusive) matching `filter`, oldest first, `limit` at most.
    fn list_events(
        &self,
        after: EventId,
        filter: &EventFilter,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Event>, StoreError>> + Send;
    /// The newest event id (0 when the log is empty).
    fn last_event_id(&self) -> impl Future<Output = Result<EventId, StoreError>> + Send;
    /// Charging records matching `filter` after the cursor `after`, oldest first.
    fn list_charges(
        &self,
        filter: &ChargeFilter,
        after: u64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<ChargeRecord>, StoreError>> + Send;
    /// Totals per application and kind.
    fn charge_totals(
        &self,
        filter: &ChargeFilter,
    ) -> impl Future<Output = Result<Vec<ChargeTotal>, StoreError>> + Send;

    // --- webhooks --------------------------------------------------------------------------

    /// Creates a subscription (enabled). [`StoreError::NotFound`] if the application is absent.
    fn create_subscription(
        &self,
        sub: &NewSubscription,
        now: Timestamp,
    ) -> impl Future<Output = Result<Subscription, StoreError>> + Send;
    /// The subscription, if it exists.
    fn get_subscription(
        &self,
        id: SubscriptionId,
    ) -> impl Future<Output = Result<Option<Subscription>, StoreError>> + Send;
    /// Subscriptions of one application, or all.
    fn list_subscriptions(
        &self,
        app: Option<&AppId>,
    ) -> impl Future<Output = Result<Vec<Subscription>, StoreError>> + Send;
    /// Enables (resetting failures and backoff) or disables a subscription.
    fn set_subscription_enabled(
        &self,
        id: SubscriptionId,
        enabled: bool,
        reason: Option<&str>,
    ) -> impl Future<Output = Result<Subscription, StoreError>> + Send;
    /// Deletes a subscription with its delivery log. False if absent.
    fn delete_subscription(
        &self,
        id: SubscriptionId,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Records an attempt (if any) and the subscription's new progress in one transaction.
    fn record_delivery(
        &self,
        id: SubscriptionId,
        attempt: Option<&Delivery>,
        progress: &DeliveryProgress,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The delivery log of a subscription, newest first.
    fn list_deliveries(
        &self,
        id: SubscriptionId,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Delivery>, StoreError>> + Send;

    // --- audit and idempotency -------------------------------------------------------------

    /// Appends audit entries (the API batches them).
    fn append_audit(
        &self,
        entries: &[NewAudit],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Audit entries matching `filter`, newest first, before the cursor `before`.
    fn list_audit(
        &self,
        filter: &AuditFilter,
        before: Option<u64>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<AuditEntry>, StoreError>> + Send;

    /// How many requests of `app` the audit log holds at or after `since` that were admitted
    /// (every status but 429): the basis of daily quotas that survive restarts.
    fn count_admitted_requests(
        &self,
        app: &AppId,
        since: Timestamp,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// The stored response for (`app`, `key`), if any and younger than 24 h at `now`.
    fn get_idempotent(
        &self,
        app: &AppId,
        key: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<Option<IdempotentResponse>, StoreError>> + Send;
    /// Stores a response for (`app`, `key`) (first writer wins).
    fn put_idempotent(
        &self,
        app: &AppId,
        key: &str,
        response: &IdempotentResponse,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

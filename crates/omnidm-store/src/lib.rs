//! Persistence for omnidm: the [`omnidm_core::Store`] and [`omnidm_core::WsiStore`] traits
//! implemented on SQLite
//! ([`SqliteStore`], the embedded zero-configuration default) and PostgreSQL ([`PgStore`],
//! for several server nodes on one database), plus [`AnyStore`], which picks one by URL.
//!
//! What it does:
//! - owns the schema (`migrations/sqlite`, `migrations/postgres`, embedded with
//!   `sqlx::migrate!` and applied on open) and every SQL statement of the project;
//! - runs each trait method as one transaction; claims are exclusive (SQLite: one writer
//!   connection; PostgreSQL: `FOR UPDATE SKIP LOCKED`); a session's whole outcome — or many
//!   sessions' — commits at once ([`omnidm_core::Store::apply_session_outcomes`]);
//! - derives the event log and charging records (`wsi.rs`) inside the same transactions as
//!   the changes they describe; event ids increase in commit order (readers' cursors);
//! - keeps the two backends from drifting: one source text (`common.rs`, `wsi.rs`) compiled
//!   for both,
//!   with portable SQL (`$n` placeholders, `ON CONFLICT`, `RETURNING`), and one test suite
//!   (`tests/store.rs`) run against both.
//!
//! What it does not do: it decides nothing about the domain (lifecycle checks, merging
//! device info and the crash-recovery rule are `omnidm-core` functions it calls), reads no
//! clock (`now` is an argument), and uses no compile-time-checked queries (no database is
//! needed to build). Timestamps are `i64` Unix milliseconds; command lists, outcomes and
//! device info are JSON text columns.

mod postgres;
mod shared;
mod sqlite;

use omnidm_core::{
    ApiKey, AppId, Application, AuditEntry, AuditFilter, ChargeFilter, ChargeRecord, ChargeTotal,
    Delivery, DeliveryProgress, Event, EventFilter, EventId, Grant, GrantId, Group, GroupId,
    IdempotentResponse, Job, JobCounts, JobId, KeyId, NewAudit, NewCharge, NewEvent, NewGrant,
    NewJob, NewSubscription, OpState, Subscription, SubscriptionId, WsiStore,
};
use omnidm_core::{
    CommandOutcome, Device, DeviceFilter, DeviceId, DeviceInfo, DevicePage, NewOperation, NodePath,
    Nonces, OpFilter, Operation, OperationId, RecoveryReport, SessionId, SessionOutcome, Store,
    StoreError, Timestamp, TreeEntry,
};

pub use postgres::PgStore;
pub use sqlite::{DB_FILE, SqliteStore};

/// A store chosen at run time by URL: `sqlite://PATH` (a file, or a directory that holds
/// `omnidm.sqlite3`) or `postgres://…` / `postgresql://…`.
#[derive(Clone, Debug)]
pub enum AnyStore {
    /// Embedded SQLite.
    Sqlite(SqliteStore),
    /// PostgreSQL.
    Postgres(PgStore),
}

impl AnyStore {
    /// Opens the store `url` names and applies pending migrations.
    pub async fn connect(url: &str) -> Result<AnyStore, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(AnyStore::Sqlite(SqliteStore::connect(url).await?))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(AnyStore::Postgres(PgStore::connect(url).await?))
        } else {
            Err(StoreError::Invalid(format!(
                "unsupported database URL (want sqlite://… or postgres://…): {}",
                url.split('@').next_back().unwrap_or("")
            )))
        }
    }

    /// Closes the connections.
    pub async fn close(&self) {
        match self {
            AnyStore::Sqlite(s) => s.close().await,
            AnyStore::Postgres(s) => s.close().await,
        }
    }
}

impl From<SqliteStore> for AnyStore {
    fn from(s: SqliteStore) -> AnyStore {
        AnyStore::Sqlite(s)
    }
}

impl From<PgStore> for AnyStore {
    fn from(s: PgStore) -> AnyStore {
        AnyStore::Postgres(s)
    }
}

macro_rules! dispatch {
    ($self:ident . $m:ident ( $($arg:expr),* )) => {
        match $self {
            AnyStore::Sqlite(s) => s.$m($($arg),*).await,
            AnyStore::Postgres(s) => s.$m($($arg),*).await,
        }
    };
}

impl Store for AnyStore {
    async fn create_device(&self, device: &Device) -> Result<(), StoreError> {
        dispatch!(self.create_device(device))
    }
    async fn get_device(&self, id: &DeviceId) -> Result<Option<Device>, StoreError> {
        dispatch!(self.get_device(id))
    }
    async fn get_device_for_session(
        &self,
        id: &DeviceId,
    ) -> Result<Option<(Device, bool)>, StoreError> {
        dispatch!(self.get_device_for_session(id))
    }
    async fn get_devices_for_session(
        &self,
        ids: &[DeviceId],
    ) -> Result<Vec<Option<(Device, bool)>>, StoreError> {
        dispatch!(self.get_devices_for_session(ids))
    }
    async fn list_devices(
        &self,
        filter: &DeviceFilter,
        after: Option<&DeviceId>,
        limit: u32,
    ) -> Result<DevicePage, StoreError> {
        dispatch!(self.list_devices(filter, after, limit))
    }
    async fn update_device(&self, device: &Device) -> Result<(), StoreError> {
        dispatch!(self.update_device(device))
    }
    async fn delete_device(&self, id: &DeviceId) -> Result<bool, StoreError> {
        dispatch!(self.delete_device(id))
    }
    async fn record_contact(
        &self,
        id: &DeviceId,
        info: &DeviceInfo,
        now: Timestamp,
    ) -> Result<Device, StoreError> {
        dispatch!(self.record_contact(id, info, now))
    }
    async fn set_nonces(&self, id: &DeviceId, nonces: &Nonces) -> Result<(), StoreError> {
        dispatch!(self.set_nonces(id, nonces))
    }
    async fn upsert_tree(&self, id: &DeviceId, entries: &[TreeEntry]) -> Result<(), StoreError> {
        dispatch!(self.upsert_tree(id, entries))
    }
    async fn delete_tree(&self, id: &DeviceId, root: &NodePath) -> Result<u64, StoreError> {
        dispatch!(self.delete_tree(id, root))
    }
    async fn read_tree(
        &self,
        id: &DeviceId,
        root: &NodePath,
        depth: Option<u32>,
    ) -> Result<Vec<TreeEntry>, StoreError> {
        dispatch!(self.read_tree(id, root, depth))
    }
    async fn submit(
        &self,
        ops: Vec<NewOperation>,
        now: Timestamp,
    ) -> Result<Vec<Operation>, StoreError> {
        dispatch!(self.submit(ops, now))
    }
    async fn get_operation(&self, id: OperationId) -> Result<Option<Operation>, StoreError> {
        dispatch!(self.get_operation(id))
    }
    async fn list_operations(&self, filter: &OpFilter) -> Result<Vec<Operation>, StoreError> {
        dispatch!(self.list_operations(filter))
    }
    async fn claim(
        &self,
        device: &DeviceId,
        session: &SessionId,
        now: Timestamp,
    ) -> Result<Vec<Operation>, StoreError> {
        dispatch!(self.claim(device, session, now))
    }
    async fn claim_to_send(
        &self,
        device: &DeviceId,
        session: &SessionId,
        now: Timestamp,
    ) -> Result<Vec<Operation>, StoreError> {
        dispatch!(self.claim_to_send(device, session, now))
    }
    async fn claim_to_send_many(
        &self,
        claims: &[(DeviceId, SessionId)],
        now: Timestamp,
    ) -> Result<Vec<Vec<Operation>>, StoreError> {
        dispatch!(self.claim_to_send_many(claims, now))
    }
    async fn mark_sent(
        &self,
        id: OperationId,
        session: &SessionId,
        indices: &[usize],
        now: Timestamp,
    ) -> Result<(), StoreError> {
        dispatch!(self.mark_sent(id, session, indices, now))
    }
    async fn complete(
        &self,
        id: OperationId,
        session: &SessionId,
        outcomes: Vec<CommandOutcome>,
        now: Timestamp,
    ) -> Result<Operation, StoreError> {
        dispatch!(self.complete(id, session, outcomes, now))
    }
    async fn release_session(
        &self,
        session: &SessionId,
        now: Timestamp,
    ) -> Result<RecoveryReport, StoreError> {
        dispatch!(self.release_session(session, now))
    }
    async fn cancel(&self, id: OperationId, now: Timestamp) -> Result<Operation, StoreError> {
        dispatch!(self.cancel(id, now))
    }
    async fn amend_outcomes(
        &self,
        id: OperationId,
        device: &DeviceId,
        outcomes: Vec<CommandOutcome>,
        now: Timestamp,
    ) -> Result<Operation, StoreError> {
        dispatch!(self.amend_outcomes(id, device, outcomes, now))
    }
    async fn server_secret(
        &self,
        name: &str,
        candidate: &[u8],
        now: Timestamp,
    ) -> Result<Vec<u8>, StoreError> {
        dispatch!(self.server_secret(name, candidate, now))
    }
    async fn expire_due(&self, now: Timestamp) -> Result<Vec<OperationId>, StoreError> {
        dispatch!(self.expire_due(now))
    }
    async fn fail_unreported_due(&self, now: Timestamp) -> Result<Vec<OperationId>, StoreError> {
        dispatch!(self.fail_unreported_due(now))
    }
    async fn queue_depth(&self, device: Option<&DeviceId>) -> Result<u64, StoreError> {
        dispatch!(self.queue_depth(device))
    }
    async fn recover(&self, now: Timestamp) -> Result<RecoveryReport, StoreError> {
        dispatch!(self.recover(now))
    }
    async fn recover_node(&self, node: &str, now: Timestamp) -> Result<RecoveryReport, StoreError> {
        dispatch!(self.recover_node(node, now))
    }
    async fn apply_session_outcomes(
        &self,
        outcomes: &[SessionOutcome],
    ) -> Result<RecoveryReport, StoreError> {
        dispatch!(self.apply_session_outcomes(outcomes))
    }
}

impl WsiStore for AnyStore {
    async fn create_app(&self, app: &Application) -> Result<(), StoreError> {
        dispatch!(self.create_app(app))
    }
    async fn get_app(&self, id: &AppId) -> Result<Option<Application>, StoreError> {
        dispatch!(self.get_app(id))
    }
    async fn list_apps(&self) -> Result<Vec<Application>, StoreError> {
        dispatch!(self.list_apps())
    }
    async fn update_app(&self, app: &Application) -> Result<(), StoreError> {
        dispatch!(self.update_app(app))
    }
    async fn delete_app(&self, id: &AppId, now: Timestamp) -> Result<bool, StoreError> {
        dispatch!(self.delete_app(id, now))
    }
    async fn has_apps(&self) -> Result<bool, StoreError> {
        dispatch!(self.has_apps())
    }
    async fn create_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        dispatch!(self.create_key(key))
    }
    async fn get_key(&self, id: &KeyId) -> Result<Option<ApiKey>, StoreError> {
        dispatch!(self.get_key(id))
    }
    async fn list_keys(&self, app: &AppId) -> Result<Vec<ApiKey>, StoreError> {
        dispatch!(self.list_keys(app))
    }
    async fn revoke_key(&self, id: &KeyId, now: Timestamp) -> Result<ApiKey, StoreError> {
        dispatch!(self.revoke_key(id, now))
    }
    async fn create_group(&self, group: &Group) -> Result<(), StoreError> {
        dispatch!(self.create_group(group))
    }
    async fn get_group(&self, id: &GroupId) -> Result<Option<Group>, StoreError> {
        dispatch!(self.get_group(id))
    }
    async fn list_groups(&self) -> Result<Vec<Group>, StoreError> {
        dispatch!(self.list_groups())
    }
    async fn update_group(&self, group: &Group) -> Result<(), StoreError> {
        dispatch!(self.update_group(group))
    }
    async fn delete_group(&self, id: &GroupId) -> Result<bool, StoreError> {
        dispatch!(self.delete_group(id))
    }
    async fn add_group_members(
        &self,
        id: &GroupId,
        devices: &[DeviceId],
    ) -> Result<(), StoreError> {
        dispatch!(self.add_group_members(id, devices))
    }
    async fn remove_group_members(
        &self,
        id: &GroupId,
        devices: &[DeviceId],
    ) -> Result<u64, StoreError> {
        dispatch!(self.remove_group_members(id, devices))
    }
    async fn list_group_members(
        &self,
        id: &GroupId,
        after: Option<&DeviceId>,
        limit: u32,
    ) -> Result<Vec<DeviceId>, StoreError> {
        dispatch!(self.list_group_members(id, after, limit))
    }
    async fn is_group_member(&self, id: &GroupId, device: &DeviceId) -> Result<bool, StoreError> {
        dispatch!(self.is_group_member(id, device))
    }
    async fn static_groups_of(&self, device: &DeviceId) -> Result<Vec<GroupId>, StoreError> {
        dispatch!(self.static_groups_of(device))
    }
    async fn create_grant(&self, grant: &NewGrant, now: Timestamp) -> Result<Grant, StoreError> {
        dispatch!(self.create_grant(grant, now))
    }
    async fn list_grants(&self, app: Option<&AppId>) -> Result<Vec<Grant>, StoreError> {
        dispatch!(self.list_grants(app))
    }
    async fn get_grant(&self, id: GrantId) -> Result<Option<Grant>, StoreError> {
        dispatch!(self.get_grant(id))
    }
    async fn delete_grant(&self, id: GrantId) -> Result<bool, StoreError> {
        dispatch!(self.delete_grant(id))
    }
    async fn submit_job(
        &self,
        job: &NewJob,
        devices: &[DeviceId],
        now: Timestamp,
    ) -> Result<Job, StoreError> {
        dispatch!(self.submit_job(job, devices, now))
    }
    async fn get_job(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        dispatch!(self.get_job(id))
    }
    async fn list_jobs(
        &self,
        app: Option<&AppId>,
        before: Option<JobId>,
        limit: u32,
    ) -> Result<Vec<Job>, StoreError> {
        dispatch!(self.list_jobs(app, before, limit))
    }
    async fn job_counts(&self, id: JobId) -> Result<JobCounts, StoreError> {
        dispatch!(self.job_counts(id))
    }
    async fn job_operations(
        &self,
        id: JobId,
        state: Option<OpState>,
        after: Option<&DeviceId>,
        limit: u32,
    ) -> Result<Vec<Operation>, StoreError> {
        dispatch!(self.job_operations(id, state, after, limit))
    }
    async fn cancel_job(&self, id: JobId, now: Timestamp) -> Result<u64, StoreError> {
        dispatch!(self.cancel_job(id, now))
    }
    async fn append_events(
        &self,
        events: &[NewEvent],
        charges: &[NewCharge],
    ) -> Result<(), StoreError> {
        dispatch!(self.append_events(events, charges))
    }
    async fn list_events(
        &self,
        after: EventId,
        filter: &EventFilter,
        limit: u32,
    ) -> Result<Vec<Event>, StoreError> {
        dispatch!(self.list_events(after, filter, limit))
    }
    async fn last_event_id(&self) -> Result<EventId, StoreError> {
        dispatch!(self.last_event_id())
    }
    async fn list_charges(
        &self,
        filter: &ChargeFilter,
        after: u64,
        limit: u32,
    ) -> Result<Vec<ChargeRecord>, StoreError> {
        dispatch!(self.list_charges(filter, after, limit))
    }
    async fn charge_totals(&self, filter: &ChargeFilter) -> Result<Vec<ChargeTotal>, StoreError> {
        dispatch!(self.charge_totals(filter))
    }
    async fn create_subscription(
        &self,
        sub: &NewSubscription,
        now: Timestamp,
    ) -> Result<Subscription, StoreError> {
        dispatch!(self.create_subscription(sub, now))
    }
    async fn get_subscription(
        &self,
        id: SubscriptionId,
    ) -> Result<Option<Subscription>, StoreError> {
        dispatch!(self.get_subscription(id))
    }
    async fn list_subscriptions(
        &self,
        app: Option<&AppId>,
    ) -> Result<Vec<Subscription>, StoreError> {
        dispatch!(self.list_subscriptions(app))
    }
    async fn set_subscription_enabled(
        &self,
        id: SubscriptionId,
        enabled: bool,
        reason: Option<&str>,
    ) -> Result<Subscription, StoreError> {
        dispatch!(self.set_subscription_enabled(id, enabled, reason))
    }
    async fn delete_subscription(&self, id: SubscriptionId) -> Result<bool, StoreError> {
        dispatch!(self.delete_subscription(id))
    }
    async fn record_delivery(
        &self,
        id: SubscriptionId,
        attempt: Option<&Delivery>,
        progress: &DeliveryProgress,
    ) -> Result<(), StoreError> {
        dispatch!(self.record_delivery(id, attempt, progress))
    }
    async fn list_deliveries(
        &self,
        id: SubscriptionId,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        dispatch!(self.list_deliveries(id, limit))
    }
    async fn append_audit(&self, entries: &[NewAudit]) -> Result<(), StoreError> {
        dispatch!(self.append_audit(entries))
    }
    async fn list_audit(
        &self,
        filter: &AuditFilter,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        dispatch!(self.list_audit(filter, before, limit))
    }
    async fn count_admitted_requests(
        &self,
        app: &AppId,
        since: Timestamp,
    ) -> Result<u64, StoreError> {
        dispatch!(self.count_admitted_requests(app, since))
    }
    async fn get_idempotent(
        &self,
        app: &AppId,
        key: &str,
        now: Timestamp,
    ) -> Result<Option<IdempotentResponse>, StoreError> {
        dispatch!(self.get_idempotent(app, key, now))
    }
    async fn put_idempotent(
        &self,
        app: &AppId,
        key: &str,
        response: &IdempotentResponse,
    ) -> Result<(), StoreError> {
        dispatch!(self.put_idempotent(app, key, response))
    }
}

//! Persistence for omnidm: the [`omnidm_core::Store`] trait implemented on SQLite
//! ([`SqliteStore`], the embedded zero-configuration default) and PostgreSQL ([`PgStore`],
//! for several server nodes on one database), plus [`AnyStore`], which picks one by URL.
//!
//! What it does:
//! - owns the schema (`migrations/sqlite`, `migrations/postgres`, embedded with
//!   `sqlx::migrate!` and applied on open) and every SQL statement of the project;
//! - runs each trait method as one transaction; claims are exclusive (SQLite: one writer
//!   connection; PostgreSQL: `FOR UPDATE SKIP LOCKED`); a session's whole outcome — or many
//!   sessions' — commits at once ([`omnidm_core::Store::apply_session_outcomes`]);
//! - keeps the two backends from drifting: one source text (`common.rs`) compiled for both,
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
        outcomes: Vec<CommandOutcome>,
        now: Timestamp,
    ) -> Result<Operation, StoreError> {
        dispatch!(self.amend_outcomes(id, outcomes, now))
    }
    async fn expire_due(&self, now: Timestamp) -> Result<Vec<OperationId>, StoreError> {
        dispatch!(self.expire_due(now))
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

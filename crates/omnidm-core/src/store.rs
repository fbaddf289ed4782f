//! The storage interface. Implementations live in `omnidm-store` (SQLite, PostgreSQL);
//! only they know SQL.
//!
//! Every method is one transaction. Methods that a device session needs on its hot path are
//! batched: a session claims all its device's operations at once ([`Store::claim`]) and
//! writes everything it learned in one call at the end ([`Store::apply_session_outcomes`],
//! which also takes many sessions at once so a server can group-commit).

use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::device::{Device, DeviceFilter, DeviceId, DeviceInfo, DevicePage, Nonces};
use crate::error::StoreError;
use crate::operation::{CommandOutcome, NewOperation, OpFilter, Operation, OperationId, SessionId};
use crate::path::NodePath;
use crate::time::Timestamp;
use crate::value::ValueType;

/// One node of a device's tree cache: the last value the server saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeEntry {
    /// The node (without query).
    pub path: NodePath,
    /// Its type (DM format, TR-069 `xsi:type`, LwM2M resource type).
    pub format: ValueType,
    /// MIME type, when known.
    pub mime_type: Option<String>,
    /// Last known value as wire text; `None` for interior nodes or unknown values.
    pub value: Option<String>,
    /// When the server learned it.
    pub updated_at: Timestamp,
}

/// Progress of one claimed operation, reported at the end of (or during) a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpProgress {
    /// The operation (must be held by the session).
    pub id: OperationId,
    /// Top-level commands sent to the device.
    pub sent: Vec<usize>,
    /// Top-level commands the session queued but never sent (it ended first): they were
    /// recorded as sent when claimed (crash safety), and are not, so recovery requeues them
    /// instead of reporting them interrupted (issue 9 item 11).
    pub unsent: Vec<usize>,
    /// Outcomes received.
    pub outcomes: Vec<CommandOutcome>,
    /// The session is done with it: finish it (`succeeded`/`failed`).
    pub finished: bool,
}

/// Everything one session learned, written in one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionOutcome {
    /// The device.
    pub device_id: DeviceId,
    /// The session (the marker its claims used).
    pub session: SessionId,
    /// When the session ended.
    pub now: Timestamp,
    /// Contact to record (merged info, `last_seen`, `session_count`), if any.
    pub contact: Option<DeviceInfo>,
    /// Nonces for the next session, if they changed.
    pub nonces: Option<Nonces>,
    /// Tree cache updates.
    pub tree: Vec<TreeEntry>,
    /// Nodes the device deleted (successful Delete): dropped from the cache with their
    /// subtrees, before `tree` is applied.
    pub tree_deleted: Vec<NodePath>,
    /// Operation progress.
    pub operations: Vec<OpProgress>,
    /// Asynchronous results the session's Generic Alerts brought for Execs of this or earlier
    /// sessions (already checked to be this device's): amended after `operations`, in the
    /// same transaction, so a crash cannot keep the session and lose its completions (issue 9
    /// item 12). A report for an operation of another device is skipped.
    pub reports: Vec<(OperationId, CommandOutcome)>,
    /// Events the adapter observed (session start and end, generic alerts), appended in
    /// the same transaction as everything else; the store adds the events it derives itself
    /// (device seen, operation state changes, command results).
    pub events: Vec<crate::event::NewEvent>,
    /// The session is over: operations it still holds after `operations` are applied go
    /// through [`recover_interrupted`](crate::recover_interrupted).
    pub ended: bool,
}

/// What [`Store::recover`] or a release did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Back to `queued`.
    pub requeued: Vec<OperationId>,
    /// All commands had been answered; finished.
    pub finished: Vec<OperationId>,
    /// Failed with interrupted commands.
    pub failed: Vec<OperationId>,
}

impl RecoveryReport {
    /// Number of operations touched.
    pub fn len(&self) -> usize {
        self.requeued.len() + self.finished.len() + self.failed.len()
    }

    /// True when nothing was touched.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Persistent state of the server. Implementations must be safe to share between tasks
/// (`Clone` is cheap: a handle to a pool).
///
/// Errors: [`StoreError::NotFound`] / [`StoreError::Conflict`] /
/// [`StoreError::IllegalTransition`] / [`StoreError::WrongSession`] are the caller's;
/// [`StoreError::Backend`] is the database's.
pub trait Store: Clone + Send + Sync + 'static {
    // --- devices ---------------------------------------------------------------------------

    /// Registers a device. [`StoreError::Conflict`] if the id exists.
    fn create_device(&self, device: &Device)
    -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The device, if registered.
    fn get_device(
        &self,
        id: &DeviceId,
    ) -> impl Future<Output = Result<Option<Device>, StoreError>> + Send;

    /// The device and whether it has queued operations, in one read: what a device session
    /// needs at its start (most sessions have nothing queued and then never claim).
    fn get_device_for_session(
        &self,
        id: &DeviceId,
    ) -> impl Future<Output = Result<Option<(Device, bool)>, StoreError>> + Send;

    /// [`get_device_for_session`](Self::get_device_for_session) for several devices at once
    /// (a driver batching the session starts of concurrent devices): one answer per id, in
    /// order. The default reads one after the other.
    fn get_devices_for_session(
        &self,
        ids: &[DeviceId],
    ) -> impl Future<Output = Result<Vec<Option<(Device, bool)>>, StoreError>> + Send {
        async move {
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                out.push(self.get_device_for_session(id).await?);
            }
            Ok(out)
        }
    }

    /// Devices matching `filter`, in id order, `limit` at most (0 = default 100), after the
    /// cursor `after`.
    fn list_devices(
        &self,
        filter: &DeviceFilter,
        after: Option<&DeviceId>,
        limit: u32,
    ) -> impl Future<Output = Result<DevicePage, StoreError>> + Send;

    /// Replaces a device's record (all fields but `id` and `created_at`).
    /// [`StoreError::NotFound`] if absent.
    fn update_device(&self, device: &Device)
    -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Deletes a device with its tree cache and operations. False if it did not exist.
    fn delete_device(&self, id: &DeviceId)
    -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Records a contact: merges `info`, bumps `session_count`, sets `last_seen` (and
    /// `first_seen` on the first). Returns the updated device.
    fn record_contact(
        &self,
        id: &DeviceId,
        info: &DeviceInfo,
        now: Timestamp,
    ) -> impl Future<Output = Result<Device, StoreError>> + Send;

    /// Stores the nonces for the next session. [`StoreError::NotFound`] if the device or
    /// its DM account is absent.
    fn set_nonces(
        &self,
        id: &DeviceId,
        nonces: &Nonces,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    // --- tree cache ------------------------------------------------------------------------

    /// Inserts or replaces tree entries (queries in paths are dropped).
    fn upsert_tree(
        &self,
        id: &DeviceId,
        entries: &[TreeEntry],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Drops `root` and its subtree from the cache; returns how many nodes went.
    fn delete_tree(
        &self,
        id: &DeviceId,
        root: &NodePath,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// The cached node at `root` and its descendants down to `depth` levels below it
    /// (`None` = all), in path order.
    fn read_tree(
        &self,
        id: &DeviceId,
        root: &NodePath,
        depth: Option<u32>,
    ) -> impl Future<Output = Result<Vec<TreeEntry>, StoreError>> + Send;

    // --- operations ------------------------------------------------------------------------

    /// Queues operations (one transaction; fan-out to many devices is one call). Returns
    /// them with their ids, in input order. [`StoreError::NotFound`] if a device is absent;
    /// [`StoreError::Invalid`] if a command list is empty.
    fn submit(
        &self,
        ops: Vec<NewOperation>,
        now: Timestamp,
    ) -> impl Future<Output = Result<Vec<Operation>, StoreError>> + Send;

    /// The operation, if it exists.
    fn get_operation(
        &self,
        id: OperationId,
    ) -> impl Future<Output = Result<Option<Operation>, StoreError>> + Send;

    /// Operations matching `filter`, in id order.
    fn list_operations(
        &self,
        filter: &OpFilter,
    ) -> impl Future<Output = Result<Vec<Operation>, StoreError>> + Send;

    /// Atomically moves the device's queued, unexpired operations to `in_session` under
    /// `session` (attempts + 1) and returns them in id order. Two concurrent claims never
    /// return the same operation (PostgreSQL: `FOR UPDATE SKIP LOCKED`). A device with
    /// nothing queued costs one indexed read and no write transaction (most sessions).
    fn claim(
        &self,
        device: &DeviceId,
        session: &SessionId,
        now: Timestamp,
    ) -> impl Future<Output = Result<Vec<Operation>, StoreError>> + Send;

    /// [`claim`](Self::claim), also recording every top-level command of the claimed
    /// operations as sent, in the same transaction: for a driver that hands all of them to
    /// the device in its next message (the conservative reading of "sent" for recovery).
    fn claim_to_send(
        &self,
        device: &DeviceId,
        session: &SessionId,
        now: Timestamp,
    ) -> impl Future<Output = Result<Vec<Operation>, StoreError>> + Send;

    /// [`claim_to_send`](Self::claim_to_send) for several sessions at once (a driver batching
    /// the claims of concurrent sessions): one result per `(device, session)`, in order. A
    /// device named twice gets its operations in its first entry. The default claims one
    /// after the other.
    fn claim_to_send_many(
        &self,
        claims: &[(DeviceId, SessionId)],
        now: Timestamp,
    ) -> impl Future<Output = Result<Vec<Vec<Operation>>, StoreError>> + Send {
        async move {
            let mut out = Vec::with_capacity(claims.len());
            for (device, session) in claims {
                out.push(self.claim_to_send(device, session, now).await?);
            }
            Ok(out)
        }
    }

    /// Records top-level commands as sent (before or as they go on the wire).
    fn mark_sent(
        &self,
        id: OperationId,
        session: &SessionId,
        indices: &[usize],
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Finishes an operation held by `session` with `outcomes`.
    fn complete(
        &self,
        id: OperationId,
        session: &SessionId,
        outcomes: Vec<CommandOutcome>,
        now: Timestamp,
    ) -> impl Future<Output = Result<Operation, StoreError>> + Send;

    /// Applies the recovery rule to every operation `session` still holds (the session
    /// broke or ended without finishing them).
    fn release_session(
        &self,
        session: &SessionId,
        now: Timestamp,
    ) -> impl Future<Output = Result<RecoveryReport, StoreError>> + Send;

    /// Cancels a queued operation. [`StoreError::IllegalTransition`] otherwise.
    fn cancel(
        &self,
        id: OperationId,
        now: Timestamp,
    ) -> impl Future<Output = Result<Operation, StoreError>> + Send;

    /// Expires queued operations whose `expires_at <= now`; returns their ids.
    fn expire_due(
        &self,
        now: Timestamp,
    ) -> impl Future<Output = Result<Vec<OperationId>, StoreError>> + Send;

    /// Fails operations `awaiting_report` whose `report_deadline <= now`
    /// ([`Operation::fail_unreported`](crate::Operation::fail_unreported): the Execs still
    /// waiting get status 902 `report_timeout`), with their `command.result` and
    /// `operation.state_changed` events; returns their ids. Idempotent, so every node's sweep
    /// may run it.
    fn fail_unreported_due(
        &self,
        now: Timestamp,
    ) -> impl Future<Output = Result<Vec<OperationId>, StoreError>> + Send;

    /// Applies asynchronous reports (OMA DM Generic Alert 1226 answering an Exec's
    /// correlator) to an operation with [`Operation::apply_report`](crate::Operation::apply_report):
    /// an operation `awaiting_report` settles (its result code decides `succeeded`/`failed`,
    /// issue 9 item 5), a finished one only records the report as late and keeps its state.
    ///
    /// Only `device`, the device that reports, can amend: an operation of another device is
    /// [`StoreError::NotFound`] and nothing is written (a device must never report for
    /// another one; issue 8).
    fn amend_outcomes(
        &self,
        id: OperationId,
        device: &DeviceId,
        outcomes: Vec<CommandOutcome>,
        now: Timestamp,
    ) -> impl Future<Output = Result<Operation, StoreError>> + Send;

    /// The server secret `name`, shared by every node: the stored one, or `candidate`
    /// (fresh random bytes from the caller) stored now if there is none yet. Two nodes
    /// starting at once agree on whichever was stored first.
    fn server_secret(
        &self,
        name: &str,
        candidate: &[u8],
        now: Timestamp,
    ) -> impl Future<Output = Result<Vec<u8>, StoreError>> + Send;

    /// Number of queued operations (of one device, or all).
    fn queue_depth(
        &self,
        device: Option<&DeviceId>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Startup: applies the recovery rule to every `in_session` operation (sessions do not
    /// survive a restart).
    fn recover(
        &self,
        now: Timestamp,
    ) -> impl Future<Output = Result<RecoveryReport, StoreError>> + Send;

    /// Like [`recover`](Self::recover), for the sessions whose id starts with `node` only.
    /// With several server nodes on one PostgreSQL database, a starting node recovers its
    /// own sessions and leaves its peers' live ones alone (session ids carry the node id).
    fn recover_node(
        &self,
        node: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<RecoveryReport, StoreError>> + Send;

    /// Writes the outcomes of many sessions in ONE transaction (all or nothing: on error,
    /// retry them one by one to isolate the bad one).
    fn apply_session_outcomes(
        &self,
        outcomes: &[SessionOutcome],
    ) -> impl Future<Output = Result<RecoveryReport, StoreError>> + Send;

    /// One session's outcome; see [`apply_session_outcomes`](Self::apply_session_outcomes).
    fn apply_session_outcome(
        &self,
        outcome: &SessionOutcome,
    ) -> impl Future<Output = Result<RecoveryReport, StoreError>> + Send {
        self.apply_session_outcomes(std::slice::from_ref(outcome))
    }
}

//! The protocol-neutral domain of omnidm: devices and their DM accounts, the tree cache,
//! durable operations (commands, lifecycle, outcomes, crash-recovery rule) and the
//! [`Store`] trait that persists them.
//!
//! What this crate does:
//! - defines the types every protocol adapter (OMA DM now, TR-069 and LwM2M later) and the
//!   Web Services Interface share: [`Device`], [`NodePath`], [`TypedValue`], [`Operation`],
//!   [`OpCommand`], [`CommandOutcome`], [`SessionOutcome`];
//! - enforces the operation lifecycle in one function ([`OpState::check_transition`]);
//! - states, as a pure function, what happens to an operation whose session broke
//!   ([`recover_interrupted`]);
//! - declares the storage interface ([`Store`]) as async methods returning `Send` futures.
//!
//! What it does not do: no I/O, no SQL, no HTTP, no async runtime, no clock or RNG reads
//! (`now` is always an argument), and it never depends on a protocol crate — adapters
//! depend on the core, not the other way round. Secrets are never held in plaintext: a
//! [`DmAccount`] keeps only `b64(md5(name:secret))` keys.

mod access;
mod app;
mod audit;
mod device;
mod error;
mod event;
mod job;
mod operation;
mod path;
mod recovery;
mod secrets;
mod store;
mod time;
mod value;
mod webhook;
mod wsi_store;

pub use access::{
    Denial, Grant, GrantId, Group, GroupFilter, GroupId, GroupKind, Need, NewGrant, Permission,
    SubtreePattern, authorize, grant_allows, is_listing, needs_of, refuse_credential_reads,
};
pub use app::{ApiKey, AppId, Application, KeyId, Role, SlugError};
pub use audit::{AuditEntry, AuditFilter, NewAudit};
pub use device::{
    ClientAuth, Device, DeviceFilter, DeviceId, DeviceIdError, DeviceInfo, DevicePage, DmAccount,
    NewDevice, Nonces, Protocol, dm_key,
};
pub use error::{StoreError, TransitionError};
pub use event::{
    ChargeFilter, ChargeKind, ChargeRecord, ChargeTotal, Event, EventFilter, EventId, EventKind,
    NewCharge, NewEvent,
};
pub use job::{Job, JobCounts, JobId, JobTarget, NewJob};
pub use operation::{
    CommandOutcome, DEFAULT_REPORT_TIMEOUT_MS, LateReport, NewOperation, NodeResult, OpCommand,
    OpFilter, OpState, Operation, OperationId, REPORT_TIMEOUT_REASON, ReportEffect, SessionId,
    UiAnswer, UiKind, UiPrompt, result_code, status,
};
pub use path::{NodePath, PathError};
pub use recovery::{Recovery, recover_interrupted};
pub use store::{OpProgress, RecoveryReport, SessionOutcome, Store, TreeEntry};
pub use time::Timestamp;
pub use value::{TypedValue, ValueType};
pub use webhook::{
    Delivery, DeliveryProgress, NewSubscription, Subscription, SubscriptionId, backoff_millis,
};
pub use wsi_store::{IdempotentResponse, WsiStore};

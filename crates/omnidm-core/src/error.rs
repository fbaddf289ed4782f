//! Errors of the core and of every store implementation.

use crate::operation::{OpState, OperationId};

/// An operation state change that the lifecycle does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("operation cannot go from {from} to {to}")]
pub struct TransitionError {
    /// The state the operation is in.
    pub from: OpState,
    /// The state that was asked for.
    pub to: OpState,
}

/// Why a store call failed. Grouped by what the caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The thing to create exists already (duplicate device id).
    #[error("{0} already exists")]
    Conflict(String),
    /// The thing addressed does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The operation is not in a state that allows the request.
    #[error("operation {id}: {source}")]
    IllegalTransition {
        /// The operation.
        id: OperationId,
        /// The refused transition.
        #[source]
        source: TransitionError,
    },
    /// The operation is held by another session than the caller's.
    #[error("operation {0} is not held by this session")]
    WrongSession(OperationId),
    /// A request that cannot be valid whatever the stored data (bad command index, …).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// A stored row could not be decoded (corruption or a newer schema).
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// The database failed or is unreachable; retrying later may succeed.
    #[error("database error: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

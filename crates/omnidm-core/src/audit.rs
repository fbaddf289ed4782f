//! The audit log: every Web Services Interface call — who, what, target, outcome.

use serde::{Deserialize, Serialize};

use crate::app::AppId;
use crate::time::Timestamp;

/// One API call as audited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewAudit {
    /// When the request arrived.
    pub at: Timestamp,
    /// The authenticated application; `None` when authentication failed.
    pub app_id: Option<AppId>,
    /// The key used (its public id), when one was presented and known.
    pub key_id: Option<String>,
    /// HTTP method.
    pub method: String,
    /// Request path (without query).
    pub path: String,
    /// What the call addressed (device id, operation id, …), when it addressed one thing.
    pub target: Option<String>,
    /// Response status code.
    pub status: u16,
    /// `allowed`, `denied` (401/403/429) or `error` (other 4xx/5xx).
    pub outcome: String,
    /// For a denial, the rule that denied.
    pub rule: Option<String>,
}

/// A stored audit entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Sequence number (cursor).
    pub id: u64,
    /// The entry.
    #[serde(flatten)]
    pub entry: NewAudit,
}

/// Which audit entries a listing returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only this application.
    pub app_id: Option<AppId>,
    /// Only this outcome.
    pub outcome: Option<String>,
    /// At or after.
    pub from: Option<Timestamp>,
    /// Before.
    pub to: Option<Timestamp>,
}

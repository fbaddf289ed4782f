//! Backend-independent helpers: error mapping, JSON columns, column lists.

use omnidm_core::StoreError;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Columns of `devices`, in the order `device_from_row` and the binders use.
pub(crate) const DEVICE_COLS: &str = "id, protocol, info, tags, dm_client_auth, dm_client_name, \
     dm_client_key, dm_server_id, dm_server_key, dm_client_nonce, dm_server_nonce, \
     quirk_profile, first_seen, last_seen, session_count, created_at";

/// Columns of `operations`.
pub(crate) const OP_COLS: &str = "id, device_id, state, commands, outcomes, sent, session, \
     created_at, updated_at, expires_at, notify, attempts, submitted_by, job_id, report_deadline";

/// Rows per multi-row INSERT (7 binds each: well under SQLite's 32766 and PostgreSQL's
/// 65535 bind limits).
pub(crate) const TREE_CHUNK: usize = 1000;

/// Default and largest page sizes.
pub(crate) const DEFAULT_LIMIT: u32 = 100;
pub(crate) const MAX_LIMIT: u32 = 10_000;

pub(crate) fn page_limit(limit: u32) -> i64 {
    i64::from(if limit == 0 {
        DEFAULT_LIMIT
    } else {
        limit.min(MAX_LIMIT)
    })
}

/// Any database error, as the caller sees it.
pub(crate) fn db(e: sqlx::Error) -> StoreError {
    StoreError::Backend(Box::new(e))
}

/// Unique-key violations become `Conflict(what)`, foreign-key violations `NotFound(parent)`.
pub(crate) fn db_keyed(e: sqlx::Error, what: &str, parent: &str) -> StoreError {
    if let sqlx::Error::Database(d) = &e {
        if d.is_unique_violation() {
            return StoreError::Conflict(what.to_owned());
        }
        if d.is_foreign_key_violation() {
            return StoreError::NotFound(parent.to_owned());
        }
    }
    db(e)
}

pub(crate) fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

pub(crate) fn to_json<T: Serialize + ?Sized>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Invalid(format!("cannot encode: {e}")))
}

pub(crate) fn from_json<T: DeserializeOwned>(s: &str, col: &str) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(|e| corrupt(format_args!("column {col}: {e}")))
}

pub(crate) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Smallest string greater than every string starting with `prefix`, for range scans; `None`
/// when `prefix` is empty (no upper bound). Prefixes end in an ASCII separator, so bumping
/// the last byte stays valid UTF-8.
pub(crate) fn prefix_upper(prefix: &str) -> Option<String> {
    let mut bytes = prefix.as_bytes().to_vec();
    let last = bytes.pop()?;
    if last >= 0x7f {
        return None;
    }
    bytes.push(last + 1);
    String::from_utf8(bytes).ok()
}

//! The management-tree model shared by every protocol adapter of omnidm.
//!
//! # What it does
//!
//! - [`uri`]: OMA DM tree URIs ([`TreeUri`]), `?list=` / `?prop=` suffixes
//!   ([`UriQuery`]), configurable size limits ([`UriLimits`]) and grant patterns
//!   ([`UriPattern`]) such as `./DevInfo/*` or `./Vendor/App42/**`.
//! - [`format`]: node formats ([`Format`]: `b64`, `bin`, `bool`, `chr`, …), typed node
//!   values ([`NodeValue`]) parsed from and rendered to wire text, and [`MimeType`].
//! - [`acl`]: OMA DM ACL strings (`Add=*&Get=srv1+srv2`) as a typed [`Acl`].
//! - [`tnds`]: reading and writing TNDS `<MgmtTree>` documents ([`MgmtTree`]), and
//!   flattening them into `(uri, format, value)` rows for a tree cache.
//!
//! # What it does not do
//!
//! - No I/O, no clock, no randomness, no async runtime, no logging: every input is an
//!   argument and every output a return value. Warnings from liberal parsing are data
//!   ([`TndsWarning`]), not log lines.
//! - It does not hold a live device tree, evaluate ACL inheritance along a path, or
//!   decide SyncML status codes; those belong to the session engine and the core.
//! - It knows nothing about SyncML messages or WBXML (see `omnidm-syncml`).
//!
//! **Architecture invariant**: this crate depends on no runtime crate (tokio, serde_json,
//! sqlx, …) and never panics on any input.
//!
//! Section numbers in comments refer to OMA-TS-DM_TND-V1_2_1 ("TND") and
//! OMA-TS-DM-TNDS-V1_2 ("TNDS") unless another document is named.

pub mod acl;
pub mod error;
pub mod format;
pub mod tnds;
pub mod uri;

pub use acl::{Acl, AclCommand, AclGrant};
pub use error::{AclError, FormatError, TndsError, TndsLimit, UriError, UriLimit};
pub use format::{Format, MimeType, NodeValue};
pub use tnds::{
    FlatEntry, FlatNode, MgmtTree, NodeType, RtProperties, TndsLimits, TndsNode, TndsRead,
    TndsWarning,
};
pub use uri::{ListKind, Property, TreeUri, UriLimits, UriPattern, UriQuery};

//! The client (device) side of the OMA DM 1.2 session engine, sans-IO.
//!
//! What it does:
//! - [`ClientSession`]: one management session as a device runs it — package 1 (Alert
//!   1201/1200, pending Generic Alerts 1226, DevInfo), authentication both ways (Basic, MD5,
//!   HMAC; challenges with `Chal`/`NextNonce`; the server's `Cred` verified and challenged),
//!   execution of Get/Add/Replace/Delete/Copy/Exec/Atomic/Sequence and user-interaction alerts
//!   on a [`ManagementTree`], multi-message packages (Alert 1222) and large objects
//!   (`MoreData`, 213, 424, 1225) in both directions within the server's `MaxMsgSize`, and the
//!   session end.
//! - [`MemoryTree`]: an in-memory tree with ACLs and a realistic device layout
//!   ([`MemoryTree::standard_device`]), FUMO/SCOMO/DiagMon Exec behaviour reporting completion
//!   with Generic Alerts.
//! - [`trigger_from_notification`]: package 0 → a server-initiated session.
//!
//! What it does not do: HTTP, sockets, clocks, randomness (time is an argument, the nonce the
//! device issues is drawn by the caller), persistence of nonces or pending alerts (reported as
//! [`ClientEvent`]s for the caller to store), load generation (that is the simulator).
//!
//! A session, as the simulator drives it (HTTP left out):
//!
//! ```
//! use std::time::Instant;
//! use omnidm_omadm::client::{ClientConfig, ClientSession, DeviceProfile, MemoryTree, SessionParams};
//!
//! let profile = DeviceProfile::default();
//! let mut tree = MemoryTree::standard_device(&profile);
//! let now = Instant::now();
//! let mut session = ClientSession::new(
//!     ClientConfig::from_profile(&profile),
//!     SessionParams::first([0x5a; 16]), // random bytes: the nonce issued to the server
//!     now,
//! );
//! while let Some(out) = session.poll_transmit(&mut tree, now) {
//!     // POST out.body to out.uri with out.content_type (and out.hmac_header), then:
//!     // session.handle_response(&reply_body, reply_hmac_header, &mut tree, Instant::now())?;
//!     # let _ = out; break;
//! }
//! while let Some(event) = session.poll_event() {
//!     // store nonces (NoncesChanged), deferred generic alerts, outcomes…
//!     # let _ = event;
//! }
//! ```
//!
//! **Architecture invariant**: no tokio, no serde_json, no I/O; nothing from the server can
//! make it panic — bad input is a typed [`ClientError`] or a SyncML status.

mod session;
mod tree;
mod ui;

pub use session::{
    AsyncReports, ClientConfig, ClientError, ClientEvent, ClientQuirks, ClientSession, Outgoing,
    SessionOutcome, SessionParams, Trigger, TriggerError, trigger_from_notification,
};
pub use tree::{
    DEVICE_SELF, DeviceProfile, ExecOutcome, GenericAlert, ManagementTree, MemoryTree, NodeItem,
    TNDS_XML_TYPE,
};
pub use ui::{UiAction, UiAnswer, UiOptions, UiPolicy, UiPrompt, answer as ui_answer};

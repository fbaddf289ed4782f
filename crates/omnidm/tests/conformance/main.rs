//! The OMA DM 1.2 conformance suite of our own (issue 9): the real `omnidm serve` on
//! loopback, driven over HTTP with SyncML messages written by hand in the tests (`wire.rs`:
//! XML put together from strings, credentials computed from the DM Security formulas, WBXML
//! through Debian's libwbxml), never through our own client engine. Operations are queued and
//! their outcomes read through the WSI.
//!
//! One module per specification area; every test names the rule it checks and cites its
//! section:
//!
//! | module | specification |
//! |---|---|
//! | `auth` | OMA-TS-DM_Security-V1_2 §5 (Basic, MD5, HMAC), DM Protocol 1.2 authentication |
//! | `packages` | DM Protocol 1.2 packages, multiple messages (Alert 1222), SyncHdr rules; DM RepPro 1.2 |
//! | `commands` | DM Protocol 1.2 / RepPro 1.2 commands and status codes |
//! | `atomic_sequence` | DM RepPro 1.2 Atomic and Sequence (216, 507) |
//! | `ui_alerts` | DM Protocol 1.2 user interaction (alerts 1100–1104) |
//! | `large_objects` | DM Protocol 1.2 large object handling (MoreData, Size, 213, 424, 1225) |
//! | `replay_session_end` | DM Protocol 1.2 session end, MsgID rules (SyncML RepPro 1.2) |
//! | `package0` | OMA-TS-DM_Notification-V1_2 §6 (package 0) |
//!
//! The DM Protocol 1.2 rules were read in a public transcription of the specification's
//! chapters (multiple messages, large objects, authentication, user interaction; the OMA PDFs
//! themselves were not reachable, only their first pages); section numbers are the
//! specification's (§6 multiple messages, §7 large objects, §9 authentication, §10 user
//! interaction), quoted rules are the text's.
//!
//! Asynchronous completion and nonce resynchronisation have suites of their own
//! (`conformance_async_completion.rs`, `conformance_nonce.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "../support/mod.rs"]
mod support;

mod wire;

mod atomic_sequence;
mod auth;
mod commands;
mod large_objects;
mod package0;
mod packages;
mod replay_session_end;
mod ui_alerts;

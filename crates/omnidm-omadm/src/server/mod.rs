//! The server side of the OMA DM 1.2 session engine: sans-IO, in the style of `quinn-proto`.
//!
//! # Driving a session
//!
//! ```text
//! let p = peek(body, content_type, limits)?;               // who is it? which session?
//! let mut s = ServerSession::new(&config, device_ctx, random, now);  // or the running one
//! s.enqueue(tag, DmCommand::Get { uri })?;                 // any time before poll_transmit
//! s.handle(Incoming { body, content_type, hmac }, now)?;
//! while let Some(ev) = s.poll_event() { … }                // may enqueue on CommandsNeeded
//! let out = s.poll_transmit(now);                          // the HTTP response
//! while let Some(ev) = s.poll_event() { … }                // Ended, local statuses
//! // later: s.poll_timeout() / s.handle_timeout(now)
//! ```
//!
//! # What it does (OMA-TS-DM_Protocol-V1_2, "DM Protocol"; OMA-TS-DM_Security-V1_2)
//!
//! - Package 1: Alert 1201/1200, Generic Alerts 1226, DevInfo Replace in any item order; a
//!   Status for the SyncHdr (with TargetRef/SourceRef) and every command, `MsgRef`/`CmdRef`
//!   always written.
//! - Client authentication per device policy: Basic or MD5 in `Cred`, HMAC in the
//!   `x-syncml-hmac` header (every message). Missing → 407, wrong → 401, for the SyncHdr
//!   and every command of the message, each with a `Chal` and a fresh `NextNonce`, nothing
//!   executed; the session ends after `max_auth_attempts` failures, the last one challenged
//!   too (decisions 77, 78). Basic/MD5: 212 when accepted, with a new NextNonce for the next
//!   session (MD5). HMAC: 200 on every message, each server message with a NextNonce for the
//!   device's next one (decision 79) → [`SessionEvent::NoncesChanged`].
//! - Server authentication: our MD5 `Cred` in our first message (quirk, default on) and
//!   until the device answers 212; the device's `Chal` updates our nonce in whatever message
//!   it comes, the first of a session and unauthenticated ones included (our `Cred` is then
//!   withheld until the device authenticates: decision 90); after a 401/407 for
//!   our SyncHdr, the commands of that message the device did not run are requeued.
//! - Commands packed into the device's `MaxMsgSize` with [`omnidm_syncml::MessageBudget`];
//!   packages over several messages (Alert 1222, DM Protocol §6), large objects in chunks
//!   with `MoreData`/`Size` and 213 (§7); devices that can do neither get every message
//!   `Final` and objects too large are refused with 413, never sent.
//! - Every Status/Results correlated by (MsgRef, CmdRef) to the command's tag; chunked
//!   Results reassembled (413 over our `MaxObjSize`, 424 on a Size mismatch, Alert 1225 when
//!   a new object interrupts one); Atomic/Sequence statuses derived when the device sends none.
//! - User interaction alerts 1100–1104 (§10) and their answers; Generic Alert 1226.
//! - Session end on a statuses-only package, Alert 1223, timeout; `RespURI` carrying the
//!   session token; replays of the last message answered again, MsgID jumps refused.
//!
//! # What it does not do
//!
//! No I/O, clock or randomness (time and random bytes are arguments); no persistence (the
//! driver stores nonces, results and statuses from events); no correlator bookkeeping across
//! sessions; no package 0 (see `omnidm_syncml::notification`). Devices whose messages cannot
//! be decoded are the driver's to answer (HTTP 400).

mod peek;
mod session;
mod types;
mod wire;

pub use peek::{peek, peek_decoded};
pub use session::ServerSession;
pub use types::*;
pub use wire::token_from_uri;

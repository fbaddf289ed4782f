//! omnidm's device simulator and load generator: OMA DM 1.2 devices over real HTTP.
//!
//! What it does:
//! - [`SimDevice`]: one device — a [`MemoryTree`](omnidm_omadm::client::MemoryTree) with the
//!   standard layout (DevInfo, DevDetail, DMAcc, FUMO, SCOMO, DiagMon, a vendor subtree), the
//!   nonces it keeps between sessions, its deferred Generic Alerts and its session counter.
//!   [`SimDevice::run_session`] drives the engine's sans-IO
//!   [`ClientSession`](omnidm_omadm::client::ClientSession) over HTTP POSTs: the engine's
//!   `Content-Type`, the `x-syncml-hmac` header when it authenticates with HMAC, the
//!   `RespURI` the server gives, a per-request timeout, fresh random nonces (`getrandom`).
//! - [`Fleet`]: thousands of devices in one process. Ids from a pattern
//!   (`IMEI:35900000{:07}`), secrets derived predictably from a seed ([`derive_secret`]) so a
//!   provisioning step can create the same accounts ([`Fleet::accounts`]); sessions run as
//!   Tokio tasks bounded by a semaphore, for a number of sessions per device or a duration,
//!   back to back or every interval ± jitter; every session latency is kept and percentiles are
//!   exact (nearest rank).
//! - Package 0: [`Fleet::serve_push`] is the receiving end of a push gateway.
//!   **`POST /push/{device_id}`** (device id percent-encoded where needed; `:` need not be),
//!   or `POST /push` with an **`X-Device-Id`** header; body = the binary package 0. It is
//!   verified with the device's server credentials (`trigger_from_notification`) and starts a
//!   server-initiated session (Alert 1200). Answers: 202 started, 400 undecodable or no
//!   device id, 403 wrong server id or bad digest, 404 unknown device. The server's push
//!   gateway URL is therefore `http://ADDR/push/{device_id}`.
//! - Trivial mode ([`Fleet::run_trivial`]): the same workers, semaphore, schedule and HTTP
//!   client, each "session" being one GET of a plain URL (e.g. `/healthz`), so that
//!   sessions/s can be divided by requests/s measured the same way.
//! - [`Summary`]: sessions, successes, failures by reason (with an example), messages, bytes,
//!   commands, throughput, latency p50/p90/p99/max; a table via `Display` or JSON via serde;
//!   optionally a progress bar on stderr (indicatif, hidden when not a terminal).
//!
//! What it does not do: any protocol logic (all of it is in `omnidm-omadm`, which stays
//! sans-IO; this crate is only its I/O driver), HTTPS or HTTP/2, persistence of device state
//! across runs beyond what [`FleetState`] keeps (nonces and session counters, saved and
//! restored by the caller: [`Fleet::snapshot`], [`Fleet::restore`]), SMS/WAP push (package 0 arrives only over the HTTP listener),
//! and provisioning the server itself (it prints the accounts; a script or test creates them).

mod device;
mod fleet;
pub mod http;
mod push;
mod state;
mod stats;

pub use device::{Outcome, SessionReport, SimDevice, random16};
pub use fleet::{
    AuthScheme, DeviceAccount, Fleet, FleetConfig, FleetError, IdPattern, Schedule, derive_secret,
};
pub use http::{HttpClient, HttpError, PlainRequest};
pub use push::DEVICE_ID_HEADER;
pub use state::{DeviceState, FleetState, StateError};
pub use stats::{Failure, Latency, PushSummary, Stats, Summary};

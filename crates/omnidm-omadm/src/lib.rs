//! The OMA DM 1.2 session engine, sans-IO, both sides.
//!
//! - [`server`]: the server side of a management session — authentication both ways, packing
//!   queued commands into the device's `MaxMsgSize` (multi-message packages, large objects),
//!   correlating every Status and Results with the command that caused it, user interaction,
//!   generic alerts, replay protection, timeouts. The `omnidm serve` device endpoint drives it.
//! - [`client`]: the device side — a correct DM 1.2 client over a [`client::ManagementTree`]
//!   (with a realistic in-memory tree); the simulator is built on it.
//!
//! In the style of `quinn-proto`: inputs go in through `handle*(…, now)`, outputs come out
//! through `poll_*`. The engine never does I/O, never reads the clock (time is an argument)
//! and never draws randomness (random bytes are arguments), so every behaviour is testable with
//! no sockets and a virtual clock — including the two sides against each other
//! (`tests/loopback.rs`).
//!
//! What it does not do: persistence, HTTP, package 0 delivery, scheduling — those belong to the
//! driver (`omnidm` binary) and the store.

pub mod client;
pub mod server;

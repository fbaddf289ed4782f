//! The OMA DM 1.2 wire layer: the SyncML DM message model, its XML and WBXML codecs, a size
//! calculator, DM security (Basic, MD5, HMAC-MD5) and the package 0 notification.
//!
//! What it does:
//! - [`decode`] bytes (XML or WBXML, sniffed or named by content type) into a typed
//!   [`Message`]; [`encode`] a message back, byte-stable.
//! - Accepts what real devices send (GUIDE §3): any namespace spelling, elements out of order,
//!   unknown elements (skipped, reported in [`Decoded::warnings`]), embedded markup in `<Data>`,
//!   a missing `MsgRef`. Refuses what it cannot mean: missing `CmdID`, non-numeric codes.
//! - Never panics on input; bounded by [`Limits`] (size, depth, element count), each named in
//!   its error, with the byte offset where decoding stopped.
//! - [`MessageBudget`] tells the exact encoded size of a message as commands are added.
//! - [`auth`]: credentials and digests; [`notification`]: package 0.
//!
//! What it does not do: sessions, command correlation, retries or anything stateful (that is
//! the session engine); I/O, clocks or randomness (time and random bytes are arguments); the
//! meaning of tree paths and node values (that is `omnidm-tree`).

mod codec;
mod codes;
mod emit;
mod error;
mod event;
mod model;
mod parse;
mod size;
mod tag;
mod wbxml;
mod xml;

pub mod auth;
pub mod notification;

pub use codec::{Decoded, Encoding, decode, decode_with, encode, to_pretty_xml};
pub use codes::{AlertCode, StatusCode};
pub use error::{DecodeError, DecodeErrorKind, Limits, Warning};
pub use model::*;
pub use size::{MessageBudget, encoded_size};
pub use tag::Tag;

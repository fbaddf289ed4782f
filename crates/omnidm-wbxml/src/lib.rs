//! Generic WAP Binary XML (WBXML 1.0–1.3, WAP-192-WBXML-20010725) tokenizer/reader and writer.
//!
//! # What it does
//! - [`Reader`]: parses the header ([`Header`]: version, [`PublicId`], charset, string table)
//!   and then yields a flat stream of [`Event`]s — start tags as `(code page, 6-bit token)`,
//!   literal tags, END, strings (STR_I and STR_T, the latter resolved through the string
//!   table), OPAQUE data and character entities. Events borrow from the input; nothing is
//!   copied.
//! - [`Writer`]: appends the same tokens to a `Vec<u8>`, inserting SWITCH_PAGE as needed, with
//!   exact size accounting ([`Writer::len`], [`str_i_len`], [`opaque_len`], [`header_len`],
//!   [`Writer::start_len`]) so callers can budget message sizes.
//! - The `mb_u_int32` helpers ([`read_mb_u_int32`], [`write_mb_u_int32`], [`mb_u_int32_len`]).
//!
//! # What it does not do
//! - It knows nothing about SyncML or any other document type: code pages and tag tokens are
//!   plain numbers supplied by the caller. The SyncML crate maps its own tag enum onto
//!   `(page, token)`.
//! - It does not report attributes. Attribute lists (ATTRSTART/ATTRVALUE with STR_I, STR_T,
//!   LITERAL, ENTITY, EXT_*, OPAQUE inside, SWITCH_PAGE of the attribute code space) are parsed
//!   and skipped, so documents that use them still read correctly. Processing instructions
//!   and extension tokens (EXT_I_*, EXT_T_*, EXT_*) are skipped with their payloads.
//! - It does not decode character sets: strings are raw bytes in the document charset.
//!   Charsets with a multi-byte NUL terminator (UTF-16/32, UCS-2/4) are rejected.
//! - No I/O: the reader works on a complete document in memory; the writer fills a `Vec`.
//!
//! # Conventions
//! - **Elements without content**: a start tag without the content flag produces
//!   `Start { has_content: false, .. }` immediately followed by a synthetic [`Event::End`], so
//!   consumers only need to pair Start/End. The [`Writer`] is the other way round: after
//!   `start(.., false)` the element is complete and `end()` must not be called.
//! - **End of document**: [`Reader::next_event`] returns `Ok(None)` once the root element has
//!   closed. After it only processing instructions and zero padding are accepted; any other
//!   byte is [`ErrorKind::TrailingData`].
//! - **WBXML 1.0** headers have no charset field (the header reports charset 0).
//! - **Liberal where harmless**: strings in the string table that lack a final NUL end at the
//!   end of the table; `mb_u_int32` values with redundant leading zero groups are accepted
//!   (at most 5 bytes).
//! - **Never panics** on any input and uses no `unsafe`; resource use is bounded by [`Limits`].
//!
//! # Example
//! ```
//! use omnidm_wbxml::{Event, Limits, PublicId, Reader, Writer};
//!
//! let mut w = Writer::new(0x02, PublicId::Known(0x1201), 106);
//! w.start(0, 0x2D, true); // page 0, token 0x2D
//! w.start(1, 0x05, false); // switches to page 1
//! w.str_i(b"hello").unwrap();
//! w.end();
//! let doc = w.finish();
//!
//! let mut r = Reader::new(&doc, Limits::default()).unwrap();
//! assert_eq!(r.header().charset, 106);
//! assert_eq!(
//!     r.next_event().unwrap(),
//!     Some(Event::Start { page: 0, token: 0x2D, has_content: true })
//! );
//! assert_eq!(
//!     r.next_event().unwrap(),
//!     Some(Event::Start { page: 1, token: 0x05, has_content: false })
//! );
//! assert_eq!(r.next_event().unwrap(), Some(Event::End)); // synthetic
//! assert_eq!(r.next_event().unwrap(), Some(Event::Str(b"hello")));
//! assert_eq!(r.next_event().unwrap(), Some(Event::End));
//! assert_eq!(r.next_event().unwrap(), None);
//! ```

mod error;
mod mb;
mod reader;
pub mod token;
mod writer;

pub use error::{Error, ErrorKind};
pub use mb::{MB_U_INT32_MAX_LEN, mb_u_int32_len, read_mb_u_int32, write_mb_u_int32};
pub use reader::{Event, Header, Limits, PublicId, Reader};
pub use writer::{Writer, header_len, opaque_len, str_i_len};

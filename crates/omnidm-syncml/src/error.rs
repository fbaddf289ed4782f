//! Decoding errors, limits and warnings.
//!
//! Errors are grouped by cause and carry the byte offset where the decoder stopped, so a person
//! debugging a capture can find the spot; [`DecodeError::status`] says what the peer is told.

use crate::codes::StatusCode;
use std::fmt;

/// Bounds that a decoder enforces on untrusted input. Exceeding one is an error naming it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted message in bytes.
    pub max_input: usize,
    /// Deepest element nesting (Atomic inside Sequence inside … counts).
    pub max_depth: usize,
    /// Most elements in one message.
    pub max_elements: usize,
}

impl Default for Limits {
    /// 8 MiB, depth 32, 200,000 elements: far above what a DM message needs (a 1 MB TNDS in
    /// one `Data` is a single element) and low enough to bound the work per message.
    fn default() -> Self {
        Self {
            max_input: 8 * 1024 * 1024,
            max_depth: 32,
            max_elements: 200_000,
        }
    }
}

/// Why a message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeErrorKind {
    /// The input is empty or only whitespace.
    #[error("empty input")]
    Empty,
    /// The input holds no element at all (text, comments, a declaration only).
    #[error("no SyncML element found")]
    NoElement,
    /// The XML is not well-formed.
    #[error("malformed XML: {0}")]
    Xml(String),
    /// The WBXML is not well-formed.
    #[error("malformed WBXML: {0}")]
    Wbxml(String),
    /// The XML input is neither UTF-8 nor declared ISO-8859-1.
    #[error("text is not valid UTF-8")]
    InvalidUtf8,
    /// The WBXML document uses a character set we do not decode.
    #[error(
        "unsupported WBXML charset (MIBenum {0}); UTF-8, US-ASCII and ISO-8859-1 are supported"
    )]
    UnsupportedCharset(u32),
    /// The root element is not `SyncML`.
    #[error("root element is <{0}>, expected <SyncML>")]
    NotSyncMl(String),
    /// The document ended inside an element.
    #[error("unexpected end of input inside <{0}>")]
    UnexpectedEof(&'static str),
    /// A mandatory element is missing.
    #[error("<{parent}> lacks its mandatory <{element}>")]
    Missing {
        /// The missing element.
        element: &'static str,
        /// Where it was expected.
        parent: &'static str,
    },
    /// A number (CmdID, MsgID, status code, size …) is not one.
    #[error("<{element}> must be a number, found {value:?}")]
    InvalidNumber {
        /// The element.
        element: &'static str,
        /// The offending text (truncated to 40 characters).
        value: String,
    },
    /// A limit from [`Limits`] was exceeded.
    #[error("{name} limit of {limit} exceeded")]
    Limit {
        /// Which limit: `max_input`, `max_depth` or `max_elements`.
        name: &'static str,
        /// Its value.
        limit: usize,
    },
}

/// A decoding failure: the cause and the byte offset in the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} at byte {offset}")]
pub struct DecodeError {
    /// What went wrong.
    pub kind: DecodeErrorKind,
    /// Byte offset in the input where decoding stopped.
    pub offset: usize,
}

impl DecodeError {
    pub(crate) fn new(kind: DecodeErrorKind, offset: usize) -> Self {
        Self { kind, offset }
    }

    /// The SyncML status a server answers with when the SyncHdr was readable (DM Protocol 1.2
    /// §10): 413 for size limits, 400 for everything else. Without a readable header the HTTP
    /// layer answers 400 instead.
    pub fn status(&self) -> StatusCode {
        match self.kind {
            DecodeErrorKind::Limit {
                name: "max_input", ..
            } => StatusCode::REQUEST_ENTITY_TOO_LARGE,
            DecodeErrorKind::UnsupportedCharset(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// Something the decoder accepted but a person should know about: an unknown element skipped,
/// stray text between elements, a duplicated element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// Byte offset in the input.
    pub offset: usize,
    /// What was noticed.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.message, self.offset)
    }
}

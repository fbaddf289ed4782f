//! Error type shared by the reader, the writer and the multi-byte integer helpers.

use thiserror::Error;

/// A WBXML error together with the byte offset in the input where it was detected.
///
/// For the [`Writer`](crate::Writer) the offset is the length of the output at the time of
/// the failed call.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{kind} at byte {offset}")]
pub struct Error {
    /// What went wrong.
    pub kind: ErrorKind,
    /// Byte offset (from the start of the document) where the problem was detected.
    pub offset: usize,
}

impl Error {
    /// Creates an error of `kind` at byte `offset`.
    pub fn new(kind: ErrorKind, offset: usize) -> Self {
        Self { kind, offset }
    }
}

/// The cause of an [`Error`].
///
/// Marked `#[non_exhaustive]`: new causes may be added without a breaking change.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The input ended in the middle of the header, a token or its payload, or before the root
    /// element was closed.
    #[error("unexpected end of input")]
    UnexpectedEof,
    /// A multi-byte integer is longer than 5 bytes or its value exceeds `u32::MAX`.
    #[error("malformed multi-byte integer (longer than 5 bytes or above u32::MAX)")]
    BadMbUint,
    /// A string table reference (STR_T, LITERAL*, literal public id) points outside the
    /// string table.
    #[error("string table offset {offset} out of range")]
    StringTableOffset {
        /// The offending offset.
        offset: u32,
    },
    /// The declared string table length exceeds the rest of the input.
    #[error("string table length {length} exceeds the input")]
    StringTableLength {
        /// The declared length.
        length: u32,
    },
    /// Elements are nested deeper than [`Limits::max_depth`](crate::Limits::max_depth).
    #[error("element nesting deeper than the limit of {limit}")]
    DepthLimit {
        /// The configured limit.
        limit: usize,
    },
    /// The input is larger than [`Limits::max_input`](crate::Limits::max_input).
    #[error("input larger than the limit of {limit} bytes")]
    InputLimit {
        /// The configured limit.
        limit: usize,
    },
    /// The body holds more tokens than [`Limits::max_tokens`](crate::Limits::max_tokens).
    #[error("more tokens than the limit of {limit}")]
    TokenLimit {
        /// The configured limit.
        limit: usize,
    },
    /// A token that is not allowed where it appears (e.g. LITERAL_C inside an attribute list,
    /// a string before the root element).
    #[error("unexpected token 0x{token:02X}")]
    UnexpectedToken {
        /// The token byte.
        token: u8,
    },
    /// Non-zero bytes after the root element (other than processing instructions).
    #[error("trailing data after the root element")]
    TrailingData,
    /// An END token with no open element.
    #[error("END token without an open element")]
    UnbalancedEnd,
    /// The version byte is not WBXML 1.0 to 1.3.
    #[error("unsupported WBXML version byte 0x{version:02X}")]
    UnsupportedVersion {
        /// The version byte.
        version: u8,
    },
    /// The document charset uses a multi-byte string terminator (UTF-16, UTF-32, UCS-2,
    /// UCS-4), which this crate does not support.
    #[error("unsupported charset (MIBenum {charset})")]
    UnsupportedCharset {
        /// The MIBenum of the charset.
        charset: u32,
    },
    /// Writer: an inline string contains a NUL byte, which would terminate it early.
    #[error("inline string contains a NUL byte")]
    NulInString,
}

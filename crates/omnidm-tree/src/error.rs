//! Error types of this crate, one enum per cause family.
//!
//! Every error names what was wrong (and which limit was exceeded) so that a caller
//! can map it to a protocol status (for example SyncML 414 "URI too long" for
//! [`UriError::LimitExceeded`]) without parsing messages.

use std::fmt;

/// A size limit of [`crate::UriLimits`] that a URI exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UriLimit {
    /// Too many segments (`UriLimits::max_depth`, cf. `./DevDetail/URI/MaxDepth`).
    Depth,
    /// One segment too long (`UriLimits::max_segment_len`, cf. `./DevDetail/URI/MaxSegLen`).
    SegmentLength,
    /// Whole URI too long (`UriLimits::max_total_len`, cf. `./DevDetail/URI/MaxTotLen`).
    TotalLength,
}

impl fmt::Display for UriLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UriLimit::Depth => "max_depth",
            UriLimit::SegmentLength => "max_segment_len",
            UriLimit::TotalLength => "max_total_len",
        })
    }
}

/// Why a string is not an acceptable management-tree URI.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    /// The URI is empty.
    #[error("empty URI")]
    Empty,
    /// The URI starts with `/`; DM URIs are relative to the root `.` (TND §5).
    #[error("URI must not start with '/'")]
    LeadingSlash,
    /// Two consecutive `/` (or a lone trailing `//`) produce an empty segment.
    #[error("empty segment at position {index}")]
    EmptySegment {
        /// Zero-based index of the empty segment.
        index: usize,
    },
    /// A `.` or `..` segment; `..` is forbidden and `./` only allowed first (TND §5).
    #[error("relative segment {segment:?} at position {index}")]
    DotSegment {
        /// The offending segment (`.` or `..`).
        segment: String,
        /// Zero-based index of the segment.
        index: usize,
    },
    /// A segment contains a character that cannot appear in a node name.
    #[error("invalid character {ch:?} in segment {index}")]
    InvalidChar {
        /// The character.
        ch: char,
        /// Zero-based index of the segment.
        index: usize,
    },
    /// The `?…` suffix is neither `list=…` nor `prop=…` with a known value (TND §7.3).
    #[error("unsupported URI query {0:?}")]
    BadQuery(String),
    /// A configured limit was exceeded.
    #[error("URI exceeds {limit}: {actual} > {max}")]
    LimitExceeded {
        /// Which limit.
        limit: UriLimit,
        /// The configured maximum.
        max: usize,
        /// The measured value.
        actual: usize,
    },
    /// A pattern uses `**` somewhere other than as its last segment.
    #[error("'**' is only allowed as the last pattern segment")]
    MisplacedSubtreeWildcard,
}

/// Why a format name or a value in a given format could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// Not one of the DM formats (TND §7.7.2, SyncML Meta Info `Format`).
    #[error("unknown node format {0:?}")]
    UnknownFormat(String),
    /// A `bool` value other than `true` / `false`.
    #[error("invalid bool value {0:?}")]
    InvalidBool(String),
    /// An `int` value that is not a decimal integer.
    #[error("invalid int value {0:?}")]
    InvalidInt(String),
    /// An `int` value outside the 32-bit signed range.
    #[error("int value {0:?} out of 32-bit signed range")]
    IntOutOfRange(String),
    /// A `float` value that is not a number.
    #[error("invalid float value {0:?}")]
    InvalidFloat(String),
    /// A `b64` value that is not valid base64.
    #[error("invalid base64 value: {0}")]
    InvalidBase64(String),
    /// A `date` value that is not an ISO 8601 calendar date.
    #[error("invalid ISO 8601 date {0:?}")]
    InvalidDate(String),
    /// A `time` value that is not an ISO 8601 time (of day, optionally with date).
    #[error("invalid ISO 8601 time {0:?}")]
    InvalidTime(String),
    /// A text format received bytes that are not UTF-8.
    #[error("value is not valid UTF-8")]
    NotUtf8,
    /// A MIME type without the `type/subtype` shape.
    #[error("invalid MIME type {0:?}")]
    InvalidMimeType(String),
}

/// Why an ACL string could not be parsed (TND §7.7.1.5).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AclError {
    /// An entry has no `=`.
    #[error("ACL entry {0:?} has no '='")]
    MissingEquals(String),
    /// A command that has no ACL representation (only Add, Delete, Exec, Get, Replace).
    #[error("unknown ACL command {0:?}")]
    UnknownCommand(String),
    /// A server identifier with a forbidden character (`=`, `&`, `*`, `+`, white space).
    #[error("invalid server identifier {0:?}")]
    InvalidServerId(String),
}

/// A size limit of [`crate::TndsLimits`] that a TNDS document exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TndsLimit {
    /// Input size in bytes (`TndsLimits::max_input_bytes`).
    InputBytes,
    /// Element nesting depth (`TndsLimits::max_depth`).
    Depth,
    /// Number of `<Node>` elements (`TndsLimits::max_nodes`).
    Nodes,
}

impl fmt::Display for TndsLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TndsLimit::InputBytes => "max_input_bytes",
            TndsLimit::Depth => "max_depth",
            TndsLimit::Nodes => "max_nodes",
        })
    }
}

/// Why a TNDS document could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TndsError {
    /// The input is not UTF-8 (TNDS objects in XML are UTF-8).
    #[error("TNDS input is not valid UTF-8 at byte {offset}")]
    NotUtf8 {
        /// Byte offset of the first invalid sequence.
        offset: usize,
    },
    /// The XML is malformed.
    #[error("malformed XML at byte {offset}: {message}")]
    Xml {
        /// Byte offset where the parser stopped.
        offset: u64,
        /// The XML parser's description.
        message: String,
    },
    /// The root element is not `MgmtTree`.
    #[error("root element is <{0}>, expected <MgmtTree>")]
    UnexpectedRoot(String),
    /// The document has no `MgmtTree` element.
    #[error("no <MgmtTree> element")]
    MissingMgmtTree,
    /// A configured limit was exceeded.
    #[error("TNDS document exceeds {limit} ({max})")]
    LimitExceeded {
        /// Which limit.
        limit: TndsLimit,
        /// The configured maximum.
        max: usize,
    },
}

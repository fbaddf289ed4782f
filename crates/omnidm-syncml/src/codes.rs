//! Typed status and alert codes (OMA DM Protocol 1.2 §10 "Response Status Codes" and
//! DM Representation 1.2 §8 "Alert Codes"). On the wire both are decimal strings inside `<Data>`;
//! here they are types so that a status can never be confused with an alert or a free string.

use std::fmt;

/// A SyncML/OMA DM response status code (DM Protocol 1.2 §10). Unknown codes are kept as they
/// are: devices send vendor codes and the server must still report them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StatusCode(pub u16);

impl StatusCode {
    /// 200 OK: the command completed successfully.
    pub const OK: Self = Self(200);
    /// 202 Accepted for processing (asynchronous completion follows, e.g. Exec with Correlator).
    pub const ACCEPTED_FOR_PROCESSING: Self = Self(202);
    /// 212 Authentication accepted: no further credentials needed for this session.
    pub const AUTHENTICATION_ACCEPTED: Self = Self(212);
    /// 213 Chunked item accepted and buffered (large object in progress).
    pub const CHUNKED_ITEM_ACCEPTED: Self = Self(213);
    /// 214 Operation cancelled (e.g. by the user).
    pub const OPERATION_CANCELLED: Self = Self(214);
    /// 215 Not executed (e.g. the user declined a confirmation alert).
    pub const NOT_EXECUTED: Self = Self(215);
    /// 216 Atomic roll back OK.
    pub const ATOMIC_ROLLBACK_OK: Self = Self(216);
    /// 400 Bad request.
    pub const BAD_REQUEST: Self = Self(400);
    /// 401 Invalid credentials.
    pub const INVALID_CREDENTIALS: Self = Self(401);
    /// 403 Forbidden.
    pub const FORBIDDEN: Self = Self(403);
    /// 404 Not found.
    pub const NOT_FOUND: Self = Self(404);
    /// 405 Command not allowed.
    pub const COMMAND_NOT_ALLOWED: Self = Self(405);
    /// 406 Optional feature not supported.
    pub const OPTIONAL_FEATURE_NOT_SUPPORTED: Self = Self(406);
    /// 407 Missing credentials (authentication required).
    pub const MISSING_CREDENTIALS: Self = Self(407);
    /// 412 Incomplete command.
    pub const INCOMPLETE_COMMAND: Self = Self(412);
    /// 413 Request entity too large.
    pub const REQUEST_ENTITY_TOO_LARGE: Self = Self(413);
    /// 414 URI too long.
    pub const URI_TOO_LONG: Self = Self(414);
    /// 415 Unsupported media type or format.
    pub const UNSUPPORTED_MEDIA_TYPE: Self = Self(415);
    /// 418 Already exists.
    pub const ALREADY_EXISTS: Self = Self(418);
    /// 424 Size mismatch (large object reassembled to a different size than announced).
    pub const SIZE_MISMATCH: Self = Self(424);
    /// 425 Permission denied.
    pub const PERMISSION_DENIED: Self = Self(425);
    /// 500 Command failed.
    pub const COMMAND_FAILED: Self = Self(500);
    /// 506 Processing error.
    pub const PROCESSING_ERROR: Self = Self(506);
    /// 507 Atomic failed.
    pub const ATOMIC_FAILED: Self = Self(507);
    /// 516 Atomic roll back failed.
    pub const ATOMIC_ROLLBACK_FAILED: Self = Self(516);

    /// True for the 2xx class.
    pub fn is_success(self) -> bool {
        (200..300).contains(&self.0)
    }

    /// A short English reason phrase for humans (logs, `syncml inspect`).
    pub fn reason(self) -> &'static str {
        match self.0 {
            200 => "OK",
            201 => "Item added",
            202 => "Accepted for processing",
            204 => "No content",
            205 => "Reset content",
            206 => "Partial content",
            212 => "Authentication accepted",
            213 => "Chunked item accepted and buffered",
            214 => "Operation cancelled",
            215 => "Not executed",
            216 => "Atomic roll back OK",
            400 => "Bad request",
            401 => "Invalid credentials",
            403 => "Forbidden",
            404 => "Not found",
            405 => "Command not allowed",
            406 => "Optional feature not supported",
            407 => "Missing credentials",
            408 => "Request timeout",
            412 => "Incomplete command",
            413 => "Request entity too large",
            414 => "URI too long",
            415 => "Unsupported media type or format",
            416 => "Requested size too big",
            418 => "Already exists",
            420 => "Device full",
            424 => "Size mismatch",
            425 => "Permission denied",
            500 => "Command failed",
            503 => "Service unavailable",
            506 => "Processing error",
            507 => "Atomic failed",
            510 => "Data store failure",
            516 => "Atomic roll back failed",
            _ => "Unknown status",
        }
    }
}

impl fmt::Display for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// An OMA DM alert code (DM Protocol 1.2 §8.7, DM Representation 1.2 §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AlertCode(pub u16);

impl AlertCode {
    /// 1100 Display: show a message to the user.
    pub const DISPLAY: Self = Self(1100);
    /// 1101 Confirm or reject.
    pub const CONFIRM_OR_REJECT: Self = Self(1101);
    /// 1102 Text input.
    pub const TEXT_INPUT: Self = Self(1102);
    /// 1103 Single choice.
    pub const SINGLE_CHOICE: Self = Self(1103);
    /// 1104 Multiple choice.
    pub const MULTIPLE_CHOICE: Self = Self(1104);
    /// 1200 Server-initiated management session.
    pub const SERVER_INITIATED_MGMT: Self = Self(1200);
    /// 1201 Client-initiated management session.
    pub const CLIENT_INITIATED_MGMT: Self = Self(1201);
    /// 1222 Next message: the sender has more of the current package to send.
    pub const NEXT_MESSAGE: Self = Self(1222);
    /// 1223 Session abort.
    pub const SESSION_ABORT: Self = Self(1223);
    /// 1224 Client event (DM 1.2).
    pub const CLIENT_EVENT: Self = Self(1224);
    /// 1225 No end of data: a large object was not completed.
    pub const NO_END_OF_DATA: Self = Self(1225);
    /// 1226 Generic alert (asynchronous results, e.g. FUMO completion).
    pub const GENERIC_ALERT: Self = Self(1226);

    /// True for the user-interaction alerts 1100–1104.
    pub fn is_user_interaction(self) -> bool {
        (1100..=1104).contains(&self.0)
    }

    /// A short English name for humans.
    pub fn name(self) -> &'static str {
        match self.0 {
            1100 => "Display",
            1101 => "Confirm or reject",
            1102 => "Text input",
            1103 => "Single choice",
            1104 => "Multiple choice",
            1200 => "Server-initiated session",
            1201 => "Client-initiated session",
            1222 => "Next message",
            1223 => "Session abort",
            1224 => "Client event",
            1225 => "No end of data",
            1226 => "Generic alert",
            _ => "Unknown alert",
        }
    }
}

impl fmt::Display for AlertCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
